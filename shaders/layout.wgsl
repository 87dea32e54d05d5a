// Data movement: axis swaps and block copies (concat, slice).
// Bindings: 0 params, 1 out, 2 in.

struct LayoutParams {
    a: u32,
    b: u32,
    c: u32,
    _p0: u32,
    // copy_block: rows, elements per row, source stride/offset, destination stride/offset.
    outer: u32,
    len: u32,
    src_stride: u32,
    src_off: u32,
    dst_stride: u32,
    dst_off: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: LayoutParams;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

// [a, b, c] -> [b, a, c]
@compute @workgroup_size(256)
fn swap01(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    if i >= p.a * p.b * p.c {
        return;
    }
    let k = i % p.c;
    let x = (i / p.c) % p.a;
    let y = i / (p.c * p.a);
    out[i] = src[(x * p.b + y) * p.c + k];
}

// out[o * dst_stride + dst_off + j] = src[o * src_stride + src_off + j]
@compute @workgroup_size(256)
fn copy_block(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    if i >= p.outer * p.len {
        return;
    }
    let j = i % p.len;
    let o = i / p.len;
    out[o * p.dst_stride + p.dst_off + j] = src[o * p.src_stride + p.src_off + j];
}
