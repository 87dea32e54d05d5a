//! Layers and models. Every module names its parameters and buffers as PyTorch
//! does (`layer1.0.conv1.weight`, `bn1.running_mean`, ...), so weight files move
//! between condenser and PyTorch.

pub mod dense;
pub mod init;
pub mod input;
pub mod layers;
pub mod mobile;
pub mod models;
pub mod safetensors;

use std::cell::Cell;

use crate::autograd::Var;
use crate::error::Result;
use crate::tensor::Tensor;

pub use input::InputSpec;
pub use layers::{BatchNorm2d, Conv2d, Linear};
pub use models::{ModelSpec, build_model};

/// One named thing a module owns.
pub enum Entry<'a> {
    /// Learned by the optimiser.
    Param(&'a Var),
    /// Updated by the forward pass (batch-norm running statistics).
    Buffer(&'a Tensor),
    /// PyTorch's `num_batches_tracked` (an int64 scalar in weight files).
    Counter(&'a Cell<i64>),
}

/// Something with named parameters and buffers.
pub trait Module {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry));
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// What a model's forward pass returns: logits and the outputs of its stages
/// (the feature maps distillation paths attach to), from early to late.
pub struct ModelOutput {
    /// [N, K] for classification; [N, K, H, W] per-pixel class scores for
    /// segmentation; class heat-map logits [N, K, H/4, W/4] for detection.
    pub logits: Var,
    /// Detection only: box sizes and centre offsets [N, 4, H/4, W/4]
    /// (width, height, dx, dy in output cells).
    pub boxes: Option<Var>,
    /// Stage outputs, [N, C_i, H_i, W_i].
    pub features: Vec<Var>,
    /// The pooled feature vector the classifier reads, [N, C]; for dense
    /// tasks the decoder's output map.
    pub pooled: Var,
}

pub trait Model: Module {
    fn forward(&self, x: &Var, train: bool) -> Result<ModelOutput>;
    /// The architecture's name (`resnet8x4`, ...).
    fn arch(&self) -> &str;
    /// Channels of each stage output, as `features` returns them.
    fn feature_channels(&self) -> Vec<usize>;
    /// What the logits mean.
    fn task(&self) -> crate::tasks::Task;
}

/// The learnable parameters, in a stable order.
pub fn parameters(m: &dyn Module) -> Vec<Var> {
    let mut v = Vec::new();
    m.visit("", &mut |_, e| {
        if let Entry::Param(p) = e {
            v.push(p.clone());
        }
    });
    v
}

/// (name, parameter) pairs.
pub fn named_parameters(m: &dyn Module) -> Vec<(String, Var)> {
    let mut v = Vec::new();
    m.visit("", &mut |n, e| {
        if let Entry::Param(p) = e {
            v.push((n, p.clone()));
        }
    });
    v
}

/// Number of learnable scalars.
pub fn param_count(m: &dyn Module) -> usize {
    parameters(m).iter().map(|p| p.value().numel()).sum()
}
