// CenterNet-style detection: the penalty-reduced focal loss on class
// heat-maps, a weighted L1 loss for box regression, the teacher's confidence
// map, and peak extraction with top-k, all on [N, K, H, W] maps.
//
// focal_forward (1 loss per element, 2 positive marks, 3 d loss / d logit
//   before the 1 / num_pos factor, 4 logits, 5 Gaussian targets): with
//   p = sigmoid(x), alpha = 2, beta = 4 (Law & Deng; Zhou et al.),
//   y = 1:  -(1 - p)^2 log p
//   y < 1:  -(1 - y)^4 p^2 log(1 - p)
//   log p and log(1 - p) as -softplus(-x) and -softplus(x): finite for any x.
// focal_mean (6 total, 7 count, 8 out [total / max(count, 1), 1 / max(count, 1)]).
// l1_forward (1 w |p - t|, 3 w sign(p - t), 4 p, 5 t, 9 w).
// confidence (4 logits, 12 out [N, H*W]): max over classes of sigmoid(x).
// peaks (4 logits, 10 scores [N, topk], 11 indices [N, topk] into K*H*W):
//   one invocation per image; a position is a peak if its logit is at least
//   each of its 8 neighbours' in its class plane (a 3x3 max-pool test);
//   the top-k peaks by score, ties to the lower index. Unused slots: score -1.

struct DetParams {
    n: u32,       // elements (losses), or images (peaks, confidence)
    k: u32,       // classes
    h: u32,
    w: u32,
    topk: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: DetParams;
@group(0) @binding(1) var<storage, read_write> loss: array<f32>;
@group(0) @binding(2) var<storage, read_write> pos: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> goal: array<f32>;
@group(0) @binding(6) var<storage, read> total: array<f32>;
@group(0) @binding(7) var<storage, read> count: array<f32>;
@group(0) @binding(8) var<storage, read_write> result: array<f32>;
@group(0) @binding(9) var<storage, read> weight: array<f32>;
@group(0) @binding(10) var<storage, read_write> scores: array<f32>;
@group(0) @binding(11) var<storage, read_write> indices: array<u32>;
@group(0) @binding(12) var<storage, read_write> conf: array<f32>;

fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z)));
}

fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

@compute @workgroup_size(64)
fn focal_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 64u + li;
    if i >= p.n {
        return;
    }
    let z = x[i];
    let y = goal[i];
    let s = sigmoid(z);
    let q = 1.0 - s;
    let log_p = -softplus(-z);
    let log_q = -softplus(z);
    if y >= 1.0 {
        loss[i] = -q * q * log_p;
        dx[i] = 2.0 * s * q * q * log_p - q * q * q;
        pos[i] = 1.0;
    } else {
        let r = (1.0 - y) * (1.0 - y);
        let r4 = r * r;
        loss[i] = -r4 * s * s * log_q;
        dx[i] = r4 * (s * s * s - 2.0 * s * s * q * log_q);
        pos[i] = 0.0;
    }
}

@compute @workgroup_size(1)
fn focal_mean() {
    let inv = 1.0 / max(count[0], 1.0);
    result[0] = total[0] * inv;
    result[1] = inv;
}

@compute @workgroup_size(64)
fn l1_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 64u + li;
    if i >= p.n {
        return;
    }
    let d = x[i] - goal[i];
    loss[i] = weight[i] * abs(d);
    dx[i] = weight[i] * sign(d);
}

@compute @workgroup_size(64)
fn confidence(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 64u + li;
    let hw = p.h * p.w;
    if i >= p.n * hw {
        return;
    }
    let img = i / hw;
    let at = i % hw;
    var best = neg_inf();
    for (var c = 0u; c < p.k; c++) {
        best = max(best, x[(img * p.k + c) * hw + at]);
    }
    conf[i] = sigmoid(best);
}

const MAX_TOPK: u32 = 128u;

fn is_peak(base: u32, yy: u32, xx: u32, v: f32) -> bool {
    for (var dy = -1; dy <= 1; dy++) {
        for (var dxx = -1; dxx <= 1; dxx++) {
            let ny = i32(yy) + dy;
            let nx = i32(xx) + dxx;
            if (dy == 0 && dxx == 0) || ny < 0 || nx < 0 || ny >= i32(p.h) || nx >= i32(p.w) {
                continue;
            }
            if x[base + u32(ny) * p.w + u32(nx)] > v {
                return false;
            }
        }
    }
    return true;
}

@compute @workgroup_size(1)
fn peaks(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let img = linear_wg(wid, nwg);
    if img >= p.n {
        return;
    }
    var best_s: array<f32, 128>;
    var best_i: array<u32, 128>;
    let kk = min(p.topk, MAX_TOPK);
    for (var j = 0u; j < kk; j++) {
        best_s[j] = -1.0;
        best_i[j] = 0u;
    }
    let hw = p.h * p.w;
    for (var c = 0u; c < p.k; c++) {
        let base = (img * p.k + c) * hw;
        for (var at = 0u; at < hw; at++) {
            let v = x[base + at];
            let s = sigmoid(v);
            // Only a candidate that beats the current k-th is tested as a peak.
            if kk == 0u || s <= best_s[kk - 1u] || !is_peak(base, at / p.w, at % p.w, v) {
                continue;
            }
            // Insert, keeping the list sorted by score (earlier index first on ties).
            var j = kk - 1u;
            while j > 0u && best_s[j - 1u] < s {
                best_s[j] = best_s[j - 1u];
                best_i[j] = best_i[j - 1u];
                j--;
            }
            best_s[j] = s;
            best_i[j] = c * hw + at;
        }
    }
    for (var j = 0u; j < kk; j++) {
        scores[img * p.topk + j] = best_s[j];
        indices[img * p.topk + j] = best_i[j];
    }
}
