// The subgroup matmul (matmul_subgroup.wgsl) with op(B), and A where it is
// row-major, read from textures.
// Compiled after matmul.wgsl and matmul_subgroup.wgsl.
//
// llvmpipe runs a storage-buffer load from lane-varying addresses as a loop over
// lanes and components, with a branch per element; a texel fetch is a straight
// gather of whole texels (no loop). op(B) is 89% of the subgroup kernel's loads
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

// One invocation per texel of the packed op(B): p.batch batches of p.k rows.
@compute @workgroup_size(64)
fn mm_pack_b(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let t = global_id(wid, nwg, li, 64u);
    let n4 = (p.n + 3u) / 4u;
    if t >= p.batch * p.k * n4 {
        return;
    }
    let r = t / n4;
    let j = (t % n4) * 4u;
    let bi = r / p.k;
    let base = bi * p.b_bs + (r % p.k) * p.b_rs;
    var v = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
        if j + q < p.n {
            v[q] = b[base + (j + q) * p.b_cs];
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
// element i is i / 4, so sg_a_row's vec4 of row r at k is one fetch.
@group(0) @binding(6) var a_tex: texture_storage_2d<rgba32float, read>;

// mm_cpu_texture with A read from a_tex (TRANS_A is false here).
@compute @workgroup_size(64)
fn mm_cpu_texture_a(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32,
                    @builtin(subgroup_invocation_id) lane: u32) {
    let t = sg_tile(wid, nwg, li, lane);
    if !t.live {
        return;
    }
    let arow = (t.bi * p.a_bs + t.my_row * p.a_rs) / 4u;
    let tb = t.bi * p.b_bs;
    let j = t.c0 / 4u;
    var lo: array<vec4<f32>, 8>;
    var hi: array<vec4<f32>, 8>;
    for (var k = 0u; k < p.k; k += 4u) {
        let av = textureLoad(a_tex, tex_xy(arow + k / 4u));
        sg_fma(av, tex_b_block(tb, j, k), tex_b_block(tb, j + 1u, k), &lo, &hi);
    }
    sg_store(t, lo, hi);
}
