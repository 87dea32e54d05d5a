// Soft-target distillation (Hinton), fused: per row, the teacher's and the
// student's softmax at temperature T, the KL divergence KL(p_t || p_s), and the
// gradient of T^2 * mean_rows(KL) with respect to the student's logits,
// T * (p_s - p_t) / N, all in one pass over the logits.
// Bindings: 0 params, 1 kl per row [N], 2 dz [N, K], 3 student logits, 4 teacher logits.

struct KdParams {
    n: u32,
    k: u32,
    inv_t: f32,
    grad_scale: f32,  // T / N
}

@group(0) @binding(0) var<uniform> p: KdParams;
@group(0) @binding(1) var<storage, read_write> kl: array<f32>;
@group(0) @binding(2) var<storage, read_write> dz: array<f32>;
@group(0) @binding(3) var<storage, read> zs: array<f32>;
@group(0) @binding(4) var<storage, read> zt: array<f32>;

@compute @workgroup_size(64)
fn kd_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let row = linear_wg(wid, nwg) * 64u + li;
    if row >= p.n {
        return;
    }
    let base = row * p.k;
    var ms = neg_inf();
    var mt = neg_inf();
    for (var j = 0u; j < p.k; j++) {
        ms = max(ms, zs[base + j]);
        mt = max(mt, zt[base + j]);
    }
    var ss = 0.0;
    var st = 0.0;
    for (var j = 0u; j < p.k; j++) {
        ss += exp((zs[base + j] - ms) * p.inv_t);
        st += exp((zt[base + j] - mt) * p.inv_t);
    }
    let lss = log(ss);
    let lst = log(st);
    var acc = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let log_ps = (zs[base + j] - ms) * p.inv_t - lss;
        let log_pt = (zt[base + j] - mt) * p.inv_t - lst;
        let pt = exp(log_pt);
        acc += pt * (log_pt - log_ps);
        dz[base + j] = (exp(log_ps) - pt) * p.grad_scale;
    }
    kl[row] = acc;
}
