//! Model definitions: a small plain CNN, the CIFAR ResNets the distillation
//! literature uses (RepDistiller's resnet8x4, resnet32x4, resnet20, resnet56, ...)
//! and wide ResNets (wrn-16-2, wrn-40-2, ...), from one configurable definition
//! each, with PyTorch's parameter names.

use super::init::Seeds;
use super::layers::{BatchNorm2d, Conv2d, ConvSpec, Linear, conv_bn};
use super::{Entry, Model, ModelOutput, Module, join};
use crate::autograd::{Var, functional as F};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::conv::BnPost;
use crate::ops::pool::Pool2dConfig;
use crate::tasks::Task;

/// Which model to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// `cnn<width>` (e.g. cnn16), `resnet<depth>[x4]`, or `wrn-<depth>-<widen>`.
    pub arch: String,
    pub in_channels: usize,
    pub num_classes: usize,
    /// Which head: a classifier, a segmentation decoder or a detection head.
    pub task: Task,
}

/// A network's feature extractor: the stage outputs, early to late.
pub trait Backbone: Module {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>>;
    /// Channels of each stage output.
    fn channels(&self) -> Vec<usize>;
    /// The classifier's name in the reference definition.
    fn head_name(&self) -> &'static str {
        "fc"
    }
}

/// A backbone, global average pooling of its last stage, and a linear layer
/// (`fc`), with the parameter names of the PyTorch definitions.
pub struct Classifier {
    arch: String,
    body: Box<dyn Backbone>,
    fc: Linear,
}

impl Classifier {
    fn new(
        gpu: &Gpu,
        spec: &ModelSpec,
        body: Box<dyn Backbone>,
        seeds: &mut Seeds,
    ) -> Result<Self> {
        let last = *body
            .channels()
            .last()
            .ok_or_else(|| Error::Internal(format!("{} has no stages", spec.arch)))?;
        Ok(Classifier {
            arch: spec.arch.clone(),
            fc: Linear::new(gpu, last, spec.num_classes, seeds)?,
            body,
        })
    }
}

impl Module for Classifier {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.body.visit(prefix, f);
        self.fc.visit(&join(prefix, self.body.head_name()), f);
    }
}

impl Model for Classifier {
    fn forward(&self, x: &Var, train: bool) -> Result<ModelOutput> {
        let features = self.body.encode(x, train)?;
        let last = features
            .last()
            .ok_or_else(|| Error::Internal(format!("{} returned no stages", self.arch)))?;
        let pooled = F::global_avg_pool(last)?;
        Ok(ModelOutput {
            logits: self.fc.forward(&pooled)?,
            boxes: None,
            features,
            pooled,
        })
    }
    fn arch(&self) -> &str {
        &self.arch
    }
    fn feature_channels(&self) -> Vec<usize> {
        self.body.channels()
    }
    fn task(&self) -> Task {
        Task::Classify
    }
}

/// Names `build_model` understands (any depth/width of these forms works).
pub const ARCHS: &str = "cnn<width> (cnn8, cnn32), resnet<6n+2>[x4] (resnet8x4, resnet32x4, resnet20, resnet56), wrn-<6n+4>-<k> (wrn-16-2, wrn-40-2), mobilenetv2, shufflenetv2, vgg<8|11|13|16|19>, onnx:<file.onnx>";

/// Bounds on the architectures' sizes: far beyond what trains on any one GPU
/// today, small enough that a typo (cnn100000) is an error, not an allocation.
pub const MAX_CNN_WIDTH: usize = 4096;
pub const MAX_DEPTH: usize = 1202;
pub const MAX_WIDEN: usize = 64;

/// The model `spec` names: a backbone with the head of its task (a linear
/// classifier, or a dense decoder and per-pixel heads).
pub fn build_model(gpu: &Gpu, spec: &ModelSpec, seed: u64) -> Result<Box<dyn Model>> {
    if let Some(path) = spec.arch.strip_prefix("onnx:") {
        // A graph trained as imported (its initializers are the parameters).
        let opts = crate::onnx::OnnxOptions {
            trainable: true,
            ..Default::default()
        };
        return Ok(Box::new(crate::onnx::OnnxModel::load(
            gpu,
            std::path::Path::new(path),
            &opts,
        )?));
    }
    let mut seeds = Seeds::new(seed);
    let body = build_backbone(gpu, &spec.arch, spec.in_channels, &mut seeds)?;
    match spec.task {
        Task::Classify => Ok(Box::new(Classifier::new(gpu, spec, body, &mut seeds)?)),
        Task::Segment | Task::Detect => Ok(Box::new(super::dense::DenseModel::new(
            gpu, spec, body, &mut seeds,
        )?)),
    }
}

/// The feature extractor an architecture name describes.
fn build_backbone(
    gpu: &Gpu,
    arch: &str,
    in_channels: usize,
    seeds: &mut Seeds,
) -> Result<Box<dyn Backbone>> {
    let bad = || Error::Config(format!("unknown model {arch:?}; known forms: {ARCHS}"));
    let a = arch;
    match a {
        "mobilenetv2" => {
            return Ok(Box::new(super::mobile::MobileNetV2::new(
                gpu,
                in_channels,
                seeds,
            )?));
        }
        "shufflenetv2" => {
            return Ok(Box::new(super::mobile::ShuffleNetV2::new(
                gpu,
                in_channels,
                seeds,
            )?));
        }
        _ => {}
    }
    if let Some(d) = a.strip_prefix("vgg") {
        let depth: usize = d.parse().map_err(|_| bad())?;
        return Ok(Box::new(super::mobile::Vgg::new(
            gpu,
            in_channels,
            depth,
            seeds,
        )?));
    }
    if let Some(w) = a.strip_prefix("cnn") {
        let width: usize = w.parse().map_err(|_| bad())?;
        if !(1..=MAX_CNN_WIDTH).contains(&width) {
            return Err(Error::range(
                "cnn width",
                width,
                format!("1..={MAX_CNN_WIDTH}"),
            ));
        }
        return Ok(Box::new(PlainCnn::new(gpu, in_channels, width, seeds)?));
    }
    if let Some(rest) = a.strip_prefix("resnet") {
        let (depth, x4) = match rest.strip_suffix("x4") {
            Some(d) => (d, true),
            None => (rest, false),
        };
        let depth: usize = depth.parse().map_err(|_| bad())?;
        if !(8..=MAX_DEPTH).contains(&depth) || !(depth - 2).is_multiple_of(6) {
            return Err(Error::Config(format!(
                "resnet depth must be 6n + 2 (8, 14, 20, 32, 56, 110), at most {MAX_DEPTH}, got {depth}"
            )));
        }
        let filters = if x4 {
            [32, 64, 128, 256]
        } else {
            [16, 16, 32, 64]
        };
        return Ok(Box::new(CifarResNet::new(
            gpu,
            in_channels,
            depth,
            filters,
            seeds,
        )?));
    }
    if let Some(rest) = a.strip_prefix("wrn-") {
        let (d, k) = rest.split_once('-').ok_or_else(bad)?;
        let depth: usize = d.parse().map_err(|_| bad())?;
        let widen: usize = k.parse().map_err(|_| bad())?;
        if !(10..=MAX_DEPTH).contains(&depth)
            || !(depth - 4).is_multiple_of(6)
            || !(1..=MAX_WIDEN).contains(&widen)
        {
            return Err(Error::Config(format!(
                "wrn depth must be 6n + 4 (16, 28, 40), at most {MAX_DEPTH}, and the widening 1..={MAX_WIDEN}, got {a}"
            )));
        }
        return Ok(Box::new(WideResNet::new(
            gpu,
            in_channels,
            depth,
            widen,
            seeds,
        )?));
    }
    Err(bad())
}

// ---- Plain CNN --------------------------------------------------------------------

/// conv-bn-relu-maxpool x2, conv-bn-relu, global average pool, linear. Widths
/// w, 2w, 4w.
pub struct PlainCnn {
    convs: Vec<(Conv2d, BatchNorm2d)>,
}

impl PlainCnn {
    fn new(gpu: &Gpu, in_channels: usize, w: usize, seeds: &mut Seeds) -> Result<Self> {
        let chans = [in_channels, w, 2 * w, 4 * w];
        let mut convs = Vec::new();
        for i in 0..3 {
            convs.push((
                Conv2d::new(gpu, ConvSpec::new(chans[i], chans[i + 1], 3), seeds)?,
                BatchNorm2d::new(gpu, chans[i + 1])?,
            ));
        }
        Ok(PlainCnn { convs })
    }
}

impl Module for PlainCnn {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        for (i, (c, b)) in self.convs.iter().enumerate() {
            c.visit(&join(prefix, &format!("conv{}", i + 1)), f);
            b.visit(&join(prefix, &format!("bn{}", i + 1)), f);
        }
    }
}

impl Backbone for PlainCnn {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>> {
        let mut h = x.clone();
        let mut features = Vec::new();
        for (i, (c, b)) in self.convs.iter().enumerate() {
            h = conv_bn(c, b, &h, BnPost::Relu, train)?;
            features.push(h.clone());
            if i < 2 {
                h = F::max_pool2d(&h, Pool2dConfig::new(2, 2, 0))?;
            }
        }
        Ok(features)
    }
    fn channels(&self) -> Vec<usize> {
        self.convs.iter().map(|(c, _)| c.out_channels()).collect()
    }
}

// ---- CIFAR ResNet (post-activation basic blocks) ------------------------------------

struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    bn2: BatchNorm2d,
    downsample: Option<(Conv2d, BatchNorm2d)>,
}

impl BasicBlock {
    fn new(gpu: &Gpu, cin: usize, cout: usize, stride: usize, seeds: &mut Seeds) -> Result<Self> {
        let downsample = if stride != 1 || cin != cout {
            Some((
                Conv2d::new(gpu, ConvSpec::new(cin, cout, 1).stride(stride), seeds)?,
                BatchNorm2d::new(gpu, cout)?,
            ))
        } else {
            None
        };
        Ok(BasicBlock {
            conv1: Conv2d::new(gpu, ConvSpec::new(cin, cout, 3).stride(stride), seeds)?,
            bn1: BatchNorm2d::new(gpu, cout)?,
            conv2: Conv2d::new(gpu, ConvSpec::new(cout, cout, 3), seeds)?,
            bn2: BatchNorm2d::new(gpu, cout)?,
            downsample,
        })
    }

    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        let out = conv_bn(&self.conv1, &self.bn1, x, BnPost::Relu, train)?;
        let res = match &self.downsample {
            Some((c, b)) => conv_bn(c, b, x, BnPost::None, train)?,
            None => x.clone(),
        };
        conv_bn(&self.conv2, &self.bn2, &out, BnPost::AddRelu(&res), train)
    }
}

impl Module for BasicBlock {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.bn1.visit(&join(prefix, "bn1"), f);
        self.conv2.visit(&join(prefix, "conv2"), f);
        self.bn2.visit(&join(prefix, "bn2"), f);
        if let Some((c, b)) = &self.downsample {
            c.visit(&join(prefix, "downsample.0"), f);
            b.visit(&join(prefix, "downsample.1"), f);
        }
    }
}

/// RepDistiller's CIFAR ResNet: conv1 (3x3, filters[0]) -> bn -> relu -> three
/// stages of (depth - 2) / 6 basic blocks with filters[1..4], strides 1, 2, 2 ->
/// global average pool -> fc.
pub struct CifarResNet {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    layers: Vec<Vec<BasicBlock>>,
    filters: [usize; 4],
}

impl CifarResNet {
    fn new(
        gpu: &Gpu,
        in_channels: usize,
        depth: usize,
        filters: [usize; 4],
        seeds: &mut Seeds,
    ) -> Result<Self> {
        let n = (depth - 2) / 6;
        let conv1 = Conv2d::new(gpu, ConvSpec::new(in_channels, filters[0], 3), seeds)?;
        let bn1 = BatchNorm2d::new(gpu, filters[0])?;
        let mut layers = Vec::new();
        let mut cin = filters[0];
        for (s, &cout) in filters[1..].iter().enumerate() {
            let mut blocks = Vec::new();
            for i in 0..n {
                let stride = if s > 0 && i == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(gpu, cin, cout, stride, seeds)?);
                cin = cout;
            }
            layers.push(blocks);
        }
        Ok(CifarResNet {
            conv1,
            bn1,
            layers,
            filters,
        })
    }
}

impl Module for CifarResNet {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.bn1.visit(&join(prefix, "bn1"), f);
        for (s, blocks) in self.layers.iter().enumerate() {
            for (i, b) in blocks.iter().enumerate() {
                b.visit(&join(prefix, &format!("layer{}.{i}", s + 1)), f);
            }
        }
    }
}

impl Backbone for CifarResNet {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>> {
        let mut h = conv_bn(&self.conv1, &self.bn1, x, BnPost::Relu, train)?;
        let mut features = vec![h.clone()];
        for blocks in &self.layers {
            for b in blocks {
                h = b.forward(&h, train)?;
            }
            features.push(h.clone());
        }
        Ok(features)
    }
    fn channels(&self) -> Vec<usize> {
        self.filters.to_vec()
    }
}

// ---- Wide ResNet (pre-activation blocks) --------------------------------------------

struct WideBlock {
    bn1: BatchNorm2d,
    conv1: Conv2d,
    bn2: BatchNorm2d,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl WideBlock {
    fn new(gpu: &Gpu, cin: usize, cout: usize, stride: usize, seeds: &mut Seeds) -> Result<Self> {
        Ok(WideBlock {
            bn1: BatchNorm2d::new(gpu, cin)?,
            conv1: Conv2d::new(gpu, ConvSpec::new(cin, cout, 3).stride(stride), seeds)?,
            bn2: BatchNorm2d::new(gpu, cout)?,
            conv2: Conv2d::new(gpu, ConvSpec::new(cout, cout, 3), seeds)?,
            shortcut: if cin != cout {
                Some(Conv2d::new(
                    gpu,
                    ConvSpec::new(cin, cout, 1).stride(stride),
                    seeds,
                )?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        let a = self.bn1.forward_relu(x, train)?;
        let out = conv_bn(&self.conv1, &self.bn2, &a, BnPost::Relu, train)?;
        let out = self.conv2.forward(&out)?;
        // As the reference WRN: the shortcut of a widening block reads the activated input.
        let res = match &self.shortcut {
            Some(c) => c.forward(&a)?,
            None => x.clone(),
        };
        F::add(&res, &out)
    }
}

impl Module for WideBlock {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.bn1.visit(&join(prefix, "bn1"), f);
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.bn2.visit(&join(prefix, "bn2"), f);
        self.conv2.visit(&join(prefix, "conv2"), f);
        if let Some(c) = &self.shortcut {
            c.visit(&join(prefix, "convShortcut"), f);
        }
    }
}

/// WRN-d-k: conv1 (16) -> three groups of (d - 4) / 6 pre-activation blocks of
/// widths 16k, 32k, 64k (strides 1, 2, 2) -> bn -> relu -> pool -> fc.
pub struct WideResNet {
    conv1: Conv2d,
    blocks: Vec<Vec<WideBlock>>,
    bn1: BatchNorm2d,
    widths: [usize; 4],
}

impl WideResNet {
    fn new(
        gpu: &Gpu,
        in_channels: usize,
        depth: usize,
        k: usize,
        seeds: &mut Seeds,
    ) -> Result<Self> {
        let n = (depth - 4) / 6;
        let widths = [16, 16 * k, 32 * k, 64 * k];
        let conv1 = Conv2d::new(gpu, ConvSpec::new(in_channels, 16, 3), seeds)?;
        let mut blocks = Vec::new();
        let mut cin = 16;
        for (g, &cout) in widths[1..].iter().enumerate() {
            let mut v = Vec::new();
            for i in 0..n {
                let stride = if g > 0 && i == 0 { 2 } else { 1 };
                v.push(WideBlock::new(gpu, cin, cout, stride, seeds)?);
                cin = cout;
            }
            blocks.push(v);
        }
        Ok(WideResNet {
            conv1,
            blocks,
            bn1: BatchNorm2d::new(gpu, widths[3])?,
            widths,
        })
    }
}

impl Module for WideResNet {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        for (g, v) in self.blocks.iter().enumerate() {
            for (i, b) in v.iter().enumerate() {
                b.visit(&join(prefix, &format!("block{}.layer.{i}", g + 1)), f);
            }
        }
        self.bn1.visit(&join(prefix, "bn1"), f);
    }
}

impl Backbone for WideResNet {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>> {
        let mut h = self.conv1.forward(x)?;
        let mut features = vec![h.clone()];
        for (g, v) in self.blocks.iter().enumerate() {
            for b in v {
                h = b.forward(&h, train)?;
            }
            if g < 2 {
                features.push(h.clone());
            }
        }
        h = self.bn1.forward_relu(&h, train)?;
        features.push(h);
        Ok(features)
    }
    fn channels(&self) -> Vec<usize> {
        self.widths.to_vec()
    }
}
