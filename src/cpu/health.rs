//! Reference of the training health marks (shaders/health.wgsl).

/// Whether `v` is NaN, infinite or larger than `bound` in magnitude.
pub fn is_bad(v: f32, bound: f32) -> bool {
    !v.is_finite() || v.abs() > bound
}

/// Sets `marks[slot] = step + 1` if it is 0 and some value is bad.
pub fn mark_bad(marks: &mut [u32], slot: usize, values: &[f32], step: u32, bound: f32) {
    if marks[slot] == 0 && values.iter().any(|&v| is_bad(v, bound)) {
        marks[slot] = step + 1;
    }
}
