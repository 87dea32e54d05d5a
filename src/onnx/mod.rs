//! ONNX in and out: `graph` reads and checks a file, `model` runs it as a
//! condenser model (teacher or trainable student), `ops` maps each operator
//! onto condenser's differentiable ops, `export` writes a model as ONNX.

pub mod graph;
pub mod model;
pub mod ops;
pub mod proto;

pub use graph::{Graph, load};
pub use model::{OnnxModel, OnnxOptions};
