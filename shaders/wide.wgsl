// 64-bit storage words for adapters with SHADER_INT64 (CPU adapters only).
// llvmpipe moves storage data through a per-lane, per-component loop whatever
// the component's width: a vec4<u64> component carries two floats where a
// vec4<f32> component carries one, so the same data takes half the
// iterations. A vec4<u64> holds 8 floats; lo32 gives floats 0, 2, 4, 6 and
// hi32 floats 1, 3, 5, 7 (little-endian halves), and pack64 undoes the split,
// so elementwise work may run on the two halves in any order.

fn lo32(v: vec4<u64>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(v & vec4<u64>(0xfffffffflu)));
}

fn hi32(v: vec4<u64>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(v >> vec4<u32>(32u)));
}

fn pack64(lo: vec4<f32>, hi: vec4<f32>) -> vec4<u64> {
    return vec4<u64>(bitcast<vec4<u32>>(lo)) | (vec4<u64>(bitcast<vec4<u32>>(hi)) << vec4<u32>(32u));
}

// A word's floats 0-3 and 4-7 (lo32 and hi32 hold the even and odd ones).
fn halves(v: vec4<u64>) -> array<vec4<f32>, 2> {
    let lo = lo32(v);
    let hi = hi32(v);
    return array<vec4<f32>, 2>(vec4<f32>(lo.x, hi.x, lo.y, hi.y), vec4<f32>(lo.z, hi.z, lo.w, hi.w));
}

// The word holding floats 0-3 = a and 4-7 = b (halves undone).
fn pack_pair(a: vec4<f32>, b: vec4<f32>) -> vec4<u64> {
    return pack64(vec4<f32>(a.x, a.z, b.x, b.z), vec4<f32>(a.y, a.w, b.y, b.w));
}
