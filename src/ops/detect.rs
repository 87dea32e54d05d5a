//! CenterNet-style detection ops (shaders/detect.wgsl): the penalty-reduced
//! focal loss, a weighted L1 loss, the confidence map and peak extraction.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

crate::kernel_params! {
    file = "detect";
    #[derive(Clone, Copy, Pod, Zeroable, Default)]
    struct DetParams {
        n: u32,
        k: u32,
        h: u32,
        w: u32,
        topk: u32,
        _p: [u32; 3],
    }
}

/// The most peaks `peaks` returns per image.
pub const MAX_TOPK: usize = 128;

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    a.expect_dtype(op, DType::F32)?;
    b.expect_dtype(op, DType::F32)?;
    if a.shape() != b.shape() {
        return Err(Error::shape(
            op,
            format!(
                "predictions {:?} and targets {:?} differ",
                a.shape(),
                b.shape()
            ),
        ));
    }
    Ok(())
}

fn nchw(op: &'static str, x: &Tensor) -> Result<[usize; 4]> {
    x.expect_dtype(op, DType::F32)?;
    match *x.shape() {
        [n, k, h, w] => Ok([n, k, h, w]),
        ref s => Err(Error::shape(
            op,
            format!("needs maps [N, K, H, W], got {s:?}"),
        )),
    }
}

/// What the focal loss keeps for its backward.
pub struct FocalSaved {
    /// d loss / d logits before the 1 / num_pos factor.
    pub dx: Tensor,
    /// [1]: 1 / max(number of positives, 1).
    pub inv_count: Tensor,
}

/// The penalty-reduced focal loss of heat-map logits against Gaussian targets
/// in [0, 1] (1 at object centres), summed and divided by the number of
/// centres (at least 1).
pub fn focal_loss(logits: &Tensor, target: &Tensor) -> Result<(Tensor, FocalSaved)> {
    const NAME: &str = "focal_loss";
    same_shape(NAME, logits, target)?;
    let n = logits.numel();
    let gpu = logits.gpu();
    let per = Tensor::empty(gpu, &[n.max(1)], DType::F32)?;
    let pos = Tensor::empty(gpu, &[n.max(1)], DType::F32)?;
    let dx = Tensor::empty(gpu, logits.shape(), DType::F32)?;
    let p = DetParams {
        n: u32_of(NAME, n)?,
        ..Default::default()
    };
    let pb = bytemuck::bytes_of(&p);
    gpu.launch_items(
        &KernelSpec::new("detect", "focal_forward"),
        pb,
        &[
            per.binding(),
            pos.binding(),
            dx.binding(),
            logits.binding(),
            target.binding(),
        ],
        n,
    )?;
    let (total, count) = (super::sum(&per, None)?, super::sum(&pos, None)?);
    let result = Tensor::empty(gpu, &[2], DType::F32)?;
    gpu.launch(
        &KernelSpec::new("detect", "focal_mean"),
        pb,
        &[
            total.binding().at(6),
            count.binding().at(7),
            result.binding().at(8),
        ],
        1,
    )?;
    let loss = super::layout::slice(&result, 0, 0, 1)?.reshape(&[])?;
    let inv_count = super::layout::slice(&result, 0, 1, 1)?;
    Ok((loss, FocalSaved { dx, inv_count }))
}

/// sum(weight * |pred - target|) and its gradient with respect to `pred`,
/// weight * sign(pred - target).
pub fn weighted_l1(pred: &Tensor, target: &Tensor, weight: &Tensor) -> Result<(Tensor, Tensor)> {
    const NAME: &str = "weighted_l1";
    same_shape(NAME, pred, target)?;
    same_shape(NAME, pred, weight)?;
    let n = pred.numel();
    let gpu = pred.gpu();
    let per = Tensor::empty(gpu, &[n.max(1)], DType::F32)?;
    let dx = Tensor::empty(gpu, pred.shape(), DType::F32)?;
    let p = DetParams {
        n: u32_of(NAME, n)?,
        ..Default::default()
    };
    gpu.launch_items(
        &KernelSpec::new("detect", "l1_forward"),
        bytemuck::bytes_of(&p),
        &[
            per.binding(),
            dx.binding().at(3),
            pred.binding(),
            target.binding(),
            weight.binding().at(9),
        ],
        n,
    )?;
    Ok((super::sum(&per, None)?, dx))
}

/// The highest class probability at each position: max over K of
/// sigmoid(logits), [N, 1, H, W].
pub fn confidence(logits: &Tensor) -> Result<Tensor> {
    const NAME: &str = "confidence";
    let [n, k, h, w] = nchw(NAME, logits)?;
    let out = Tensor::empty(logits.gpu(), &[n, 1, h, w], DType::F32)?;
    let p = DetParams {
        n: u32_of(NAME, n)?,
        k: u32_of(NAME, k)?,
        h: u32_of(NAME, h)?,
        w: u32_of(NAME, w)?,
        ..Default::default()
    };
    logits.gpu().launch_items(
        &KernelSpec::new("detect", "confidence"),
        bytemuck::bytes_of(&p),
        &[logits.binding().at(4), out.binding().at(12)],
        n * h * w,
    )?;
    Ok(out)
}

/// The `topk` highest peaks of each image's heat-map logits [N, K, H, W] (a
/// position at least as high as its 8 neighbours in its class plane): scores
/// (sigmoid) [N, topk] in descending order, -1 in unused slots, and indices
/// [N, topk] into K * H * W.
pub fn peaks(logits: &Tensor, topk: usize) -> Result<(Tensor, Tensor)> {
    const NAME: &str = "peaks";
    let [n, k, h, w] = nchw(NAME, logits)?;
    if !(1..=MAX_TOPK).contains(&topk) {
        return Err(Error::range(
            "peaks per image",
            topk,
            format!("1..={MAX_TOPK}"),
        ));
    }
    let gpu = logits.gpu();
    let scores = Tensor::empty(gpu, &[n, topk], DType::F32)?;
    let indices = Tensor::empty(gpu, &[n, topk], DType::U32)?;
    let p = DetParams {
        n: u32_of(NAME, n)?,
        k: u32_of(NAME, k)?,
        h: u32_of(NAME, h)?,
        w: u32_of(NAME, w)?,
        topk: topk as u32,
        ..Default::default()
    };
    gpu.launch_items(
        &KernelSpec::new("detect", "peaks"),
        bytemuck::bytes_of(&p),
        &[
            logits.binding().at(4),
            scores.binding().at(10),
            indices.binding().at(11),
        ],
        n,
    )?;
    Ok((scores, indices))
}
