// The subgroup matmul (matmul_subgroup.wgsl) with op(B), and A where it is
// row-major, read from textures.
// Compiled after matmul.wgsl and matmul_subgroup.wgsl.
//
// llvmpipe runs a storage-buffer load from lane-varying addresses as a loop over
// lanes and components, with a branch per element; a texel fetch walks the
// lanes too, but with no bounds branch, and measures 1.3-2x faster in this
// kernel. op(B) is 89% of the subgroup kernel's loads
// (32 of 36 floats per lane per 4 steps of k), so mm_pack_b first copies it
// into an rgba32float texture and mm_cpu_texture reads it from there. The sums
// are the subgroup kernel's, in its order: results are bit-identical.
//
// Packed layout: texel `t` holds columns 4j..4j+3 of row `r` of op(B), with
// t = r * n4 + j, n4 = ceil(n / 4), columns past n zero. Rows of all batches
// of B follow one another (batch bi starts at row bi * k). The texel sequence
// is folded into a texture 2^tex_shift texels wide: (t & tex_mask, t >> tex_shift).

@group(0) @binding(4) var b_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var b_pack: texture_storage_2d<rgba32float, write>;

fn tex_xy(t: u32) -> vec2<u32> {
    return vec2<u32>(t & p.tex_mask, t >> p.tex_shift);
}

// Texel t of the packed op(B): (the index in b of its first column's
// element, its first column j, and whether t lies in the packed rows).
fn pack_at(t: u32) -> vec3<u32> {
    let n4 = (p.n + 3u) / 4u;
    let r = t / n4;
    let bi = r / p.k;
    let base = bi * p.b_bs + (r % p.k) * p.b_rs;
    return vec3<u32>(base, (t % n4) * 4u, u32(t < p.batch * p.k * n4));
}

// One invocation per texel of the packed op(B): p.batch batches of p.k rows.
@compute @workgroup_size(64)
fn mm_pack_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let t = global_id(wid, nwg, li, 64u);
    let at = pack_at(t);
    if at.z == 0u {
        return;
    }
    var v = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
        if at.y + q < p.n {
            v[q] = b[at.x + (at.y + q) * p.b_cs];
        }
    }
    textureStore(b_pack, tex_xy(t), v);
}

// B staged as r32float texels (element e at tex_xy(e)), for mm_pack_b_tex.
// conv_implicit.wgsl's x_tex has this binding and type too (one or the
// other is used by an entry point).
@group(0) @binding(7) var b_src: texture_storage_2d<r32float, read>;

// mm_pack_b reading B from b_src: on llvmpipe a texel fetch gathers the
// lanes' values without the per-lane loop and its stalls that a storage load
// costs, and a weight gradient's op(B) (dy, one channel's pixels after
// another) is read four scattered floats per texel. The same values.
@compute @workgroup_size(64)
fn mm_pack_b_tex(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let t = global_id(wid, nwg, li, 64u);
    let at = pack_at(t);
    if at.z == 0u {
        return;
    }
    var v = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
        if at.y + q < p.n {
            v[q] = textureLoad(b_src, tex_xy(at.x + (at.y + q) * p.b_cs)).x;
        }
    }
    textureStore(b_pack, tex_xy(t), v);
}

// Rows k..k+3 of op(B) at texel column j (clamped to the last), from texel base `tb`.
fn tex_b_block(tb: u32, j: u32, k: u32) -> mat4x4<f32> {
    let n4 = (p.n + 3u) / 4u;
    let q = tb + k * n4 + min(j, n4 - 1u);
    return mat4x4<f32>(textureLoad(b_tex, tex_xy(q)), textureLoad(b_tex, tex_xy(q + n4)),
                       textureLoad(b_tex, tex_xy(q + 2u * n4)),
                       textureLoad(b_tex, tex_xy(q + 3u * n4)));
}

// p.b_bs is in texels here: where batch bi's rows of the packed op(B) start.
@compute @workgroup_size(64)
fn mm_cpu_texture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32,
                  @builtin(subgroup_invocation_id) lane: u32) {
    let t = sg_tile(wid, nwg, li, lane);
    if !t.live {
        return;
    }
    let abase = t.bi * p.a_bs;
    let tb = t.bi * p.b_bs;
    let j = t.c0 / 4u;
    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    for (var k = 0u; k < p.k; k += 4u) {
        let av = sg_a_row(abase, t.my_row, k);
        sg_fma(av, tex_b_block(tb, j, k), tex_b_block(tb, j + 1u, k), &lo, &hi);
    }
    sg_store(t, lo, hi);
}

// Row-major A staged as texels like B (mm_cpu_texture_a): the texel of
// element i is i / 4, so a row's vec4 at k is one fetch.
@group(0) @binding(6) var a_tex: texture_storage_2d<rgba32float, read>;

// With both operands fetched as texels, a lane keeps 16 rows x 4 columns of C
// instead of the subgroup kernel's 8 x 8: the same 64 accumulators, but per 4
// steps of k 2 fetches of A and 4 of B (6 texels) instead of 1 and 8 (9):
// llvmpipe's texel fetches are gathers, and gathers set the pace here
// (matmul 1024: 10-15% faster). Each element's sum is the subgroup
// kernel's, term by term (one mat4x4 * vec4 per 4 steps of k, in order):
// bit-identical. A subgroup covers 16 rows x 32 columns, a workgroup 64 x 64.
struct Tile16 {
    bi: u32,
    r0: u32,
    c0: u32,
    // The two rows of A this lane fetches (r0 + lane, r0 + 8 + lane).
    ra: u32,
    rb: u32,
    live: bool,
}

fn tile16(wid: vec3<u32>, nwg: vec3<u32>, li: u32, lane: u32) -> Tile16 {
    let wg = linear_wg(wid, nwg);
    let per_batch = p.tiles_m * p.tiles_n;
    let tm = (wg % per_batch) / p.tiles_n;
    let tn = wg % p.tiles_n;
    let sg = li / 8u;
    let r0 = tm * 64u + (sg / 2u) * 16u;
    let c0 = tn * 64u + (sg % 2u) * 32u + lane * 4u;
    // As in sg_tile: a subgroup with no rows leaves whole (m < 64 only).
    let live = wg < per_batch * p.batch && !(SMALL_M && r0 >= p.m);
    return Tile16(wg / per_batch, r0, c0, min(r0 + lane, p.m - 1u), min(r0 + 8u + lane, p.m - 1u),
                  live);
}

// acc[i] (row r0 + i, 4 columns) += op(B)'s 4 rows at this lane's columns
// times op(A)'s 4 values of that row: rows 0-7 are the lanes' a0, 8-15 a1.
fn fma16(a0: vec4<f32>, a1: vec4<f32>, b: mat4x4<f32>, acc: ptr<function, array<vec4<f32>, 16>>) {
    // subgroupBroadcast needs a constant lane: unrolled by hand.
    (*acc)[0] += b * subgroupBroadcast(a0, 0u);
    (*acc)[1] += b * subgroupBroadcast(a0, 1u);
    (*acc)[2] += b * subgroupBroadcast(a0, 2u);
    (*acc)[3] += b * subgroupBroadcast(a0, 3u);
    (*acc)[4] += b * subgroupBroadcast(a0, 4u);
    (*acc)[5] += b * subgroupBroadcast(a0, 5u);
    (*acc)[6] += b * subgroupBroadcast(a0, 6u);
    (*acc)[7] += b * subgroupBroadcast(a0, 7u);
    (*acc)[8] += b * subgroupBroadcast(a1, 0u);
    (*acc)[9] += b * subgroupBroadcast(a1, 1u);
    (*acc)[10] += b * subgroupBroadcast(a1, 2u);
    (*acc)[11] += b * subgroupBroadcast(a1, 3u);
    (*acc)[12] += b * subgroupBroadcast(a1, 4u);
    (*acc)[13] += b * subgroupBroadcast(a1, 5u);
    (*acc)[14] += b * subgroupBroadcast(a1, 6u);
    (*acc)[15] += b * subgroupBroadcast(a1, 7u);
}

// Writes this lane's 16 x 4 block, skipping what lies outside C.
fn store16(t: Tile16, acc: array<vec4<f32>, 16>) {
    for (var i = 0u; i < 16u; i++) {
        let r = t.r0 + i;
        if r >= p.m {
            break;
        }
        for (var q = 0u; q < 4u; q++) {
            if t.c0 + q < p.n {
                put(sg_c_index(t.bi, r, t.c0 + q), acc[i][q]);
            }
        }
    }
}

// The texture matmul with A read from a_tex (TRANS_A is false here).
@compute @workgroup_size(64)
fn mm_cpu_texture_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32,
                    @builtin(subgroup_invocation_id) lane: u32) {
    let t = tile16(wid, nwg, li, lane);
    if !t.live {
        return;
    }
    let abase = t.bi * p.a_bs;
    let row_a = (abase + t.ra * p.a_rs) / 4u;
    let row_b = (abase + t.rb * p.a_rs) / 4u;
    let tb = t.bi * p.b_bs;
    let j = t.c0 / 4u;
    var acc: array<vec4<f32>, 16>;
    for (var k = 0u; k < p.k; k += 4u) {
        let a0 = textureLoad(a_tex, tex_xy(row_a + k / 4u));
        let a1 = textureLoad(a_tex, tex_xy(row_b + k / 4u));
        fma16(a0, a1, tex_b_block(tb, j, k), &acc);
    }
    store16(t, acc);
}
