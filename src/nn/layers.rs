//! Conv2d, Linear and BatchNorm2d.

use std::cell::Cell;

use super::init::{Seeds, kaiming_normal_fan_out, uniform_fan_in};
use super::{Entry, Module, join};
use crate::autograd::{Var, functional as F};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::conv::{BnPost, Conv2dConfig};
use crate::ops::norm::BnConfig;
use crate::tensor::Tensor;

pub struct Conv2d {
    pub weight: Var,
    pub bias: Option<Var>,
    pub cfg: Conv2dConfig,
}

/// The shape of a square convolution layer.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub cin: usize,
    pub cout: usize,
    /// Kernel side.
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub bias: bool,
    /// Channel groups (cin for a depthwise conv).
    pub groups: usize,
}

impl ConvSpec {
    /// `k` x `k`, stride 1, "same" padding for odd k, no bias.
    pub fn new(cin: usize, cout: usize, k: usize) -> ConvSpec {
        ConvSpec {
            cin,
            cout,
            k,
            stride: 1,
            pad: k / 2,
            bias: false,
            groups: 1,
        }
    }

    pub fn stride(self, stride: usize) -> ConvSpec {
        ConvSpec { stride, ..self }
    }

    pub fn groups(self, groups: usize) -> ConvSpec {
        ConvSpec { groups, ..self }
    }

    pub fn bias(self, bias: bool) -> ConvSpec {
        ConvSpec { bias, ..self }
    }
}

impl Conv2d {
    /// A square convolution, Kaiming-initialised (fan-out), no bias by default
    /// as in the ResNets.
    pub fn new(gpu: &Gpu, spec: ConvSpec, seeds: &mut Seeds) -> Result<Conv2d> {
        let ConvSpec {
            cin,
            cout,
            k,
            stride,
            pad,
            bias,
            groups,
        } = spec;
        let per_group = cin / groups.max(1);
        let w = kaiming_normal_fan_out(gpu, &[cout, per_group, k, k], seeds.next_seed())?;
        let b = if bias {
            Some(Var::leaf(
                uniform_fan_in(gpu, &[cout], per_group * k * k, seeds.next_seed())?,
                true,
            ))
        } else {
            None
        };
        Ok(Conv2d {
            weight: Var::leaf(w, true),
            bias: b,
            cfg: Conv2dConfig {
                groups,
                ..Conv2dConfig::new(stride, pad)
            },
        })
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        F::conv2d(x, &self.weight, self.bias.as_ref(), self.cfg)
    }

    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }
}

impl Module for Conv2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        f(join(prefix, "weight"), Entry::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), Entry::Param(b));
        }
    }
}

pub struct Linear {
    pub weight: Var,
    pub bias: Option<Var>,
}

impl Linear {
    /// PyTorch's default init: U(+-1/sqrt(in)) for weight and bias.
    pub fn new(gpu: &Gpu, inp: usize, out: usize, seeds: &mut Seeds) -> Result<Linear> {
        Ok(Linear {
            weight: Var::leaf(
                uniform_fan_in(gpu, &[out, inp], inp, seeds.next_seed())?,
                true,
            ),
            bias: Some(Var::leaf(
                uniform_fan_in(gpu, &[out], inp, seeds.next_seed())?,
                true,
            )),
        })
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        F::linear(x, &self.weight, self.bias.as_ref())
    }
}

impl Module for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        f(join(prefix, "weight"), Entry::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(join(prefix, "bias"), Entry::Param(b));
        }
    }
}

pub struct BatchNorm2d {
    pub weight: Var,
    pub bias: Var,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Cell<i64>,
    pub momentum: f32,
    pub eps: f32,
}

/// What a batch norm op takes besides its input: its affine parameters, its
/// running statistics and how it normalises.
type BnArgs<'a> = ((&'a Var, &'a Var), (&'a Tensor, &'a Tensor), BnConfig);

impl BatchNorm2d {
    pub fn new(gpu: &Gpu, c: usize) -> Result<BatchNorm2d> {
        Ok(BatchNorm2d {
            weight: Var::leaf(crate::ops::full(gpu, &[c], 1.0)?, true),
            bias: Var::leaf(Tensor::zeros(gpu, &[c])?, true),
            running_mean: Tensor::zeros(gpu, &[c])?,
            running_var: crate::ops::full(gpu, &[c], 1.0)?,
            num_batches_tracked: Cell::new(0),
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    pub fn forward(&self, x: &Var, train: bool) -> Result<Var> {
        self.run(train, |(a, r, c)| F::batch_norm(x, a, r, c))
    }

    /// relu(self.forward(x)), as one op (`F::batch_norm_relu`).
    pub fn forward_relu(&self, x: &Var, train: bool) -> Result<Var> {
        self.run(train, |(a, r, c)| F::batch_norm_relu(x, a, r, c))
    }

    /// relu(self.forward(x) + residual), as one op (`F::batch_norm_add_relu`).
    pub fn forward_add_relu(&self, x: &Var, residual: &Var, train: bool) -> Result<Var> {
        self.run(train, |(a, r, c)| {
            F::batch_norm_add_relu(x, residual, a, r, c)
        })
    }

    fn run(&self, train: bool, op: impl FnOnce(BnArgs<'_>) -> Result<Var>) -> Result<Var> {
        // As PyTorch: training uses the batch statistics and moves the running
        // ones; eval (the teacher's mode) uses the running ones and changes nothing.
        if train {
            self.num_batches_tracked
                .set(self.num_batches_tracked.get() + 1);
        }
        op((
            (&self.weight, &self.bias),
            (&self.running_mean, &self.running_var),
            BnConfig {
                training: train,
                momentum: self.momentum,
                eps: self.eps,
            },
        ))
    }
}

/// bn(conv(x)), then `post` (ReLU, or the residual's add and ReLU), as
/// `conv.forward` and `bn`'s forward would run it. In eval mode with nothing
/// needing a gradient (a frozen teacher's forward, inference) it is one op
/// (`F::conv2d_bn_eval`, the same bits): where the convolution runs as an
/// implicit GEMM, batch norm happens as it stores its output.
pub fn conv_bn(
    conv: &Conv2d,
    bn: &BatchNorm2d,
    x: &Var,
    post: BnPost<&Var>,
    train: bool,
) -> Result<Var> {
    let inputs = [x, &conv.weight, &bn.weight, &bn.bias];
    let frozen = !crate::autograd::needs_grad(inputs.into_iter().chain(post.residual()));
    if !train && frozen && conv.bias.is_none() {
        return F::conv2d_bn_eval(
            x,
            &conv.weight,
            conv.cfg,
            (&bn.weight, &bn.bias),
            (&bn.running_mean, &bn.running_var),
            bn.eps,
            post,
        );
    }
    let h = conv.forward(x)?;
    match post {
        BnPost::None => bn.forward(&h, train),
        BnPost::Relu => bn.forward_relu(&h, train),
        BnPost::AddRelu(r) => bn.forward_add_relu(&h, r, train),
    }
}

impl Module for BatchNorm2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        f(join(prefix, "weight"), Entry::Param(&self.weight));
        f(join(prefix, "bias"), Entry::Param(&self.bias));
        f(
            join(prefix, "running_mean"),
            Entry::Buffer(&self.running_mean),
        );
        f(
            join(prefix, "running_var"),
            Entry::Buffer(&self.running_var),
        );
        f(
            join(prefix, "num_batches_tracked"),
            Entry::Counter(&self.num_batches_tracked),
        );
    }
}
