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

// reduce4 (a contiguous axis of whole vec4s) through 64-bit words, for axes of
// a multiple of 8 values: the same runs of vec4s per partial, each vec4 into
// the accumulator reduce4 gives it (vec4 j of a run starting at `start` into
// acc[(j - start) % 2]; a run may start or end in the middle of a word), and
// the same final additions, so the same sums bit for bit. A half outside
// the run adds +0.0, which changes no accumulator (they start at +0.0 and so
// never hold -0.0).
@compute @workgroup_size(64)
fn reduce8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let r = run_at(wid, nwg, li);
    if !r.live {
        return;
    }
    let t = r.t;
    let n4 = p.n / 4u;
    // base is even, as n4 is.
    let base = r.base;
    let start = r.start;
    let stop = r.stop;
    let zero = vec4<f32>(0.0);
    if OP == 0u {
        var acc0 = zero;
        var acc1 = zero;
        let odd = start % 2u == 1u;
        for (var w = start / 2u; 2u * w < stop; w++) {
            // The word's vec4s 2w and 2w + 1.
            let h = halves(x8[(base / 2u) + w]);
            let a = h[0];
            let b = h[1];
            let a_in = 2u * w >= start;
            let b_in = 2u * w + 1u < stop;
            // Vec4 2w goes to acc0 when the run starts on an even vec4.
            acc0 += select(zero, select(b, a, !odd), select(b_in, a_in, !odd));
            acc1 += select(zero, select(a, b, !odd), select(a_in, b_in, !odd));
        }
        let s = acc0 + acc1;
        y[t] = ((s.x + s.y) + (s.z + s.w)) * p.scale;
    } else {
        let first = min(start, n4 - 1u);
        var acc = halves(x8[(base + first) / 2u])[first % 2u];
        for (var w = (start + 1u) / 2u; 2u * w < stop; w++) {
            let h = halves(x8[(base / 2u) + w]);
            if 2u * w > start {
                acc = max4(acc, h[0]);
            }
            if 2u * w + 1u < stop && 2u * w + 1u > start {
                acc = max4(acc, h[1]);
            }
        }
        let m = max4(acc, acc.yzwx);
        y[t] = max4(m, m.zwxy).x;
    }
}
