//! Weight initialisation (PyTorch's choices for the CIFAR ResNets).

use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// Kaiming normal, fan-out mode, for ReLU: N(0, 2 / fan_out) with
/// fan_out = out channels x kernel area.
pub fn kaiming_normal_fan_out(gpu: &Gpu, shape: &[usize], seed: u64) -> Result<Tensor> {
    let fan_out = shape[0] * shape[2..].iter().product::<usize>();
    Tensor::rand_normal(gpu, shape, 0.0, (2.0 / fan_out.max(1) as f32).sqrt(), seed)
}

/// PyTorch's default Linear/Conv init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
pub fn uniform_fan_in(gpu: &Gpu, shape: &[usize], fan_in: usize, seed: u64) -> Result<Tensor> {
    let b = 1.0 / (fan_in.max(1) as f32).sqrt();
    Tensor::rand_uniform(gpu, shape, -b, b, seed)
}

/// A seed stream so every parameter of a model gets its own seed.
pub struct Seeds(u64);

impl Seeds {
    pub fn new(seed: u64) -> Self {
        Seeds(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    pub fn next_seed(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xD1B5_4A32_D192_ED03);
        self.0
    }
}
