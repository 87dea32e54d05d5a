// im2col through 64-bit words (wide.wgsl says why) for rows of a multiple
// of 8 values: the same walk as `im2col`, half the per-lane store iterations.
@group(0) @binding(1) var<storage, read_write> out8: array<vec4<u64>>;

@compute @workgroup_size(64)
fn im2col8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i >= p.n * p.oh * p.ow {
        return;
    }
    var s = walk_start(i);
    let row8 = i * (p.klen_p / 8u);
    for (var t = 0u; t < p.klen_p / 8u; t++) {
        // Floats 0, 2, 4, 6 of the group are the low halves (pack64).
        var lo: vec4<f32>;
        var hi: vec4<f32>;
        lo.x = walk_next(&s);
        hi.x = walk_next(&s);
        lo.y = walk_next(&s);
        hi.y = walk_next(&s);
        lo.z = walk_next(&s);
        hi.z = walk_next(&s);
        lo.w = walk_next(&s);
        hi.w = walk_next(&s);
        out8[row8 + t] = pack64(lo, hi);
    }
}
