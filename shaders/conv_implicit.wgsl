// Convolution as an implicit GEMM on the texture matmul (matmul_texture.wgsl):
// the column matrix of im2col is never written. Each lane reads the values of
// its row of op(A) straight from the input x, staged in an r32float texture
// (a texel per float, folded like the other scratch textures), so a
// convolution costs one copy of x instead of im2col's write and read of a
// matrix KH * KW times larger, plus its staging copy.
// Compiled after matmul.wgsl, matmul_subgroup.wgsl and matmul_texture.wgsl.
//
// Two GEMMs read the columns; WEIGHT_GRAD says which this is:
// - forward (and a stride-1 input gradient, itself a convolution): one batch
//   per image, rows = the image's output pixels, k = (c, ky, kx) taps;
//   C written transposed (TRANS_C), i.e. straight into NCHW;
// - weight gradient: rows = taps, k = the output pixels of all images, op(B)
//   = dy packed by pixel; C written transposed: dW as [OC, C * KH * KW].
//   Batches are split-K chunks of p.a_bs pixels.
// - a strided convolution's input gradient (SUBPIXEL), one launch per class
//   of input pixels (iy % SH, ix % SW) = (SUB_A, SUB_B): those pixels take
//   the taps ky = ky0 + SH * t (likewise kx), so the class is a stride-1
//   convolution of dy with that sub-kernel (flipped, by the host, so that
//   the window walks forwards; PH/PW may then be negative). Rows = the
//   class's pixels (an OH x OW grid here), written into their places of dx
//   (DXH x DXW), which the classes tile.
// The taps and pixels are in im2col's order, so the sums are the texture
// matmul's on im2col's columns, in the same order: bit-identical.

override XC: u32 = 1u;
override XH: u32 = 1u;
override XW: u32 = 1u;
override OH: u32 = 1u;
override OW: u32 = 1u;
override KH: u32 = 1u;
override KW: u32 = 1u;
override SH: u32 = 1u;
override SW: u32 = 1u;
override PH: i32 = 0;
override PW: i32 = 0;
override DH: u32 = 1u;
override DW: u32 = 1u;
override WEIGHT_GRAD: bool = false;
override SUBPIXEL: bool = false;
override SUB_A: u32 = 0u;
override SUB_B: u32 = 0u;
override DXH: u32 = 1u;
override DXW: u32 = 1u;

@group(0) @binding(7) var x_tex: texture_storage_2d<r32float, read>;

// A forward's epilogue (EPI_BN): batch norm with fixed statistics, then the
// residual's add (EPI_RESIDUAL) and ReLU (EPI_RELU), applied to each value as
// it is stored, with norm.wgsl's apply arithmetic on the value put() would
// have written: the bits of the convolution followed by that op, and one
// trip through memory fewer. epi_stats holds (mean, 1/std) per channel, as
// norm.wgsl's stats_eval writes them. Launches without the epilogue bind
// stand-ins here (the layout has these bindings whatever the constants).
override EPI_BN: bool = false;
override EPI_RESIDUAL: bool = false;
override EPI_RELU: bool = false;
@group(0) @binding(8) var<storage, read> epi_stats: array<f32>;
@group(0) @binding(9) var<storage, read> epi_gamma: array<f32>;
@group(0) @binding(10) var<storage, read> epi_beta: array<f32>;
@group(0) @binding(11) var<storage, read> epi_res: array<f32>;

// One side of an element's input position: an offset into x and a row and
// column (relative; may be negative before the other side is added), and
// whether the element exists (taps past C * KH * KW are the zero padding of k).
struct Side {
    base: u32,
    y: i32,
    x: i32,
    ok: bool,
}

// Output pixel q of image n: where its 3x3 (etc.) window starts.
fn pixel_side(n: u32, q: u32) -> Side {
    let oy = q / OW;
    let ox = q % OW;
    if SUBPIXEL {
        return Side(n * XC * XH * XW, i32(oy) - PH, i32(ox) - PW, true);
    }
    return Side(n * XC * XH * XW, i32(oy * SH) - PH, i32(ox * SW) - PW, true);
}

// Tap kk = (c, ky, kx) of the window.
fn tap_side(kk: u32) -> Side {
    let c = kk / (KH * KW);
    let r = kk % (KH * KW);
    return Side(c * XH * XW, i32((r / KW) * DH), i32((r % KW) * DW), kk < XC * KH * KW);
}

// x at the position the two sides add up to, 0 in the padding.
fn x_at(a: Side, b: Side) -> f32 {
    let y = a.y + b.y;
    let x = a.x + b.x;
    let ok = a.ok && b.ok && u32(y) < XH && u32(x) < XW;
    let i = select(0u, a.base + b.base + u32(y) * XW + u32(x), ok);
    return select(0.0, textureLoad(x_tex, tex_xy(i)).x, ok);
}

// The side that varies along k, at step kk of batch bi.
fn k_side(bi: u32, kk: u32) -> Side {
    if WEIGHT_GRAD {
        let g = bi * p.a_bs + kk;
        return pixel_side(g / (OH * OW), g % (OH * OW));
    }
    return tap_side(kk);
}

// Where C's element (row r of batch bi, column col) goes: sg_c_index's
// place, or for SUBPIXEL its pixel's place in dx.
fn cv_c_index(bi: u32, r: u32, col: u32) -> u32 {
    if SUBPIXEL {
        let y = (r / OW) * SH + SUB_A;
        let x = (r % OW) * SW + SUB_B;
        return ((bi * p.n + col) * DXH + y) * DXW + x;
    }
    return sg_c_index(bi, r, col);
}

// store16 through cv_c_index. A copy of its loop on purpose: sharing the
// loop by handing it an array of row offsets made llvmpipe index private
// memory lane by lane, and the stores 4x slower (a batch-1 forward, where
// they weigh most, lost a third). With EPI_BN each value goes through the
// epilogue on its way.
fn cv_store16(t: Tile16, acc: array<vec4<f32>, 16>) {
    let bn = epilogue_of(t);
    for (var i = 0u; i < 16u; i++) {
        let r = t.r0 + i;
        if r >= p.m {
            break;
        }
        for (var q = 0u; q < 4u; q++) {
            if t.c0 + q < p.n {
                let idx = cv_c_index(t.bi, r, t.c0 + q);
                if EPI_BN {
                    c[idx] = bn_epilogue(acc[i][q], idx, bn, q);
                } else {
                    put(idx, acc[i][q]);
                }
            }
        }
    }
}

// A lane's 4 output channels' (mean, 1/std, gamma, beta) for the epilogue,
// read once (channels past n clamp to the last: unused); zeros without it.
struct Epilogue {
    mean: vec4<f32>,
    inv: vec4<f32>,
    g: vec4<f32>,
    b: vec4<f32>,
}

fn epilogue_of(t: Tile16) -> Epilogue {
    var e = Epilogue(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if EPI_BN {
        let last = p.n - 1u;
        let ch = vec4<u32>(min(t.c0, last), min(t.c0 + 1u, last), min(t.c0 + 2u, last),
                           min(t.c0 + 3u, last));
        e.mean = vec4<f32>(epi_stats[2u * ch.x], epi_stats[2u * ch.y], epi_stats[2u * ch.z],
                           epi_stats[2u * ch.w]);
        e.inv = vec4<f32>(epi_stats[2u * ch.x + 1u], epi_stats[2u * ch.y + 1u],
                          epi_stats[2u * ch.z + 1u], epi_stats[2u * ch.w + 1u]);
        e.g = vec4<f32>(epi_gamma[ch.x], epi_gamma[ch.y], epi_gamma[ch.z], epi_gamma[ch.w]);
        e.b = vec4<f32>(epi_beta[ch.x], epi_beta[ch.y], epi_beta[ch.z], epi_beta[ch.w]);
    }
    return e;
}

// What channel q of the lane's epilogue makes of v (at C's index idx), as
// norm.wgsl's apply does it (put's alpha * v first; beta is 0 here).
fn bn_epilogue(v: f32, idx: u32, e: Epilogue, q: u32) -> f32 {
    var y = (p.alpha * v - e.mean[q]) * e.inv[q] * e.g[q] + e.b[q];
    if EPI_RESIDUAL {
        y += epi_res[idx];
    }
    if EPI_RELU {
        y = select(max(y, 0.0), y, is_nan(y));
    }
    return y;
}

// The side of a lane's row of op(A).
fn row_side(bi: u32, r: u32) -> Side {
    if WEIGHT_GRAD {
        return tap_side(r);
    }
    return pixel_side(bi, r);
}

// The texture matmul's 16 x 4 blocking (mm_cpu_texture_a) with op(A) read
// from x: each lane fetches the values of its two rows at 4 steps of k.
@compute @workgroup_size(64)
fn mm_conv_texture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let t = tile16(wid, nwg, li, lane);
    if !t.live {
        return;
    }
    let sa = row_side(t.bi, t.ra);
    let sb = row_side(t.bi, t.rb);
    let tb = t.bi * p.b_bs;
    let j = t.c0 / 4u;
    var acc: array<vec4<f32>, 16>;
    for (var k = 0u; k < p.k; k += 4u) {
        let k0 = k_side(t.bi, k);
        let k1 = k_side(t.bi, k + 1u);
        let k2 = k_side(t.bi, k + 2u);
        let k3 = k_side(t.bi, k + 3u);
        let a0 = vec4<f32>(x_at(sa, k0), x_at(sa, k1), x_at(sa, k2), x_at(sa, k3));
        let a1 = vec4<f32>(x_at(sb, k0), x_at(sb, k1), x_at(sb, k2), x_at(sb, k3));
        fma16(a0, a1, tex_b_block(tb, j, k), &acc);
    }
    cv_store16(t, acc);
}
