//! condenser: multi-path knowledge distillation on a GPU compute engine written
//! from scratch on wgpu (Vulkan, Metal, DX12; llvmpipe in headless CI).

pub mod autograd;
pub mod bench;
pub mod cpu;
pub mod data;
pub mod distill;
pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod report;
pub mod rng;
pub mod shape;
pub mod tasks;
pub mod tensor;

pub use error::{Error, Result};
pub use gpu::Gpu;
pub use tensor::{DType, Tensor};
