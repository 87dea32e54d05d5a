// Prepended to every kernel file (see src/gpu/registry.rs).

// Index of this workgroup in the linear grid the dispatcher folded into up to
// three dimensions to stay under the per-dimension limit (src/gpu/dispatch.rs).
// Folded grids may hold a few workgroups past the end: kernels bound-check.
fn linear_wg(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + nwg.x * (wid.y + nwg.y * wid.z);
}

// Global invocation index in a folded grid of workgroups of `size` invocations.
fn global_id(wid: vec3<u32>, nwg: vec3<u32>, li: u32, size: u32) -> u32 {
    return linear_wg(wid, nwg) * size + li;
}

// NaN test on the bits: `v != v` may be folded away by fast-math compilers.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}
