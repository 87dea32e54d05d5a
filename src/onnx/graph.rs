//! An ONNX file read into host memory and checked: its opset, its nodes with
//! their attributes, its initializers as f32 or i64 tensors, its inputs and
//! outputs. Every node's operator is checked against what condenser runs here,
//! before a GPU buffer exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::proto::{self, ModelProto, TensorProto, attr_type, data_type};
use crate::error::{Error, Result};

/// Largest ONNX file read (protobuf messages are limited to 2 GiB anyway).
pub const MAX_FILE_BYTES: u64 = 2 << 30;

/// The newest opset read (the operators condenser runs did not change
/// meaning between 13 and 28 beyond new element types).
pub const MAX_OPSET: i64 = 28;

/// The operators condenser runs, as ONNX names them.
pub const SUPPORTED: &[&str] = &[
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Resize",
    "Shape",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
    "Upsample",
];

/// Host data of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor in host memory (initializers, constants, shape arithmetic).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

impl HostTensor {
    pub fn ints(shape: Vec<usize>, v: Vec<i64>) -> HostTensor {
        HostTensor {
            shape,
            data: HostData::I64(v),
        }
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// The values as i64 (floats are truncated, as ONNX's Cast does).
    pub fn as_i64(&self) -> Vec<i64> {
        match &self.data {
            HostData::I64(v) => v.clone(),
            HostData::F32(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }
    pub fn as_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// One attribute's value.
#[derive(Clone, Debug)]
pub enum Attr {
    Float(f32),
    Int(i64),
    Str(String),
    Tensor(HostTensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
}

/// A node: operator, name, input and output tensor names, attributes.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: BTreeMap<String, Attr>,
}

/// A graph input: its name and its dimensions (None where symbolic, as a batch).
#[derive(Clone, Debug)]
pub struct GraphInput {
    pub name: String,
    pub dims: Vec<Option<usize>>,
}

/// A checked ONNX model.
#[derive(Clone, Debug)]
pub struct Graph {
    pub path: PathBuf,
    /// The default domain's opset version.
    pub opset: i64,
    pub nodes: Vec<Node>,
    pub initializers: BTreeMap<String, HostTensor>,
    /// Inputs that are not initializers: what a caller feeds.
    pub inputs: Vec<GraphInput>,
    pub outputs: Vec<String>,
    /// The model's metadata_props (condenser writes input_mean / input_std).
    pub metadata: BTreeMap<String, String>,
}

impl Graph {
    /// The per-channel (mean, std) the model's inputs are normalised with, when
    /// its metadata says (`input_mean`, `input_std`: comma-separated, one per
    /// channel, std > 0); an error when they are there but malformed.
    pub fn input_norm(&self, channels: usize) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let (Some(m), Some(s)) = (
            self.metadata.get("input_mean"),
            self.metadata.get("input_std"),
        ) else {
            return Ok(None);
        };
        let parse = |v: &str| -> Option<Vec<f32>> {
            v.split(',')
                .map(|x| x.trim().parse::<f32>().ok().filter(|f| f.is_finite()))
                .collect()
        };
        match (parse(m), parse(s)) {
            (Some(m), Some(s))
                if m.len() == channels && s.len() == channels && s.iter().all(|&v| v > 0.0) =>
            {
                Ok(Some((m, s)))
            }
            _ => Err(Error::weights(
                &self.path,
                format!(
                    "its input_mean {m:?} / input_std {s:?} metadata are not {channels} numbers each (std > 0)"
                ),
                "fix or remove the metadata (onnx: model.metadata_props)",
            )),
        }
    }
}

impl Node {
    /// A clear error about this node.
    pub fn error(&self, g: &Graph, msg: impl std::fmt::Display) -> Error {
        Error::weights(
            &g.path,
            format!(
                "node {:?} ({}, opset {}): {msg}",
                self.name, self.op, g.opset
            ),
            "condenser runs the operators and attributes listed in the README's ONNX section; \
             re-export the model without this construct, or open an issue with the file",
        )
    }
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.attrs.get(name) {
            Some(Attr::Int(i)) => *i,
            _ => default,
        }
    }
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match self.attrs.get(name) {
            Some(Attr::Float(f)) => *f,
            Some(Attr::Int(i)) => *i as f32,
            _ => default,
        }
    }
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.attrs.get(name) {
            Some(Attr::Ints(v)) => Some(v),
            _ => None,
        }
    }
    pub fn string(&self, name: &str, default: &str) -> String {
        match self.attrs.get(name) {
            Some(Attr::Str(s)) => s.clone(),
            _ => default.to_string(),
        }
    }
    /// The i-th input's name when it is given (optional inputs may be "").
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Reads and checks an ONNX file.
pub fn load(path: &Path) -> Result<Graph> {
    let bytes = crate::fsutil::read_regular(path, MAX_FILE_BYTES)?;
    parse(path, &bytes)
}

/// Checks a serialized ModelProto (named `path` in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Graph> {
    let bad = |msg: String| {
        Error::weights(
            path,
            msg,
            "pass a model saved by torch.onnx.export, onnx.save or `condenser export`",
        )
    };
    let model: ModelProto =
        proto::decode(bytes).map_err(|e| bad(format!("is not an ONNX model (protobuf: {e})")))?;
    let graph = model
        .graph
        .ok_or_else(|| bad("is not an ONNX model: it holds no graph".into()))?;
    if !model.functions.is_empty() {
        return Err(bad(
            "defines model-local functions, which condenser does not run".into(),
        ));
    }
    let opset = opset_of(&model.opset_import, &bad)?;
    let mut g = Graph {
        path: path.to_path_buf(),
        opset,
        nodes: Vec::new(),
        initializers: BTreeMap::new(),
        inputs: Vec::new(),
        outputs: graph
            .output
            .iter()
            .map(|o| o.name.clone().unwrap_or_default())
            .collect(),
        metadata: model
            .metadata_props
            .iter()
            .filter_map(|e| Some((e.key.clone()?, e.value.clone()?)))
            .collect(),
    };
    if !graph.sparse_initializer.is_empty() {
        return Err(bad(
            "holds sparse initializers, which condenser does not read".into(),
        ));
    }
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        let host = host_tensor(t).map_err(|m| bad(format!("initializer {name:?}: {m}")))?;
        g.initializers.insert(name, host);
    }
    for i in &graph.input {
        let name = i.name.clone().unwrap_or_default();
        if g.initializers.contains_key(&name) {
            continue;
        }
        g.inputs.push(GraphInput {
            dims: dims_of(i),
            name,
        });
    }
    for (k, n) in graph.node.iter().enumerate() {
        g.nodes
            .push(node_of(n, k, &g).map_err(|m| bad(m.to_string()))?);
    }
    check_ops(&g)?;
    fold_identity_initializers(&mut g);
    if g.outputs.is_empty() {
        return Err(bad("declares no graph outputs".into()));
    }
    Ok(g)
}

fn opset_of(imports: &[proto::OperatorSetIdProto], bad: &dyn Fn(String) -> Error) -> Result<i64> {
    let mut opset = None;
    for o in imports {
        match o.domain.as_deref().unwrap_or("") {
            "" | "ai.onnx" => opset = o.version,
            other => {
                return Err(bad(format!(
                    "imports the operator domain {other:?}; condenser runs only the default ONNX domain"
                )));
            }
        }
    }
    let opset = opset.ok_or_else(|| bad("imports no ONNX opset".into()))?;
    if !(7..=MAX_OPSET).contains(&opset) {
        return Err(bad(format!(
            "uses opset {opset}; condenser reads opsets 7 to {MAX_OPSET}"
        )));
    }
    Ok(opset)
}

fn dims_of(v: &proto::ValueInfoProto) -> Vec<Option<usize>> {
    let Some(shape) = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
    else {
        return Vec::new();
    };
    shape
        .dim
        .iter()
        .map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize))
        .collect()
}

fn node_of(n: &proto::NodeProto, k: usize, g: &Graph) -> std::result::Result<Node, String> {
    let op = n.op_type.clone().unwrap_or_default();
    let name = n
        .name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("#{k} {op}"));
    if let Some(d) = n
        .domain
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "ai.onnx")
    {
        return Err(format!(
            "node {name:?} ({op}) is in the domain {d:?}; condenser runs only the default ONNX domain (opset {})",
            g.opset
        ));
    }
    let mut attrs = BTreeMap::new();
    for a in &n.attribute {
        let an = a.name.clone().unwrap_or_default();
        if a.ref_attr_name.is_some() {
            return Err(format!(
                "node {name:?} ({op}): attribute {an:?} refers to a function's attribute"
            ));
        }
        let v = match a.r#type.unwrap_or(0) {
            attr_type::FLOAT => Attr::Float(a.f.unwrap_or(0.0)),
            attr_type::INT => Attr::Int(a.i.unwrap_or(0)),
            attr_type::STRING => {
                Attr::Str(String::from_utf8_lossy(a.s.as_deref().unwrap_or(&[])).into())
            }
            attr_type::TENSOR => Attr::Tensor(
                host_tensor(
                    a.t.as_ref()
                        .ok_or("a tensor attribute without its tensor")?,
                )
                .map_err(|m| format!("node {name:?} ({op}) attribute {an:?}: {m}"))?,
            ),
            attr_type::FLOATS => Attr::Floats(a.floats.clone()),
            attr_type::INTS => Attr::Ints(a.ints.clone()),
            t => {
                return Err(format!(
                    "node {name:?} ({op}): attribute {an:?} has type {t}, which condenser does not read"
                ));
            }
        };
        attrs.insert(an, v);
    }
    Ok(Node {
        op,
        name,
        inputs: n.input.clone(),
        outputs: n.output.clone(),
        attrs,
    })
}

/// PyTorch's exporter stores equal initializers once and hands them to their
/// other users through Identity nodes (every fresh batch norm's running
/// variance is all ones). Each user gets its own copy here, so that training
/// moves each parameter and each running statistic on its own, as in the
/// network that was exported.
fn fold_identity_initializers(g: &mut Graph) {
    let outputs: std::collections::BTreeSet<&String> = g.outputs.iter().collect();
    let mut copies = Vec::new();
    g.nodes.retain(|n| {
        let source = (n.op == "Identity")
            .then(|| n.inputs.first().and_then(|i| g.initializers.get(i)))
            .flatten();
        match (source, n.outputs.first()) {
            (Some(t), Some(out)) if !outputs.contains(out) => {
                copies.push((out.clone(), t.clone()));
                false
            }
            _ => true,
        }
    });
    g.initializers.extend(copies);
}

/// Every node's operator is one condenser runs; the first that is not is named.
fn check_ops(g: &Graph) -> Result<()> {
    for n in &g.nodes {
        if !SUPPORTED.contains(&n.op.as_str()) {
            return Err(n.error(
                g,
                format!(
                    "the operator {} is not supported; condenser runs {}",
                    n.op,
                    SUPPORTED.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// A TensorProto's values as f32 or i64, from raw_data or the typed fields.
pub fn host_tensor(t: &TensorProto) -> std::result::Result<HostTensor, String> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err("its data is stored in an external file, which condenser does not read; \
                    save the model with its weights inside (onnx.save(..., save_as_external_data=False))"
            .into());
    }
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("has a negative dimension {d}"));
        }
        shape.push(d as usize);
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("its dimensions overflow")?;
    let raw = t.raw_data.as_deref();
    let dt = t.data_type.unwrap_or(0);
    let data = match dt {
        data_type::FLOAT => HostData::F32(match raw {
            Some(r) => le_values(r, n, 4, |b| {
                f32::from_le_bytes(b.try_into().unwrap_or_default())
            })?,
            None => t.float_data.clone(),
        }),
        data_type::DOUBLE => HostData::F32(match raw {
            Some(r) => le_values(r, n, 8, |b| {
                f64::from_le_bytes(b.try_into().unwrap_or_default()) as f32
            })?,
            None => t.double_data.iter().map(|&v| v as f32).collect(),
        }),
        data_type::INT64 => HostData::I64(match raw {
            Some(r) => le_values(r, n, 8, |b| {
                i64::from_le_bytes(b.try_into().unwrap_or_default())
            })?,
            None => t.int64_data.clone(),
        }),
        data_type::INT32 => HostData::I64(match raw {
            Some(r) => le_values(r, n, 4, |b| {
                i32::from_le_bytes(b.try_into().unwrap_or_default()) as i64
            })?,
            None => t.int32_data.iter().map(|&v| v as i64).collect(),
        }),
        data_type::INT8 | data_type::UINT8 | data_type::BOOL => HostData::I64(match raw {
            Some(r) => le_values(r, n, 1, |b| {
                if dt == data_type::INT8 {
                    b[0] as i8 as i64
                } else {
                    b[0] as i64
                }
            })?,
            None => t.int32_data.iter().map(|&v| v as i64).collect(),
        }),
        other => {
            return Err(format!(
                "has element type {other}; condenser reads float, double and integer tensors"
            ));
        }
    };
    let len = match &data {
        HostData::F32(v) => v.len(),
        HostData::I64(v) => v.len(),
    };
    if len != n {
        return Err(format!(
            "holds {len} values but its shape {shape:?} needs {n}"
        ));
    }
    Ok(HostTensor { shape, data })
}

fn le_values<T>(
    raw: &[u8],
    n: usize,
    size: usize,
    f: impl Fn(&[u8]) -> T,
) -> std::result::Result<Vec<T>, String> {
    if raw.len() != n * size {
        return Err(format!(
            "its raw data has {} bytes, but {n} values of {size} bytes need {}",
            raw.len(),
            n * size
        ));
    }
    Ok(raw.chunks_exact(size).map(f).collect())
}
