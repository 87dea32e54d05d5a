//! Plain-Rust references of every op: simple loops, f64 accumulation. They are
//! the oracle the GPU kernels are tested against, never a fast path.

pub mod conv;
pub mod detect;
pub mod distill;
pub mod elementwise;
pub mod health;
pub mod layout;
pub mod losses;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resample;
pub mod softmax;
