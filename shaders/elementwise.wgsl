// Elementwise ops. Bindings: 0 params, 1 output, 2.. inputs.
// `binary`: out = a OP b with numpy broadcasting (strides 0 on broadcast axes);
// `binary4` the same-shape case. `unary4`: out = f(a) for relu, exp, log, alpha * a + beta; `fill`: out = alpha.

struct EwParams {
    n: u32,
    ndim: u32,
    alpha: f32,
    beta: f32,
    // Output shape and the input strides in elements, 8 axes packed in vec4s
    // (uniform arrays need 16-byte strides).
    shape: array<vec4<u32>, 2>,
    sa: array<vec4<u32>, 2>,
    sb: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<uniform> p: EwParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;

// Binary: 0 add, 1 sub, 2 mul, 3 div, 4 a where b > 0, and the backwards of the
// activations (a = dy, b = the activation's input x, or its output y for sigmoid):
// 5 clip (alpha, beta = lo, hi), 6 leaky relu (alpha = slope), 7 sigmoid (b = y),
// 8 hard sigmoid (alpha, beta), 9 hard swish.
// Unary: 0 affine, 1 relu, 2 exp, 3 log, 4 sqrt, 5 clip to [alpha, beta],
// 6 leaky relu (slope alpha), 7 sigmoid, 8 hard sigmoid max(0, min(1, alpha x + beta)),
// 9 hard swish x * hard_sigmoid(x; 1/6, 1/2).
override OP: u32 = 0u;

const WG: u32 = 256u;

fn binop(x: f32, y: f32) -> f32 {
    if OP == 0u {
        return x + y;
    } else if OP == 1u {
        return x - y;
    } else if OP == 2u {
        return x * y;
    } else if OP == 3u {
        return x / y;
    } else if OP == 4u {
        return select(0.0, x, y > 0.0);
    } else if OP == 5u {
        // As PyTorch's clamp: the gradient passes where lo <= x <= hi.
        return select(0.0, x, y >= p.alpha && y <= p.beta);
    } else if OP == 6u {
        return select(p.alpha * x, x, y > 0.0);
    } else if OP == 7u {
        return x * y * (1.0 - y);
    } else if OP == 8u {
        let t = p.alpha * y + p.beta;
        return select(0.0, p.alpha * x, t > 0.0 && t < 1.0);
    }
    // Hard swish: 0 below -3, 1 above 3, (2x + 3) / 6 between (PyTorch's convention
    // at the two kinks).
    if y < -3.0 {
        return 0.0;
    } else if y > 3.0 {
        return x;
    }
    return x * (2.0 * y + 3.0) / 6.0;
}

// min(max(x, lo), hi) keeping NaN (max and min may drop it).
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    return select(min(max(x, lo), hi), x, is_nan(x));
}

fn unop(x: f32) -> f32 {
    if OP == 0u {
        return p.alpha * x + p.beta;
    } else if OP == 1u {
        // NaN stays NaN, as in PyTorch and ONNX (max(NaN, 0) may give 0).
        return select(max(x, 0.0), x, is_nan(x));
    } else if OP == 2u {
        return exp(x);
    } else if OP == 3u {
        return log(x);
    } else if OP == 4u {
        return sqrt(x);
    } else if OP == 5u {
        return clip(x, p.alpha, p.beta);
    } else if OP == 6u {
        return select(p.alpha * x, x, x >= 0.0 || is_nan(x));
    } else if OP == 7u {
        // exp of a large -x overflows to inf and 1 / inf = 0, the right limit.
        return 1.0 / (1.0 + exp(-x));
    } else if OP == 8u {
        return clip(p.alpha * x + p.beta, 0.0, 1.0);
    }
    return x * clip(x / 6.0 + 0.5, 0.0, 1.0);
}

// Where output element i reads a and b: its coordinates times each input's strides.
fn operands_at(i: u32) -> vec2<u32> {
    var ia = 0u;
    var ib = 0u;
    var r = i;
    var d = p.ndim;
    while d > 0u {
        d -= 1u;
        let s = p.shape[d / 4u][d % 4u];
        let c = r % s;
        r /= s;
        ia += c * p.sa[d / 4u][d % 4u];
        ib += c * p.sb[d / 4u][d % 4u];
    }
    return vec2<u32>(ia, ib);
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * WG + li;
    if i >= p.n {
        return;
    }
    let at = operands_at(i);
    out[i] = binop(a[at.x], b[at.y]);
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * WG + li;
    if i >= p.n {
        return;
    }
    out[i] = p.alpha;
}

// Vector variants for same-shape operands (src/ops/elementwise.rs): storage
// accesses from lane-varying addresses are per-lane loops on llvmpipe, and a
// vec4 moves four elements through one loop. p.n counts vec4s; tensors occupy
// whole multiples of 16 bytes, so the last vec4 may run into padding nothing reads.
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<f32>>;

fn binop4(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(binop(x.x, y.x), binop(x.y, y.y), binop(x.z, y.z), binop(x.w, y.w));
}

// Broadcasting `binary` a vec4 of output at a time, where the innermost axis
// (after src/ops/elementwise.rs merges the axes it can) is a multiple of 4
// long and each input either runs along it (A_ROW / B_ROW: stride 1, one vec4
// load) or repeats one value across it (stride 0): one index computation and
// one load loop per input per 4 outputs instead of per output. p.n counts
// vec4s of output; the operators are binary's, value for value.
override A_ROW: bool = true;
override B_ROW: bool = true;

@compute @workgroup_size(256)
fn binary_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * WG + li;
    if i >= p.n {
        return;
    }
    let at = operands_at(i * 4u);
    let ia = at.x;
    let ib = at.y;
    var va = a4[ia / 4u];
    if !A_ROW {
        va = vec4<f32>(va[ia % 4u]);
    }
    var vb = b4[ib / 4u];
    if !B_ROW {
        vb = vec4<f32>(vb[ib % 4u]);
    }
    out4[i] = binop4(va, vb);
}

fn unop4(x: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(unop(x.x), unop(x.y), unop(x.z), unop(x.w));
}

@compute @workgroup_size(64)
fn binary4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i < p.n {
        out4[i] = binop4(a4[i], b4[i]);
    }
}

@compute @workgroup_size(64)
fn unary4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i < p.n {
        out4[i] = unop4(a4[i]);
    }
}
