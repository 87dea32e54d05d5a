// softmax_rows4 through 64-bit words (wide.wgsl says why), for rows of a
// multiple of 8 values: one pass for the row's max, one for the sum of
// exp((x - max) / T), one to write, as the reference computes it. Without
// online rescaling there are no lane-divergent branches (llvmpipe runs both
// arms of one), and the row, re-read from cache, costs less than them.
@group(0) @binding(1) var<storage, read_write> y8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> x8: array<vec4<u64>>;

@compute @workgroup_size(64)
fn softmax_rows8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let row = linear_wg(wid, nwg) * 64u + li;
    if row >= p.rows {
        return;
    }
    let n8 = p.cols / 8u;
    let base = row * n8;
    var m = vec4<f32>(neg_inf());
    for (var c = 0u; c < n8; c++) {
        let v = x8[base + c];
        m = max(m, max(lo32(v), hi32(v)));
    }
    let mx = max(max(m.x, m.y), max(m.z, m.w));
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < n8; c++) {
        let v = x8[base + c];
        s += exp((lo32(v) - mx) * p.inv_t) + exp((hi32(v) - mx) * p.inv_t);
    }
    let sum = (s.x + s.y) + (s.z + s.w);
    let ls = log(sum);
    let inv = 1.0 / sum;
    for (var c = 0u; c < n8; c++) {
        let v = x8[base + c];
        let zl = (lo32(v) - mx) * p.inv_t;
        let zh = (hi32(v) - mx) * p.inv_t;
        if LOG {
            y8[base + c] = pack64(zl - ls, zh - ls);
        } else {
            y8[base + c] = pack64(exp(zl) * inv, exp(zh) * inv);
        }
    }
}
