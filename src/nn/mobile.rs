//! The compact students of the distillation benchmarks (RepDistiller's CIFAR
//! definitions, with PyTorch's parameter names): MobileNetV2 (`mobile_half`:
//! expansion 6, width 0.5), ShuffleNetV2 (net size 1) and the VGGs with batch
//! norm (vgg8 the student, vgg13 the usual teacher). Their pooling is global
//! average pooling, which for 32x32 inputs is what the reference's fixed-size
//! pools compute.

use super::init::Seeds;
use super::layers::{BatchNorm2d, Conv2d, ConvSpec, conv_bn};
use super::models::Backbone;
use super::{Entry, Module, join};
use crate::autograd::{Var, functional as F};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::conv::BnPost;
use crate::ops::pool::Pool2dConfig;

/// conv -> bn, named as a Sequential's `<i>` and `<i+1>` or as conv<k>/bn<k>.
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm2d,
}

impl ConvBn {
    fn new(gpu: &Gpu, spec: ConvSpec, seeds: &mut Seeds) -> Result<ConvBn> {
        Ok(ConvBn {
            bn: BatchNorm2d::new(gpu, spec.cout)?,
            conv: Conv2d::new(gpu, spec, seeds)?,
        })
    }
    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        conv_bn(&self.conv, &self.bn, x, BnPost::None, train)
    }
    fn forward_relu(&self, x: &Var, train: bool) -> Result<Var> {
        conv_bn(&self.conv, &self.bn, x, BnPost::Relu, train)
    }
    fn visit_as(&self, prefix: &str, conv: &str, bn: &str, f: &mut dyn FnMut(String, Entry)) {
        self.conv.visit(&join(prefix, conv), f);
        self.bn.visit(&join(prefix, bn), f);
    }
}

/// A k x k conv with "same" padding, optional stride and groups.
fn spec(cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> ConvSpec {
    ConvSpec::new(cin, cout, k).stride(stride).groups(groups)
}

// ---- MobileNetV2 ----------------------------------------------------------------

/// pw (expand) -> relu -> dw 3x3 -> relu -> pw-linear, a residual when the shape
/// is kept; PyTorch: `conv.0` ... `conv.7`.
struct InvertedResidual {
    layers: [ConvBn; 3],
    residual: bool,
}

impl InvertedResidual {
    fn new(
        gpu: &Gpu,
        cin: usize,
        cout: usize,
        stride: usize,
        t: usize,
        s: &mut Seeds,
    ) -> Result<Self> {
        let h = cin * t;
        Ok(InvertedResidual {
            layers: [
                ConvBn::new(gpu, spec(cin, h, 1, 1, 1), s)?,
                ConvBn::new(gpu, spec(h, h, 3, stride, h), s)?,
                ConvBn::new(gpu, spec(h, cout, 1, 1, 1), s)?,
            ],
            residual: stride == 1 && cin == cout,
        })
    }
    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        let a = self.layers[0].forward_relu(x, train)?;
        let b = self.layers[1].forward_relu(&a, train)?;
        let c = self.layers[2].forward(&b, train)?;
        if self.residual { F::add(x, &c) } else { Ok(c) }
    }
}

impl Module for InvertedResidual {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        for (i, l) in self.layers.iter().enumerate() {
            l.visit_as(
                prefix,
                &format!("conv.{}", 3 * i),
                &format!("conv.{}", 3 * i + 1),
                f,
            );
        }
    }
}

/// RepDistiller's `mobile_half`: conv1 (stride 2) -> 7 groups of inverted
/// residuals -> conv2 (1x1, 1280) -> pool -> `classifier.0`. Stages: conv1,
/// groups 1, 2, 4 and 6, conv2.
pub struct MobileNetV2 {
    conv1: ConvBn,
    blocks: Vec<Vec<InvertedResidual>>,
    conv2: ConvBn,
    channels: Vec<usize>,
}

impl MobileNetV2 {
    pub fn new(gpu: &Gpu, in_channels: usize, s: &mut Seeds) -> Result<Self> {
        const T: usize = 6;
        let width = |c: usize| c / 2;
        // (expansion, channels, blocks, stride) as in the reference.
        let setting = [
            (1, 16, 1, 1),
            (T, 24, 2, 1),
            (T, 32, 3, 2),
            (T, 64, 4, 2),
            (T, 96, 3, 1),
            (T, 160, 3, 2),
            (T, 320, 1, 1),
        ];
        let mut cin = width(32);
        let conv1 = ConvBn::new(gpu, spec(in_channels, cin, 3, 2, 1), s)?;
        let mut blocks = Vec::new();
        let mut outs = Vec::new();
        for (t, c, n, stride) in setting {
            let cout = width(c);
            let mut g = Vec::new();
            for i in 0..n {
                g.push(InvertedResidual::new(
                    gpu,
                    cin,
                    cout,
                    if i == 0 { stride } else { 1 },
                    t,
                    s,
                )?);
                cin = cout;
            }
            blocks.push(g);
            outs.push(cout);
        }
        let conv2 = ConvBn::new(gpu, spec(cin, 1280, 1, 1, 1), s)?;
        let channels = vec![width(32), outs[1], outs[2], outs[4], 1280];
        Ok(MobileNetV2 {
            conv1,
            blocks,
            conv2,
            channels,
        })
    }
}

impl Module for MobileNetV2 {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.conv1.visit_as(prefix, "conv1.0", "conv1.1", f);
        for (g, blocks) in self.blocks.iter().enumerate() {
            for (i, b) in blocks.iter().enumerate() {
                b.visit(&join(prefix, &format!("blocks.{g}.{i}")), f);
            }
        }
        self.conv2.visit_as(prefix, "conv2.0", "conv2.1", f);
    }
}

impl Backbone for MobileNetV2 {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>> {
        let mut h = self.conv1.forward_relu(x, train)?;
        let mut features = vec![h.clone()];
        for (g, blocks) in self.blocks.iter().enumerate() {
            for b in blocks {
                h = b.forward(&h, train)?;
            }
            if matches!(g, 1 | 2 | 4) {
                features.push(h.clone());
            }
        }
        features.push(self.conv2.forward_relu(&h, train)?);
        Ok(features)
    }
    fn channels(&self) -> Vec<usize> {
        self.channels.clone()
    }
    fn head_name(&self) -> &'static str {
        "classifier.0"
    }
}

// ---- ShuffleNetV2 ---------------------------------------------------------------

/// [N, C, H, W] -> channels interleaved from 2 groups.
fn shuffle(x: &Var) -> Result<Var> {
    let s = x.shape().to_vec();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let y = F::permute(&F::reshape(x, &[n, 2, c / 2, h, w])?, &[0, 2, 1, 3, 4])?;
    F::reshape(&y, &[n, c, h, w])
}

/// Keeps half the channels, transforms the other half (1x1, dw 3x3, 1x1).
struct ShuffleBasic {
    convs: [ConvBn; 3],
}

impl ShuffleBasic {
    fn new(gpu: &Gpu, c: usize, s: &mut Seeds) -> Result<Self> {
        let h = c / 2;
        Ok(ShuffleBasic {
            convs: [
                ConvBn::new(gpu, spec(h, h, 1, 1, 1), s)?,
                ConvBn::new(gpu, spec(h, h, 3, 1, h), s)?,
                ConvBn::new(gpu, spec(h, h, 1, 1, 1), s)?,
            ],
        })
    }
    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        let c = x.shape()[1];
        let (x1, x2) = (F::slice(x, 1, 0, c / 2)?, F::slice(x, 1, c / 2, c - c / 2)?);
        let out = self.convs[0].forward_relu(&x2, train)?;
        let out = self.convs[1].forward(&out, train)?;
        let out = self.convs[2].forward_relu(&out, train)?;
        shuffle(&F::concat(&[&x1, &out], 1)?)
    }
}

/// Halves the resolution on two branches and concatenates them.
struct ShuffleDown {
    convs: [ConvBn; 5],
}

impl ShuffleDown {
    fn new(gpu: &Gpu, cin: usize, cout: usize, s: &mut Seeds) -> Result<Self> {
        let mid = cout / 2;
        Ok(ShuffleDown {
            convs: [
                ConvBn::new(gpu, spec(cin, cin, 3, 2, cin), s)?,
                ConvBn::new(gpu, spec(cin, mid, 1, 1, 1), s)?,
                ConvBn::new(gpu, spec(cin, mid, 1, 1, 1), s)?,
                ConvBn::new(gpu, spec(mid, mid, 3, 2, mid), s)?,
                ConvBn::new(gpu, spec(mid, mid, 1, 1, 1), s)?,
            ],
        })
    }
    fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        let c = &self.convs;
        let left = c[0].forward(x, train)?;
        let left = c[1].forward_relu(&left, train)?;
        let right = c[2].forward_relu(x, train)?;
        let right = c[3].forward(&right, train)?;
        let right = c[4].forward_relu(&right, train)?;
        shuffle(&F::concat(&[&left, &right], 1)?)
    }
}

/// A ShuffleNetV2 stage entry: a down block, then basic blocks.
enum ShuffleUnit {
    Down(Box<ShuffleDown>),
    Basic(Box<ShuffleBasic>),
}

/// RepDistiller's `ShuffleV2` (net size 1): conv1 (1x1, 24) -> three stages
/// (116, 232, 464 channels; 3, 7, 3 basic blocks after a down block) -> conv2
/// (1x1, 1024) -> pool -> `linear`. Stages: conv1, the three, conv2.
pub struct ShuffleNetV2 {
    conv1: ConvBn,
    layers: Vec<Vec<ShuffleUnit>>,
    conv2: ConvBn,
}

const SHUFFLE_OUT: [usize; 4] = [116, 232, 464, 1024];

impl ShuffleNetV2 {
    pub fn new(gpu: &Gpu, in_channels: usize, s: &mut Seeds) -> Result<Self> {
        let conv1 = ConvBn::new(gpu, spec(in_channels, 24, 1, 1, 1), s)?;
        let mut cin = 24;
        let mut layers = Vec::new();
        for (&cout, n) in SHUFFLE_OUT[..3].iter().zip([3, 7, 3]) {
            let mut units = vec![ShuffleUnit::Down(Box::new(ShuffleDown::new(
                gpu, cin, cout, s,
            )?))];
            for _ in 0..n {
                units.push(ShuffleUnit::Basic(Box::new(ShuffleBasic::new(
                    gpu, cout, s,
                )?)));
            }
            layers.push(units);
            cin = cout;
        }
        let conv2 = ConvBn::new(gpu, spec(cin, SHUFFLE_OUT[3], 1, 1, 1), s)?;
        Ok(ShuffleNetV2 {
            conv1,
            layers,
            conv2,
        })
    }
}

impl Module for ShuffleNetV2 {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        self.conv1.visit_as(prefix, "conv1", "bn1", f);
        for (l, units) in self.layers.iter().enumerate() {
            for (i, u) in units.iter().enumerate() {
                let p = join(prefix, &format!("layer{}.{i}", l + 1));
                let convs: &[ConvBn] = match u {
                    ShuffleUnit::Down(d) => &d.convs,
                    ShuffleUnit::Basic(b) => &b.convs,
                };
                for (k, cb) in convs.iter().enumerate() {
                    cb.visit_as(&p, &format!("conv{}", k + 1), &format!("bn{}", k + 1), f);
                }
            }
        }
        self.conv2.visit_as(prefix, "conv2", "bn2", f);
    }
}

impl Backbone for ShuffleNetV2 {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>> {
        let mut h = self.conv1.forward_relu(x, train)?;
        let mut features = vec![h.clone()];
        for units in &self.layers {
            for u in units {
                h = match u {
                    ShuffleUnit::Down(d) => d.forward(&h, train)?,
                    ShuffleUnit::Basic(b) => b.forward(&h, train)?,
                };
            }
            features.push(h.clone());
        }
        features.push(self.conv2.forward_relu(&h, train)?);
        Ok(features)
    }
    fn channels(&self) -> Vec<usize> {
        let mut c = vec![24];
        c.extend(SHUFFLE_OUT);
        c
    }
    fn head_name(&self) -> &'static str {
        "linear"
    }
}

// ---- VGG with batch norm --------------------------------------------------------

/// Convolutions per block of vgg8, 11, 13, 16 and 19.
pub fn vgg_config(depth: usize) -> Option<[usize; 5]> {
    match depth {
        8 => Some([1, 1, 1, 1, 1]),
        11 => Some([1, 1, 2, 2, 2]),
        13 => Some([2, 2, 2, 2, 2]),
        16 => Some([2, 2, 3, 3, 3]),
        19 => Some([2, 2, 4, 4, 4]),
        _ => None,
    }
}

/// RepDistiller's `vgg<d>_bn`: five blocks of conv3x3 (with bias) -> bn ->
/// relu (widths 64, 128, 256, 512, 512; `block<i>.<3j>` and `.<3j+1>`), max
/// pooling after the first three (and the fourth for 64-pixel inputs), global
/// pooling -> `classifier`. Stages: the five blocks' outputs.
pub struct Vgg {
    blocks: Vec<Vec<ConvBn>>,
}

const VGG_WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];

impl Vgg {
    pub fn new(gpu: &Gpu, in_channels: usize, depth: usize, s: &mut Seeds) -> Result<Self> {
        let per = vgg_config(depth).ok_or_else(|| {
            crate::error::Error::Config(format!(
                "vgg depth must be 8, 11, 13, 16 or 19, got {depth}"
            ))
        })?;
        let mut cin = in_channels;
        let mut blocks = Vec::new();
        for (&w, n) in VGG_WIDTHS.iter().zip(per) {
            let mut b = Vec::new();
            for _ in 0..n {
                b.push(ConvBn::new(gpu, spec(cin, w, 3, 1, 1).bias(true), s)?);
                cin = w;
            }
            blocks.push(b);
        }
        Ok(Vgg { blocks })
    }
}

impl Module for Vgg {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        for (i, b) in self.blocks.iter().enumerate() {
            for (j, cb) in b.iter().enumerate() {
                let p = join(prefix, &format!("block{i}"));
                cb.visit_as(&p, &(3 * j).to_string(), &(3 * j + 1).to_string(), f);
            }
        }
    }
}

impl Backbone for Vgg {
    fn encode(&self, x: &Var, train: bool) -> Result<Vec<Var>> {
        let big = x.shape().get(2) == Some(&64);
        let mut h = x.clone();
        let mut features = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            for cb in b {
                h = cb.forward_relu(&h, train)?;
            }
            features.push(h.clone());
            if i < 3 || (i == 3 && big) {
                h = F::max_pool2d(&h, Pool2dConfig::new(2, 2, 0))?;
            }
        }
        Ok(features)
    }
    fn channels(&self) -> Vec<usize> {
        VGG_WIDTHS.to_vec()
    }
    fn head_name(&self) -> &'static str {
        "classifier"
    }
}
