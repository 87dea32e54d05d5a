// Batched matmul: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], with op a
// transpose or not, read through strides (no copies). Element (i, k) of op(A) in
// batch bi is a[bi * a_bs + i * a_rs + k * a_cs]; (k, j) of op(B) is
// b[bi * b_bs + k * b_rs + j * b_cs]; C is dense [batch, m, n].
// Bindings: 0 params, 1 c, 2 a, 3 b.
//
// Three variants, chosen per adapter and shape in src/ops/matmul.rs:
// - mm_cpu_vec4: for CPU adapters (llvmpipe) when the contiguous dimensions are
//   multiples of 4. 4x4 outputs per invocation, vec4 loads, no workgroup memory
//   and no barriers (llvmpipe splits a workgroup at every barrier, which is costly).
// - mm_cpu_scalar: the same blocking with scalar loads, for any shape and strides.
// - mm_tiled: for GPUs, 64x64 tiles staged in workgroup memory, 16x16 threads
//   with 4x4 outputs each.

struct MmParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_rs: u32,
    a_cs: u32,
    a_bs: u32,
    b_rs: u32,
    b_cs: u32,
    b_bs: u32,
    tiles_m: u32,
    tiles_n: u32,
    alpha: f32,
    beta: f32,
    // Only mm_cpu_texture and mm_pack_b (matmul_texture.wgsl) read these.
    tex_shift: u32,
    tex_mask: u32,
}

@group(0) @binding(0) var<uniform> p: MmParams;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<f32>>;

// Whether op(A) is A^T (A stored [k, m]) and op(B) is B^T (B stored [n, k]).
// Used by mm_cpu_vec4 only; the other variants read through strides.
override TRANS_A: bool = false;
override TRANS_B: bool = false;

struct Tile {
    bi: u32,
    tm: u32,
    tn: u32,
    valid: bool,
}

fn tile_of(wid: vec3<u32>, nwg: vec3<u32>) -> Tile {
    let wg = linear_wg(wid, nwg);
    let per_batch = p.tiles_m * p.tiles_n;
    return Tile(wg / per_batch, (wg % per_batch) / p.tiles_n, wg % p.tiles_n, wg < per_batch * p.batch);
}

// C[idx] = alpha * v + beta * C[idx]; beta == 0 must not read C (fresh buffers may
// hold NaN).
fn put(idx: u32, v: f32) {
    var o = p.alpha * v;
    if p.beta != 0.0 {
        o += p.beta * c[idx];
    }
    c[idx] = o;
}

// Writes a 4x4 block whose top-left is (r0, c0), skipping what lies outside C.
fn store_block(bi: u32, r0: u32, c0: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < 4u; i++) {
        let r = r0 + i;
        if r >= p.m {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            if c0 + j < p.n {
                put((bi * p.m + r) * p.n + c0 + j, acc[i][j]);
            }
        }
    }
}

// ---- CPU adapters: vec4 loads ---------------------------------------------------

// Rows r..r+3 of op(A) at columns k..k+3; result[i] is row r+i.
fn a_block(abase: u32, r: array<u32, 4>, k: u32) -> mat4x4<f32> {
    if TRANS_A {
        // A is [k, m]: four consecutive rows of op(A) are contiguous (r[0] % 4 == 0).
        let q = (abase + k * p.a_cs + r[0]) / 4u;
        let s = p.a_cs / 4u;
        return transpose(mat4x4<f32>(a4[q], a4[q + s], a4[q + 2u * s], a4[q + 3u * s]));
    }
    return mat4x4<f32>(
        a4[(abase + r[0] * p.a_rs + k) / 4u],
        a4[(abase + r[1] * p.a_rs + k) / 4u],
        a4[(abase + r[2] * p.a_rs + k) / 4u],
        a4[(abase + r[3] * p.a_rs + k) / 4u]);
}

// Rows k..k+3 of op(B) at columns col[0..4]; result[kk] is row k+kk.
fn b_block(bbase: u32, col: array<u32, 4>, k: u32) -> mat4x4<f32> {
    if TRANS_B {
        // B is [n, k]: each column of op(B) is contiguous along k, so the columns
        // need not be consecutive (n is free; edge columns are clamped copies).
        return transpose(mat4x4<f32>(
            b4[(bbase + col[0] * p.b_cs + k) / 4u],
            b4[(bbase + col[1] * p.b_cs + k) / 4u],
            b4[(bbase + col[2] * p.b_cs + k) / 4u],
            b4[(bbase + col[3] * p.b_cs + k) / 4u]));
    }
    // B is [k, n] with n a multiple of 4: the four columns are one vec4.
    let c0 = col[0];
    let q = (bbase + k * p.b_rs + c0) / 4u;
    let s = p.b_rs / 4u;
    return mat4x4<f32>(b4[q], b4[q + s], b4[q + 2u * s], b4[q + 3u * s]);
}

@compute @workgroup_size(64)
fn mm_cpu_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let t = tile_of(wid, nwg);
    if !t.valid {
        return;
    }
    let r0 = t.tm * 32u + (li / 8u) * 4u;
    let c0 = t.tn * 32u + (li % 8u) * 4u;
    // Blocks past the edge read clamped rows/columns and store nothing there;
    // m, n are multiples of 4 along contiguous axes, so clamped vec4s stay in range.
    // Along a strided axis (rows without TRANS_A, columns with TRANS_B) each
    // row or column is clamped on its own: that size need not be a multiple of 4.
    var cl = c0;
    var col: array<u32, 4>;
    if TRANS_B {
        col = array<u32, 4>(min(c0, p.n - 1u), min(c0 + 1u, p.n - 1u), min(c0 + 2u, p.n - 1u),
                            min(c0 + 3u, p.n - 1u));
    } else {
        cl = min(c0, p.n - 4u);
        col = array<u32, 4>(cl, cl + 1u, cl + 2u, cl + 3u);
    }
    var r: array<u32, 4>;
    if TRANS_A {
        let rb = min(r0, p.m - 4u);
        r = array<u32, 4>(rb, rb + 1u, rb + 2u, rb + 3u);
    } else {
        r = array<u32, 4>(min(r0, p.m - 1u), min(r0 + 1u, p.m - 1u), min(r0 + 2u, p.m - 1u),
                          min(r0 + 3u, p.m - 1u));
    }
    let abase = t.bi * p.a_bs;
    let bbase = t.bi * p.b_bs;
    var acc: array<vec4<f32>, 4>;
    for (var k = 0u; k < p.k; k += 4u) {
        let ab = a_block(abase, r, k);
        let bb = b_block(bbase, col, k);
        acc[0] += bb * ab[0];
        acc[1] += bb * ab[1];
        acc[2] += bb * ab[2];
        acc[3] += bb * ab[3];
    }
    if TRANS_A && r0 > r[0] {
        // The block was clamped to end at m: every stored row is out of range anyway.
        return;
    }
    if c0 != cl {
        return;
    }
    store_block(t.bi, r0, c0, acc);
}

// ---- CPU adapters: any shape and strides -----------------------------------------

@compute @workgroup_size(64)
fn mm_cpu_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let t = tile_of(wid, nwg);
    if !t.valid {
        return;
    }
    let r0 = t.tm * 32u + (li / 8u) * 4u;
    let c0 = t.tn * 32u + (li % 8u) * 4u;
    var ar: vec4<u32>;
    var bc: vec4<u32>;
    for (var i = 0u; i < 4u; i++) {
        ar[i] = t.bi * p.a_bs + min(r0 + i, p.m - 1u) * p.a_rs;
        bc[i] = t.bi * p.b_bs + min(c0 + i, p.n - 1u) * p.b_cs;
    }
    var acc: array<vec4<f32>, 4>;
    for (var k = 0u; k < p.k; k++) {
        let ka = k * p.a_cs;
        let kb = k * p.b_rs;
        let bv = vec4<f32>(b[bc.x + kb], b[bc.y + kb], b[bc.z + kb], b[bc.w + kb]);
        acc[0] += a[ar.x + ka] * bv;
        acc[1] += a[ar.y + ka] * bv;
        acc[2] += a[ar.z + ka] * bv;
        acc[3] += a[ar.w + ka] * bv;
    }
    store_block(t.bi, r0, c0, acc);
}

// ---- GPUs: workgroup-memory tiles ------------------------------------------------

const TS: u32 = 64u;  // output tile edge
const TK: u32 = 16u;  // depth of one staged slab
var<workgroup> sa: array<f32, 1024>;  // [TK][TS], op(A) slab stored k-major
var<workgroup> sb: array<f32, 1024>;  // [TK][TS]

@compute @workgroup_size(256)
fn mm_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    // Uniform per workgroup, so returning early keeps the barriers uniform.
    let t = tile_of(wid, nwg);
    if !t.valid {
        return;
    }
    let row0 = t.tm * TS;
    let col0 = t.tn * TS;
    let ty = li / 16u;
    let tx = li % 16u;
    let abase = t.bi * p.a_bs;
    let bbase = t.bi * p.b_bs;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Each thread stages 4 elements of each slab; out-of-range ones are 0.
        for (var e = 0u; e < 4u; e++) {
            let idx = li + e * 256u;
            // Neighbouring threads read neighbouring addresses: along k when that
            // axis is contiguous, along m (or n) otherwise.
            var kk = idx / TS;
            var mm = idx % TS;
            if p.a_cs == 1u {
                kk = idx % TK;
                mm = idx / TK;
            }
            var gk = k0 + kk;
            var av = 0.0;
            if row0 + mm < p.m && gk < p.k {
                av = a[abase + (row0 + mm) * p.a_rs + gk * p.a_cs];
            }
            sa[kk * TS + mm] = av;
            kk = idx / TS;
            mm = idx % TS;
            if p.b_rs == 1u {
                kk = idx % TK;
                mm = idx / TK;
            }
            gk = k0 + kk;
            var bv = 0.0;
            if col0 + mm < p.n && gk < p.k {
                bv = b[bbase + gk * p.b_rs + (col0 + mm) * p.b_cs];
            }
            sb[kk * TS + mm] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            // Threads own rows ty + 16 i and columns tx + 16 j: conflict-free reads.
            let bv = vec4<f32>(sb[kk * TS + tx], sb[kk * TS + tx + 16u], sb[kk * TS + tx + 32u],
                               sb[kk * TS + tx + 48u]);
            acc[0] += sa[kk * TS + ty] * bv;
            acc[1] += sa[kk * TS + ty + 16u] * bv;
            acc[2] += sa[kk * TS + ty + 32u] * bv;
            acc[3] += sa[kk * TS + ty + 48u] * bv;
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tx + 16u * j;
            if r < p.m && col < p.n {
                put((t.bi * p.m + r) * p.n + col, acc[i][j]);
            }
        }
    }
}
