// Cross-entropy from logits: fused log-softmax + negative log-likelihood, with
// label smoothing and an ignore index. Logits [N, C, S] (S = 1 for
// classification, H*W for segmentation), labels [N, S] u32. The mean over the
// non-ignored positions stays on the device: no read-back.

struct CeParams {
    n: u32,
    c: u32,
    s: u32,
    ignore: u32,
    smoothing: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: CeParams;
// One binding number per meaning; each entry point binds the ones it uses
// (src/ops/losses.rs passes them by these numbers).
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
// 1 where a position is counted (not ignored), else 0.
@group(0) @binding(2) var<storage, read_write> valid_out: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
// The number of counted positions, the upstream gradient, the summed losses.
@group(0) @binding(5) var<storage, read> count: array<f32>;
@group(0) @binding(6) var<storage, read> dloss: array<f32>;
@group(0) @binding(7) var<storage, read> total: array<f32>;

fn skip(label: u32) -> bool {
    return label == p.ignore || label >= p.c;
}

// out = loss per position, valid_out = 1 where counted.
@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.s {
        return;
    }
    let n = i / p.s;
    let si = i % p.s;
    let label = labels[i];
    if skip(label) {
        out[i] = 0.0;
        valid_out[i] = 0.0;
        return;
    }
    let base = n * p.c * p.s + si;
    var m = neg_inf();
    for (var k = 0u; k < p.c; k++) {
        m = max(m, logits[base + k * p.s]);
    }
    var se = 0.0;
    var sum_z = 0.0;
    for (var k = 0u; k < p.c; k++) {
        let z = logits[base + k * p.s] - m;
        se += exp(z);
        sum_z += z;
    }
    let lse = log(se);
    let nll = lse - (logits[base + label * p.s] - m);
    // Smoothing: target (1 - e) on the label plus e / C on every class.
    let uniform = lse - sum_z / f32(p.c);
    out[i] = (1.0 - p.smoothing) * nll + p.smoothing * uniform;
    valid_out[i] = 1.0;
}

// out[0] = total / max(count, 1): the mean over counted positions (0 if none).
@compute @workgroup_size(1)
fn mean_of() {
    out[0] = total[0] / max(count[0], 1.0);
}

// out = dlogits [N, C, S].
@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.s {
        return;
    }
    let n = i / p.s;
    let si = i % p.s;
    let label = labels[i];
    let base = n * p.c * p.s + si;
    if skip(label) {
        for (var k = 0u; k < p.c; k++) {
            out[base + k * p.s] = 0.0;
        }
        return;
    }
    var m = neg_inf();
    for (var k = 0u; k < p.c; k++) {
        m = max(m, logits[base + k * p.s]);
    }
    var se = 0.0;
    for (var k = 0u; k < p.c; k++) {
        se += exp(logits[base + k * p.s] - m);
    }
    let scale = dloss[0] / max(count[0], 1.0);
    for (var k = 0u; k < p.c; k++) {
        var tgt = p.smoothing / f32(p.c);
        if k == label {
            tgt += 1.0 - p.smoothing;
        }
        let prob = exp(logits[base + k * p.s] - m) / se;
        out[base + k * p.s] = (prob - tgt) * scale;
    }
}
