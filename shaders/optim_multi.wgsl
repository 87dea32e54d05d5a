// The optimiser's updates for up to 5 (SGD) or 4 (Adam) parameters in one
// launch (compiled after optim.wgsl, whose sgd_step and adam_step they share,
// so the bits are sgd's and adam's). Parameter k of a launch is slot k: its
// weight, gradient and state at bindings 1 + 4k (w), 2 + 4k (grad), 3 + 4k
// (m), 4 + 4k (v); slot 0 is optim.wgsl's w, grad, m, v. SGD's 5 slots take
// 15 storage buffers and Adam's 4 take 16, what wgpu's GL backend allows (a
// bind group layout holds every binding an entry point names, whatever
// SLOTS is). Slot k's elements take workgroups seg[k].x up to (not
// including) seg[k].y, 256 elements each, and it has seg[k].z elements.
// WGSL cannot index bindings, so the body is written out per slot; SLOTS
// (set by every launch) is how many are live, and every slot is bound
// (unused ones to slot 0's buffers, which they never touch). A launch per
// parameter costs a dispatch each (161 in a MobileNetV2 step):
// src/optim/multi.rs groups them.

struct MultiOptParams {
    nesterov: u32,
    decoupled: u32,
    _p0: u32,
    _p1: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias1: f32,
    bias2: f32,
    seg: array<vec4<u32>, 5>,
}

@group(0) @binding(0) var<uniform> pm: MultiOptParams;
override SLOTS: u32 = 1u;

@group(0) @binding(5) var<storage, read_write> w1: array<f32>;
@group(0) @binding(6) var<storage, read> grad1: array<f32>;
@group(0) @binding(7) var<storage, read_write> m1: array<f32>;
@group(0) @binding(8) var<storage, read_write> v1: array<f32>;
@group(0) @binding(9) var<storage, read_write> w2: array<f32>;
@group(0) @binding(10) var<storage, read> grad2: array<f32>;
@group(0) @binding(11) var<storage, read_write> m2: array<f32>;
@group(0) @binding(12) var<storage, read_write> v2: array<f32>;
@group(0) @binding(13) var<storage, read_write> w3: array<f32>;
@group(0) @binding(14) var<storage, read> grad3: array<f32>;
@group(0) @binding(15) var<storage, read_write> m3: array<f32>;
@group(0) @binding(16) var<storage, read_write> v3: array<f32>;
@group(0) @binding(17) var<storage, read_write> w4: array<f32>;
@group(0) @binding(18) var<storage, read> grad4: array<f32>;
@group(0) @binding(19) var<storage, read_write> m4: array<f32>;

// Slot k's element for workgroup wg, invocation li: (whether live, index).
fn seg_at(k: u32, wg: u32, li: u32) -> vec2<u32> {
    let s = pm.seg[k];
    let i = (wg - s.x) * 256u + li;
    return vec2<u32>(u32(wg >= s.x && wg < s.y && i < s.z), i);
}

@compute @workgroup_size(256)
fn sgd_multi(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let wg = linear_wg(wid, nwg);
    // The momentum buffer is read and written only with momentum, as in sgd.
    let with_m = pm.momentum != 0.0;
    if SLOTS > 0u {
        let e = seg_at(0u, wg, li);
        if e.x != 0u {
            let i = e.y;
            var b = 0.0;
            if with_m {
                b = m[i];
            }
            let r = sgd_step(w[i], grad[i], b, pm.lr, pm.momentum, pm.weight_decay,
                             pm.nesterov != 0u);
            if with_m {
                m[i] = r.y;
            }
            w[i] = r.x;
        }
    }
    if SLOTS > 1u {
        let e = seg_at(1u, wg, li);
        if e.x != 0u {
            let i = e.y;
            var b = 0.0;
            if with_m {
                b = m1[i];
            }
            let r = sgd_step(w1[i], grad1[i], b, pm.lr, pm.momentum, pm.weight_decay,
                             pm.nesterov != 0u);
            if with_m {
                m1[i] = r.y;
            }
            w1[i] = r.x;
        }
    }
    if SLOTS > 2u {
        let e = seg_at(2u, wg, li);
        if e.x != 0u {
            let i = e.y;
            var b = 0.0;
            if with_m {
                b = m2[i];
            }
            let r = sgd_step(w2[i], grad2[i], b, pm.lr, pm.momentum, pm.weight_decay,
                             pm.nesterov != 0u);
            if with_m {
                m2[i] = r.y;
            }
            w2[i] = r.x;
        }
    }
    if SLOTS > 3u {
        let e = seg_at(3u, wg, li);
        if e.x != 0u {
            let i = e.y;
            var b = 0.0;
            if with_m {
                b = m3[i];
            }
            let r = sgd_step(w3[i], grad3[i], b, pm.lr, pm.momentum, pm.weight_decay,
                             pm.nesterov != 0u);
            if with_m {
                m3[i] = r.y;
            }
            w3[i] = r.x;
        }
    }
    if SLOTS > 4u {
        let e = seg_at(4u, wg, li);
        if e.x != 0u {
            let i = e.y;
            var b = 0.0;
            if with_m {
                b = m4[i];
            }
            let r = sgd_step(w4[i], grad4[i], b, pm.lr, pm.momentum, pm.weight_decay,
                             pm.nesterov != 0u);
            if with_m {
                m4[i] = r.y;
            }
            w4[i] = r.x;
        }
    }
}

@compute @workgroup_size(256)
fn adam_multi(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let wg = linear_wg(wid, nwg);
    let a = AdamArgs(pm.lr, pm.weight_decay, pm.decoupled != 0u, pm.beta1, pm.beta2, pm.eps,
                     pm.bias1, pm.bias2);
    if SLOTS > 0u {
        let e = seg_at(0u, wg, li);
        if e.x != 0u {
            let i = e.y;
            let r = adam_step(w[i], grad[i], m[i], v[i], a);
            m[i] = r.y;
            v[i] = r.z;
            w[i] = r.x;
        }
    }
    if SLOTS > 1u {
        let e = seg_at(1u, wg, li);
        if e.x != 0u {
            let i = e.y;
            let r = adam_step(w1[i], grad1[i], m1[i], v1[i], a);
            m1[i] = r.y;
            v1[i] = r.z;
            w1[i] = r.x;
        }
    }
    if SLOTS > 2u {
        let e = seg_at(2u, wg, li);
        if e.x != 0u {
            let i = e.y;
            let r = adam_step(w2[i], grad2[i], m2[i], v2[i], a);
            m2[i] = r.y;
            v2[i] = r.z;
            w2[i] = r.x;
        }
    }
    if SLOTS > 3u {
        let e = seg_at(3u, wg, li);
        if e.x != 0u {
            let i = e.y;
            let r = adam_step(w3[i], grad3[i], m3[i], v3[i], a);
            m3[i] = r.y;
            v3[i] = r.z;
            w3[i] = r.x;
        }
    }
}
