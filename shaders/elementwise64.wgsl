// binary4 and unary4 with 8 floats per invocation through 64-bit words
// (wide.wgsl says why). p.n counts groups of 8 floats (pool buffers are whole
// multiples of 64 bytes, so the last group may run into padding nothing reads).
@group(0) @binding(1) var<storage, read_write> out8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> a8: array<vec4<u64>>;
@group(0) @binding(3) var<storage, read> b8: array<vec4<u64>>;

@compute @workgroup_size(64)
fn binary8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i < p.n {
        let x = a8[i];
        let y = b8[i];
        out8[i] = pack64(binop4(lo32(x), lo32(y)), binop4(hi32(x), hi32(y)));
    }
}

@compute @workgroup_size(64)
fn unary8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 64u);
    if i < p.n {
        let x = a8[i];
        out8[i] = pack64(unop4(lo32(x)), unop4(hi32(x)));
    }
}
