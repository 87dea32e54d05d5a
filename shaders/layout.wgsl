// Data movement: axis swaps, block copies (concat, slice) and permutations.
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
    // permute: output elements, axes, the output's shape and, per output axis,
    // the input's stride along it (8 axes packed in vec4s for the uniform layout).
    // `view`/`scatter` also start at `offset` and take strides as signed (i32 bits).
    n: u32,
    ndim: u32,
    offset: u32,
    _p4: u32,
    shape: array<vec4<u32>, 2>,
    strides: array<vec4<u32>, 2>,
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

// out[i] = src[sum_d coord_d(i) * strides[d]] (a transpose of any axes).
@compute @workgroup_size(256)
fn permute(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    if i >= p.n {
        return;
    }
    out[i] = src[permute_at(i)];
}

// Where output element i of a permutation reads: sum_d coord_d(i) * strides[d]
// (in elements for permute, in blocks of 8 for layout64's permute8).
fn permute_at(i: u32) -> u32 {
    var r = i;
    var at = 0u;
    var d = p.ndim;
    while d > 0u {
        d -= 1u;
        let s = p.shape[d / 4u][d % 4u];
        at += (r % s) * p.strides[d / 4u][d % 4u];
        r /= s;
    }
    return at;
}

// The source index of view element i: offset + sum_d coord_d(i) * stride_d, the
// strides signed (a slice with negative steps walks backwards).
fn view_at(i: u32) -> u32 {
    var r = i;
    var at = i32(p.offset);
    var d = p.ndim;
    while d > 0u {
        d -= 1u;
        let s = p.shape[d / 4u][d % 4u];
        at += i32(r % s) * bitcast<i32>(p.strides[d / 4u][d % 4u]);
        r /= s;
    }
    return u32(at);
}

// out[i] = src[view_at(i)]: a strided slice (any steps) of src.
@compute @workgroup_size(256)
fn view(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    if i < p.n {
        out[i] = src[view_at(i)];
    }
}

// out[view_at(i)] = src[i]: the backward of `view` into a zeroed tensor (a
// slice never reads one element twice, so the writes do not collide).
@compute @workgroup_size(256)
fn scatter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = linear_wg(wid, nwg) * 256u + li;
    if i < p.n {
        out[view_at(i)] = src[i];
    }
}
