// `reduce` over a strided axis (inner > 1, inner % 8 == 0) through 64-bit
// words (wide.wgsl says why): each invocation reduces 8 neighbouring columns
// at once, in the order `reduce` uses for each of them (k = g, g + groups, ...
// into two alternating accumulators for a sum), so the results are the same
// bit for bit. Items: outer * groups * inner / 8.
@group(0) @binding(1) var<storage, read_write> y8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> x8: array<vec4<u64>>;

@compute @workgroup_size(64)
fn reduce_cols8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let t = linear_wg(wid, nwg) * WG + li;
    let cols = p.inner / 8u;
    if t >= p.outer * p.groups * cols {
        return;
    }
    let c = t % cols;
    let g = (t / cols) % p.groups;
    let o = t / (cols * p.groups);
    // Words along the axis are p.inner / 8 apart.
    let base = o * p.n * cols + c;
    var lo0 = vec4<f32>(0.0);
    var hi0 = vec4<f32>(0.0);
    if OP == 0u {
        var lo1 = vec4<f32>(0.0);
        var hi1 = vec4<f32>(0.0);
        var k = g;
        let step = p.groups;
        loop {
            if k + step >= p.n {
                break;
            }
            let v0 = x8[base + k * cols];
            let v1 = x8[base + (k + step) * cols];
            lo0 += lo32(v0);
            hi0 += hi32(v0);
            lo1 += lo32(v1);
            hi1 += hi32(v1);
            k += 2u * step;
        }
        if k < p.n {
            let v = x8[base + k * cols];
            lo0 += lo32(v);
            hi0 += hi32(v);
        }
        lo0 = (lo0 + lo1) * p.scale;
        hi0 = (hi0 + hi1) * p.scale;
    } else {
        let v = x8[base + g * cols];
        lo0 = lo32(v);
        hi0 = hi32(v);
        for (var k = g + p.groups; k < p.n; k += p.groups) {
            let w = x8[base + k * cols];
            lo0 = max4(lo0, lo32(w));
            hi0 = max4(hi0, hi32(w));
        }
    }
    y8[(o * p.groups + g) * cols + c] = pack64(lo0, hi0);
}
