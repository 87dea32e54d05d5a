//! ONNX in and out: `graph` reads and checks a file, `model` runs it as a
//! condenser model (teacher or trainable student), `ops` maps each operator
//! onto condenser's differentiable ops, `export` writes a model as ONNX.

pub mod export;
pub mod graph;
pub mod model;
pub mod ops;
pub mod proto;
pub mod resize;

pub use graph::{Graph, load};
pub use model::{OnnxModel, OnnxOptions};

/// A listing of an ONNX file for `condenser inspect`: opset, input, output,
/// then every tensor the graph computes with the operator that makes it and
/// its shape for one image; the default feature taps are marked.
pub fn inspect(
    gpu: &crate::gpu::Gpu,
    path: &std::path::Path,
    size: Option<usize>,
) -> crate::error::Result<String> {
    use std::fmt::Write;
    let opts = OnnxOptions {
        input_hw: size.map(|s| (s, s)),
        ..Default::default()
    };
    let m = OnnxModel::load(gpu, path, &opts)?;
    let mut out = String::new();
    let [c, h, w] = m.input_chw;
    let params: usize = crate::nn::param_count(&m);
    let _ = writeln!(
        out,
        "{}: opset {}, {} nodes, {params} parameters",
        path.display(),
        m.graph.opset,
        m.graph.nodes.len()
    );
    let _ = writeln!(
        out,
        "input  {:?}: [N, {c}, {h}, {w}]",
        m.graph.inputs[0].name
    );
    let _ = writeln!(
        out,
        "output {:?}: task {}",
        m.graph.outputs[0],
        crate::nn::Model::task(&m)
    );
    let _ = writeln!(
        out,
        "\ntensors (shape for one image; * = default feature tap):"
    );
    for (name, op, shape) in &m.shapes {
        let mark = if m.taps().contains(name) { "*" } else { " " };
        let _ = writeln!(out, "{mark} {name:<40} {op:<20} {shape:?}");
    }
    Ok(out)
}
