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
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> valid_out: array<f32>;
@group(0) @binding(3) var<storage, read> logits: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> logits2: array<f32>;
@group(0) @binding(3) var<storage, read> labels3: array<u32>;
@group(0) @binding(4) var<storage, read> count4: array<f32>;
@group(0) @binding(5) var<storage, read> dloss5: array<f32>;
@group(0) @binding(2) var<storage, read> num2: array<f32>;
@group(0) @binding(3) var<storage, read> den3: array<f32>;

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

// out[0] = num[0] / max(den[0], 1).
@compute @workgroup_size(1)
fn mean_of(@builtin(local_invocation_index) li: u32) {
    // Every kernel binds the parameter block at 0, so each must use it.
    _ = p.n;
    out[0] = num2[0] / max(den3[0], 1.0);
}

// out = dlogits [N, C, S], logits2, labels3, count4 = counted positions, dloss5 = upstream.
@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.s {
        return;
    }
    let n = i / p.s;
    let si = i % p.s;
    let label = labels3[i];
    let base = n * p.c * p.s + si;
    if skip(label) {
        for (var k = 0u; k < p.c; k++) {
            out[base + k * p.s] = 0.0;
        }
        return;
    }
    var m = neg_inf();
    for (var k = 0u; k < p.c; k++) {
        m = max(m, logits2[base + k * p.s]);
    }
    var se = 0.0;
    for (var k = 0u; k < p.c; k++) {
        se += exp(logits2[base + k * p.s] - m);
    }
    let scale = dloss5[0] / max(count4[0], 1.0);
    for (var k = 0u; k < p.c; k++) {
        var tgt = p.smoothing / f32(p.c);
        if k == label {
            tgt += 1.0 - p.smoothing;
        }
        let prob = exp(logits2[base + k * p.s] - m) / se;
        out[base + k * p.s] = (prob - tgt) * scale;
    }
}
