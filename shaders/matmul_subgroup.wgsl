// Matmul for CPU adapters whose subgroups are 8 lanes wide (llvmpipe on AVX2).
// Compiled together with matmul.wgsl (its parameters, bindings, TRANS_A/TRANS_B and
// put()), in a module of its own because it needs the SUBGROUP feature.
//
// On llvmpipe a subgroup is one SIMD vector and every storage load from a
// lane-varying address costs a per-lane loop, whatever its width. So loads, not
// FMAs, set the speed. Each lane loads one vec4 of A (its own row, 4 k) and the
// subgroup shares them with subgroupBroadcast (a register shuffle); each lane then
// keeps an 8x8 block of C: per 4 steps of k it does 256 FMAs for 9 loads
// (the 4x4 kernel in matmul.wgsl does 64 for 8). No workgroup memory, no barriers.

// Whether m < 64, so that some subgroups of a tile have no rows.
override SMALL_M: bool = false;

fn sg_a_scalar(i: u32) -> f32 {
    return a4[i / 4u][i % 4u];
}

// Row `r` of op(A) at columns k..k+3.
fn sg_a_row(abase: u32, r: u32, k: u32) -> vec4<f32> {
    if TRANS_A {
        // A is [k, m]: the four values are a row (a_cs) apart; neighbouring
        // lanes read neighbouring addresses.
        let i = abase + k * p.a_cs + r;
        return vec4<f32>(sg_a_scalar(i), sg_a_scalar(i + p.a_cs), sg_a_scalar(i + 2u * p.a_cs),
                         sg_a_scalar(i + 3u * p.a_cs));
    }
    return a4[(abase + r * p.a_rs + k) / 4u];
}

// Rows k..k+3 of op(B) at columns c..c+3 (columns clamped to n - 1 one by one
// when B is transposed; when not, n % 4 == 0 and c is clamped to n - 4).
fn sg_b_block(bbase: u32, c: u32, k: u32) -> mat4x4<f32> {
    if TRANS_B {
        let last = p.n - 1u;
        let q = (bbase + k) / 4u;
        let s = p.b_cs / 4u;
        return transpose(mat4x4<f32>(b4[q + min(c, last) * s], b4[q + min(c + 1u, last) * s],
                                     b4[q + min(c + 2u, last) * s], b4[q + min(c + 3u, last) * s]));
    }
    let q = (bbase + k * p.b_rs + min(c, p.n - 4u)) / 4u;
    let s = p.b_rs / 4u;
    return mat4x4<f32>(b4[q], b4[q + s], b4[q + 2u * s], b4[q + 3u * s]);
}

@compute @workgroup_size(64)
fn mm_cpu_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let wg = linear_wg(wid, nwg);
    let per_batch = p.tiles_m * p.tiles_n;
    if wg >= per_batch * p.batch {
        return;
    }
    let bi = wg / per_batch;
    let tm = (wg % per_batch) / p.tiles_n;
    let tn = wg % p.tiles_n;
    // Subgroups are runs of 8 consecutive invocations (the host checks the size).
    let r0 = tm * 64u + (li / 8u) * 8u;
    // A subgroup whose rows are all past m has nothing to do (the whole
    // subgroup leaves together, so the broadcasts below stay well defined):
    // for the few output channels of a small conv, most of the tile. Compiled
    // in only for m < 64 (SMALL_M): the early return slows the loop of a
    // large product measurably on llvmpipe.
    if SMALL_M && r0 >= p.m {
        return;
    }
    let c0 = tn * 64u + lane * 8u;
    let my_row = min(r0 + lane, p.m - 1u);
    let abase = bi * p.a_bs;
    let bbase = bi * p.b_bs;
    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    for (var k = 0u; k < p.k; k += 4u) {
        let av = sg_a_row(abase, my_row, k);
        let b0 = sg_b_block(bbase, c0, k);
        let b1 = sg_b_block(bbase, c0 + 4u, k);
        // subgroupBroadcast needs a constant lane: unrolled by hand.
        var x = subgroupBroadcast(av, 0u);
        lo[0] += b0 * x;
        hi[0] += b1 * x;
        x = subgroupBroadcast(av, 1u);
        lo[1] += b0 * x;
        hi[1] += b1 * x;
        x = subgroupBroadcast(av, 2u);
        lo[2] += b0 * x;
        hi[2] += b1 * x;
        x = subgroupBroadcast(av, 3u);
        lo[3] += b0 * x;
        hi[3] += b1 * x;
        x = subgroupBroadcast(av, 4u);
        lo[4] += b0 * x;
        hi[4] += b1 * x;
        x = subgroupBroadcast(av, 5u);
        lo[5] += b0 * x;
        hi[5] += b1 * x;
        x = subgroupBroadcast(av, 6u);
        lo[6] += b0 * x;
        hi[6] += b1 * x;
        x = subgroupBroadcast(av, 7u);
        lo[7] += b0 * x;
        hi[7] += b1 * x;
    }
    for (var i = 0u; i < 8u; i++) {
        let r = r0 + i;
        if r >= p.m {
            break;
        }
        let row = (bi * p.m + r) * p.n;
        for (var j = 0u; j < 4u; j++) {
            if c0 + j < p.n {
                put(row + c0 + j, lo[i][j]);
            }
            if c0 + 4u + j < p.n {
                put(row + c0 + 4u + j, hi[i][j]);
            }
        }
    }
}
