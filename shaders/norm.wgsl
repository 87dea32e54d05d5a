// Batch normalisation over NCHW (statistics per channel over N, H, W).
// Statistics in two stages without barriers: per (n, c) a mean and a sum of
// squared deviations (two passes over the plane, no cancellation), then per c a
// combination of the N partials (Chan et al.). `stats` holds (mean, 1/std) per c.

struct NormParams {
    n: u32,
    c: u32,
    hw: u32,
    _p0: u32,
    eps: f32,
    momentum: f32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: NormParams;
// One binding number per meaning; each entry point binds the ones it reads
// (src/ops/norm.rs passes them by these numbers).
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
// (mean, 1/sqrt(var + eps)) per channel.
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
// Per (n, c): (mean, M2) in the forward, (sum dy * xhat, sum dy) in the backward.
@group(0) @binding(7) var<storage, read> partial: array<f32>;
// Per c: (dgamma, dbeta).
@group(0) @binding(8) var<storage, read> sums: array<f32>;
@group(0) @binding(9) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(10) var<storage, read_write> running_var: array<f32>;
// The fused op's output relu(y), whose sign masks dy in the backward (RELU).
@group(0) @binding(11) var<storage, read> act: array<f32>;
// The residual added to batch norm's output before ReLU (RESIDUAL).
@group(0) @binding(12) var<storage, read> res: array<f32>;

// In training dx uses the batch statistics' dependence on x; in eval it does not.
override TRAINING: bool = true;
// Batch norm followed by ReLU in one op: the forward writes relu(y), the
// backward takes dy of relu(y) and masks it by relu(y) > 0 as it reads it, so
// neither pass makes a trip through memory of its own. Same operations as
// ops::relu and its backward (NaN passes the forward), so the results are
// bit-identical to the two ops.
override RELU: bool = false;

// relu(batch_norm(x) + r) in one op (a residual block's end): the apply
// kernels add the residual before activating, in the order of ops::add then
// ops::relu, so the forward is bit-identical to the three ops. The backward
// is batch norm's own on dy masked by relu's (src/ops/norm.rs), as the
// residual's gradient is that masked dy too.
override RESIDUAL: bool = false;

fn activate(v: f32) -> f32 {
    if RELU {
        return select(max(v, 0.0), v, is_nan(v));
    }
    return v;
}

fn activate4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(activate(v.x), activate(v.y), activate(v.z), activate(v.w));
}

// dy of the op's input to batch norm's output: zero where relu(y) is not > 0.
fn unmask(g: f32, i: u32) -> f32 {
    if RELU {
        return select(0.0, g, act[i] > 0.0);
    }
    return g;
}

fn unmask4(g: vec4<f32>, a: vec4<f32>) -> vec4<f32> {
    if RELU {
        return select(vec4<f32>(0.0), g, a > vec4<f32>(0.0));
    }
    return g;
}

// out = partial [N*C][2] (mean, M2) of x.
@compute @workgroup_size(64)
fn stats_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c {
        return;
    }
    let base = i * p.hw;
    var s = 0.0;
    for (var k = 0u; k < p.hw; k++) {
        s += x[base + k];
    }
    let mean = s / f32(p.hw);
    var m2 = 0.0;
    for (var k = 0u; k < p.hw; k++) {
        let d = x[base + k] - mean;
        m2 += d * d;
    }
    out[2u * i] = mean;
    out[2u * i + 1u] = m2;
}

// out = stats [C][2] (mean, 1/sqrt(var + eps)) from the partials; updates the
// running statistics in place (unbiased variance, as PyTorch).
@compute @workgroup_size(64)
fn stats_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let c = global_id(wid, nwg, li, 64u);
    if c >= p.c {
        return;
    }
    var mean = 0.0;
    for (var n = 0u; n < p.n; n++) {
        mean += partial[2u * (n * p.c + c)];
    }
    mean /= f32(p.n);
    var m2 = 0.0;
    for (var n = 0u; n < p.n; n++) {
        let d = partial[2u * (n * p.c + c)] - mean;
        m2 += partial[2u * (n * p.c + c) + 1u] + f32(p.hw) * d * d;
    }
    let count = f32(p.n * p.hw);
    let var_b = m2 / count;
    out[2u * c] = mean;
    out[2u * c + 1u] = inverseSqrt(var_b + p.eps);
    let unbiased = m2 / max(count - 1.0, 1.0);
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
}

// Eval statistics from the running ones: out = stats.
@compute @workgroup_size(64)
fn stats_eval(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let c = global_id(wid, nwg, li, 64u);
    if c >= p.c {
        return;
    }
    out[2u * c] = running_mean[c];
    out[2u * c + 1u] = inverseSqrt(running_var[c] + p.eps);
}

// out = y = (x - mean) * inv * gamma + beta.
@compute @workgroup_size(64)
fn apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c * p.hw {
        return;
    }
    let c = (i / p.hw) % p.c;
    var y = (x[i] - stats[2u * c]) * stats[2u * c + 1u] * gamma[c] + beta[c];
    if RESIDUAL {
        y += res[i];
    }
    out[i] = activate(y);
}

// out = partial [N*C][2] (sum dy * xhat, sum dy).
@compute @workgroup_size(64)
fn backward_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c {
        return;
    }
    let c = i % p.c;
    let mean = stats[2u * c];
    let inv = stats[2u * c + 1u];
    var sxh = 0.0;
    var sdy = 0.0;
    for (var k = 0u; k < p.hw; k++) {
        let g = unmask(dy[i * p.hw + k], i * p.hw + k);
        sxh += g * (x[i * p.hw + k] - mean) * inv;
        sdy += g;
    }
    out[2u * i] = sxh;
    out[2u * i + 1u] = sdy;
}

// out = sums [C][2] (dgamma, dbeta) from the partials.
@compute @workgroup_size(64)
fn backward_combine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let c = global_id(wid, nwg, li, 64u);
    if c >= p.c {
        return;
    }
    var a = 0.0;
    var b = 0.0;
    for (var n = 0u; n < p.n; n++) {
        a += partial[2u * (n * p.c + c)];
        b += partial[2u * (n * p.c + c) + 1u];
    }
    out[2u * c] = a;
    out[2u * c + 1u] = b;
}

// out = dx.
@compute @workgroup_size(64)
fn backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c * p.hw {
        return;
    }
    let c = (i / p.hw) % p.c;
    let inv = stats[2u * c + 1u];
    let k = gamma[c] * inv;
    let g = unmask(dy[i], i);
    if TRAINING {
        let m = f32(p.n * p.hw);
        let xhat = (x[i] - stats[2u * c]) * inv;
        out[i] = k * (g - sums[2u * c + 1u] / m - xhat * sums[2u * c] / m);
    } else {
        out[i] = k * g;
    }
}

// Vector variants for planes of a multiple of 4 values (src/ops/norm.rs picks
// them): on CPU adapters every lane-varying storage access is a per-lane loop,
// so moving a vec4 per access, and reading the per-channel values once per 4
// elements, cuts the loops four-fold. Same arithmetic, element by element.
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> act4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> res4: array<vec4<f32>>;

// dy4[i] masked as unmask masks it.
fn dy_of4(i: u32) -> vec4<f32> {
    if RELU {
        return unmask4(dy4[i], act4[i]);
    }
    return dy4[i];
}

@compute @workgroup_size(64)
fn stats_partial4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c {
        return;
    }
    let hw4 = p.hw / 4u;
    let base = i * hw4;
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < hw4; k++) {
        s += x4[base + k];
    }
    let mean = (s.x + s.y + s.z + s.w) / f32(p.hw);
    var m2 = vec4<f32>(0.0);
    for (var k = 0u; k < hw4; k++) {
        let d = x4[base + k] - mean;
        m2 += d * d;
    }
    out[2u * i] = mean;
    out[2u * i + 1u] = m2.x + m2.y + m2.z + m2.w;
}

@compute @workgroup_size(64)
fn apply4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c * p.hw / 4u {
        return;
    }
    let c = (i / (p.hw / 4u)) % p.c;
    var y = (x4[i] - stats[2u * c]) * stats[2u * c + 1u] * gamma[c] + beta[c];
    if RESIDUAL {
        y += res4[i];
    }
    out4[i] = activate4(y);
}

@compute @workgroup_size(64)
fn backward_partial4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c {
        return;
    }
    let c = i % p.c;
    let mean = stats[2u * c];
    let inv = stats[2u * c + 1u];
    let hw4 = p.hw / 4u;
    var sxh = vec4<f32>(0.0);
    var sdy = vec4<f32>(0.0);
    for (var k = 0u; k < hw4; k++) {
        let g = dy_of4(i * hw4 + k);
        sxh += g * (x4[i * hw4 + k] - mean) * inv;
        sdy += g;
    }
    out[2u * i] = sxh.x + sxh.y + sxh.z + sxh.w;
    out[2u * i + 1u] = sdy.x + sdy.y + sdy.z + sdy.w;
}

@compute @workgroup_size(64)
fn backward_input4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c * p.hw / 4u {
        return;
    }
    let c = (i / (p.hw / 4u)) % p.c;
    let inv = stats[2u * c + 1u];
    let k = gamma[c] * inv;
    let g = dy_of4(i);
    if TRAINING {
        let m = f32(p.n * p.hw);
        let xhat = (x4[i] - stats[2u * c]) * inv;
        out4[i] = k * (g - sums[2u * c + 1u] / m - xhat * sums[2u * c] / m);
    } else {
        out4[i] = k * g;
    }
}
