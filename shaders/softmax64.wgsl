// softmax_rows4 through 64-bit words (wide.wgsl says why), for rows of a
// multiple of 8 values, in two passes: a running (max, sum of exp((x - max) /
// T)) per vec4 component, rescaled by selects rather than branches (llvmpipe
// runs both arms of a lane-divergent branch), merged as softmax_wg merges its
// invocations' pairs; then exp, scale and write. Storage loads are what cost
// on llvmpipe (a per-lane loop each): two passes load each word twice and
// store it once, where max / exp-and-store / rescale loaded it three times and
// stored it twice, at the price of more exponentials.
//
// Each invocation walks its row starting at its own offset (2 words = 64
// bytes per lane) and wraps around: the rows of a 1024-column tensor are 4 KiB
// apart, so lanes reading the same column at once all map to one set of the
// L1 cache and evict each other (measured: 25% of the time at 16M).
@group(0) @binding(1) var<storage, read_write> y8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> x8: array<vec4<u64>>;

// Adds 8 values to the per-component running (max m, sum s).
fn online8(ms: array<vec4<f32>, 2>, v: vec4<u64>) -> array<vec4<f32>, 2> {
    let ninf = vec4<f32>(neg_inf());
    let m = ms[0];
    let lo = lo32(v);
    let hi = hi32(v);
    let mn = max(m, max(lo, hi));
    // A max still at -inf would make (-inf) - (-inf) = NaN: keep s, add nothing
    // for a masked (-inf) logit.
    let scale = select(exp((m - mn) * p.inv_t), vec4<f32>(1.0), m == mn);
    let el = select(exp((lo - mn) * p.inv_t), vec4<f32>(0.0), lo == ninf);
    let eh = select(exp((hi - mn) * p.inv_t), vec4<f32>(0.0), hi == ninf);
    return array<vec4<f32>, 2>(mn, ms[1] * scale + (el + eh));
}

@compute @workgroup_size(64)
fn softmax_rows8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let row = linear_wg(wid, nwg) * 64u + li;
    if row >= p.rows {
        return;
    }
    let n8 = p.cols / 8u;
    let base = row * n8;
    let start = (li * 2u) % n8;
    var ms = array<vec4<f32>, 2>(vec4<f32>(neg_inf()), vec4<f32>(0.0));
    for (var c = 0u; c < n8; c++) {
        ms = online8(ms, x8[base + wrap(c + start, n8)]);
    }
    let m = ms[0];
    let s = ms[1];
    let a = merge(m.x, s.x, m.y, s.y);
    let b = merge(m.z, s.z, m.w, s.w);
    let r = merge(a.x, a.y, b.x, b.y);
    let mx = r.x;
    if LOG {
        let ls = log(r.y);
        for (var c = 0u; c < n8; c++) {
            let i = base + wrap(c + start, n8);
            let v = x8[i];
            y8[i] = pack64((lo32(v) - mx) * p.inv_t - ls, (hi32(v) - mx) * p.inv_t - ls);
        }
    } else {
        let inv = 1.0 / r.y;
        for (var c = 0u; c < n8; c++) {
            let i = base + wrap(c + start, n8);
            let v = x8[i];
            y8[i] = pack64(exp((lo32(v) - mx) * p.inv_t) * inv, exp((hi32(v) - mx) * p.inv_t) * inv);
        }
    }
}

// c mod n for c < 2n, without a division.
fn wrap(c: u32, n: u32) -> u32 {
    return select(c, c - n, c >= n);
}
