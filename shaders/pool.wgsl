// Pooling over NCHW planes: max (with the index of the winner), average
// (padding counts as zeros, as PyTorch's count_include_pad), and the backward
// of global average pooling. Backward kernels gather: each input pixel visits the
// windows that contain it (no atomics).

struct PoolParams {
    planes: u32,  // N * C
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    // Dilation: the spacing of a window's taps.
    dh: u32,
    dw: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
// One binding number per meaning; each entry point binds the ones it uses
// (src/ops/pool.rs passes them by these numbers).
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// Max pooling: the flat index in the plane of each output's maximum.
@group(0) @binding(2) var<storage, read_write> idx_out: array<u32>;
@group(0) @binding(3) var<storage, read> inputs: array<f32>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read> idx_in: array<u32>;

// Outputs whose window covers input i: [lo, hi] (empty when lo > hi).
fn covering(i: u32, k: u32, s: u32, pad: u32, size: u32) -> vec2<i32> {
    let a = i32(i + pad) - i32(k) + 1;
    var lo = 0;
    if a > 0 {
        lo = (a + i32(s) - 1) / i32(s);
    }
    let hi = min((i32(i + pad)) / i32(s), i32(size) - 1);
    return vec2<i32>(lo, hi);
}

// A window's extent with dilation d: (k - 1) * d + 1.
fn extent(k: u32, d: u32) -> u32 {
    return (k - 1u) * d + 1u;
}

// Strides of the max-pool kernels as constants: `covering` divides by them, and
// a division by a constant is a multiply, not a per-lane integer division.
override SH: u32 = 1u;
override SW: u32 = 1u;

// out = y, idx_out = flat index in the plane of each max. One invocation per
// output row (the index arithmetic once per row, not per element).
@compute @workgroup_size(64)
fn max_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let r = global_id(wid, nwg, li, 64u);
    if r >= p.planes * p.oh {
        return;
    }
    let oy = r % p.oh;
    let plane = (r / p.oh) * p.h * p.w;
    for (var ox = 0u; ox < p.ow; ox++) {
        var best = neg_inf();
        var bi = 0u;
        var found = false;
        for (var ky = 0u; ky < p.kh; ky++) {
            let y = i32(oy * SH + ky * p.dh) - i32(p.ph);
            if y < 0 || y >= i32(p.h) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let x = i32(ox * SW + kx * p.dw) - i32(p.pw);
                if x < 0 || x >= i32(p.w) {
                    continue;
                }
                let at = u32(y) * p.w + u32(x);
                let v = inputs[plane + at];
                // First maximum wins; NaN propagates.
                if !found || v > best || (is_nan(v) && !is_nan(best)) {
                    best = v;
                    bi = at;
                    found = true;
                }
            }
        }
        out[r * p.ow + ox] = best;
        idx_out[r * p.ow + ox] = bi;
    }
}

// out = dx from grad_out and the winners idx_in. One invocation per input row.
@compute @workgroup_size(64)
fn max_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let r = global_id(wid, nwg, li, 64u);
    if r >= p.planes * p.h {
        return;
    }
    let y = r % p.h;
    let pl = r / p.h;
    // Windows whose extent covers the pixel; the winner index picks the ones
    // that read it (with dilation, a covering window may step over it).
    let ry = covering(y, extent(p.kh, p.dh), SH, p.ph, p.oh);
    for (var x = 0u; x < p.w; x++) {
        let me = y * p.w + x;
        let rx = covering(x, extent(p.kw, p.dw), SW, p.pw, p.ow);
        var acc = 0.0;
        for (var oy = ry.x; oy <= ry.y; oy++) {
            for (var ox = rx.x; ox <= rx.y; ox++) {
                let o = (pl * p.oh + u32(oy)) * p.ow + u32(ox);
                if idx_in[o] == me {
                    acc += grad_out[o];
                }
            }
        }
        out[r * p.w + x] = acc;
    }
}

// out = y.
@compute @workgroup_size(256)
fn avg_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.planes * p.oh * p.ow {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let pl = i / (p.ow * p.oh);
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let y = i32(oy * p.sh + ky * p.dh) - i32(p.ph);
        if y < 0 || y >= i32(p.h) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let x = i32(ox * p.sw + kx * p.dw) - i32(p.pw);
            if x >= 0 && x < i32(p.w) {
                acc += inputs[(pl * p.h + u32(y)) * p.w + u32(x)];
            }
        }
    }
    out[i] = acc / f32(p.kh * p.kw);
}

// out = dx from grad_out.
@compute @workgroup_size(256)
fn avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.planes * p.h * p.w {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let pl = i / (p.w * p.h);
    let ry = covering(y, extent(p.kh, p.dh), p.sh, p.ph, p.oh);
    let rx = covering(x, extent(p.kw, p.dw), p.sw, p.pw, p.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        // A window reads the pixel when its offset in the window is a whole tap.
        if (u32(i32(y + p.ph) - oy * i32(p.sh))) % p.dh != 0u {
            continue;
        }
        for (var ox = rx.x; ox <= rx.y; ox++) {
            if (u32(i32(x + p.pw) - ox * i32(p.sw))) % p.dw != 0u {
                continue;
            }
            acc += grad_out[(pl * p.oh + u32(oy)) * p.ow + u32(ox)];
        }
    }
    out[i] = acc / f32(p.kh * p.kw);
}

// Global average pooling backward: out = dx [planes, h*w] from grad_out [planes].
@compute @workgroup_size(256)
fn gap_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    let hw = p.h * p.w;
    if i >= p.planes * hw {
        return;
    }
    out[i] = grad_out[i / hw] / f32(hw);
}
