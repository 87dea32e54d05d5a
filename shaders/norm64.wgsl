// Batch norm's vec4 variants through 64-bit words (wide.wgsl says why), for
// planes of a multiple of 8 values: half the per-lane load loops per value,
// and the per-channel values read once per 8 values. Element by element the
// arithmetic is the vec4 kernels', and the sums run in their order (a word's 8
// floats as two vec4s, first then second), so the results are bit-identical.
@group(0) @binding(1) var<storage, read_write> out8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> x8: array<vec4<u64>>;
@group(0) @binding(3) var<storage, read> dy8: array<vec4<u64>>;
@group(0) @binding(11) var<storage, read> act8: array<vec4<u64>>;
@group(0) @binding(12) var<storage, read> res8: array<vec4<u64>>;

// dy8[i] masked as unmask masks it, as two halves.
fn dy_halves(i: u32) -> array<vec4<f32>, 2> {
    let g = halves(dy8[i]);
    if RELU {
        let a = halves(act8[i]);
        return array<vec4<f32>, 2>(unmask4(g[0], a[0]), unmask4(g[1], a[1]));
    }
    return g;
}

@compute @workgroup_size(64)
fn stats_partial8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c {
        return;
    }
    let hw8 = p.hw / 8u;
    let base = i * hw8;
    var s = vec4<f32>(0.0);
    for (var k = 0u; k < hw8; k++) {
        let h = halves(x8[base + k]);
        s += h[0];
        s += h[1];
    }
    let mean = (s.x + s.y + s.z + s.w) / f32(p.hw);
    var m2 = vec4<f32>(0.0);
    for (var k = 0u; k < hw8; k++) {
        let h = halves(x8[base + k]);
        let d0 = h[0] - mean;
        m2 += d0 * d0;
        let d1 = h[1] - mean;
        m2 += d1 * d1;
    }
    out[2u * i] = mean;
    out[2u * i + 1u] = m2.x + m2.y + m2.z + m2.w;
}

@compute @workgroup_size(64)
fn apply8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c * p.hw / 8u {
        return;
    }
    let c = (i / (p.hw / 8u)) % p.c;
    let mean = stats[2u * c];
    let inv = stats[2u * c + 1u];
    let g = gamma[c];
    let b = beta[c];
    let v = x8[i];
    var lo = (lo32(v) - mean) * inv * g + b;
    var hi = (hi32(v) - mean) * inv * g + b;
    if RESIDUAL {
        let r = res8[i];
        lo += lo32(r);
        hi += hi32(r);
    }
    out8[i] = pack64(activate4(lo), activate4(hi));
}

@compute @workgroup_size(64)
fn backward_partial8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c {
        return;
    }
    let c = i % p.c;
    let mean = stats[2u * c];
    let inv = stats[2u * c + 1u];
    let hw8 = p.hw / 8u;
    var sxh = vec4<f32>(0.0);
    var sdy = vec4<f32>(0.0);
    for (var k = 0u; k < hw8; k++) {
        let g = dy_halves(i * hw8 + k);
        let h = halves(x8[i * hw8 + k]);
        sxh += g[0] * (h[0] - mean) * inv;
        sdy += g[0];
        sxh += g[1] * (h[1] - mean) * inv;
        sdy += g[1];
    }
    out[2u * i] = sxh.x + sxh.y + sxh.z + sxh.w;
    out[2u * i + 1u] = sdy.x + sdy.y + sdy.z + sdy.w;
}

@compute @workgroup_size(64)
fn backward_input8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.c * p.hw / 8u {
        return;
    }
    let c = (i / (p.hw / 8u)) % p.c;
    let inv = stats[2u * c + 1u];
    let k = gamma[c] * inv;
    let dv = dy8[i];
    var glo = lo32(dv);
    var ghi = hi32(dv);
    if RELU {
        let a = act8[i];
        glo = unmask4(glo, lo32(a));
        ghi = unmask4(ghi, hi32(a));
    }
    if TRAINING {
        let m = f32(p.n * p.hw);
        let mean = stats[2u * c];
        let s0 = sums[2u * c];
        let s1 = sums[2u * c + 1u] / m;
        let v = x8[i];
        let xl = (lo32(v) - mean) * inv;
        let xh = (hi32(v) - mean) * inv;
        // (xhat * s0) / m, as the vec4 kernel associates it.
        out8[i] = pack64(k * (glo - s1 - xl * s0 / m), k * (ghi - s1 - xh * s0 / m));
    } else {
        out8[i] = pack64(k * glo, k * ghi);
    }
}
