//! Optimisers updating parameters in place on the GPU (shaders/optim.wgsl), and
//! learning-rate schedules.

pub mod schedule;

use bytemuck::{Pod, Zeroable};

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::Tensor;

pub use schedule::Schedule;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct OptParams {
    n: u32,
    nesterov: u32,
    decoupled: u32,
    _p0: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias1: f32,
    bias2: f32,
}

/// What every optimiser offers the trainer.
pub trait Optimizer {
    /// Applies one update with learning rate `lr` to every parameter that has a gradient.
    fn step(&mut self, lr: f32) -> Result<()>;
    fn params(&self) -> &[Var];
    /// Clears the gradients of all parameters.
    fn zero_grad(&self) {
        for p in self.params() {
            p.zero_grad();
        }
    }
}

fn check_finite(name: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::Invalid(format!(
            "{name} must be a finite number >= 0, got {v}"
        )));
    }
    Ok(())
}

/// SGD with momentum, Nesterov and (L2) weight decay, PyTorch semantics.
pub struct Sgd {
    params: Vec<Var>,
    bufs: Vec<Option<Tensor>>,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
}

impl Sgd {
    pub fn new(params: Vec<Var>, momentum: f32, nesterov: bool, weight_decay: f32) -> Result<Sgd> {
        check_finite("momentum", momentum)?;
        check_finite("weight decay", weight_decay)?;
        Ok(Sgd {
            bufs: vec![None; params.len()],
            params,
            momentum,
            nesterov,
            weight_decay,
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, lr: f32) -> Result<()> {
        check_finite("learning rate", lr)?;
        for (p, buf) in self.params.iter().zip(self.bufs.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            let w = p.value();
            let b = match buf {
                Some(b) => b.clone(),
                None => {
                    let b = Tensor::zeros(w.gpu(), w.shape())?;
                    *buf = Some(b.clone());
                    b
                }
            };
            let params = OptParams {
                n: w.numel() as u32,
                nesterov: self.nesterov as u32,
                lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                ..Default::default()
            };
            // The kernel declares m and v; SGD binds the momentum buffer as m only.
            w.gpu().launch(
                &KernelSpec::new("optim", "sgd"),
                bytemuck::bytes_of(&params),
                &[w.binding(), g.binding(), b.binding()],
                w.numel().div_ceil(256) as u64,
            )?;
        }
        Ok(())
    }

    fn params(&self) -> &[Var] {
        &self.params
    }
}

/// Adam, or AdamW with `decoupled` weight decay.
pub struct Adam {
    params: Vec<Var>,
    state: Vec<Option<(Tensor, Tensor)>>,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub decoupled: bool,
    t: u32,
}

impl Adam {
    pub fn new(params: Vec<Var>, weight_decay: f32, decoupled: bool) -> Result<Adam> {
        check_finite("weight decay", weight_decay)?;
        Ok(Adam {
            state: vec![None; params.len()],
            params,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            t: 0,
        })
    }
}

impl Optimizer for Adam {
    fn step(&mut self, lr: f32) -> Result<()> {
        check_finite("learning rate", lr)?;
        self.t += 1;
        let bias1 = 1.0 / (1.0 - self.beta1.powi(self.t as i32));
        let bias2 = 1.0 / (1.0 - self.beta2.powi(self.t as i32));
        for (p, st) in self.params.iter().zip(self.state.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            let w = p.value();
            if st.is_none() {
                *st = Some((
                    Tensor::zeros(w.gpu(), w.shape())?,
                    Tensor::zeros(w.gpu(), w.shape())?,
                ));
            }
            let (m, v) = st.as_ref().expect("state just made");
            let params = OptParams {
                n: w.numel() as u32,
                decoupled: self.decoupled as u32,
                lr,
                weight_decay: self.weight_decay,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                bias1,
                bias2,
                ..Default::default()
            };
            w.gpu().launch(
                &KernelSpec::new("optim", "adam"),
                bytemuck::bytes_of(&params),
                &[w.binding(), g.binding(), m.binding(), v.binding()],
                w.numel().div_ceil(256) as u64,
            )?;
        }
        Ok(())
    }

    fn params(&self) -> &[Var] {
        &self.params
    }
}
