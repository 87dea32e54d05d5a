//! Classification: a supervised training step and accuracy.

use crate::autograd::{Var, functional as F, no_grad};
use crate::data::loader::Loader;
use crate::error::{Error, Result};
use crate::nn::{Entry, Model};
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

/// Consecutive steps a `CapturedStep` records before it stops trying to
/// find two that did the same work.
const CAPTURE_TRIES: usize = 4;

/// `train_step` for the same model, optimiser, inputs and loss step after
/// step, replayed from a capture once two consecutive steps recorded the
/// same work (`gpu::Trace::same_as`): forward, loss and backward are
/// replayed without the host code that recorded them; the update runs as
/// usual (the learning rate and the optimiser's step count change).
///
/// Callers put each batch into the same `images` and `labels` tensors
/// (`Tensor::write_from`); anything else (other tensors, another model's
/// weights, another loss) makes the next step record afresh, and a step that
/// reads a device value back, or whose work keeps changing, is never replayed
/// (`replay_off` says why).
pub struct CapturedStep {
    state: CaptureState,
    replays: usize,
}

enum CaptureState {
    Learning {
        previous: Option<crate::gpu::Trace>,
        tries: usize,
    },
    Replaying(Box<Captured>),
    Off(String),
}

/// A kept capture and what must hold for a replay to be the same step.
struct Captured {
    replay: crate::gpu::Replay,
    loss: Var,
    /// The inputs, weights, buffers, loss options and gradients it was captured with.
    identity: Vec<u64>,
    /// What the captured step added to each counter (`num_batches_tracked`).
    counter_steps: Vec<i64>,
}

/// Everything a replay assumes unchanged since the capture: the buffers of
/// the inputs, of the model's weights and buffers, the loss options, and the
/// gradient each parameter holds.
fn step_identity(
    model: &dyn Model,
    images: &Var,
    labels: &crate::Tensor,
    ce: CeConfig,
) -> Vec<u64> {
    let mut id = vec![
        images.value().buffer().id(),
        labels.buffer().id(),
        ce.label_smoothing.to_bits() as u64,
        ce.ignore_index.map_or(u64::MAX, |i| i as u64),
    ];
    model.visit("", &mut |_, e| match e {
        Entry::Param(p) => {
            id.push(p.value().buffer().id());
            id.push(p.grad().map_or(0, |g| g.buffer().id()));
        }
        Entry::Buffer(t) => id.push(t.buffer().id()),
        Entry::Counter(_) => {}
    });
    id
}

fn counters(model: &dyn Model) -> Vec<i64> {
    let mut v = Vec::new();
    model.visit("", &mut |_, e| {
        if let Entry::Counter(c) = e {
            v.push(c.get());
        }
    });
    v
}

fn bump_counters(model: &dyn Model, steps: &[i64]) {
    let mut i = 0;
    model.visit("", &mut |_, e| {
        if let Entry::Counter(c) = e {
            c.set(c.get() + steps.get(i).copied().unwrap_or(0));
            i += 1;
        }
    });
}

impl Default for CapturedStep {
    fn default() -> Self {
        Self::new()
    }
}

impl CapturedStep {
    pub fn new() -> Self {
        CapturedStep {
            state: CaptureState::Learning {
                previous: None,
                tries: 0,
            },
            replays: 0,
        }
    }

    /// Steps replayed so far.
    pub fn replays(&self) -> usize {
        self.replays
    }

    /// Launches each replay records, once a step is kept for replay.
    pub fn launches(&self) -> Option<usize> {
        match &self.state {
            CaptureState::Replaying(c) => Some(c.replay.trace().launches()),
            _ => None,
        }
    }

    /// Why steps are no longer captured, if they are not.
    pub fn replay_off(&self) -> Option<&str> {
        match &self.state {
            CaptureState::Off(why) => Some(why),
            _ => None,
        }
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
        if let CaptureState::Replaying(c) = &self.state
            && c.identity == step_identity(model, images, labels, ce)
        {
            c.replay.run()?;
            bump_counters(model, &c.counter_steps);
            opt.step(lr)?;
            self.replays += 1;
            return Ok(c.loss.clone());
        }
        if let CaptureState::Replaying(_) = &self.state {
            // Something the capture assumed changed: learn the new step.
            self.state = CaptureState::Learning {
                previous: None,
                tries: 0,
            };
        }
        let before = counters(model);
        let gpu = images.value().gpu().clone();
        let (loss, trace) = gpu.capture(|| forward_backward(model, opt, images, labels, ce))?;
        let counter_steps: Vec<i64> = counters(model)
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        self.learn(trace, &loss, model, images, labels, ce, counter_steps)?;
        opt.step(lr)?;
        Ok(loss)
    }

    /// Keeps `trace` for replay where the previous step recorded the same.
    #[allow(clippy::too_many_arguments)]
    fn learn(
        &mut self,
        trace: crate::gpu::Trace,
        loss: &Var,
        model: &dyn Model,
        images: &Var,
        labels: &crate::Tensor,
        ce: CeConfig,
        counter_steps: Vec<i64>,
    ) -> Result<()> {
        let CaptureState::Learning { previous, tries } = &mut self.state else {
            return Ok(());
        };
        if let Some(why) = trace.problem() {
            self.state = CaptureState::Off(why.to_string());
            return Ok(());
        }
        if previous.as_ref().is_some_and(|p| p.same_as(&trace)) {
            let replay = trace.keep()?;
            self.state = CaptureState::Replaying(Box::new(Captured {
                replay,
                loss: loss.clone(),
                identity: step_identity(model, images, labels, ce),
                counter_steps,
            }));
            return Ok(());
        }
        *tries += 1;
        if *tries >= CAPTURE_TRIES {
            self.state = CaptureState::Off(format!(
                "{CAPTURE_TRIES} consecutive steps recorded different work"
            ));
        } else {
            *previous = Some(trace);
        }
        Ok(())
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
