// 2D convolution, NCHW, weights [OC, C / groups, KH, KW].
// groups == 1 runs as im2col + matmul (src/ops/conv.rs): `im2col` writes
// cols[n][oh * OW + ow][c * KH * KW + kh * KW + kw]; `col2im` folds the gradient of
// cols back onto the input by gathering (each input pixel sums the columns that
// read it: no atomics). groups > 1 (depthwise included) runs the direct kernels.
// Bindings: 0 params, 1 output, then the inputs by meaning (see below).

struct ConvParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    oc: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    groups: u32,
    // Row length of cols: C * KH * KW rounded up to a multiple of 4 so the
    // matmuls get their vec4 kernels; the tail is zero.
    klen_p: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: ConvParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// One binding number per meaning; each entry point binds the ones it reads
// (src/ops/conv.rs passes them by these numbers).
@group(0) @binding(2) var<storage, read> inputs: array<f32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
// The gradient of the output, and of im2col's columns [N, OH*OW, klen_p].
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read> grad_cols: array<f32>;

// Input row/column read by output position o at kernel offset k, or -1 if padding.
fn src_pos(o: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let s = i32(o * stride + k * dil) - i32(pad);
    if s < 0 || s >= i32(size) {
        return -1;
    }
    return s;
}

// The cols row of one output pixel, as vec4s.
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;

// out = cols [N, OH*OW, klen_p] from the inputs. One invocation per (n, pixel)
// writes its whole row: the integer divisions (slow on CPU adapters) happen once
// per row, the kernel window is walked with counters, and the row goes out a
// vec4 at a time (one per-lane store loop on llvmpipe moves four values).
// Where an im2col row's walk over the kernel window stands: the input plane
// of the current channel, the kernel offset, and how many values it has given.
struct Walk {
    y0: i32,
    x0: i32,
    plane: u32,
    ky: u32,
    kx: u32,
    t: u32,
}

fn walk_start(i: u32) -> Walk {
    let ohw = p.oh * p.ow;
    let n = i / ohw;
    let pix = i % ohw;
    let y0 = i32((pix / p.ow) * p.sh) - i32(p.ph);
    let x0 = i32((pix % p.ow) * p.sw) - i32(p.pw);
    return Walk(y0, x0, n * p.c * p.h * p.w, 0u, 0u, 0u);
}

// The row's next value (0 for padding and for the tail past C * KH * KW).
fn walk_next(s: ptr<function, Walk>) -> f32 {
    var v = 0.0;
    if (*s).t < p.c * p.kh * p.kw {
        let y = (*s).y0 + i32((*s).ky * p.dh);
        let x = (*s).x0 + i32((*s).kx * p.dw);
        if y >= 0 && y < i32(p.h) && x >= 0 && x < i32(p.w) {
            v = inputs[(*s).plane + u32(y) * p.w + u32(x)];
        }
        (*s).kx++;
        if (*s).kx == p.kw {
            (*s).kx = 0u;
            (*s).ky++;
            if (*s).ky == p.kh {
                (*s).ky = 0u;
                (*s).plane += p.h * p.w;
            }
        }
    }
    (*s).t++;
    return v;
}

@compute @workgroup_size(64)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.oh * p.ow {
        return;
    }
    var s = walk_start(i);
    let row4 = i * (p.klen_p / 4u);
    for (var t = 0u; t < p.klen_p / 4u; t++) {
        let a = walk_next(&s);
        let b = walk_next(&s);
        let c = walk_next(&s);
        let d = walk_next(&s);
        out4[row4 + t] = vec4<f32>(a, b, c, d);
    }
}

// Strides of col2im (and direct_forward) as constants: its inner test
// `t % stride` is then a shift or a multiply, not a per-lane integer division.
override SH: u32 = 1u;
override SW: u32 = 1u;

// Output position that reads input position i at kernel offset k, or -1.
fn dst_pos(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    if t < 0 || u32(t) % stride != 0u {
        return -1;
    }
    let o = u32(t) / stride;
    if o >= size {
        return -1;
    }
    return i32(o);
}

// out = dx [N, C, H, W] from grad_cols.
@compute @workgroup_size(256)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n * p.c * p.h * p.w {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.c;
    let n = i / (p.w * p.h * p.c);
    let kk = p.kh * p.kw;
    let klen = p.klen_p;
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let oy = dst_pos(y, ky, SH, p.ph, p.dh, p.oh);
        if oy < 0 {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ox = dst_pos(x, kx, SW, p.pw, p.dw, p.ow);
            if ox < 0 {
                continue;
            }
            let pix = u32(oy) * p.ow + u32(ox);
            acc += grad_cols[(n * p.oh * p.ow + pix) * klen + c * kk + ky * p.kw + kx];
        }
    }
    out[i] = acc;
}

// The direct forward's geometry, all but the batch, as constants (set by
// src/ops/conv.rs for every launch): its index arithmetic then divides by
// constants and the tap loops have constant bounds, which llvmpipe unrolls.
// Measured on MobileNetV2's depthwise layers: see benches/ROUNDS.md, eighth round.
override XC: u32 = 1u;
override XH: u32 = 1u;
override XW: u32 = 1u;
override OC: u32 = 1u;
override OH: u32 = 1u;
override OW: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;
override PH: u32 = 0u;
override PW: u32 = 0u;
override DH: u32 = 1u;
override DW: u32 = 1u;
override GROUPS: u32 = 1u;

// out = y [N, OC, OH, OW] from inputs and weights (no bias: added by the caller).
@compute @workgroup_size(256)
fn direct_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n * OC * OH * OW {
        return;
    }
    let ox = i % OW;
    let oy = (i / OW) % OH;
    let o = (i / (OW * OH)) % OC;
    let n = i / (OW * OH * OC);
    let cg = XC / GROUPS;
    let g = o / (OC / GROUPS);
    var acc = 0.0;
    for (var ci = 0u; ci < cg; ci++) {
        let c = g * cg + ci;
        for (var ky = 0u; ky < KH; ky++) {
            let y = src_pos(oy, ky, SH, PH, DH, XH);
            if y < 0 {
                continue;
            }
            for (var kx = 0u; kx < KW; kx++) {
                let x = src_pos(ox, kx, SW, PW, DW, XW);
                if x < 0 {
                    continue;
                }
                acc += inputs[((n * XC + c) * XH + u32(y)) * XW + u32(x)] *
                       weights[((o * cg + ci) * KH + ky) * KW + kx];
            }
        }
    }
    out[i] = acc;
}

// out = dx [N, C, H, W] from grad_out and weights.
@compute @workgroup_size(256)
fn direct_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n * p.c * p.h * p.w {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let c = (i / (p.w * p.h)) % p.c;
    let n = i / (p.w * p.h * p.c);
    let cg = p.c / p.groups;
    let ocg = p.oc / p.groups;
    let g = c / cg;
    let ci = c % cg;
    var acc = 0.0;
    for (var oo = 0u; oo < ocg; oo++) {
        let o = g * ocg + oo;
        for (var ky = 0u; ky < p.kh; ky++) {
            let oy = dst_pos(y, ky, p.sh, p.ph, p.dh, p.oh);
            if oy < 0 {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ox = dst_pos(x, kx, p.sw, p.pw, p.dw, p.ow);
                if ox < 0 {
                    continue;
                }
                acc += grad_out[((n * p.oc + o) * p.oh + u32(oy)) * p.ow + u32(ox)] *
                       weights[((o * cg + ci) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    out[i] = acc;
}

// out = dw [OC, C / groups, KH, KW] from grad_out and inputs.
@compute @workgroup_size(256)
fn direct_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    let cg = p.c / p.groups;
    if i >= p.oc * cg * p.kh * p.kw {
        return;
    }
    let kx = i % p.kw;
    let ky = (i / p.kw) % p.kh;
    let ci = (i / (p.kw * p.kh)) % cg;
    let o = i / (p.kw * p.kh * cg);
    let c = (o / (p.oc / p.groups)) * cg + ci;
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        for (var oy = 0u; oy < p.oh; oy++) {
            let y = src_pos(oy, ky, p.sh, p.ph, p.dh, p.h);
            if y < 0 {
                continue;
            }
            for (var ox = 0u; ox < p.ow; ox++) {
                let x = src_pos(ox, kx, p.sw, p.pw, p.dw, p.w);
                if x < 0 {
                    continue;
                }
                acc += grad_out[((n * p.oc + o) * p.oh + oy) * p.ow + ox] *
                       inputs[((n * p.c + c) * p.h + u32(y)) * p.w + u32(x)];
            }
        }
    }
    out[i] = acc;
}

// The direct forward for CPU adapters: one invocation per tile of RH rows by
// CW columns of outputs (tiles at the bottom and right edges may be cut
// short). The inputs the tile reads (WROWS rows of SPAN values, what RH x CW
// outputs at strides SH x SW read through KH x KW taps at dilations DH x DW)
// are loaded once into a window, channel by channel, and every output takes
// its taps from there: a 2 x 8 tile of a 3x3 stride-1 depthwise conv reads 40
// inputs and 9 weights instead of 144 and 144. On llvmpipe every lane-varying
// load is a per-lane loop: loads, not FMAs, set the speed. Same taps in the
// same order as direct_forward (a padded tap adds 0 * w). The constants bound
// every loop, so they unroll and the window and sums stay in registers;
// src/ops/conv.rs picks RH and CW so that the window holds at most 64 values
// and the tile 16 outputs.
override RH: u32 = 1u;
override CW: u32 = 1u;
const WIN_MAX: u32 = 64u;
const TILE_MAX: u32 = 16u;

// win[r * cols + s] = the input at row y0 + r, column x0 + s of the plane
// starting at row `plane` (zero outside the image): the values a tile reads.
fn input_window(win: ptr<function, array<f32, WIN_MAX>>, plane: u32, y0: i32, x0: i32,
                rows: u32, cols: u32) {
    for (var r = 0u; r < rows; r++) {
        let y = y0 + i32(r);
        let row = (plane + u32(clamp(y, 0, i32(XH) - 1))) * XW;
        for (var s = 0u; s < cols; s++) {
            let x = x0 + i32(s);
            let inside = y >= 0 && y < i32(XH) && x >= 0 && x < i32(XW);
            // Clamped so that the load stays in bounds; the select zeroes it.
            (*win)[r * cols + s] = select(0.0, inputs[row + u32(clamp(x, 0, i32(XW) - 1))], inside);
        }
    }
}

@compute @workgroup_size(64)
fn direct_forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let tiles_x = (OW + CW - 1u) / CW;
    let tiles_y = (OH + RH - 1u) / RH;
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * OC * tiles_y * tiles_x {
        return;
    }
    let ox0 = (i % tiles_x) * CW;
    let oy0 = ((i / tiles_x) % tiles_y) * RH;
    let o = (i / (tiles_x * tiles_y)) % OC;
    let n = i / (tiles_x * tiles_y * OC);
    let span = (CW - 1u) * SW + (KW - 1u) * DW + 1u;
    let wrows = (RH - 1u) * SH + (KH - 1u) * DH + 1u;
    let x0 = i32(ox0 * SW) - i32(PW);
    let y0 = i32(oy0 * SH) - i32(PH);
    let cg = XC / GROUPS;
    let g = o / (OC / GROUPS);
    var acc: array<f32, TILE_MAX>;
    for (var ci = 0u; ci < cg; ci++) {
        let c = g * cg + ci;
        var win: array<f32, WIN_MAX>;
        input_window(&win, (n * XC + c) * XH, y0, x0, wrows, span);
        for (var ky = 0u; ky < KH; ky++) {
            let wrow = ((o * cg + ci) * KH + ky) * KW;
            for (var kx = 0u; kx < KW; kx++) {
                let wv = weights[wrow + kx];
                for (var jy = 0u; jy < RH; jy++) {
                    for (var jx = 0u; jx < CW; jx++) {
                        acc[jy * CW + jx] += win[(jy * SH + ky * DH) * span + jx * SW + kx * DW] * wv;
                    }
                }
            }
        }
    }
    for (var jy = 0u; jy < RH; jy++) {
        let base = ((n * OC + o) * OH + oy0 + jy) * OW;
        for (var jx = 0u; jx < CW; jx++) {
            if oy0 + jy < OH && ox0 + jx < OW {
                out[base + ox0 + jx] = acc[jy * CW + jx];
            }
        }
    }
}

// The grouped (depthwise) weight gradient, first of two steps: one
// invocation per (image, output channel, input channel of its group) sums
// dy * x over the image's output plane for every tap, tile by tile (the
// tiles and windows of direct_forward_rows: a 4x4 tile of a 3x3 stride-1
// layer loads 16 dy and 36 x for 144 products instead of 288 values), and
// writes out[n][(o * cg + ci) * KH * KW + tap]. Outputs past the plane's edge
// add nothing. The second step sums over the images (ops::sum). Up to 64
// taps (src/ops/conv.rs falls back to direct_backward_weight beyond).
const TAPS_MAX: u32 = 64u;

@compute @workgroup_size(64)
fn direct_weight_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) li: u32) {
    let cg = XC / GROUPS;
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * OC * cg {
        return;
    }
    let ci = i % cg;
    let o = (i / cg) % OC;
    let n = i / (cg * OC);
    let c = (o / (OC / GROUPS)) * cg + ci;
    let plane = (n * XC + c) * XH;
    let dplane = (n * OC + o) * OH;
    let span = (CW - 1u) * SW + (KW - 1u) * DW + 1u;
    let wrows = (RH - 1u) * SH + (KH - 1u) * DH + 1u;
    var acc: array<f32, TAPS_MAX>;
    for (var oy0 = 0u; oy0 < OH; oy0 += RH) {
        for (var ox0 = 0u; ox0 < OW; ox0 += CW) {
            var d: array<f32, TILE_MAX>;
            for (var jy = 0u; jy < RH; jy++) {
                let oy = min(oy0 + jy, OH - 1u);
                for (var jx = 0u; jx < CW; jx++) {
                    let ox = min(ox0 + jx, OW - 1u);
                    let inside = oy0 + jy < OH && ox0 + jx < OW;
                    d[jy * CW + jx] = select(0.0, grad_out[(dplane + oy) * OW + ox], inside);
                }
            }
            let x0 = i32(ox0 * SW) - i32(PW);
            let y0 = i32(oy0 * SH) - i32(PH);
            var win: array<f32, WIN_MAX>;
            input_window(&win, plane, y0, x0, wrows, span);
            // Outputs past the edge add nothing, not 0 * x: an input that no
            // output reads (the last row of an even-sized input at stride 2)
            // must not turn the sums into NaN when it is infinite.
            let rows = min(RH, OH - oy0);
            let cols = min(CW, OW - ox0);
            for (var ky = 0u; ky < KH; ky++) {
                for (var kx = 0u; kx < KW; kx++) {
                    var t = 0.0;
                    for (var jy = 0u; jy < RH; jy++) {
                        for (var jx = 0u; jx < CW; jx++) {
                            let prod = d[jy * CW + jx] * win[(jy * SH + ky * DH) * span + jx * SW + kx * DW];
                            t += select(0.0, prod, jy < rows && jx < cols);
                        }
                    }
                    acc[ky * KW + kx] += t;
                }
            }
        }
    }
    let base = (n * OC * cg + o * cg + ci) * KH * KW;
    for (var k = 0u; k < KH * KW; k++) {
        out[base + k] = acc[k];
    }
}

// The grouped (depthwise) input gradient for CPU adapters, at any stride:
// one invocation per tile of RH x CW input pixels, RH a multiple of SH and
// CW of SW, so every tile starts on a multiple of the stride and whether
// tap (ky, kx) reaches pixel (jy, jx) of the tile is known once the loops
// unroll. The dy values the tile reads (a window of rows by columns of each
// output channel of its group) are loaded once; the taps then add from
// registers. Same taps in the same order as direct_backward_input. With
// ah = (KH - 1) * DH rounded up to a multiple of SH, tap ky reaches tile row
// jy where q = jy + PH + ah - ky * DH is a multiple of SH, from dy row
// y0 / SH + q / SH - ah / SH; the window's first row is q's least / SH.
// src/ops/conv.rs computes the same window (at most 64 values).
@compute @workgroup_size(64)
fn direct_backward_input_tiles(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) li: u32) {
    let tiles_x = (XW + CW - 1u) / CW;
    let tiles_y = (XH + RH - 1u) / RH;
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * XC * tiles_y * tiles_x {
        return;
    }
    let x0 = (i % tiles_x) * CW;
    let y0 = ((i / tiles_x) % tiles_y) * RH;
    let c = (i / (tiles_x * tiles_y)) % XC;
    let n = i / (tiles_x * tiles_y * XC);
    let cg = XC / GROUPS;
    let ocg = OC / GROUPS;
    let g = c / cg;
    let ci = c % cg;
    let ah = ((KH - 1u) * DH + SH - 1u) / SH * SH;
    let aw = ((KW - 1u) * DW + SW - 1u) / SW * SW;
    let by = (PH + ah - (KH - 1u) * DH) / SH;
    let bx = (PW + aw - (KW - 1u) * DW) / SW;
    let wry = (RH - 1u + PH + ah) / SH - by + 1u;
    let wcx = (CW - 1u + PW + aw) / SW - bx + 1u;
    let oy0 = i32(y0 / SH + by) - i32(ah / SH);
    let ox0 = i32(x0 / SW + bx) - i32(aw / SW);
    var acc: array<f32, TILE_MAX>;
    for (var oo = 0u; oo < ocg; oo++) {
        let o = g * ocg + oo;
        let plane = (n * OC + o) * OH;
        var win: array<f32, WIN_MAX>;
        for (var r = 0u; r < wry; r++) {
            let oy = oy0 + i32(r);
            let row = (plane + u32(clamp(oy, 0, i32(OH) - 1))) * OW;
            for (var s = 0u; s < wcx; s++) {
                let ox = ox0 + i32(s);
                let inside = oy >= 0 && oy < i32(OH) && ox >= 0 && ox < i32(OW);
                win[r * wcx + s] = select(0.0, grad_out[row + u32(clamp(ox, 0, i32(OW) - 1))], inside);
            }
        }
        for (var ky = 0u; ky < KH; ky++) {
            for (var kx = 0u; kx < KW; kx++) {
                let wv = weights[((o * cg + ci) * KH + ky) * KW + kx];
                for (var jy = 0u; jy < RH; jy++) {
                    let qy = jy + PH + ah - ky * DH;
                    if qy % SH != 0u {
                        continue;
                    }
                    for (var jx = 0u; jx < CW; jx++) {
                        let qx = jx + PW + aw - kx * DW;
                        if qx % SW != 0u {
                            continue;
                        }
                        acc[jy * CW + jx] += win[(qy / SH - by) * wcx + qx / SW - bx] * wv;
                    }
                }
            }
        }
    }
    for (var jy = 0u; jy < RH; jy++) {
        let base = ((n * XC + c) * XH + y0 + jy) * XW;
        for (var jx = 0u; jx < CW; jx++) {
            if y0 + jy < XH && x0 + jx < XW {
                out[base + x0 + jx] = acc[jy * CW + jx];
            }
        }
    }
}
