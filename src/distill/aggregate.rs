//! Aggregators: how path losses combine with the cross-entropy into the
//! gradient that trains the student. All share one interface so the trainer
//! and `condenser compare` treat them alike.
//!
//! - equal:    L = CE + sum_k L_k
//! - fixed:    L = w_ce CE + sum_k w_k L_k (hand-tuned; soft 0.9 with CE 0.1, hint
//!   100, AT 1000, NST 50, logits 1 unless given)
//! - adaptive: L = CE + lambda [sum_k exp(-alpha_k) L_k + sum_k alpha_k], alpha
//!   learned by the same optimiser (the paper)
//! - gradnorm: weights w_k balance the gradient norms of the shared first layer
//!   (Chen et al. 2018, alpha = 1.5), updated every few steps
//! - dwa:      w_k = K softmax_k(r_k / 2), r_k the ratio of the last two epochs'
//!   mean losses (Liu et al. 2019)
//! - pcgrad:   per-task gradients (CE and each path), conflicting components
//!   projected away (Yu et al. 2020)
//! - mgda:     the min-norm convex combination of the per-task gradients
//!   (Sener & Koltun 2018, on parameter gradients: distillation paths
//!   attach at different depths, so there is no single shared
//!   representation for the -UB variant)

use crate::autograd::{Var, functional as F};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::Tensor;

use super::paths::Path;

/// How path losses combine, parsed once from its name (flags, TOML) and
/// written back under the same name (checkpoints compare it by value).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AggregateSpec {
    Equal,
    /// Per-path weights (None: the field's defaults); the CE weight.
    Fixed(Option<Vec<f32>>),
    Adaptive,
    GradNorm,
    Dwa,
    PcGrad,
    Mgda,
}

impl std::str::FromStr for AggregateSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, arg) = s.split_once(':').map_or((s, None), |(a, b)| (a, Some(b)));
        Ok(match name {
            "equal" => AggregateSpec::Equal,
            "fixed" | "hand" => AggregateSpec::Fixed(match arg {
                None => None,
                Some(a) => Some(
                    a.split(',')
                        .map(|w| {
                            w.trim()
                                .parse::<f32>()
                                .ok()
                                .filter(|x| x.is_finite() && *x >= 0.0)
                                .ok_or_else(|| {
                                    Error::range(
                                        "fixed path weight",
                                        w.trim(),
                                        "a finite number >= 0 for every path",
                                    )
                                })
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
            }),
            "adaptive" => AggregateSpec::Adaptive,
            "gradnorm" => AggregateSpec::GradNorm,
            "dwa" => AggregateSpec::Dwa,
            "pcgrad" => AggregateSpec::PcGrad,
            "mgda" | "mgda-ub" => AggregateSpec::Mgda,
            _ => {
                return Err(Error::Config(format!(
                    "unknown aggregation {s:?}; known: equal, fixed[:w1,w2,..], adaptive, gradnorm, dwa, pcgrad, mgda"
                )));
            }
        })
    }
}

impl From<AggregateSpec> for String {
    fn from(a: AggregateSpec) -> String {
        match a {
            AggregateSpec::Fixed(None) => "fixed".into(),
            other => other.name(),
        }
    }
}

named_setting!(AggregateSpec);

impl AggregateSpec {
    /// The name for tables ("hand-tuned" for the field's fixed weights).
    pub fn name(&self) -> String {
        match self {
            AggregateSpec::Equal => "equal".into(),
            AggregateSpec::Fixed(None) => "hand-tuned".into(),
            AggregateSpec::Fixed(Some(w)) => format!(
                "fixed:{}",
                w.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            AggregateSpec::Adaptive => "adaptive".into(),
            AggregateSpec::GradNorm => "gradnorm".into(),
            AggregateSpec::Dwa => "dwa".into(),
            AggregateSpec::PcGrad => "pcgrad".into(),
            AggregateSpec::Mgda => "mgda".into(),
        }
    }
}

/// Combines CE and path losses into gradients on the parameters.
pub trait Aggregator {
    /// Fills the gradients of `params` (student, regressors, own parameters)
    /// from the CE and the path losses; `shared` is the student's first layer.
    fn backward(&mut self, ce: &Var, paths: &[Var], params: &[Var], shared: &Var) -> Result<()>;
    /// The weight each path has now (for the log).
    fn weights(&self) -> Result<Vec<f32>>;
    /// Parameters trained by the optimiser with the student (adaptive's alpha).
    fn params(&self) -> Vec<Var> {
        Vec::new()
    }
    /// Called with each epoch's mean path losses.
    fn end_epoch(&mut self, _mean_losses: &[f32]) {}
    /// Everything beyond the optimiser's tensors that a resumed run needs to
    /// continue exactly as an uninterrupted one (a JSON value in the checkpoint).
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }
    fn load_state(&mut self, _v: &serde_json::Value) -> Result<()> {
        Ok(())
    }
    /// Where a step's backward may be replayed from a capture
    /// (`tasks::replay`): the host values its recorded work depends on (a
    /// replay runs only while they are unchanged). None where the backward
    /// changes host state or reads device values back (the default).
    fn replay_key(&self) -> Option<Vec<u64>> {
        None
    }
}

/// The bits of `values`, as a replay key.
fn bits_key(values: &[f32]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits() as u64).collect()
}

pub fn build_aggregator(
    spec: &AggregateSpec,
    paths: &[Path],
    gpu: &crate::Gpu,
) -> Result<Box<dyn Aggregator>> {
    let k = paths.len();
    Ok(match spec {
        AggregateSpec::Equal => Box::new(Weighted {
            ce: 1.0,
            w: vec![1.0; k],
        }),
        AggregateSpec::Fixed(ws) => {
            let w = match ws {
                Some(w) if w.len() == k => w.clone(),
                Some(w) => {
                    return Err(Error::Config(format!(
                        "fixed weights: {} given for {k} paths",
                        w.len()
                    )));
                }
                None => paths.iter().map(|p| p.kind.default_weight()).collect(),
            };
            // KD's recipe trades CE for soft targets: 0.1 CE with 0.9 KD.
            let ce = if ws.is_none() && paths.iter().any(|p| p.kind == super::PathKind::Soft) {
                0.1
            } else {
                1.0
            };
            Box::new(Weighted { ce, w })
        }
        AggregateSpec::Adaptive => Box::new(Adaptive {
            alpha: Var::leaf(Tensor::zeros(gpu, &[k.max(1)])?, true),
            lambda: 1.0,
        }),
        AggregateSpec::Dwa => Box::new(Dwa {
            w: vec![1.0; k],
            history: Vec::new(),
        }),
        AggregateSpec::GradNorm => Box::new(GradNorm {
            w: vec![1.0; k],
            initial: None,
            alpha: 1.5,
            lr: 0.025,
            every: 5,
            step: 0,
        }),
        AggregateSpec::PcGrad => Box::new(PcGrad { step: 0 }),
        AggregateSpec::Mgda => Box::new(Mgda {
            last: vec![1.0; k + 1],
        }),
    })
}

/// An aggregator's saved state, or an error naming the aggregator.
fn from_state<T: serde::de::DeserializeOwned>(v: &serde_json::Value, who: &str) -> Result<T> {
    serde_json::from_value(v.clone())
        .map_err(|e| Error::Config(format!("the saved {who} state is malformed ({e})")))
}

/// sum_k w_k L_k + w_ce CE as one Var.
fn weighted_sum(ce: &Var, ce_w: f32, paths: &[Var], w: &[f32]) -> Result<Var> {
    let mut total = F::scale(ce, ce_w)?;
    for (l, &wk) in paths.iter().zip(w) {
        total = F::add(&total, &F::scale(l, wk)?)?;
    }
    Ok(total)
}

struct Weighted {
    ce: f32,
    w: Vec<f32>,
}

impl Aggregator for Weighted {
    fn backward(&mut self, ce: &Var, paths: &[Var], _: &[Var], _: &Var) -> Result<()> {
        weighted_sum(ce, self.ce, paths, &self.w)?.backward()
    }
    fn replay_key(&self) -> Option<Vec<u64>> {
        let mut k = bits_key(&self.w);
        k.push(self.ce.to_bits() as u64);
        Some(k)
    }
    fn weights(&self) -> Result<Vec<f32>> {
        Ok(self.w.clone())
    }
}

struct Adaptive {
    alpha: Var,
    lambda: f32,
}

impl Aggregator for Adaptive {
    fn backward(&mut self, ce: &Var, paths: &[Var], _: &[Var], _: &Var) -> Result<()> {
        if paths.is_empty() {
            return ce.backward();
        }
        let flat: Vec<Var> = paths
            .iter()
            .map(|l| F::reshape(l, &[1]))
            .collect::<Result<_>>()?;
        let refs: Vec<&Var> = flat.iter().collect();
        let stacked = F::concat(&refs, 0)?;
        let inv = F::exp(&F::scale(&self.alpha, -1.0)?)?;
        let reg = F::add(&F::sum(&F::mul(&inv, &stacked)?)?, &F::sum(&self.alpha)?)?;
        F::add(ce, &F::scale(&reg, self.lambda)?)?.backward()
    }
    fn replay_key(&self) -> Option<Vec<u64>> {
        // alpha is a parameter: the trainer's key holds its buffer.
        Some(bits_key(&[self.lambda]))
    }
    fn weights(&self) -> Result<Vec<f32>> {
        Ok(self
            .alpha
            .value()
            .to_vec()?
            .iter()
            .map(|a| (-a).exp())
            .collect())
    }
    fn params(&self) -> Vec<Var> {
        vec![self.alpha.clone()]
    }
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!(self.alpha.value().to_vec()?))
    }
    fn load_state(&mut self, v: &serde_json::Value) -> Result<()> {
        let v: Vec<f32> = from_state(v, "adaptive")?;
        let a = self.alpha.value();
        if v.len() != a.numel() {
            return Err(Error::Config(format!(
                "checkpoint has {} alphas, run has {}",
                v.len(),
                a.numel()
            )));
        }
        a.gpu().write_buffer(a.buffer(), bytemuck::cast_slice(&v))
    }
}

struct Dwa {
    w: Vec<f32>,
    history: Vec<Vec<f32>>,
}

impl Aggregator for Dwa {
    fn backward(&mut self, ce: &Var, paths: &[Var], _: &[Var], _: &Var) -> Result<()> {
        weighted_sum(ce, 1.0, paths, &self.w)?.backward()
    }
    fn replay_key(&self) -> Option<Vec<u64>> {
        // The weights change at the end of an epoch: a new key, a new capture.
        Some(bits_key(&self.w))
    }
    fn weights(&self) -> Result<Vec<f32>> {
        Ok(self.w.clone())
    }
    fn end_epoch(&mut self, mean: &[f32]) {
        self.history.push(mean.to_vec());
        let h = &self.history;
        if h.len() >= 2 {
            let (a, b) = (&h[h.len() - 1], &h[h.len() - 2]);
            let t = 2.0f32;
            let r: Vec<f32> = a.iter().zip(b).map(|(x, y)| x / y.max(1e-12)).collect();
            let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = r.iter().map(|v| ((v - m) / t).exp()).collect();
            let s: f32 = e.iter().sum();
            let k = e.len() as f32;
            self.w = e.iter().map(|v| k * v / s).collect();
        }
    }
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({"w": self.w, "history": self.history}))
    }
    fn load_state(&mut self, v: &serde_json::Value) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct S {
            w: Vec<f32>,
            history: Vec<Vec<f32>>,
        }
        let s: S = from_state(v, "dwa")?;
        let k = self.w.len();
        if s.w.len() != k || s.history.iter().any(|h| h.len() != k) {
            return Err(Error::Config(
                "DWA state does not match the number of paths".into(),
            ));
        }
        (self.w, self.history) = (s.w, s.history);
        Ok(())
    }
}

/// L2 norm of a tensor (read back).
fn norm(t: &Tensor) -> Result<f32> {
    Ok(ops::sum(&ops::mul(t, t)?, None)?.item()?.sqrt())
}

struct GradNorm {
    w: Vec<f32>,
    initial: Option<Vec<f32>>,
    alpha: f32,
    lr: f32,
    /// Rebalance every this many steps (each costs one backward pass per path).
    every: usize,
    step: usize,
}

impl Aggregator for GradNorm {
    fn backward(&mut self, ce: &Var, paths: &[Var], params: &[Var], shared: &Var) -> Result<()> {
        let k = paths.len();
        if k > 0 && self.step.is_multiple_of(self.every) {
            let losses: Vec<f32> = paths
                .iter()
                .map(|l| l.value().item())
                .collect::<Result<_>>()?;
            let init = self.initial.get_or_insert_with(|| losses.clone()).clone();
            // ||grad_W L_k|| for the shared first layer, one backward pass each.
            let mut gnorm = Vec::with_capacity(k);
            for l in paths {
                for p in params {
                    p.zero_grad();
                }
                l.backward()?;
                gnorm.push(shared.grad().map_or(Ok(0.0), |g| norm(&g))?);
            }
            for p in params {
                p.zero_grad();
            }
            let g: Vec<f32> = gnorm.iter().zip(&self.w).map(|(n, w)| n * w).collect();
            let mean_g = g.iter().sum::<f32>() / k as f32;
            let ratio: Vec<f32> = losses
                .iter()
                .zip(&init)
                .map(|(l, i)| l / i.max(1e-12))
                .collect();
            let mean_r = ratio.iter().sum::<f32>() / k as f32;
            for i in 0..k {
                let target = mean_g * (ratio[i] / mean_r.max(1e-12)).powf(self.alpha);
                let grad = (g[i] - target).signum() * gnorm[i];
                self.w[i] = (self.w[i] - self.lr * grad).max(1e-3);
            }
            let s: f32 = self.w.iter().sum();
            self.w.iter_mut().for_each(|w| *w *= k as f32 / s);
        }
        self.step += 1;
        weighted_sum(ce, 1.0, paths, &self.w)?.backward()
    }
    fn weights(&self) -> Result<Vec<f32>> {
        Ok(self.w.clone())
    }
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({"w": self.w, "initial": self.initial, "step": self.step}))
    }
    fn load_state(&mut self, v: &serde_json::Value) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct S {
            w: Vec<f32>,
            initial: Option<Vec<f32>>,
            step: usize,
        }
        let s: S = from_state(v, "gradnorm")?;
        let k = self.w.len();
        if s.w.len() != k || s.initial.as_ref().is_some_and(|i| i.len() != k) {
            return Err(Error::Config(
                "GradNorm state does not match the number of paths".into(),
            ));
        }
        (self.w, self.initial, self.step) = (s.w, s.initial, s.step);
        Ok(())
    }
}

/// Each task's gradient over `params` (zeroed between tasks; left zeroed).
fn task_gradients(tasks: &[&Var], params: &[Var]) -> Result<Vec<Vec<Option<Tensor>>>> {
    let mut out = Vec::new();
    for t in tasks {
        for p in params {
            p.zero_grad();
        }
        t.backward()?;
        out.push(params.iter().map(|p| p.grad()).collect());
    }
    for p in params {
        p.zero_grad();
    }
    Ok(out)
}

/// The gradients of the tasks (CE first, then each path) and their Gram matrix.
type Grads = Vec<Vec<Option<Tensor>>>;
fn task_gradients_and_gram(
    ce: &Var,
    paths: &[Var],
    params: &[Var],
) -> Result<(Grads, Vec<Vec<f32>>)> {
    let mut tasks: Vec<&Var> = vec![ce];
    tasks.extend(paths.iter());
    let grads = task_gradients(&tasks, params)?;
    let n = grads.len();
    let mut gram = vec![vec![0f32; n]; n];
    for i in 0..n {
        for j in i..n {
            let d = dot(&grads[i], &grads[j])?;
            gram[i][j] = d;
            gram[j][i] = d;
        }
    }
    Ok((grads, gram))
}

/// Sum over parameters of <a, b> (read back).
fn dot(a: &[Option<Tensor>], b: &[Option<Tensor>]) -> Result<f32> {
    let mut parts = Vec::new();
    for (x, y) in a.iter().zip(b) {
        if let (Some(x), Some(y)) = (x, y) {
            parts.push(ops::sum(&ops::mul(x, y)?, None)?);
        }
    }
    let mut total = 0.0;
    for p in parts {
        total += p.item()?;
    }
    Ok(total)
}

/// sum_k c_k g_k into each parameter's gradient.
fn combine_into(params: &[Var], grads: &[Vec<Option<Tensor>>], coef: &[f32]) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        let mut acc: Option<Tensor> = None;
        for (g, &c) in grads.iter().zip(coef) {
            if let Some(t) = &g[i] {
                let s = ops::scale(t, c)?;
                acc = Some(match acc {
                    Some(a) => ops::add(&a, &s)?,
                    None => s,
                });
            }
        }
        p.set_grad(acc);
    }
    Ok(())
}

struct PcGrad {
    step: u64,
}

impl Aggregator for PcGrad {
    fn backward(&mut self, ce: &Var, paths: &[Var], params: &[Var], _: &Var) -> Result<()> {
        let (grads, gram) = task_gradients_and_gram(ce, paths, params)?;
        let n = grads.len();
        // g_i' = g_i - sum_j c_ij g_j, with projections applied in a seeded random
        // order; expressed as coefficients over the original gradients, updated
        // with the Gram matrix (no extra GPU passes).
        let mut coef = vec![vec![0f32; n]; n];
        let mut rng = crate::rng::Rng::new(self.step);
        for (i, row) in coef.iter_mut().enumerate() {
            row[i] = 1.0;
            let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            for a in (1..order.len()).rev() {
                order.swap(a, rng.below(a + 1));
            }
            for j in order {
                // <g_i', g_j> = sum_m row[m] <g_m, g_j>
                let d: f32 = (0..n).map(|m| row[m] * gram[m][j]).sum();
                if d < 0.0 && gram[j][j] > 0.0 {
                    row[j] -= d / gram[j][j];
                }
            }
        }
        let total: Vec<f32> = (0..n).map(|m| coef.iter().map(|r| r[m]).sum()).collect();
        self.step += 1;
        combine_into(params, &grads, &total)
    }
    fn weights(&self) -> Result<Vec<f32>> {
        Ok(Vec::new())
    }
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({"step": self.step}))
    }
    fn load_state(&mut self, v: &serde_json::Value) -> Result<()> {
        self.step = from_state::<serde_json::Value>(v, "pcgrad")?
            .get("step")
            .and_then(|s| s.as_u64())
            .ok_or_else(|| Error::Config("PCGrad state has no step".into()))?;
        Ok(())
    }
}

/// Min-norm point of the convex hull of vectors with Gram matrix `m`
/// (Frank-Wolfe, as in Sener & Koltun's solver).
pub fn min_norm_weights(m: &[Vec<f32>]) -> Vec<f32> {
    let n = m.len();
    let mut a = vec![1.0 / n as f32; n];
    for _ in 0..250 {
        let grad: Vec<f32> = (0..n)
            .map(|i| (0..n).map(|j| m[i][j] * a[j]).sum())
            .collect();
        let t = (0..n)
            .min_by(|&x, &y| grad[x].total_cmp(&grad[y]))
            .unwrap_or(0);
        // Line search between a and the vertex e_t.
        let aa: f32 = (0..n).map(|i| a[i] * grad[i]).sum();
        let at: f32 = grad[t];
        let tt = m[t][t];
        let denom = aa - 2.0 * at + tt;
        let gamma = if denom <= 1e-12 {
            0.0
        } else {
            ((aa - at) / denom).clamp(0.0, 1.0)
        };
        if gamma < 1e-6 {
            break;
        }
        for (i, ai) in a.iter_mut().enumerate() {
            *ai = (1.0 - gamma) * *ai + if i == t { gamma } else { 0.0 };
        }
    }
    a
}

struct Mgda {
    last: Vec<f32>,
}

impl Aggregator for Mgda {
    fn backward(&mut self, ce: &Var, paths: &[Var], params: &[Var], _: &Var) -> Result<()> {
        let (grads, gram) = task_gradients_and_gram(ce, paths, params)?;
        let n = grads.len();
        let a = min_norm_weights(&gram);
        // Scale so the weights sum to the number of tasks, as equal weighting would.
        let coef: Vec<f32> = a.iter().map(|x| x * n as f32).collect();
        self.last = coef.clone();
        combine_into(params, &grads, &coef)
    }
    fn weights(&self) -> Result<Vec<f32>> {
        Ok(self.last[1..].to_vec())
    }
    fn state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!(self.last))
    }
    fn load_state(&mut self, v: &serde_json::Value) -> Result<()> {
        let last: Vec<f32> = from_state(v, "mgda")?;
        if last.len() != self.last.len() {
            return Err(Error::Config(
                "MGDA state does not match the number of paths".into(),
            ));
        }
        self.last = last;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::min_norm_weights;

    #[test]
    fn min_norm_of_two_orthogonal_unit_vectors_is_the_midpoint() {
        let a = min_norm_weights(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(
            (a[0] - 0.5).abs() < 1e-3 && (a[1] - 0.5).abs() < 1e-3,
            "{a:?}"
        );
        // A vector and a longer one pointing the same way: all weight on the shorter.
        let a = min_norm_weights(&[vec![1.0, 2.0], vec![2.0, 4.0]]);
        assert!(a[0] > 0.99, "{a:?}");
    }
}
