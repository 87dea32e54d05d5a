// Softmax and log-softmax with temperature along the last axis, fused: one read
// to find the row's max and the sum of exponentials (online rescaling), one read
// and one write for the output. Stable for large logits: exponents are of
// (x - max) / T <= 0.
// Bindings: 0 params, 1 y, 2 x.

struct SmParams {
    rows: u32,
    cols: u32,
    inv_t: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: SmParams;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

override LOG: bool = false;

// Adds v to a running (max, sum of exp((x - max) / T)) pair, rescaling the sum
// when the max grows.
fn online(m: f32, s: f32, v: f32) -> vec2<f32> {
    if v > m {
        return vec2<f32>(v, s * exp((m - v) * p.inv_t) + 1.0);
    }
    if v == neg_inf() {
        // (-inf) - (-inf) would be NaN: a masked logit adds nothing.
        return vec2<f32>(m, s);
    }
    return vec2<f32>(m, s + exp((v - m) * p.inv_t));
}

fn emit(i: u32, m: f32, s: f32) {
    let z = (x[i] - m) * p.inv_t;
    if LOG {
        y[i] = z - log(s);
    } else {
        y[i] = exp(z) / s;
    }
}

// One invocation per row: no barriers, for CPU adapters (llvmpipe).
@compute @workgroup_size(64)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let row = linear_wg(wid, nwg) * 64u + li;
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var m = neg_inf();
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let ms = online(m, s, x[base + c]);
        m = ms.x;
        s = ms.y;
    }
    for (var c = 0u; c < p.cols; c++) {
        emit(base + c, m, s);
    }
}

// One workgroup per row, a tree reduction of (max, sum) pairs in shared memory:
// for GPUs, where a row per invocation would leave reads uncoalesced.
const WGR: u32 = 256u;
var<workgroup> sh_m: array<f32, WGR>;
var<workgroup> sh_s: array<f32, WGR>;

// Merges two (max, sum-of-exp relative to max) pairs.
fn merge(m1: f32, s1: f32, m2: f32, s2: f32) -> vec2<f32> {
    return merge_t(m1, s1, m2, s2, p.inv_t);
}

// merge at temperature 1 / inv_t (softmax_win.wgsl has its own parameters).
fn merge_t(m1: f32, s1: f32, m2: f32, s2: f32, inv_t: f32) -> vec2<f32> {
    let m = max(m1, m2);
    var s = 0.0;
    if s1 > 0.0 {
        s += s1 * exp((m1 - m) * inv_t);
    }
    if s2 > 0.0 {
        s += s2 * exp((m2 - m) * inv_t);
    }
    return vec2<f32>(m, s);
}

@compute @workgroup_size(256)
fn softmax_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    // Uniform across the workgroup, so the early return keeps barriers uniform.
    let row = linear_wg(wid, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var m = neg_inf();
    var s = 0.0;
    for (var c = li; c < p.cols; c += WGR) {
        let ms = online(m, s, x[base + c]);
        m = ms.x;
        s = ms.y;
    }
    sh_m[li] = m;
    sh_s[li] = s;
    workgroupBarrier();
    for (var half = WGR / 2u; half > 0u; half /= 2u) {
        if li < half {
            let r = merge(sh_m[li], sh_s[li], sh_m[li + half], sh_s[li + half]);
            sh_m[li] = r.x;
            sh_s[li] = r.y;
        }
        workgroupBarrier();
    }
    let rm = sh_m[0];
    let rs = sh_s[0];
    for (var c = li; c < p.cols; c += WGR) {
        emit(base + c, rm, rs);
    }
}

// softmax_rows for rows of a multiple of 4 values, read and written as vec4s
// (one per-lane load loop per vec4 on CPU adapters): four running (max, sum)
// pairs, one per vec4 component, merged at the end as softmax_wg merges its
// invocations' pairs.
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn softmax_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let row = linear_wg(wid, nwg) * 64u + li;
    if row >= p.rows {
        return;
    }
    let n4 = p.cols / 4u;
    let base = row * n4;
    var m = vec4<f32>(neg_inf());
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < n4; c++) {
        let v = x4[base + c];
        for (var j = 0u; j < 4u; j++) {
            let ms = online(m[j], s[j], v[j]);
            m[j] = ms.x;
            s[j] = ms.y;
        }
    }
    let a = merge(m.x, s.x, m.y, s.y);
    let b = merge(m.z, s.z, m.w, s.w);
    let r = merge(a.x, a.y, b.x, b.y);
    for (var c = 0u; c < n4; c++) {
        let z = (x4[base + c] - r.x) * p.inv_t;
        if LOG {
            y4[base + c] = z - log(r.y);
        } else {
            y4[base + c] = exp(z) / r.y;
        }
    }
}
