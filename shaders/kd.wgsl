// Soft-target distillation (Hinton), fused: per row, the teacher's and the
// student's softmax at temperature T, the KL divergence KL(p_t || p_s), and the
// gradient of T^2 * mean_rows(KL) with respect to the student's logits,
// T * (p_s - p_t) / N, all in one pass over the logits.
// Bindings: 0 params, 1 kl per row [N], 2 dz [N, K], 3 student logits, 4 teacher logits.
//
// The dense form (segmentation, detection heat-maps) reads logits [N, K, S]
// with the classes strided by S, one distribution per position, and skips the
// positions whose label is `ignore`: `kd_dense_forward` writes kl and a 0/1
// valid mark per position (5 labels [N * S], 6 valid) and dz = T (p_s - p_t)
// at valid positions; `kd_dense_mean` turns the sums (7 total kl, 8 count)
// into 9 [T^2 * kl / count, 1 / count] with count at least 1, so the gradient
// is dz times the second number.

struct KdParams {
    n: u32,           // rows, or positions N * S in the dense form
    k: u32,
    inv_t: f32,
    grad_scale: f32,  // T / N (rows), T (dense)
    s: u32,           // positions per image (dense)
    ignore: u32,      // label of positions that do not count (dense)
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: KdParams;
@group(0) @binding(1) var<storage, read_write> kl: array<f32>;
@group(0) @binding(2) var<storage, read_write> dz: array<f32>;
@group(0) @binding(3) var<storage, read> zs: array<f32>;
@group(0) @binding(4) var<storage, read> zt: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read_write> valid: array<f32>;
@group(0) @binding(7) var<storage, read> total_kl: array<f32>;
@group(0) @binding(8) var<storage, read> total_valid: array<f32>;
@group(0) @binding(9) var<storage, read_write> result: array<f32>;

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

@compute @workgroup_size(64)
fn kd_dense_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let pos = linear_wg(wid, nwg) * 64u + li;
    if pos >= p.n {
        return;
    }
    let img = pos / p.s;
    let base = img * p.k * p.s + pos % p.s;
    if labels[pos] == p.ignore {
        for (var j = 0u; j < p.k; j++) {
            dz[base + j * p.s] = 0.0;
        }
        kl[pos] = 0.0;
        valid[pos] = 0.0;
        return;
    }
    var ms = neg_inf();
    var mt = neg_inf();
    for (var j = 0u; j < p.k; j++) {
        ms = max(ms, zs[base + j * p.s]);
        mt = max(mt, zt[base + j * p.s]);
    }
    var ss = 0.0;
    var st = 0.0;
    for (var j = 0u; j < p.k; j++) {
        ss += exp((zs[base + j * p.s] - ms) * p.inv_t);
        st += exp((zt[base + j * p.s] - mt) * p.inv_t);
    }
    let lss = log(ss);
    let lst = log(st);
    var acc = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let at = base + j * p.s;
        let log_ps = (zs[at] - ms) * p.inv_t - lss;
        let log_pt = (zt[at] - mt) * p.inv_t - lst;
        let pt = exp(log_pt);
        acc += pt * (log_pt - log_ps);
        dz[at] = (exp(log_ps) - pt) * p.grad_scale;
    }
    kl[pos] = acc;
    valid[pos] = 1.0;
}

@compute @workgroup_size(1)
fn kd_dense_mean() {
    let inv = 1.0 / max(total_valid[0], 1.0);
    let t = p.grad_scale;
    result[0] = t * t * total_kl[0] * inv;
    result[1] = inv;
}
