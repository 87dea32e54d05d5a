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
        return Err(Error::Invalid(format!(
            "the loss became {v} at step {step}: training diverged. Lower the learning rate, \
             check the input normalisation, or resume from the last checkpoint"
        )));
    }
    Ok(v)
}

/// Top-1 accuracy of `model` (eval mode, no graph) over every batch of `loader`.
pub fn evaluate(model: &dyn Model, loader: &Loader) -> Result<f32> {
    let _ng = no_grad();
    let (mut right, mut total) = (0usize, 0usize);
    for batch in loader.epoch(0) {
        let batch = batch?;
        let out = model.forward(&Var::constant(batch.images), false)?;
        let pred = crate::ops::argmax(out.logits.value(), Some(1))?.to_vec_u32()?;
        let labels = batch.labels.to_vec_u32()?;
        right += pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
        total += labels.len();
    }
    Ok(right as f32 / total.max(1) as f32)
}
