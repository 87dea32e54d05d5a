//! Training health marks (shaders/health.wgsl): which watched quantity first
//! went non-finite or out of bounds, and at which step, without a read-back per step.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

crate::kernel_params! {
    file = "health";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct HealthParams {
        n: u32,
        slot: u32,
        step: u32,
        bound: f32,
    }
}

/// If any value of `values` is NaN, infinite or above `bound` in magnitude and
/// `marks[slot]` is still 0, sets `marks[slot] = step + 1`.
pub fn mark_bad(
    marks: &Tensor,
    slot: usize,
    values: &Tensor,
    step: usize,
    bound: f32,
) -> Result<()> {
    marks.expect_dtype("mark_bad", DType::U32)?;
    values.expect_dtype("mark_bad", DType::F32)?;
    if slot >= marks.numel() {
        return Err(Error::shape(
            "mark_bad",
            format!("slot {slot} outside {} marks", marks.numel()),
        ));
    }
    if values.numel() == 0 {
        return Ok(());
    }
    let p = HealthParams {
        n: u32_of("mark_bad", values.numel())?,
        slot: slot as u32,
        // The mark is step + 1 in a u32.
        step: u32_of("mark_bad", step)?.min(u32::MAX - 1),
        bound,
    };
    marks.gpu().launch_items(
        &KernelSpec::new("health", "mark_bad"),
        bytemuck::bytes_of(&p),
        &[marks.binding(), values.binding()],
        values.numel(),
    )
}
