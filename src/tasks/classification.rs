//! Classification: a supervised training step and accuracy.

use crate::autograd::{Var, functional as F, no_grad};
use crate::data::loader::Loader;
use crate::error::{Error, Result};
use crate::nn::{Model, Module};
use crate::ops::losses::CeConfig;
use crate::optim::Optimizer;
use crate::tasks::replay::{StepParts, StepReplay};

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
    let loss = forward_backward(model, opt, images, labels, ce)?;
    opt.step(lr)?;
    Ok(loss)
}

/// A step's forward, cross-entropy and gradients (the part `CapturedStep`
/// replays).
fn forward_backward(
    model: &dyn Model,
    opt: &dyn Optimizer,
    images: &Var,
    labels: &crate::Tensor,
    ce: CeConfig,
) -> Result<Var> {
    let out = model.forward(images, true)?;
    let loss = F::cross_entropy(&out.logits, labels, ce)?;
    opt.zero_grad();
    loss.backward()?;
    Ok(loss)
}

/// `train_step` for the same model, optimiser, inputs and loss step after
/// step, with forward, loss and backward replayed from a capture once two
/// consecutive steps recorded the same work (`tasks::replay`); the update
/// runs as usual (the learning rate and the optimiser's step count change).
///
/// Callers put each batch into the same `images` and `labels` tensors
/// (`Tensor::copy_from`); anything else (other tensors, another model's
/// weights, another loss) makes the next step record afresh, and a step that
/// reads a device value back, or whose work keeps changing, is never replayed
/// (`replay_off` says why).
#[derive(Default)]
pub struct CapturedStep {
    replay: StepReplay<Var>,
}

impl CapturedStep {
    pub fn new() -> Self {
        Self::default()
    }

    /// Steps replayed so far.
    pub fn replays(&self) -> usize {
        self.replay.replays()
    }

    /// Launches each replay records, once a step is kept for replay.
    pub fn launches(&self) -> Option<usize> {
        self.replay.launches()
    }

    /// Why steps are no longer captured, if they are not.
    pub fn replay_off(&self) -> Option<&str> {
        self.replay.off()
    }

    /// One step, as `train_step`. Returns the loss (the same tensor at
    /// every replay: read it before the next step).
    pub fn step(
        &mut self,
        model: &dyn Model,
        opt: &mut dyn Optimizer,
        images: &Var,
        labels: &crate::Tensor,
        lr: f32,
        ce: CeConfig,
    ) -> Result<Var> {
        let key = [
            images.value().buffer().id(),
            labels.buffer().id(),
            ce.label_smoothing.to_bits() as u64,
            ce.ignore_index.map_or(u64::MAX, |i| i as u64),
        ];
        let gpu = images.value().gpu().clone();
        let modules = [model as &dyn Module];
        let parts = StepParts {
            key: &key,
            modules: &modules,
        };
        let loss = self.replay.step(&gpu, parts, || {
            forward_backward(model, opt, images, labels, ce)
        })?;
        opt.step(lr)?;
        Ok(loss)
    }
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
