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
        s: u32,
        ignore: u32,
        _p: [u32; 2],
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
    check_temperature(t)?;
    let (n, k) = (zs.shape()[0], zs.shape()[1]);
    let kl = Tensor::empty(zs.gpu(), &[n], DType::F32)?;
    let dz = Tensor::empty(zs.gpu(), &[n, k], DType::F32)?;
    let p = KdParams {
        n: u32_of("soft_target", n)?,
        k: u32_of("soft_target", k)?,
        inv_t: 1.0 / t,
        grad_scale: t / n as f32,
        s: 1,
        ignore: u32::MAX,
        _p: [0; 2],
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

fn check_temperature(t: f32) -> Result<()> {
    if !(t.is_finite() && t > 0.0) {
        return Err(Error::Config(format!(
            "temperature must be positive, got {t}"
        )));
    }
    Ok(())
}

/// What the dense soft-target loss keeps for its backward.
pub struct DenseKd {
    /// d loss / d zs for a unit upstream gradient, before the 1 / count factor.
    pub dz: Tensor,
    /// [1]: 1 / (number of counted positions, at least 1).
    pub inv_count: Tensor,
}

/// The soft-target loss per position of dense logits [N, K, ...]: T^2 times
/// the mean over the positions whose label is not `ignore` of
/// KL(softmax(zt / T) || softmax(zs / T)) along K. `labels` is [N, ...] u32.
pub fn soft_target_dense(
    zs: &Tensor,
    zt: &Tensor,
    labels: &Tensor,
    ignore: u32,
    t: f32,
) -> Result<(Tensor, DenseKd)> {
    const NAME: &str = "soft_target_dense";
    zs.expect_dtype(NAME, DType::F32)?;
    zt.expect_dtype(NAME, DType::F32)?;
    labels.expect_dtype(NAME, DType::U32)?;
    let sh = zs.shape();
    let want: Vec<usize> = [&sh[..1.min(sh.len())], sh.get(2..).unwrap_or(&[])].concat();
    if sh.len() < 3 || zt.shape() != sh || labels.shape() != want.as_slice() {
        return Err(Error::shape(
            NAME,
            format!(
                "needs student and teacher logits [N, K, ...] of one shape and labels [N, ...]; got {:?}, {:?} and {:?}",
                sh,
                zt.shape(),
                labels.shape()
            ),
        ));
    }
    check_temperature(t)?;
    let (n, k, s) = (sh[0], sh[1], sh[2..].iter().product::<usize>());
    let gpu = zs.gpu();
    let kl = Tensor::empty(gpu, &[n * s], DType::F32)?;
    let valid = Tensor::empty(gpu, &[n * s], DType::F32)?;
    let dz = Tensor::empty(gpu, sh, DType::F32)?;
    let p = KdParams {
        n: u32_of(NAME, n * s)?,
        k: u32_of(NAME, k)?,
        inv_t: 1.0 / t,
        grad_scale: t,
        s: u32_of(NAME, s)?,
        ignore,
        _p: [0; 2],
    };
    let pb = bytemuck::bytes_of(&p);
    gpu.launch_items(
        &KernelSpec::new("kd", "kd_dense_forward"),
        pb,
        &[
            kl.binding(),
            dz.binding(),
            zs.binding(),
            zt.binding(),
            labels.binding(),
            valid.binding(),
        ],
        n * s,
    )?;
    let (total, count) = (super::sum(&kl, None)?, super::sum(&valid, None)?);
    let result = Tensor::empty(gpu, &[2], DType::F32)?;
    gpu.launch(
        &KernelSpec::new("kd", "kd_dense_mean"),
        pb,
        &[
            total.binding().at(7),
            count.binding().at(8),
            result.binding().at(9),
        ],
        1,
    )?;
    let loss = super::layout::slice(&result, 0, 0, 1)?.reshape(&[])?;
    let inv_count = super::layout::slice(&result, 0, 1, 1)?;
    Ok((loss, DenseKd { dz, inv_count }))
}
