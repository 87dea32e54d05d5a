//! Optimisers updating parameters in place on the GPU (shaders/optim.wgsl), and
//! learning-rate schedules.

pub mod multi;
pub mod schedule;

use bytemuck::{Pod, Zeroable};

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

use multi::{Rule, Update};
pub use schedule::{Schedule, ScheduleSpec};

crate::kernel_params! {
    file = "optim";
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
}

/// What every optimiser offers the trainer.
pub trait Optimizer {
    /// Applies one update with learning rate `lr` to every parameter that has a gradient.
    fn step(&mut self, lr: f32) -> Result<()>;
    fn params(&self) -> &[Var];
    /// Internal state (momentum, moments, step count) for checkpoints.
    fn state(&self) -> Vec<(String, Tensor)>;
    /// Restores what `state` returned (entries missing from `state` stay fresh).
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
    /// Clears the gradients of all parameters.
    fn zero_grad(&self) {
        for p in self.params() {
            p.zero_grad();
        }
    }
}

fn check_finite(name: &str, v: f32) -> Result<()> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::Config(format!(
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
        let mut updates = Vec::new();
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
            // The kernels declare m and v; SGD binds the momentum buffer as m only.
            updates.push(Update {
                w: w.clone(),
                g,
                state: vec![b],
            });
        }
        let scalars = OptParams {
            nesterov: self.nesterov as u32,
            lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            ..Default::default()
        };
        multi::apply(Rule::Sgd, scalars, &updates)
    }

    fn params(&self) -> &[Var] {
        &self.params
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.bufs
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (format!("momentum.{i}"), b.clone())))
            .collect()
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        for (name, t) in state {
            let i = name
                .strip_prefix("momentum.")
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|&i| i < self.params.len())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "optimizer state {name:?} does not belong to this run"
                    ))
                })?;
            if t.shape() != self.params[i].shape() {
                return Err(Error::Config(format!(
                    "optimizer state {name}: shape {:?} vs parameter {:?}",
                    t.shape(),
                    self.params[i].shape()
                )));
            }
            self.bufs[i] = Some(t.clone());
        }
        Ok(())
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
        let mut updates = Vec::new();
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
            updates.push(Update {
                state: vec![m.clone(), v.clone()],
                w: w.clone(),
                g,
            });
        }
        let scalars = OptParams {
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
        multi::apply(Rule::Adam, scalars, &updates)
    }

    fn params(&self) -> &[Var] {
        &self.params
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, st) in self.state.iter().enumerate() {
            if let Some((m, v)) = st {
                out.push((format!("m.{i}"), m.clone()));
                out.push((format!("v.{i}"), v.clone()));
            }
        }
        if let Some(p) = self.params.first()
            && let Ok(t) = crate::ops::full(p.value().gpu(), &[1], self.t as f32)
        {
            out.push(("t".into(), t));
        }
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut ms = vec![None; self.params.len()];
        let mut vs = vec![None; self.params.len()];
        for (name, t) in state {
            if name == "t" {
                self.t = t.item()? as u32;
                continue;
            }
            let (kind, i) = name
                .split_once('.')
                .ok_or_else(|| Error::Config(format!("bad Adam state {name:?}")))?;
            let i: usize = i
                .parse()
                .map_err(|_| Error::Config(format!("bad Adam state {name:?}")))?;
            if i >= self.params.len() || t.shape() != self.params[i].shape() {
                return Err(Error::Config(format!(
                    "Adam state {name} does not match this run's parameters"
                )));
            }
            match kind {
                "m" => ms[i] = Some(t.clone()),
                "v" => vs[i] = Some(t.clone()),
                _ => return Err(Error::Config(format!("bad Adam state {name:?}"))),
            }
        }
        for (i, (m, v)) in ms.into_iter().zip(vs).enumerate() {
            if let (Some(m), Some(v)) = (m, v) {
                self.state[i] = Some((m, v));
            }
        }
        Ok(())
    }
}
