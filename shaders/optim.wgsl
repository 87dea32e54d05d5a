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

@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n {
        return;
    }
    var g = grad[i] + p.weight_decay * w[i];
    if p.momentum != 0.0 {
        let b = p.momentum * m[i] + g;
        m[i] = b;
        if p.nesterov != 0u {
            g = g + p.momentum * b;
        } else {
            g = b;
        }
    }
    w[i] -= p.lr * g;
}

@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n {
        return;
    }
    var g = grad[i];
    var x = w[i];
    if p.decoupled != 0u {
        x -= p.lr * p.weight_decay * x;
    } else {
        g += p.weight_decay * x;
    }
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    w[i] = x - p.lr * (mi * p.bias1) / (sqrt(vi * p.bias2) + p.eps);
}
