// Reductions of x viewed as [outer, n, inner] over the middle axis, into
// y[outer, groups, inner]. Output `group` g of `reduce` and `argmax_*` reduces
// k = g, g+groups, g+2*groups, ... so neighbouring invocations read neighbouring
// addresses when inner > 1 (measured faster than contiguous runs there);
// `reduce4` reads contiguous runs instead. With groups > 1 the host runs
// another pass over the partials (src/ops/reduce.rs).
// Bindings: 0 params, 1 y, 2 x, 3 y indices, 4 x indices (argmax passes).

struct RedParams {
    outer: u32,
    n: u32,
    inner: u32,
    groups: u32,
    // Multiplies the final sum (1/n for a mean), 1 otherwise.
    scale: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: RedParams;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> yi: array<u32>;
@group(0) @binding(4) var<storage, read> xi: array<u32>;

// 0 sum, 1 max. Max propagates NaN, as the reference in src/cpu/reduce.rs does.
override OP: u32 = 0u;

const WG: u32 = 64u;

struct Slot {
    t: u32,
    base: u32,
    g: u32,
    valid: bool,
}

fn slot(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> Slot {
    let t = linear_wg(wid, nwg) * WG + li;
    let valid = t < p.outer * p.groups * p.inner;
    let i = t % p.inner;
    let g = (t / p.inner) % p.groups;
    let o = t / (p.inner * p.groups);
    return Slot(t, o * p.n * p.inner + i, g, valid);
}

@compute @workgroup_size(64)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let s = slot(wid, nwg, li);
    if !s.valid {
        return;
    }
    if OP == 0u {
        // Two accumulators halve the dependency chain of the adds.
        var acc0 = 0.0;
        var acc1 = 0.0;
        var k = s.g;
        let step = p.groups;
        loop {
            if k + step >= p.n {
                break;
            }
            acc0 += x[s.base + k * p.inner];
            acc1 += x[s.base + (k + step) * p.inner];
            k += 2u * step;
        }
        if k < p.n {
            acc0 += x[s.base + k * p.inner];
        }
        y[s.t] = (acc0 + acc1) * p.scale;
    } else {
        var acc = x[s.base + s.g * p.inner];
        for (var k = s.g + p.groups; k < p.n; k += p.groups) {
            let v = x[s.base + k * p.inner];
            if !is_nan(acc) && (is_nan(v) || v > acc) {
                acc = v;
            }
        }
        y[s.t] = acc;
    }
}

// True when (v, iv) beats (b, ib): NaN beats numbers; ties go to the lower index.
fn better(v: f32, iv: u32, b: f32, ib: u32) -> bool {
    let vn = is_nan(v);
    let bn = is_nan(b);
    if vn != bn {
        return vn;
    }
    if vn || v == b {
        return iv < ib;
    }
    return v > b;
}

// First pass of argmax: the index of each element is its position k.
@compute @workgroup_size(64)
fn argmax_first(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let s = slot(wid, nwg, li);
    if !s.valid {
        return;
    }
    var best = x[s.base + s.g * p.inner];
    var bi = s.g;
    for (var k = s.g + p.groups; k < p.n; k += p.groups) {
        let v = x[s.base + k * p.inner];
        if better(v, k, best, bi) {
            best = v;
            bi = k;
        }
    }
    y[s.t] = best;
    yi[s.t] = bi;
}

// Later passes: partial maxima carry the index they came from.
@compute @workgroup_size(64)
fn argmax_next(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let s = slot(wid, nwg, li);
    if !s.valid {
        return;
    }
    var best = x[s.base + s.g * p.inner];
    var bi = xi[s.base + s.g * p.inner];
    for (var k = s.g + p.groups; k < p.n; k += p.groups) {
        let v = x[s.base + k * p.inner];
        let iv = xi[s.base + k * p.inner];
        if better(v, iv, best, bi) {
            best = v;
            bi = iv;
        }
    }
    y[s.t] = best;
    yi[s.t] = bi;
}

// The first pass of a sum or max over a contiguous axis (inner = 1) of a
// multiple of 4 elements, read as vec4s: on CPU adapters a vec4 costs one
// per-lane load loop, as a scalar does. Output `group` g reduces the g-th of
// `groups` contiguous runs of its row's vec4s.
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;

// The larger of a and b, NaN winning (as `reduce` does), without branches.
fn max1(a: f32, b: f32) -> f32 {
    return select(a, b, !is_nan(a) && (is_nan(b) || b > a));
}

fn max4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(max1(a.x, b.x), max1(a.y, b.y), max1(a.z, b.z), max1(a.w, b.w));
}

// The run of vec4s partial t of reduce4 (and of its 64-bit twin) reads: each
// partial reads one contiguous run, so that on a CPU every lane streams
// through its own (strided partials made this pass slower than the scalar
// one). `base` is where t's row starts, in vec4s.
struct Run {
    // The partial: the invocation's global index.
    t: u32,
    base: u32,
    start: u32,
    stop: u32,
    // Whether partial t exists (invocations past the last have no run).
    live: bool,
}

// The run of the invocation at (wid, li).
fn run_at(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> Run {
    let t = linear_wg(wid, nwg) * WG + li;
    let n4 = p.n / 4u;
    let run = (n4 + p.groups - 1u) / p.groups;
    let start = (t % p.groups) * run;
    return Run(t, (t / p.groups) * n4, start, min(start + run, n4), t < p.outer * p.groups);
}

@compute @workgroup_size(64)
fn reduce4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let r = run_at(wid, nwg, li);
    if !r.live {
        return;
    }
    let t = r.t;
    let n4 = p.n / 4u;
    let base = r.base;
    let start = r.start;
    let stop = r.stop;
    if OP == 0u {
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        var k = start;
        loop {
            if k + 1u >= stop {
                break;
            }
            acc0 += x4[base + k];
            acc1 += x4[base + k + 1u];
            k += 2u;
        }
        if k < stop {
            acc0 += x4[base + k];
        }
        let a = acc0 + acc1;
        y[t] = ((a.x + a.y) + (a.z + a.w)) * p.scale;
    } else {
        var acc = x4[base + min(start, n4 - 1u)];
        for (var k = start + 1u; k < stop; k++) {
            acc = max4(acc, x4[base + k]);
        }
        let b = max4(acc, acc.yzwx);
        y[t] = max4(b, b.zwxy).x;
    }
}
