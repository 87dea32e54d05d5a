//! condenser: multi-path knowledge distillation on a GPU compute engine written
//! from scratch on wgpu (Vulkan, Metal, DX12; llvmpipe in headless CI).

/// A setting named by a string (flags, TOML, checkpoints): parsed with its
/// `FromStr` when read (serde `try_from = "String"`), written back through its
/// `From<T> for String` (serde `into`), and displayed under the same name.
macro_rules! named_setting {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = $crate::Error;
            fn try_from(s: String) -> $crate::Result<Self> {
                s.parse()
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&String::from(self.clone()))
            }
        }
    };
}

pub mod autograd;
pub mod bench;
pub mod bench_norm;
pub mod bench_replay;
pub mod cpu;
pub mod data;
pub mod distill;
pub mod error;
pub mod fsutil;
pub mod gpu;
pub mod nn;
pub mod onnx;
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
