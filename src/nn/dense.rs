//! Dense heads on the classification backbones, for segmentation and detection.
//!
//! The decoder is FCN-style: a 1x1 lateral conv brings each stage it reads to
//! the decoder's width D; from the deepest stage up, the running map is
//! bilinearly upsampled to the next stage's size, added to that stage's
//! lateral (the skip connection), and refined by conv3x3-BN-ReLU. D is the
//! backbone's first stage width, so a wide teacher gets a wide decoder and a
//! narrow student a narrow one (cnn32 vs cnn4: 8x).
//! - Segmentation reads every stage and ends in a 1x1 classifier (FCN); the logits
//!   are upsampled to the input's resolution: [N, K, H, W].
//! - Detection (CenterNet-style, anchor-free) reads the stage at stride 4 (the
//!   last stage of every backbone here) and has two heads, conv3x3-ReLU-conv1x1
//!   each: class heat-map logits [N, K, H/4, W/4] (bias -2.19, prior 0.1) and
//!   box regression [N, 4, H/4, W/4] (width, height, dx, dy in output cells).

use super::init::Seeds;
use super::layers::{BatchNorm2d, Conv2d, ConvSpec, conv_bn};
use super::models::{Backbone, ModelSpec};
use super::{Entry, Model, ModelOutput, Module, join};
use crate::autograd::{Var, functional as F};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::BnPost;
use crate::ops::resample::UpsampleMode;
use crate::tasks::Task;

/// The output stride of the detection head.
pub const DETECT_STRIDE: usize = 4;

/// CenterNet's heat-map bias: sigmoid(-2.19) = 0.1, so the focal loss starts
/// from a sensible prior instead of half the map lit.
const HEATMAP_PRIOR_BIAS: f32 = -2.19;

/// A prediction head: conv3x3 -> ReLU -> conv1x1 (PyTorch: nn.Sequential,
/// names `0` and `2`) for detection, or one 1x1 conv (FCN's classifier) for
/// segmentation, whose decoder already ends in a 3x3 conv.
struct Head {
    hidden: Option<Conv2d>,
    out: Conv2d,
}

impl Head {
    fn new(gpu: &Gpu, (d, out): (usize, usize), hidden: bool, seeds: &mut Seeds) -> Result<Head> {
        let with_bias = |s: ConvSpec| ConvSpec { bias: true, ..s };
        let hidden = match hidden {
            true => Some(Conv2d::new(gpu, with_bias(ConvSpec::new(d, d, 3)), seeds)?),
            false => None,
        };
        Ok(Head {
            hidden,
            out: Conv2d::new(gpu, with_bias(ConvSpec::new(d, out, 1)), seeds)?,
        })
    }

    fn forward(&self, x: &Var) -> Result<Var> {
        match &self.hidden {
            Some(h) => self.out.forward(&F::relu(&h.forward(x)?)?),
            None => self.out.forward(x),
        }
    }
}

impl Module for Head {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        match &self.hidden {
            Some(h) => {
                h.visit(&join(prefix, "0"), f);
                self.out.visit(&join(prefix, "2"), f);
            }
            None => self.out.visit(prefix, f),
        }
    }
}

pub struct DenseModel {
    arch: String,
    task: Task,
    body: Box<dyn Backbone>,
    /// Index of the first stage the decoder reads.
    first: usize,
    laterals: Vec<Conv2d>,
    fuse: Vec<(Conv2d, BatchNorm2d)>,
    /// Segmentation: the per-pixel classifier. Detection: the heat-map head.
    classes: Head,
    /// Detection only: sizes and offsets.
    regression: Option<Head>,
}

impl DenseModel {
    pub fn new(
        gpu: &Gpu,
        spec: &ModelSpec,
        body: Box<dyn Backbone>,
        seeds: &mut Seeds,
    ) -> Result<Self> {
        let ch = body.channels();
        let &d = ch
            .first()
            .ok_or_else(|| Error::Internal(format!("{} has no stages", spec.arch)))?;
        let first = match spec.task {
            Task::Detect => ch.len() - 1,
            _ => 0,
        };
        let mut laterals = Vec::new();
        let mut fuse = Vec::new();
        for &c in &ch[first..] {
            laterals.push(Conv2d::new(
                gpu,
                ConvSpec {
                    bias: true,
                    ..ConvSpec::new(c, d, 1)
                },
                seeds,
            )?);
            fuse.push((
                Conv2d::new(gpu, ConvSpec::new(d, d, 3), seeds)?,
                BatchNorm2d::new(gpu, d)?,
            ));
        }
        let detect = spec.task == Task::Detect;
        let classes = Head::new(gpu, (d, spec.num_classes), detect, seeds)?;
        let regression = match spec.task {
            Task::Detect => {
                if let Some(b) = &classes.out.bias {
                    crate::ops::elementwise::fill(b.value(), HEATMAP_PRIOR_BIAS)?;
                }
                Some(Head::new(gpu, (d, 4), true, seeds)?)
            }
            _ => None,
        };
        Ok(DenseModel {
            arch: spec.arch.clone(),
            task: spec.task,
            body,
            first,
            laterals,
            fuse,
            classes,
            regression,
        })
    }

    /// The decoder's map at the finest stage it reads.
    fn decode(&self, features: &[Var], train: bool) -> Result<Var> {
        let used = &features[self.first..];
        let mut h: Option<Var> = None;
        for (i, f) in used.iter().enumerate().rev() {
            let lat = self.laterals[i].forward(f)?;
            let merged = match h {
                None => lat,
                Some(prev) => {
                    let (oh, ow) = (f.shape()[2], f.shape()[3]);
                    let up = if prev.shape()[2..] == f.shape()[2..] {
                        prev
                    } else {
                        F::upsample(&prev, oh, ow, UpsampleMode::Bilinear)?
                    };
                    F::add(&up, &lat)?
                }
            };
            let (c, b) = &self.fuse[i];
            h = Some(conv_bn(c, b, &merged, BnPost::Relu, train)?);
        }
        h.ok_or_else(|| Error::Internal(format!("{}: the decoder read no stage", self.arch)))
    }
}

/// Resizes [N, C, h, w] to (oh, ow) unless it is that size already.
fn resized(x: Var, oh: usize, ow: usize) -> Result<Var> {
    if x.shape()[2..] == [oh, ow] {
        Ok(x)
    } else {
        F::upsample(&x, oh, ow, UpsampleMode::Bilinear)
    }
}

impl Module for DenseModel {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.body.visit(&join(prefix, "encoder"), f);
        for (i, (l, (c, b))) in self.laterals.iter().zip(&self.fuse).enumerate() {
            let st = self.first + i;
            l.visit(&join(prefix, &format!("decoder.lateral{st}")), f);
            c.visit(&join(prefix, &format!("decoder.fuse{st}.conv")), f);
            b.visit(&join(prefix, &format!("decoder.fuse{st}.bn")), f);
        }
        let name = match self.task {
            Task::Detect => "heatmap",
            _ => "classifier",
        };
        self.classes.visit(&join(prefix, name), f);
        if let Some(r) = &self.regression {
            r.visit(&join(prefix, "regression"), f);
        }
    }
}

impl Model for DenseModel {
    fn forward(&self, x: &Var, train: bool) -> Result<ModelOutput> {
        let &[_, _, h, w] = x.shape() else {
            return Err(Error::shape(
                "dense model",
                format!("needs images [N, C, H, W], got {:?}", x.shape()),
            ));
        };
        let features = self.body.encode(x, train)?;
        let map = self.decode(&features, train)?;
        let (logits, boxes) = match &self.regression {
            None => (resized(self.classes.forward(&map)?, h, w)?, None),
            Some(reg) => {
                if !(h.is_multiple_of(DETECT_STRIDE) && w.is_multiple_of(DETECT_STRIDE)) {
                    return Err(Error::shape(
                        "detection head",
                        format!(
                            "detection needs image sides divisible by {DETECT_STRIDE}, got {h}x{w}"
                        ),
                    ));
                }
                let (oh, ow) = (h / DETECT_STRIDE, w / DETECT_STRIDE);
                let m = resized(map.clone(), oh, ow)?;
                (self.classes.forward(&m)?, Some(reg.forward(&m)?))
            }
        };
        Ok(ModelOutput {
            logits,
            boxes,
            features,
            pooled: map,
        })
    }
    fn arch(&self) -> &str {
        &self.arch
    }
    fn feature_channels(&self) -> Vec<usize> {
        self.body.channels()
    }
    fn task(&self) -> Task {
        self.task
    }
}
