//! Cross-entropy from logits (shaders/losses.wgsl).

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

crate::kernel_params! {
    file = "losses";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct CeParams {
        n: u32,
        c: u32,
        s: u32,
        ignore: u32,
        smoothing: f32,
        _p: [u32; 3],
    }
}

/// Options of the cross-entropy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CeConfig {
    /// Weight moved from the label to a uniform target (0 = none).
    pub label_smoothing: f32,
    /// Positions with this label count neither in the loss nor in the mean.
    pub ignore_index: Option<u32>,
}

impl Default for CeConfig {
    fn default() -> Self {
        CeConfig {
            label_smoothing: 0.0,
            ignore_index: None,
        }
    }
}

/// What the backward pass needs.
pub struct CeSaved {
    pub count: Tensor,
}

fn dims(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize, usize)> {
    logits.expect_dtype("cross_entropy", DType::F32)?;
    labels.expect_dtype("cross_entropy", DType::U32)?;
    let s = logits.shape();
    if s.len() < 2 {
        return Err(Error::shape(
            "cross_entropy",
            format!("logits must be [N, C, ...], got {s:?}"),
        ));
    }
    let want: Vec<usize> = [&s[..1], &s[2..]].concat();
    if labels.shape() != want.as_slice() {
        return Err(Error::shape(
            "cross_entropy",
            format!(
                "labels must be {want:?} for logits {s:?}, got {:?}",
                labels.shape()
            ),
        ));
    }
    Ok((s[0], s[1], s[2..].iter().product()))
}

fn params(n: usize, c: usize, s: usize, cfg: &CeConfig) -> Result<CeParams> {
    if !(0.0..1.0).contains(&cfg.label_smoothing) {
        return Err(Error::Config(format!(
            "label smoothing {} must be in [0, 1)",
            cfg.label_smoothing
        )));
    }
    Ok(CeParams {
        n: u32_of("cross_entropy", n)?,
        c: u32_of("cross_entropy", c)?,
        s: u32_of("cross_entropy", s)?,
        ignore: cfg.ignore_index.unwrap_or(u32::MAX),
        smoothing: cfg.label_smoothing,
        _p: [0; 3],
    })
}

/// Mean cross-entropy over the counted positions, as a one-element tensor
/// (stays on the device). Labels out of range are not counted.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, cfg: CeConfig) -> Result<(Tensor, CeSaved)> {
    let (n, c, s) = dims(logits, labels)?;
    let p = params(n, c, s, &cfg)?;
    let gpu = logits.gpu();
    let per = Tensor::empty(gpu, &[n * s], DType::F32)?;
    let valid = Tensor::empty(gpu, &[n * s], DType::F32)?;
    gpu.launch_items(
        &KernelSpec::new("losses", "forward"),
        bytemuck::bytes_of(&p),
        &[
            per.binding(),
            valid.binding(),
            logits.binding(),
            labels.binding(),
        ],
        n * s,
    )?;
    let total = super::sum(&per, None)?;
    let count = super::sum(&valid, None)?;
    let loss = Tensor::empty(gpu, &[], DType::F32)?;
    gpu.launch(
        &KernelSpec::new("losses", "mean_of"),
        bytemuck::bytes_of(&p),
        &[loss.binding(), count.binding().at(5), total.binding().at(7)],
        1,
    )?;
    Ok((loss, CeSaved { count }))
}

/// d logits, given the upstream gradient of the loss (one element, on the device).
pub fn cross_entropy_backward(
    dloss: &Tensor,
    logits: &Tensor,
    labels: &Tensor,
    cfg: CeConfig,
    saved: &CeSaved,
) -> Result<Tensor> {
    let (n, c, s) = dims(logits, labels)?;
    let p = params(n, c, s, &cfg)?;
    let d = Tensor::empty(logits.gpu(), logits.shape(), DType::F32)?;
    logits.gpu().launch_items(
        &KernelSpec::new("losses", "backward"),
        bytemuck::bytes_of(&p),
        // Bindings by their numbers in shaders/losses.wgsl: 3 logits, 4 labels,
        // 5 count, 6 dloss (2, the forward's valid flags, is not used here).
        &[
            d.binding(),
            logits.binding().at(3),
            labels.binding(),
            saved.count.binding(),
            dloss.binding(),
        ],
        n * s,
    )?;
    Ok(d)
}
