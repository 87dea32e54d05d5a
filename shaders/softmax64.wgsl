// softmax_rows4 through 64-bit words (wide.wgsl says why), for rows of a
// multiple of 8 values: one pass for the row's max, one for the sum of
// exp((x - max) / T), one to write, as the reference computes it (the row is
// short enough to be re-read from cache). Without
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
    // Softmax writes exp((x - max) / T) while summing and scales it in the
    // last pass (one exponential per element); log-softmax needs none there.
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < n8; c++) {
        let v = x8[base + c];
        let el = exp((lo32(v) - mx) * p.inv_t);
        let eh = exp((hi32(v) - mx) * p.inv_t);
        s += el + eh;
        if !LOG {
            y8[base + c] = pack64(el, eh);
        }
    }
    let sum = (s.x + s.y) + (s.z + s.w);
    if LOG {
        let ls = log(sum);
        for (var c = 0u; c < n8; c++) {
            let v = x8[base + c];
            y8[base + c] = pack64((lo32(v) - mx) * p.inv_t - ls, (hi32(v) - mx) * p.inv_t - ls);
        }
    } else {
        let inv = 1.0 / sum;
        for (var c = 0u; c < n8; c++) {
            let e = y8[base + c];
            y8[base + c] = pack64(lo32(e) * inv, hi32(e) * inv);
        }
    }
}
