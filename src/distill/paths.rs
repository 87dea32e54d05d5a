//! Distillation paths. Each turns the student's and the teacher's outputs into
//! one scalar loss (README, section Distillation):
//! - soft: T^2 KL(softmax(z_t / T) || softmax(z_s / T)), fused kernel;
//! - hint (FitNets): MSE(regressor(f_s), f_t), regressor = 1x1 conv + BN;
//! - at (attention transfer): MSE of L2-normalised channel-mean f^2 maps, p = 2;
//! - nst: MSE of the Gram matrices of channel-normalised features (student
//!   features through a regressor to the teacher's channel count);
//! - logits: MSE(z_s, z_t);
//! - affinity: MSE of the pair-wise cosine similarities between the positions
//!   of a low-resolution feature map, [N, HW, HW] (structured knowledge for
//!   dense prediction; no regressor: the matrix is the same size for any C).
//!
//! - reg (detection): L1 between the student's and the teacher's box
//!   regression, each position weighted by the teacher's confidence there
//!   (its highest class probability), the weights summing to 1 per channel.
//!
//! For dense logits ([N, K, H, W], segmentation) `soft` is the per-pixel KL,
//! averaged over the pixels whose label is not ignored.
//!
//! Feature paths attach to stage outputs (`ModelOutput::features`). In
//! layer-wise mode a feature path at several stages becomes one path per stage.

use crate::autograd::{Var, functional as F};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::init::Seeds;
use crate::nn::layers::ConvSpec;
use crate::nn::{BatchNorm2d, Conv2d, Entry, ModelOutput, Module, join};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Soft,
    Hint,
    Attention,
    Nst,
    Logits,
    Affinity,
    Regression,
}

impl PathKind {
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Soft => "soft",
            PathKind::Hint => "hint",
            PathKind::Attention => "at",
            PathKind::Nst => "nst",
            PathKind::Logits => "logits",
            PathKind::Affinity => "affinity",
            PathKind::Regression => "reg",
        }
    }

    /// The hand-tuned weight the field uses (CIFAR defaults, METHOD.md).
    pub fn default_weight(self) -> f32 {
        match self {
            PathKind::Soft => 0.9,
            PathKind::Hint => 100.0,
            PathKind::Attention => 1000.0,
            PathKind::Nst => 50.0,
            PathKind::Logits => 1.0,
            PathKind::Affinity => 10.0,
            PathKind::Regression => 1.0,
        }
    }
}

/// `soft,hint,at,nst,logits` (an optional `@<stage>` picks a feature stage).
pub fn parse_paths(s: &str) -> Result<Vec<(PathKind, Option<usize>)>> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (name, stage) = match item.split_once('@') {
            Some((n, st)) => (
                n,
                Some(st.parse::<usize>().map_err(|_| {
                    Error::Config(format!("bad stage in path {item:?}: use e.g. hint@2"))
                })?),
            ),
            None => (item, None),
        };
        let kind = match name {
            "soft" | "kd" => PathKind::Soft,
            "hint" | "fitnet" => PathKind::Hint,
            "at" | "attention" => PathKind::Attention,
            "nst" => PathKind::Nst,
            "logits" => PathKind::Logits,
            "affinity" | "aff" => PathKind::Affinity,
            "reg" | "regression" => PathKind::Regression,
            _ => {
                return Err(Error::Config(format!(
                    "unknown distillation path {name:?}; known: soft, hint, at, nst, logits, affinity, reg"
                )));
            }
        };
        out.push((kind, stage));
    }
    Ok(out)
}

/// A 1x1 conv + BN mapping student channels to teacher channels.
pub struct Regressor {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl Regressor {
    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        self.bn.forward(&self.conv.forward(x)?, train)
    }
}

pub struct Path {
    pub name: String,
    pub kind: PathKind,
    /// Feature stages the path reads (empty for soft/logits).
    pub stages: Vec<usize>,
    pub temperature: f32,
    regressors: Vec<Regressor>,
}

impl Module for Path {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        for (r, &st) in self.regressors.iter().zip(&self.stages) {
            let p = join(prefix, &format!("{}.regressor{st}", self.name));
            r.conv.visit(&join(&p, "conv"), f);
            r.bn.visit(&join(&p, "bn"), f);
        }
    }
}

/// Builds the paths for a student/teacher pair given their stage channels.
/// Defaults: hint at the middle stage, AT at every stage after the stem, NST
/// at the last stage.
pub fn build_paths(
    gpu: &Gpu,
    kinds: &[(PathKind, Option<usize>)],
    student_channels: &[usize],
    teacher_channels: &[usize],
    layerwise: bool,
    temperature: f32,
    seed: u64,
) -> Result<Vec<Path>> {
    let stages = student_channels.len().min(teacher_channels.len());
    if stages == 0 {
        return Err(Error::Config("models expose no feature stages".into()));
    }
    let mut seeds = Seeds::new(seed ^ 0xD157);
    let mut out = Vec::new();
    for &(kind, stage) in kinds {
        let picked: Vec<usize> = match (kind, stage) {
            (PathKind::Soft | PathKind::Logits | PathKind::Regression, _) => vec![],
            (_, Some(s)) if s >= stages => {
                return Err(Error::Config(format!(
                    "stage {s} does not exist: the models have stages 0..{}",
                    stages - 1
                )));
            }
            (_, Some(s)) => vec![s],
            (PathKind::Hint, None) => vec![stages / 2],
            (PathKind::Attention, None) => (1.max(stages.saturating_sub(3))..stages).collect(),
            (PathKind::Nst | PathKind::Affinity, None) => vec![stages - 1],
        };
        let needs_reg = matches!(kind, PathKind::Hint | PathKind::Nst);
        let make = |sts: &[usize], seeds: &mut Seeds| -> Result<Vec<Regressor>> {
            if !needs_reg {
                return Ok(vec![]);
            }
            sts.iter()
                .map(|&s| {
                    Ok(Regressor {
                        conv: Conv2d::new(
                            gpu,
                            ConvSpec::new(student_channels[s], teacher_channels[s], 1),
                            seeds,
                        )?,
                        bn: BatchNorm2d::new(gpu, teacher_channels[s])?,
                    })
                })
                .collect()
        };
        if layerwise && picked.len() > 1 {
            for &s in &picked {
                out.push(Path {
                    name: format!("{}{s}", kind.name()),
                    kind,
                    stages: vec![s],
                    temperature,
                    regressors: make(&[s], &mut seeds)?,
                });
            }
        } else {
            out.push(Path {
                name: kind.name().to_string(),
                kind,
                regressors: make(&picked, &mut seeds)?,
                stages: picked,
                temperature,
            });
        }
    }
    let mut names: Vec<&str> = out.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Config(format!("a path is listed twice: {names:?}")));
    }
    Ok(out)
}

/// Channel-mean of f^2, flattened over H*W and L2-normalised: [N, H*W].
pub fn attention(f: &Var) -> Result<Var> {
    let s = f.shape().to_vec();
    let [n, c, h, w] = s[..] else {
        return Err(Error::shape(
            "attention",
            format!("needs [N, C, H, W], got {s:?}"),
        ));
    };
    let sq = F::mul(f, f)?;
    let a = F::scale(&F::sum_axis(&sq, 1)?, 1.0 / c as f32)?;
    F::normalize_last(&F::reshape(&a, &[n, h * w])?)
}

/// The `reg` path: sum over positions of conf * |b_s - b_t| / sum(conf), per
/// regression channel, conf = the teacher's confidence (ops::detect).
fn regression_imitation(s: &ModelOutput, t: &ModelOutput) -> Result<Var> {
    let (Some(bs), Some(bt)) = (&s.boxes, &t.boxes) else {
        return Err(Error::Config(
            "the reg path imitates a detection head's boxes: it needs --task detect".into(),
        ));
    };
    let conf = crate::ops::detect::confidence(t.logits.value())?;
    let total = crate::ops::sum(&conf, None)?.reshape(&[1, 1, 1, 1])?;
    let w = crate::ops::div(&conf, &total)?;
    let w = F::broadcast_to(&w, bs.shape())?;
    F::weighted_l1(bs, bt.value(), &w)
}

/// Cosine similarities between every pair of positions of [N, C, H, W]
/// features (each position's C-vector L2-normalised): [N, HW, HW].
pub fn affinity(f: &Var) -> Result<Var> {
    let s = f.shape().to_vec();
    let [n, c, h, w] = s[..] else {
        return Err(Error::shape(
            "affinity",
            format!("needs [N, C, H, W], got {s:?}"),
        ));
    };
    let fl = F::reshape(f, &[n, c, h * w])?;
    let norm = F::sqrt(&F::affine(
        &F::sum_axis(&F::mul(&fl, &fl)?, 1)?,
        1.0,
        1e-12,
    )?)?;
    let unit = F::div(&fl, &norm)?;
    F::matmul(&unit, &unit, true, false)
}

/// Gram matrices of channel-normalised features: [N, C, C].
pub fn gram(f: &Var) -> Result<Var> {
    let s = f.shape().to_vec();
    let [n, c, h, w] = s[..] else {
        return Err(Error::shape(
            "gram",
            format!("needs [N, C, H, W], got {s:?}"),
        ));
    };
    let fl = F::normalize_last(&F::reshape(f, &[n, c, h * w])?)?;
    F::matmul(&fl, &fl, false, true)
}

/// The teacher's feature `t` at the student feature `s`'s resolution: as is
/// when they agree; averaged over blocks when the teacher's is a whole
/// multiple larger on both axes (area pooling, as the resolution a strided
/// student stage would see); else resampled bilinearly. Teachers of another
/// architecture (ONNX imports) rarely share the student's stage sizes.
fn match_spatial(name: &str, s: &Var, t: &Var) -> Result<Var> {
    let (ss, ts) = (s.shape(), t.shape());
    if ss.len() != 4 || ts.len() != 4 || ss[0] != ts[0] {
        return Err(Error::shape(
            "distillation path",
            format!(
                "{name}: student feature {ss:?} and teacher feature {ts:?} are not [N, C, H, W] maps of one batch"
            ),
        ));
    }
    let (sh, sw, th, tw) = (ss[2], ss[3], ts[2], ts[3]);
    if (sh, sw) == (th, tw) {
        return Ok(t.clone());
    }
    if th >= sh && tw >= sw && th.is_multiple_of(sh) && tw.is_multiple_of(sw) {
        let cfg = crate::ops::pool::Pool2dConfig {
            kernel: (th / sh, tw / sw),
            stride: (th / sh, tw / sw),
            padding: (0, 0),
            dilation: (1, 1),
        };
        return F::avg_pool2d(t, cfg);
    }
    F::upsample(t, sh, sw, crate::ops::resample::UpsampleMode::Bilinear)
}

impl Path {
    /// This path's loss. The teacher's outputs are constants (computed under
    /// no_grad). `labels` are the batch's per-pixel labels for dense logits:
    /// pixels labelled `IGNORE` do not count in the soft path.
    pub fn loss(
        &self,
        s: &ModelOutput,
        t: &ModelOutput,
        labels: Option<&Tensor>,
        train: bool,
    ) -> Result<Var> {
        match self.kind {
            PathKind::Soft if s.logits.shape().len() > 2 => {
                let labels = match labels {
                    Some(l) => l.clone(),
                    None => {
                        let sh = s.logits.shape();
                        let pos: Vec<usize> = [&sh[..1], &sh[2..]].concat();
                        let n = pos.iter().product();
                        Tensor::from_u32(s.logits.value().gpu(), &pos, &vec![0; n])?
                    }
                };
                F::soft_target_dense(
                    &s.logits,
                    t.logits.value(),
                    &labels,
                    crate::data::IGNORE as u32,
                    self.temperature,
                )
            }
            PathKind::Soft => F::soft_target(&s.logits, t.logits.value(), self.temperature),
            PathKind::Logits => F::mse(&s.logits, &t.logits),
            PathKind::Regression => regression_imitation(s, t),
            PathKind::Hint | PathKind::Attention | PathKind::Nst | PathKind::Affinity => {
                let mut total: Option<Var> = None;
                for (i, &st) in self.stages.iter().enumerate() {
                    let fs = &s.features[st];
                    let ft = &match_spatial(&self.name, fs, &t.features[st])?;
                    let l = match self.kind {
                        PathKind::Hint => F::mse(&self.regressors[i].forward(fs, train)?, ft)?,
                        PathKind::Attention => F::mse(&attention(fs)?, &attention(ft)?)?,
                        PathKind::Affinity => F::mse(&affinity(fs)?, &affinity(ft)?)?,
                        _ => F::mse(&gram(&self.regressors[i].forward(fs, train)?)?, &gram(ft)?)?,
                    };
                    total = Some(match total {
                        Some(acc) => F::add(&acc, &l)?,
                        None => l,
                    });
                }
                total.ok_or_else(|| Error::Config(format!("path {} has no stages", self.name)))
            }
        }
    }
}
