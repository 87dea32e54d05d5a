// Upsampling of NCHW planes to (OH, OW): nearest (src = floor(dst * in / out)) or
// bilinear with align_corners = false (src = (dst + 0.5) * in / out - 0.5,
// clamped at 0), as PyTorch's F.interpolate. The backward gathers: each input
// pixel visits the outputs that can read it.

struct ResampleParams {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: ResampleParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

override BILINEAR: bool = true;

// The two source taps of output o along an axis and the weight of the second.
struct Taps {
    i0: u32,
    i1: u32,
    w1: f32,
}

fn taps(o: u32, insz: u32, outsz: u32) -> Taps {
    let scale = f32(insz) / f32(outsz);
    if !BILINEAR {
        let i = min(u32(floor(f32(o) * scale)), insz - 1u);
        return Taps(i, i, 0.0);
    }
    let s = max((f32(o) + 0.5) * scale - 0.5, 0.0);
    let i0 = min(u32(floor(s)), insz - 1u);
    let i1 = min(i0 + 1u, insz - 1u);
    return Taps(i0, i1, s - f32(i0));
}

@compute @workgroup_size(256)
fn up_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.planes * p.oh * p.ow {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let pl = i / (p.ow * p.oh);
    let ty = taps(oy, p.h, p.oh);
    let tx = taps(ox, p.w, p.ow);
    let b = pl * p.h * p.w;
    let top = src[b + ty.i0 * p.w + tx.i0] * (1.0 - tx.w1) + src[b + ty.i0 * p.w + tx.i1] * tx.w1;
    let bot = src[b + ty.i1 * p.w + tx.i0] * (1.0 - tx.w1) + src[b + ty.i1 * p.w + tx.i1] * tx.w1;
    out[i] = top * (1.0 - ty.w1) + bot * ty.w1;
}

// Weight with which output o reads input i along an axis.
fn weight(o: u32, i: u32, insz: u32, outsz: u32) -> f32 {
    let t = taps(o, insz, outsz);
    var wgt = 0.0;
    if t.i0 == i {
        wgt += 1.0 - t.w1;
    }
    if t.i1 == i {
        wgt += t.w1;
    }
    return wgt;
}

// Outputs that may read input i: a slightly generous range, checked by weight().
fn out_range(i: u32, insz: u32, outsz: u32) -> vec2<u32> {
    let r = f32(outsz) / f32(insz);
    let lo = max(i32(floor((f32(i) - 1.0) * r)) - 1, 0);
    let hi = min(i32(ceil((f32(i) + 2.0) * r)) + 1, i32(outsz) - 1);
    return vec2<u32>(u32(lo), u32(max(hi, lo - 1)));
}

@compute @workgroup_size(256)
fn up_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.planes * p.h * p.w {
        return;
    }
    let x = i % p.w;
    let y = (i / p.w) % p.h;
    let pl = i / (p.w * p.h);
    let ry = out_range(y, p.h, p.oh);
    let rx = out_range(x, p.w, p.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        let wy = weight(oy, y, p.h, p.oh);
        if wy == 0.0 {
            continue;
        }
        for (var ox = rx.x; ox <= rx.y; ox++) {
            let wx = weight(ox, x, p.w, p.ow);
            if wx != 0.0 {
                acc += wy * wx * out_src(pl, oy, ox);
            }
        }
    }
    out[i] = acc;
}

fn out_src(pl: u32, oy: u32, ox: u32) -> f32 {
    return src[(pl * p.oh + oy) * p.ow + ox];
}
