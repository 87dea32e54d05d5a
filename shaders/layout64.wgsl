// swap01 and copy_block through 64-bit words (wide.wgsl says why) when every
// run, stride and offset is a multiple of 8 floats: one invocation moves 8
// floats, and the index arithmetic (runtime divisions, scalarised per lane on
// llvmpipe) happens once per 8. Pure copies: the words are never split.
// Sizes in the parameters stay in floats.
@group(0) @binding(1) var<storage, read_write> out8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> src8: array<vec4<u64>>;

// [a, b, c] -> [b, a, c], c % 8 == 0.
@compute @workgroup_size(64)
fn swap01_8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    let c8 = p.c / 8u;
    if i >= p.a * p.b * c8 {
        return;
    }
    let k = i % c8;
    let x = (i / c8) % p.a;
    let y = i / (c8 * p.a);
    out8[i] = src8[(x * p.b + y) * c8 + k];
}

// copy_block with len, strides and offsets multiples of 8.
@compute @workgroup_size(64)
fn copy_block8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    let len8 = p.len / 8u;
    if i >= p.outer * len8 {
        return;
    }
    let j = i % len8;
    let o = i / len8;
    out8[(o * p.dst_stride + p.dst_off) / 8u + j] = src8[(o * p.src_stride + p.src_off) / 8u + j];
}

// permute (layout.wgsl) by blocks of 8 floats: the innermost axis stays
// innermost and its length is a multiple of 8; shape and strides count blocks.
@compute @workgroup_size(64)
fn permute8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n {
        return;
    }
    out8[i] = src8[permute_at(i)];
}
