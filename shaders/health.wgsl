// Training health: marks the first step at which a watched quantity (a loss, the
// teacher's outputs, a parameter tensor) held a value that is NaN, infinite, or
// larger in magnitude than `bound`. marks[slot] is 0 while the quantity is
// healthy and step + 1 from the first bad step on; it is read back only at log
// points and before checkpoints, so the check costs no synchronisation per step.
// Every invocation that finds a bad value writes the same number, so the result
// does not depend on their order (no atomics needed).
// Bindings: 0 params, 1 marks [slots] u32, 2 values [n].

struct HealthParams {
    n: u32,
    slot: u32,
    step: u32,
    bound: f32,
}

@group(0) @binding(0) var<uniform> p: HealthParams;
@group(0) @binding(1) var<storage, read_write> marks: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;

// On the bits: comparisons with NaN may be folded away by fast-math compilers.
fn is_bad(v: f32, bound: f32) -> bool {
    let mag = bitcast<u32>(v) & 0x7fffffffu;
    return mag >= 0x7f800000u || bitcast<f32>(mag) > bound;
}

@compute @workgroup_size(256)
fn mark_bad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = global_id(wid, nwg, li, 256u);
    if i >= p.n {
        return;
    }
    if is_bad(values[i], p.bound) && marks[p.slot] == 0u {
        marks[p.slot] = p.step + 1u;
    }
}
