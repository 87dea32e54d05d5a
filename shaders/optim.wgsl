// Optimiser updates, in place on the parameters.
// SGD (PyTorch semantics, dampening 0): g = grad + wd * w; buf = momentum * buf + g;
// g = g + momentum * buf (Nesterov) or buf; w -= lr * g.
// Adam / AdamW: decoupled weight decay for AdamW, L2 into the gradient for Adam.

struct OptParams {
    n: u32,
    nesterov: u32,
    decoupled: u32,
    _p0: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    // 1 / (1 - beta^t) for the current step t.
    bias1: f32,
    bias2: f32,
}

@group(0) @binding(0) var<uniform> p: OptParams;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

// One SGD update of a weight: (new weight, new momentum buffer; the buffer
// is unchanged without momentum). sgd and optim_multi.wgsl's sgd_multi
// both call it, so both give the same bits.
fn sgd_step(w: f32, grad: f32, m: f32, lr: f32, momentum: f32, weight_decay: f32,
            nesterov: bool) -> vec2<f32> {
    var g = grad + weight_decay * w;
    var b = m;
    if momentum != 0.0 {
        b = momentum * m + g;
        if nesterov {
            g = g + momentum * b;
        } else {
            g = b;
        }
    }
    return vec2<f32>(w - lr * g, b);
}

// Adam's scalars, as OptParams and optim_multi.wgsl's MultiOptParams hold them.
struct AdamArgs {
    lr: f32,
    weight_decay: f32,
    decoupled: bool,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias1: f32,
    bias2: f32,
}

// One Adam / AdamW update: (new weight, new m, new v).
fn adam_step(w: f32, grad: f32, m: f32, v: f32, a: AdamArgs) -> vec3<f32> {
    var g = grad;
    var x = w;
    if a.decoupled {
        x -= a.lr * a.weight_decay * x;
    } else {
        g += a.weight_decay * x;
    }
    let mi = a.beta1 * m + (1.0 - a.beta1) * g;
    let vi = a.beta2 * v + (1.0 - a.beta2) * g * g;
    return vec3<f32>(x - a.lr * (mi * a.bias1) / (sqrt(vi * a.bias2) + a.eps), mi, vi);
}

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n {
        return;
    }
    // The momentum buffer is read and written only with momentum.
    let with_m = p.momentum != 0.0;
    var b = 0.0;
    if with_m {
        b = m[i];
    }
    let r = sgd_step(w[i], grad[i], b, p.lr, p.momentum, p.weight_decay, p.nesterov != 0u);
    if with_m {
        m[i] = r.y;
    }
    w[i] = r.x;
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n {
        return;
    }
    let a = AdamArgs(p.lr, p.weight_decay, p.decoupled != 0u, p.beta1, p.beta2, p.eps, p.bias1,
                     p.bias2);
    let r = adam_step(w[i], grad[i], m[i], v[i], a);
    m[i] = r.y;
    v[i] = r.z;
    w[i] = r.x;
}
