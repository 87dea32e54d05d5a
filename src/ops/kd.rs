//! Fused soft-target loss (shaders/kd.wgsl).

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

crate::kernel_params! {
    file = "kd";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct KdParams {
        n: u32,
        k: u32,
        inv_t: f32,
        grad_scale: f32,
    }
}

/// T^2 * mean over rows of KL(softmax(zt / T) || softmax(zs / T)) (a one-element
/// tensor) and its gradient with respect to zs.
pub fn soft_target(zs: &Tensor, zt: &Tensor, t: f32) -> Result<(Tensor, Tensor)> {
    zs.expect_dtype("soft_target", DType::F32)?;
    if zs.shape() != zt.shape() || zs.shape().len() != 2 {
        return Err(Error::shape(
            "soft_target",
            format!(
                "student and teacher logits must both be [N, K], got {:?} and {:?}",
                zs.shape(),
                zt.shape()
            ),
        ));
    }
    if !(t.is_finite() && t > 0.0) {
        return Err(Error::Config(format!(
            "temperature must be positive, got {t}"
        )));
    }
    let (n, k) = (zs.shape()[0], zs.shape()[1]);
    let kl = Tensor::empty(zs.gpu(), &[n], DType::F32)?;
    let dz = Tensor::empty(zs.gpu(), &[n, k], DType::F32)?;
    let p = KdParams {
        n: u32_of("soft_target", n)?,
        k: u32_of("soft_target", k)?,
        inv_t: 1.0 / t,
        grad_scale: t / n as f32,
    };
    zs.gpu().launch_items(
        &KernelSpec::new("kd", "kd_forward"),
        bytemuck::bytes_of(&p),
        &[kl.binding(), dz.binding(), zs.binding(), zt.binding()],
        n,
    )?;
    let loss = super::scale(&super::sum(&kl, None)?, t * t / n as f32)?;
    Ok((loss, dz))
}
