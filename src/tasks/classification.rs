//! Classification: a supervised training step and accuracy.

use crate::autograd::{Var, functional as F, no_grad};
use crate::data::loader::Loader;
use crate::error::{Error, Result};
use crate::nn::Model;
use crate::ops::losses::CeConfig;
use crate::optim::Optimizer;

/// One step of plain supervised training: forward, cross-entropy, backward,
/// update. Returns the loss (on the device; read it only when logging).
pub fn train_step(
    model: &dyn Model,
    opt: &mut dyn Optimizer,
    images: &Var,
    labels: &crate::Tensor,
    lr: f32,
    ce: CeConfig,
) -> Result<Var> {
    let out = model.forward(images, true)?;
    let loss = F::cross_entropy(&out.logits, labels, ce)?;
    opt.zero_grad();
    loss.backward()?;
    opt.step(lr)?;
    Ok(loss)
}

/// Reads a loss back and fails clearly if it is not finite.
pub fn checked_loss(loss: &Var, step: usize) -> Result<f32> {
    let v = loss.value().item()?;
    if !v.is_finite() {
        return Err(Error::Config(format!(
            "the loss became {v} at step {step}: training diverged. Lower the learning rate, \
             check the input normalisation, or resume from the last checkpoint"
        )));
    }
    Ok(v)
}

/// Argmax predictions and labels of `model` (eval mode, no graph) over every
/// batch of `loader`.
pub fn predictions(model: &dyn Model, loader: &Loader) -> Result<(Vec<u32>, Vec<u32>)> {
    let _ng = no_grad();
    let (mut pred, mut labels) = (Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let batch = batch?;
        let out = model.forward(&Var::constant(batch.images), false)?;
        pred.extend(crate::ops::argmax(out.logits.value(), Some(1))?.to_vec_u32()?);
        labels.extend(batch.labels.to_vec_u32()?);
    }
    Ok((pred, labels))
}

/// The fraction of positions where `a` and `b` agree (accuracy against labels,
/// or agreement between two models' predictions).
pub fn agreement(a: &[u32], b: &[u32]) -> f32 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f32 / b.len().max(1) as f32
}

/// Top-1 accuracy of `model` (eval mode, no graph) over every batch of `loader`.
pub fn evaluate(model: &dyn Model, loader: &Loader) -> Result<f32> {
    let (pred, labels) = predictions(model, loader)?;
    Ok(agreement(&pred, &labels))
}
