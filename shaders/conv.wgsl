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

// Output position that reads input position i at kernel offset k, or -1.
fn dst_pos(i: u32, k: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let t = i32(i + pad) - i32(k * dil);
    if t < 0 || t % i32(stride) != 0 {
        return -1;
    }
    let o = t / i32(stride);
    if o >= i32(size) {
        return -1;
    }
    return o;
}

// out = cols [N, OH*OW, klen_p] from the inputs. One invocation per (n, pixel, channel)
// writes that channel's KH*KW values, so the index arithmetic (integer division
// is slow on CPU adapters) is shared by the whole kernel window.
@compute @workgroup_size(256)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    let ohw = p.oh * p.ow;
    if i >= p.n * ohw * p.c {
        return;
    }
    let c = i % p.c;
    let pix = (i / p.c) % ohw;
    let n = i / (p.c * ohw);
    let kk = p.kh * p.kw;
    let row = (n * ohw + pix) * p.klen_p;
    let oy = pix / p.ow;
    let ox = pix % p.ow;
    let plane = (n * p.c + c) * p.h;
    var o = row + c * kk;
    for (var ky = 0u; ky < p.kh; ky++) {
        let y = src_pos(oy, ky, p.sh, p.ph, p.dh, p.h);
        for (var kx = 0u; kx < p.kw; kx++) {
            let x = src_pos(ox, kx, p.sw, p.pw, p.dw, p.w);
            var v = 0.0;
            if y >= 0 && x >= 0 {
                v = inputs[(plane + u32(y)) * p.w + u32(x)];
            }
            out[o] = v;
            o++;
        }
    }
    if c == p.c - 1u {
        for (var t = p.c * kk; t < p.klen_p; t++) {
            out[row + t] = 0.0;
        }
    }
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
        let oy = dst_pos(y, ky, p.sh, p.ph, p.dh, p.oh);
        if oy < 0 {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ox = dst_pos(x, kx, p.sw, p.pw, p.dw, p.ow);
            if ox < 0 {
                continue;
            }
            let pix = u32(oy) * p.ow + u32(ox);
            acc += grad_cols[(n * p.oh * p.ow + pix) * klen + c * kk + ky * p.kw + kx];
        }
    }
    out[i] = acc;
}

// out = y [N, OC, OH, OW] from inputs and weights (no bias: added by the caller).
@compute @workgroup_size(256)
fn direct_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n * p.oc * p.oh * p.ow {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let o = (i / (p.ow * p.oh)) % p.oc;
    let n = i / (p.ow * p.oh * p.oc);
    let cg = p.c / p.groups;
    let g = o / (p.oc / p.groups);
    var acc = 0.0;
    for (var ci = 0u; ci < cg; ci++) {
        let c = g * cg + ci;
        for (var ky = 0u; ky < p.kh; ky++) {
            let y = src_pos(oy, ky, p.sh, p.ph, p.dh, p.h);
            if y < 0 {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let x = src_pos(ox, kx, p.sw, p.pw, p.dw, p.w);
                if x < 0 {
                    continue;
                }
                acc += inputs[((n * p.c + c) * p.h + u32(y)) * p.w + u32(x)] *
                       weights[((o * cg + ci) * p.kh + ky) * p.kw + kx];
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
