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

// Whether C is written transposed in each batch ([batch, n, m]): a conv's
// output straight in NCHW from a GEMM whose rows are pixels.
override TRANS_C: bool = false;

// Whether m < 64, so that some subgroups of a tile may have no rows.
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

// Where one lane of a 64x64 tile works: batch, first row of its subgroup's 8
// rows, first of its 8 columns, the row of op(A) it loads; `live` is false for
// workgroups past the grid and for subgroups with no rows.
struct SgTile {
    bi: u32,
    r0: u32,
    c0: u32,
    my_row: u32,
    live: bool,
}

fn sg_tile(wid: vec3<u32>, nwg: vec3<u32>, li: u32, lane: u32) -> SgTile {
    let wg = linear_wg(wid, nwg);
    let per_batch = p.tiles_m * p.tiles_n;
    let bi = wg / per_batch;
    let tm = (wg % per_batch) / p.tiles_n;
    let tn = wg % p.tiles_n;
    // Subgroups are runs of 8 consecutive invocations (the host checks the size).
    let r0 = tm * 64u + (li / 8u) * 8u;
    // A subgroup whose rows are all past m has nothing to do (the whole
    // subgroup leaves together, so the broadcasts stay well defined): for the
    // few output channels of a small conv, most of the tile. Tested only for
    // m < 64 (SMALL_M): the early return slows the loop of a large product
    // measurably on llvmpipe.
    let live = wg < per_batch * p.batch && !(SMALL_M && r0 >= p.m);
    return SgTile(bi, r0, tn * 64u + lane * 8u, min(r0 + lane, p.m - 1u), live);
}

// lo/hi (8 rows x 4 columns each) += op(A)'s 8 rows at 4 steps of k (row i of
// the subgroup's block is lane i's `av`) times b0/b1 (those 4 rows of op(B) at
// this lane's columns c0..c0+3 and c0+4..c0+7).
fn sg_fma(av: vec4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>, lo: ptr<function, array<vec4<f32>, 8>>,
          hi: ptr<function, array<vec4<f32>, 8>>) {
    // subgroupBroadcast needs a constant lane: unrolled by hand.
    var x = subgroupBroadcast(av, 0u);
    (*lo)[0] += b0 * x;
    (*hi)[0] += b1 * x;
    x = subgroupBroadcast(av, 1u);
    (*lo)[1] += b0 * x;
    (*hi)[1] += b1 * x;
    x = subgroupBroadcast(av, 2u);
    (*lo)[2] += b0 * x;
    (*hi)[2] += b1 * x;
    x = subgroupBroadcast(av, 3u);
    (*lo)[3] += b0 * x;
    (*hi)[3] += b1 * x;
    x = subgroupBroadcast(av, 4u);
    (*lo)[4] += b0 * x;
    (*hi)[4] += b1 * x;
    x = subgroupBroadcast(av, 5u);
    (*lo)[5] += b0 * x;
    (*hi)[5] += b1 * x;
    x = subgroupBroadcast(av, 6u);
    (*lo)[6] += b0 * x;
    (*hi)[6] += b1 * x;
    x = subgroupBroadcast(av, 7u);
    (*lo)[7] += b0 * x;
    (*hi)[7] += b1 * x;
}

fn sg_c_index(bi: u32, r: u32, col: u32) -> u32 {
    if TRANS_C {
        return (bi * p.n + col) * p.m + r;
    }
    return (bi * p.m + r) * p.n + col;
}

// Writes this lane's 8x8 block, skipping what lies outside C.
fn sg_store(t: SgTile, lo: array<vec4<f32>, 8>, hi: array<vec4<f32>, 8>) {
    for (var i = 0u; i < 8u; i++) {
        let r = t.r0 + i;
        if r >= p.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            if t.c0 + j < p.n {
                put(sg_c_index(t.bi, r, t.c0 + j), lo[i][j]);
            }
            if t.c0 + 4u + j < p.n {
                put(sg_c_index(t.bi, r, t.c0 + 4u + j), hi[i][j]);
            }
        }
    }
}

@compute @workgroup_size(64)
fn mm_cpu_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let t = sg_tile(wid, nwg, li, lane);
    if !t.live {
        return;
    }
    let abase = t.bi * p.a_bs;
    let bbase = t.bi * p.b_bs;
    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    for (var k = 0u; k < p.k; k += 4u) {
        let av = sg_a_row(abase, t.my_row, k);
        sg_fma(av, sg_b_block(bbase, t.c0, k), sg_b_block(bbase, t.c0 + 4u, k), &lo, &hi);
    }
    sg_store(t, lo, hi);
}
