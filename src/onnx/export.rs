//! A condenser model written as ONNX: the forward pass on one image is traced
//! (`autograd::trace`), every traced op becomes its ONNX node, parameters and
//! buffers become initializers named as in the weights file, and the batch
//! axis stays dynamic. Optionally each batch norm that follows a convolution is
//! folded into it. The file is checked by reading it back through the importer.

use std::collections::HashMap;
use std::path::Path;

use super::proto::{self, attr_type, data_type};
use crate::autograd::Var;
use crate::autograd::trace::{self, Attr, Operand, Record};
use crate::error::{Error, Result};
use crate::nn::{Entry, Model};
use crate::tensor::Tensor;

/// The opset written (HardSwish needs 14; 17 is what current runtimes read best).
pub const OPSET: i64 = 17;

#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Fold each BatchNormalization that only follows a Conv into the Conv.
    pub fold_bn: bool,
    /// Per-channel (mean, std) to record in the file's metadata (the inputs
    /// the model expects are normalised with them).
    pub norm: Option<(Vec<f32>, Vec<f32>)>,
}

/// The ONNX bytes of `model` for [N, C, H, W] images.
pub fn to_bytes(model: &dyn Model, chw: [usize; 3], opts: &ExportOptions) -> Result<Vec<u8>> {
    let mut b = Builder::new(model)?;
    let [c, h, w] = chw;
    let gpu = model_gpu(model)?;
    let x = Var::leaf(Tensor::zeros(&gpu, &[1, c, h, w])?, true);
    b.names.insert(x.id(), "input".to_string());
    let (out, records) = trace::capture(|| model.forward(&x, false));
    let out = out?;
    for r in &records {
        b.record(r)?;
    }
    let mut outputs = vec![("logits", out.logits.clone())];
    if let Some(bx) = &out.boxes {
        outputs.push(("boxes", bx.clone()));
    }
    let mut graph_outputs = Vec::new();
    for (name, v) in &outputs {
        let src = b.name_of(v)?;
        b.nodes.push(simple(
            "Identity",
            vec![src],
            vec![name.to_string()],
            vec![],
        ));
        graph_outputs.push(value_info(name, v.shape()));
    }
    if opts.fold_bn {
        b.fold_batch_norms()?;
    }
    let graph = proto::GraphProto {
        node: b.nodes,
        name: Some(model.arch().to_string()),
        initializer: b.inits,
        input: vec![value_info("input", &[1, c, h, w])],
        output: graph_outputs,
        ..Default::default()
    };
    let mut meta = vec![entry("producer", "condenser"), entry("arch", model.arch())];
    if let Some((mean, std)) = &opts.norm {
        let list = |v: &[f32]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        meta.push(entry("input_mean", &list(mean)));
        meta.push(entry("input_std", &list(std)));
    }
    let m = proto::ModelProto {
        ir_version: Some(8),
        opset_import: vec![proto::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("condenser".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        metadata_props: meta,
        ..Default::default()
    };
    Ok(prost::Message::encode_to_vec(&m))
}

/// Writes `model` to `path` atomically (never over an existing file unless
/// `overwrite`), after checking that the bytes read back as a valid graph.
pub fn save(
    model: &dyn Model,
    chw: [usize; 3],
    path: &Path,
    opts: &ExportOptions,
    overwrite: bool,
) -> Result<()> {
    let bytes = to_bytes(model, chw, opts)?;
    super::graph::parse(path, &bytes)?;
    if path.exists() && !overwrite {
        return Err(Error::Config(format!(
            "{} exists; pass --overwrite to replace it, or choose another --out",
            crate::fsutil::shown(path)
        )));
    }
    crate::fsutil::write_atomic(path, &bytes)
}

fn model_gpu(model: &dyn Model) -> Result<crate::gpu::Gpu> {
    let mut gpu = None;
    model.visit("", &mut |_, e| {
        if gpu.is_none()
            && let Entry::Param(p) = e
        {
            gpu = Some(p.value().gpu().clone());
        }
    });
    gpu.ok_or_else(|| Error::Internal("a model without parameters".into()))
}

fn entry(k: &str, v: &str) -> proto::StringStringEntryProto {
    proto::StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    }
}

/// A tensor's type with a symbolic batch axis.
fn value_info(name: &str, shape: &[usize]) -> proto::ValueInfoProto {
    let dim = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| proto::Dimension {
            dim_value: (i > 0).then_some(d as i64),
            dim_param: (i == 0).then(|| "batch".to_string()),
        })
        .collect();
    proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            tensor_type: Some(proto::TypeTensor {
                elem_type: Some(data_type::FLOAT),
                shape: Some(proto::TensorShapeProto { dim }),
            }),
        }),
    }
}

fn simple(
    op: &str,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<proto::AttributeProto>,
) -> proto::NodeProto {
    proto::NodeProto {
        input: inputs,
        output: outputs,
        name: None,
        op_type: Some(op.into()),
        domain: None,
        attribute: attrs,
    }
}

fn attr(name: &str, a: &Attr) -> proto::AttributeProto {
    let mut p = proto::AttributeProto {
        name: Some(name.into()),
        ..Default::default()
    };
    match a {
        Attr::Int(i) => {
            p.r#type = Some(attr_type::INT);
            p.i = Some(*i);
        }
        Attr::Ints(v) => {
            p.r#type = Some(attr_type::INTS);
            p.ints = v.clone();
        }
        Attr::Float(f) => {
            p.r#type = Some(attr_type::FLOAT);
            p.f = Some(*f);
        }
        Attr::Str(s) => {
            p.r#type = Some(attr_type::STRING);
            p.s = Some(s.as_bytes().to_vec());
        }
    }
    p
}

fn f32_tensor(name: &str, shape: &[usize], v: &[f32]) -> proto::TensorProto {
    proto::TensorProto {
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type::FLOAT),
        name: Some(name.into()),
        raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    }
}

fn i64_tensor(name: &str, v: &[i64]) -> proto::TensorProto {
    proto::TensorProto {
        dims: vec![v.len() as i64],
        data_type: Some(data_type::INT64),
        name: Some(name.into()),
        raw_data: Some(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ..Default::default()
    }
}

struct Builder {
    /// Var id -> tensor name (the input, parameters, node outputs).
    names: HashMap<usize, String>,
    /// Parameter Var id -> its name in the weights file.
    params: HashMap<usize, (String, Var)>,
    buffers: Vec<(String, Tensor)>,
    nodes: Vec<proto::NodeProto>,
    inits: Vec<proto::TensorProto>,
    emitted: std::collections::HashSet<String>,
    /// Held so that Var ids stay unique while names refer to them.
    keep: Vec<Var>,
    count: usize,
}

impl Builder {
    fn new(model: &dyn Model) -> Result<Builder> {
        let (mut params, mut buffers) = (HashMap::new(), Vec::new());
        model.visit("", &mut |n, e| match e {
            Entry::Param(p) => {
                params.insert(p.id(), (n, p.clone()));
            }
            Entry::Buffer(t) => buffers.push((n, t.clone())),
            Entry::Counter(_) => {}
        });
        Ok(Builder {
            names: HashMap::new(),
            params,
            buffers,
            nodes: Vec::new(),
            inits: Vec::new(),
            emitted: Default::default(),
            keep: Vec::new(),
            count: 0,
        })
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.count += 1;
        format!("{hint}_{}", self.count)
    }

    /// The name of a Var the graph reads: the input, a node's output, a
    /// parameter (emitted as an initializer on first use) or a constant leaf.
    fn name_of(&mut self, x: &Var) -> Result<String> {
        if let Some(n) = self.names.get(&x.id()) {
            return Ok(n.clone());
        }
        if let Some((n, p)) = self.params.get(&x.id()).cloned() {
            self.emit_f32(&n, p.value())?;
            self.names.insert(x.id(), n.clone());
            self.keep.push(p);
            return Ok(n);
        }
        if x.is_leaf() {
            // A constant the forward pass made (a mask, a bound): its value.
            let n = self.fresh("const");
            self.emit_f32(&n, x.value())?;
            self.names.insert(x.id(), n.clone());
            self.keep.push(x.clone());
            return Ok(n);
        }
        Err(Error::Config(format!(
            "this model cannot be written as ONNX: its forward pass uses `{}`, which has no ONNX form in condenser",
            x.op()
        )))
    }

    fn emit_f32(&mut self, name: &str, t: &Tensor) -> Result<()> {
        if self.emitted.insert(name.to_string()) {
            self.inits.push(f32_tensor(name, t.shape(), &t.to_vec()?));
        }
        Ok(())
    }

    fn operand(&mut self, o: &Operand, prev: &Option<String>, node: &str) -> Result<String> {
        Ok(match o {
            Operand::Var(x) => self.name_of(x)?,
            Operand::Buffer(t) => {
                let known = self
                    .buffers
                    .iter()
                    .find(|(_, b)| b.same_buffer(t))
                    .map(|(n, _)| n.clone());
                let n = known.unwrap_or_else(|| self.fresh("buffer"));
                self.emit_f32(&n, t)?;
                n
            }
            Operand::Ints(v) => {
                let n = self.fresh(&format!("{node}_ints"));
                self.inits.push(i64_tensor(&n, v));
                n
            }
            Operand::Floats(v) => {
                let n = self.fresh(&format!("{node}_floats"));
                let shape: &[usize] = if v.len() == 1 { &[] } else { &[v.len()] };
                self.inits.push(f32_tensor(&n, shape, v));
                n
            }
            Operand::Prev => prev.clone().ok_or_else(|| {
                Error::Internal("a trace step reads a previous step that is not there".into())
            })?,
            Operand::Absent => String::new(),
        })
    }

    fn record(&mut self, r: &Record) -> Result<()> {
        let mut prev: Option<String> = None;
        for (k, step) in r.steps.iter().enumerate() {
            if let Some(what) = step.op.strip_prefix('!') {
                return Err(Error::Config(format!(
                    "this model cannot be written as ONNX: it uses {what}"
                )));
            }
            let node_name = self.fresh(step.op);
            let mut inputs = Vec::new();
            for o in &step.inputs {
                inputs.push(self.operand(o, &prev, &node_name)?);
            }
            while inputs.last().is_some_and(String::is_empty) {
                inputs.pop();
            }
            let out = if k + 1 == r.steps.len() {
                let n = format!("{node_name}_out");
                self.names.insert(r.output.id(), n.clone());
                self.keep.push(r.output.clone());
                n
            } else {
                format!("{node_name}_mid")
            };
            let attrs = step.attrs.iter().map(|(n, a)| attr(n, a)).collect();
            let mut node = simple(step.op, inputs, vec![out.clone()], attrs);
            node.name = Some(node_name);
            self.nodes.push(node);
            prev = Some(out);
        }
        Ok(())
    }

    fn init_values(&self, name: &str) -> Option<(Vec<i64>, Vec<f32>)> {
        let t = self
            .inits
            .iter()
            .find(|t| t.name.as_deref() == Some(name))?;
        let h = super::graph::host_tensor(t).ok()?;
        Some((t.dims.clone(), h.as_f32()))
    }

    /// Conv -> BatchNormalization pairs (the conv's output read by nothing
    /// else) become one Conv with W' = W s, b' = (b - mean) s + beta, where
    /// s = gamma / sqrt(var + eps).
    fn fold_batch_norms(&mut self) -> Result<()> {
        let mut k = 0;
        while k < self.nodes.len() {
            let bn = &self.nodes[k];
            if bn.op_type.as_deref() != Some("BatchNormalization") {
                k += 1;
                continue;
            }
            let x = bn.input[0].clone();
            let readers = self.nodes.iter().filter(|n| n.input.contains(&x)).count();
            let conv = self
                .nodes
                .iter()
                .position(|n| n.op_type.as_deref() == Some("Conv") && n.output[0] == x);
            let (Some(ci), 1) = (conv, readers) else {
                k += 1;
                continue;
            };
            let eps = bn
                .attribute
                .iter()
                .find(|a| a.name.as_deref() == Some("epsilon"))
                .and_then(|a| a.f)
                .unwrap_or(1e-5);
            let get = |i: usize| self.init_values(&self.nodes[k].input[i]).map(|v| v.1);
            let (Some(gamma), Some(beta), Some(mean), Some(var)) = (get(1), get(2), get(3), get(4))
            else {
                k += 1;
                continue;
            };
            let conv = self.nodes[ci].clone();
            let Some((wdims, w)) = self.init_values(&conv.input[1]) else {
                k += 1;
                continue;
            };
            let oc = wdims[0] as usize;
            let per = w.len() / oc.max(1);
            let bias = conv
                .input
                .get(2)
                .and_then(|b| self.init_values(b))
                .map(|v| v.1)
                .unwrap_or(vec![0.0; oc]);
            let s: Vec<f64> = (0..oc)
                .map(|o| gamma[o] as f64 / (var[o] as f64 + eps as f64).sqrt())
                .collect();
            let w2: Vec<f32> = w
                .iter()
                .enumerate()
                .map(|(i, &v)| (v as f64 * s[i / per]) as f32)
                .collect();
            let b2: Vec<f32> = (0..oc)
                .map(|o| ((bias[o] as f64 - mean[o] as f64) * s[o] + beta[o] as f64) as f32)
                .collect();
            let base = self.nodes[k].name.clone().unwrap_or_default();
            let (wn, bn_name) = (
                format!("{base}.folded_weight"),
                format!("{base}.folded_bias"),
            );
            let shape: Vec<usize> = wdims.iter().map(|&d| d as usize).collect();
            self.inits.push(f32_tensor(&wn, &shape, &w2));
            self.inits.push(f32_tensor(&bn_name, &[oc], &b2));
            // The conv's output now carries the normalised values: readers of
            // the batch norm's output read it instead.
            let bn_out = self.nodes[k].output[0].clone();
            let c = &mut self.nodes[ci];
            c.input = vec![c.input[0].clone(), wn, bn_name];
            let conv_out = c.output[0].clone();
            self.nodes.remove(k);
            for n in &mut self.nodes {
                for i in &mut n.input {
                    if *i == bn_out {
                        *i = conv_out.clone();
                    }
                }
            }
        }
        // Initializers nothing reads any more (the unfolded weights) go.
        let used: std::collections::HashSet<&String> =
            self.nodes.iter().flat_map(|n| n.input.iter()).collect();
        let keep: Vec<proto::TensorProto> = self
            .inits
            .iter()
            .filter(|t| t.name.as_ref().is_some_and(|n| used.contains(n)))
            .cloned()
            .collect();
        self.inits = keep;
        Ok(())
    }
}
