//! Plain-Rust references of every op: simple loops, f64 accumulation. They are
//! the oracle the GPU kernels are tested against, never a fast path.

pub mod elementwise;
pub mod matmul;
pub mod reduce;
pub mod softmax;
