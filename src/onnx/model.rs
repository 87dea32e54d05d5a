//! An ONNX graph as a condenser model: float initializers become parameters
//! (trainable when the graph is a student), batch-norm statistics buffers, and
//! the forward pass runs the nodes in order on the GPU. A probe pass at load
//! time checks every node on a one-image batch and records every tensor's shape,
//! so unsupported attributes fail before training and `inspect` can list them.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::graph::{self, Graph, HostData, HostTensor};
use super::ops::{Ctx, Value, eval};
use crate::autograd::{Var, functional as F, no_grad};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Entry, Model, ModelOutput, Module};
use crate::tasks::Task;
use crate::tensor::Tensor;

/// How to build a model from a graph.
#[derive(Clone, Debug, Default)]
pub struct OnnxOptions {
    /// Tensors the distillation paths attach to, early to late; empty: the last
    /// 4-D tensor at each spatial resolution.
    pub features: Vec<String>,
    /// Parameters get gradients (an imported student).
    pub trainable: bool,
    /// (H, W) of the input when the graph leaves them symbolic.
    pub input_hw: Option<(usize, usize)>,
}

pub struct OnnxModel {
    gpu: Gpu,
    pub graph: Graph,
    params: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Tensor>,
    input: String,
    /// [C, H, W] of one input image.
    pub input_chw: [usize; 3],
    output: String,
    taps: Vec<String>,
    pooled: Option<String>,
    channels: Vec<usize>,
    task: Task,
    /// Every float tensor's shape on the one-image probe, in node order.
    pub shapes: Vec<(String, String, Vec<usize>)>,
    /// GPU constants of the forward pass, made once (see `constant`).
    consts: RefCell<HashMap<String, (Option<HostTensor>, Var)>>,
}

/// Input positions read on the host (shapes, scales, bounds), by operator.
fn host_inputs(op: &str) -> &'static [usize] {
    match op {
        "Reshape" | "Split" | "Unsqueeze" | "Squeeze" | "ReduceMean" | "Upsample" => &[1],
        "Clip" => &[1, 2],
        "Resize" => &[1, 2, 3],
        "Slice" => &[1, 2, 3, 4],
        "Gather" => &[1],
        "Shape" => &[0],
        _ => &[],
    }
}

impl OnnxModel {
    /// Reads `path` and builds the model (see the module comment).
    pub fn load(gpu: &Gpu, path: &Path, opts: &OnnxOptions) -> Result<OnnxModel> {
        Self::from_graph(gpu, graph::load(path)?, opts)
    }

    pub fn from_graph(gpu: &Gpu, graph: Graph, opts: &OnnxOptions) -> Result<OnnxModel> {
        let bad = |msg: String, hint: &str| Error::weights(&graph.path, msg, hint.to_string());
        let input = match graph.inputs.as_slice() {
            [one] => one.clone(),
            other => {
                return Err(bad(
                    format!(
                        "has {} image inputs; condenser feeds exactly one",
                        other.len()
                    ),
                    "export the model with a single [N, C, H, W] input",
                ));
            }
        };
        let chw = match input.dims.as_slice() {
            [_, Some(c), h, w] => {
                let (dh, dw) = opts.input_hw.unwrap_or((0, 0));
                [*c, h.unwrap_or(dh), w.unwrap_or(dw)]
            }
            d => {
                return Err(bad(
                    format!(
                        "input {:?} has dimensions {d:?}, not [N, C, H, W] with C known",
                        input.name
                    ),
                    "export with a 4-D image input",
                ));
            }
        };
        if chw.contains(&0) {
            return Err(bad(
                format!("input {:?} leaves its height or width open", input.name),
                "pass --image-size, or export with a fixed height and width",
            ));
        }
        let (params, buffers) = Self::initializers(gpu, &graph, opts.trainable)?;
        let mut m = OnnxModel {
            gpu: gpu.clone(),
            output: graph.outputs[0].clone(),
            graph,
            params,
            buffers,
            input: input.name,
            input_chw: chw,
            taps: opts.features.clone(),
            pooled: None,
            channels: Vec::new(),
            task: Task::Classify,
            shapes: Vec::new(),
            consts: Default::default(),
        };
        m.probe()?;
        Ok(m)
    }

    /// Float initializers read as tensors become parameters; batch-norm
    /// statistics become buffers; the rest stay on the host.
    fn initializers(
        gpu: &Gpu,
        g: &Graph,
        trainable: bool,
    ) -> Result<(BTreeMap<String, Var>, BTreeMap<String, Tensor>)> {
        let (mut params, mut buffers) = (BTreeMap::new(), BTreeMap::new());
        for n in &g.nodes {
            for (i, name) in n.inputs.iter().enumerate() {
                let Some(HostTensor {
                    shape,
                    data: HostData::F32(v),
                }) = g.initializers.get(name)
                else {
                    continue;
                };
                if host_inputs(&n.op).contains(&i) {
                    continue;
                }
                // As for weights files: a parameter or statistic holding NaN or
                // an infinity is refused, not trained from.
                if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                    return Err(n.error(
                        g,
                        format!("initializer {name:?} holds {} at index {k}", v[k]),
                    ));
                }
                let t = || Tensor::from_slice(gpu, shape, v);
                if n.op == "BatchNormalization" && i >= 3 {
                    if !buffers.contains_key(name) {
                        buffers.insert(name.clone(), t()?);
                    }
                } else if !params.contains_key(name) {
                    params.insert(name.clone(), Var::leaf(t()?, trainable));
                }
            }
        }
        Ok((params, buffers))
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// A constant of the forward pass on the GPU (an interpolation matrix, a
    /// pooling divisor), made on first use under `key` and reused by every
    /// later step: no upload or kernel per step. `key` must name everything
    /// the value depends on.
    pub fn constant(&self, key: &str, make: impl FnOnce() -> Result<Var>) -> Result<Var> {
        if let Some((_, v)) = self.consts.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = crate::autograd::trace::quiet(|| {
            let _g = no_grad();
            make()
        })?;
        self.consts
            .borrow_mut()
            .insert(key.to_string(), (None, v.clone()));
        Ok(v)
    }

    /// A host value read as a GPU tensor, uploaded again only when it changes
    /// (values derived from shapes change with the batch size).
    pub fn host_var(&self, name: &str, h: &HostTensor) -> Result<Var> {
        let key = format!("host:{name}");
        if let Some((Some(old), v)) = self.consts.borrow().get(&key)
            && old == h
        {
            return Ok(v.clone());
        }
        let v = Var::constant(Tensor::from_slice(&self.gpu, &h.shape, &h.as_f32())?);
        self.consts
            .borrow_mut()
            .insert(key, (Some(h.clone()), v.clone()));
        Ok(v)
    }

    /// A value by name: computed, a parameter, or an initializer on the host.
    pub fn lookup(&self, env: &HashMap<String, Value>, name: &str) -> Option<Value> {
        if let Some(v) = env.get(name) {
            return Some(v.clone());
        }
        if let Some(p) = self.params.get(name) {
            return Some(Value::F(p.clone()));
        }
        self.graph.initializers.get(name).cloned().map(Value::H)
    }

    /// The host value of an initializer, for inputs read on the host.
    pub fn initializer(&self, name: &str) -> Option<&HostTensor> {
        self.graph.initializers.get(name)
    }

    /// The running (mean, var) of a BatchNormalization node.
    pub fn bn_stats(&self, c: &Ctx) -> Result<(Tensor, Tensor)> {
        // Initializers as a rule; graph inputs when the graph is run as a function.
        let get = |i: usize| -> Result<Tensor> {
            let name = c.node.input(i).unwrap_or("");
            if let Some(b) = self.buffers.get(name) {
                return Ok(b.clone());
            }
            match c.env.get(name) {
                Some(Value::F(v)) => Ok(v.value().clone()),
                Some(Value::H(h)) => Tensor::from_slice(&self.gpu, &h.shape, &h.as_f32()),
                None => Err(c.err("the running mean and variance must be initializers")),
            }
        };
        Ok((get(3)?, get(4)?))
    }

    /// Runs the graph; returns every value it computed.
    fn run(&self, x: &Var, train: bool) -> Result<HashMap<String, Value>> {
        let mut env = HashMap::new();
        env.insert(self.input.clone(), Value::F(x.clone()));
        self.run_nodes(env, train)
    }

    /// Runs every node in order on the values `env` starts with.
    fn run_nodes(
        &self,
        mut env: HashMap<String, Value>,
        train: bool,
    ) -> Result<HashMap<String, Value>> {
        for node in &self.graph.nodes {
            let c = Ctx {
                model: self,
                env: &env,
                node,
                train,
            };
            // Every error says which node of which file it came from.
            let outs = eval(&c).map_err(|e| match e {
                Error::Weights { .. } => e,
                other => node.error(&self.graph, other),
            })?;
            for (name, v) in node.outputs.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name.clone(), v);
                }
            }
        }
        Ok(env)
    }

    fn var_of(&self, env: &HashMap<String, Value>, name: &str) -> Result<Var> {
        match env.get(name) {
            Some(Value::F(v)) => Ok(v.clone()),
            _ => Err(Error::weights(
                &self.graph.path,
                format!("{name:?} is not a tensor the graph computes from the image"),
                "run `condenser inspect` on the file to list its tensors",
            )),
        }
    }

    /// One zero image through the graph: every node checked, shapes recorded,
    /// the task, the feature taps and the pooled vector chosen.
    fn probe(&mut self) -> Result<()> {
        let _g = no_grad();
        let [c, h, w] = self.input_chw;
        let x = Var::constant(Tensor::zeros(&self.gpu, &[1, c, h, w])?);
        let env = self.run(&x, false)?;
        let mut shapes = Vec::new();
        for n in &self.graph.nodes {
            for o in &n.outputs {
                if let Some(Value::F(v)) = env.get(o) {
                    shapes.push((o.clone(), n.op.clone(), v.shape().to_vec()));
                }
            }
        }
        self.shapes = shapes;
        let out = self.var_of(&env, &self.output)?;
        self.task = match out.shape().len() {
            2 => Task::Classify,
            4 => Task::Segment,
            _ => {
                return Err(Error::weights(
                    &self.graph.path,
                    format!(
                        "its output {:?} has shape {:?}: neither class scores [N, K] nor score maps [N, K, H, W]",
                        self.output,
                        out.shape()
                    ),
                    "export the model's logits as its first output",
                ));
            }
        };
        if self.taps.is_empty() {
            self.taps = self.default_taps();
        }
        self.channels.clear();
        for t in &self.taps {
            let v = self.var_of(&env, t)?;
            match v.shape() {
                [_, ch, _, _] => self.channels.push(*ch),
                s => {
                    return Err(Error::weights(
                        &self.graph.path,
                        format!(
                            "feature tensor {t:?} has shape {s:?}; distillation paths read [N, C, H, W] maps"
                        ),
                        "pick 4-D tensors (`condenser inspect` lists them)",
                    ));
                }
            }
        }
        self.pooled = self.pooled_name();
        Ok(())
    }

    /// The last 4-D tensor at each spatial resolution, early to late.
    fn default_taps(&self) -> Vec<String> {
        let mut taps: Vec<(Vec<usize>, String)> = Vec::new();
        for (name, _, s) in &self.shapes {
            if s.len() != 4 || (s[2] == 1 && s[3] == 1) || *name == self.output {
                continue;
            }
            let hw = s[2..].to_vec();
            match taps.last_mut() {
                Some((last, n)) if *last == hw => *n = name.clone(),
                _ => taps.push((hw, name.clone())),
            }
        }
        taps.into_iter().map(|(_, n)| n).collect()
    }

    /// The input of the classifier: the first input of the Gemm or MatMul that
    /// makes the output (through a bias Add).
    fn pooled_name(&self) -> Option<String> {
        let producer = |name: &str| {
            self.graph
                .nodes
                .iter()
                .find(|n| n.outputs.iter().any(|o| o == name))
        };
        let mut n = producer(&self.output)?;
        if n.op == "Add" {
            n = n
                .inputs
                .iter()
                .filter_map(|i| producer(i))
                .find(|p| p.op == "MatMul")?;
        }
        matches!(n.op.as_str(), "Gemm" | "MatMul").then(|| n.inputs[0].clone())
    }

    /// Names of the feature taps.
    pub fn taps(&self) -> &[String] {
        &self.taps
    }
}

impl Module for OnnxModel {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(String, Entry)) {
        for (n, p) in &self.params {
            f(crate::nn::join(prefix, n), Entry::Param(p));
        }
        for (n, b) in &self.buffers {
            f(crate::nn::join(prefix, n), Entry::Buffer(b));
        }
    }
}

impl Model for OnnxModel {
    fn forward(&self, x: &Var, train: bool) -> Result<ModelOutput> {
        let [c, h, w] = self.input_chw;
        if x.shape().len() != 4 || x.shape()[1..] != [c, h, w] {
            return Err(Error::shape(
                "onnx model",
                format!(
                    "the graph takes [N, {c}, {h}, {w}] images, got {:?}",
                    x.shape()
                ),
            ));
        }
        let env = self.run(x, train)?;
        let logits = self.var_of(&env, &self.output)?;
        let features = self
            .taps
            .iter()
            .map(|t| self.var_of(&env, t))
            .collect::<Result<Vec<_>>>()?;
        let pooled = match &self.pooled {
            Some(p) => F::flatten(&self.var_of(&env, p)?)?,
            None => logits.clone(),
        };
        Ok(ModelOutput {
            logits,
            boxes: None,
            features,
            pooled,
        })
    }
    fn arch(&self) -> &str {
        "onnx"
    }
    fn feature_channels(&self) -> Vec<usize> {
        self.channels.clone()
    }
    fn task(&self) -> Task {
        self.task
    }
}

impl OnnxModel {
    /// A graph with any inputs, for running it as a function (ONNX's node
    /// tests): no image input is required and nothing is probed.
    pub fn bare(gpu: &Gpu, graph: Graph) -> Result<OnnxModel> {
        let (params, buffers) = Self::initializers(gpu, &graph, false)?;
        Ok(OnnxModel {
            gpu: gpu.clone(),
            output: graph.outputs[0].clone(),
            graph,
            params,
            buffers,
            input: String::new(),
            input_chw: [0; 3],
            taps: Vec::new(),
            pooled: None,
            channels: Vec::new(),
            task: Task::Classify,
            shapes: Vec::new(),
            consts: Default::default(),
        })
    }

    /// Runs the graph on named inputs (eval mode); returns its outputs in order.
    /// Integer inputs, and float inputs the graph reads as constants (scales,
    /// bounds), stay on the host; the rest go to the GPU.
    pub fn evaluate(&self, inputs: Vec<(String, HostTensor)>) -> Result<Vec<HostTensor>> {
        let _g = no_grad();
        let mut env = HashMap::new();
        for (name, t) in inputs {
            let host_read = self.graph.nodes.iter().any(|n| {
                n.inputs
                    .iter()
                    .enumerate()
                    .any(|(i, x)| *x == name && host_inputs(&n.op).contains(&i))
            });
            let v = match &t.data {
                HostData::F32(v) if !host_read => {
                    Value::F(Var::constant(Tensor::from_slice(&self.gpu, &t.shape, v)?))
                }
                _ => Value::H(t),
            };
            env.insert(name, v);
        }
        let env = self.run_nodes(env, false)?;
        let mut out = Vec::new();
        for o in &self.graph.outputs {
            out.push(match self.lookup(&env, o) {
                Some(Value::F(v)) => HostTensor {
                    shape: v.shape().to_vec(),
                    data: HostData::F32(v.value().to_vec()?),
                },
                Some(Value::H(h)) => h,
                None => return Err(Error::Internal(format!("output {o:?} was not computed"))),
            });
        }
        Ok(out)
    }
}
