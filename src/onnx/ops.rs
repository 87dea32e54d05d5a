//! One ONNX node at a time: each operator with its attributes mapped onto
//! condenser's differentiable ops (so every imported op has its backward), and
//! the shape arithmetic exporters emit (Shape, Gather, Unsqueeze, Concat of
//! integers, ...) evaluated on the host.

use std::collections::HashMap;

use super::graph::{Attr, Graph, HostData, HostTensor, Node};
use super::model::OnnxModel;
use crate::autograd::{Var, functional as F};
use crate::error::{Error, Result};
use crate::ops::UnaryOp;
use crate::ops::conv::Conv2dConfig;
use crate::ops::layout::StepSlice;
use crate::ops::norm::BnConfig;
use crate::ops::pool::Pool2dConfig;
use crate::tensor::Tensor;

/// A value flowing through the graph: a GPU tensor, or a small host tensor
/// (shapes, indices, constants read by attributes-as-inputs).
#[derive(Clone)]
pub enum Value {
    F(Var),
    H(HostTensor),
}

/// What a node sees while it runs.
pub struct Ctx<'a> {
    pub model: &'a OnnxModel,
    pub env: &'a HashMap<String, Value>,
    pub node: &'a Node,
    pub train: bool,
}

impl Ctx<'_> {
    pub fn graph(&self) -> &Graph {
        &self.model.graph
    }
    pub fn err(&self, msg: impl std::fmt::Display) -> Error {
        self.node.error(self.graph(), msg)
    }
    fn value(&self, i: usize) -> Result<Option<Value>> {
        let Some(name) = self.node.input(i) else {
            return Ok(None);
        };
        self.model.lookup(self.env, name).map(Some).ok_or_else(|| {
            self.err(format!(
                "input {name:?} is not produced by any earlier node"
            ))
        })
    }
    /// Input i as a GPU tensor (host values are uploaded).
    fn var(&self, i: usize) -> Result<Var> {
        match self.value(i)? {
            Some(Value::F(v)) => Ok(v),
            Some(Value::H(h)) => self.model.host_var(self.node.input(i).unwrap_or(""), &h),
            None => Err(self.err(format!("needs input {i}"))),
        }
    }
    fn opt_var(&self, i: usize) -> Result<Option<Var>> {
        match self.node.input(i) {
            Some(_) => self.var(i).map(Some),
            None => Ok(None),
        }
    }
    /// Input i as a host tensor: it must be known without running the GPU.
    pub fn host(&self, i: usize) -> Result<Option<HostTensor>> {
        if let Some(t) = self.node.input(i).and_then(|n| self.model.initializer(n)) {
            return Ok(Some(t.clone()));
        }
        match self.value(i)? {
            Some(Value::H(h)) => Ok(Some(h)),
            Some(Value::F(_)) => Err(self.err(format!(
                "input {i} ({:?}) must be a constant (an initializer or computed from shapes), \
                 but it is computed from the image",
                self.node.input(i).unwrap_or("")
            ))),
            None => Ok(None),
        }
    }
    pub fn ints_input(&self, i: usize) -> Result<Option<Vec<i64>>> {
        Ok(self.host(i)?.map(|h| h.as_i64()))
    }
    fn rank(&self, v: &Var) -> usize {
        v.shape().len()
    }
    fn axis(&self, a: i64, rank: usize) -> Result<usize> {
        let r = rank as i64;
        let ax = if a < 0 { a + r } else { a };
        if !(0..r).contains(&ax) {
            return Err(self.err(format!("axis {a} is out of range for rank {rank}")));
        }
        Ok(ax as usize)
    }
}

/// Runs one node; returns its outputs in order.
pub fn eval(c: &Ctx) -> Result<Vec<Value>> {
    let n = c.node;
    let one = |v: Var| Ok(vec![Value::F(v)]);
    match n.op.as_str() {
        "Conv" => one(conv(c)?),
        "BatchNormalization" => one(batch_norm(c)?),
        "Relu" => one(F::relu(&c.var(0)?)?),
        "LeakyRelu" => one(F::activation(
            &c.var(0)?,
            UnaryOp::LeakyRelu {
                slope: n.float("alpha", 0.01),
            },
        )?),
        "Sigmoid" => one(F::activation(&c.var(0)?, UnaryOp::Sigmoid)?),
        "HardSigmoid" => one(F::activation(
            &c.var(0)?,
            UnaryOp::HardSigmoid {
                alpha: n.float("alpha", 0.2),
                beta: n.float("beta", 0.5),
            },
        )?),
        "HardSwish" => one(F::activation(&c.var(0)?, UnaryOp::HardSwish)?),
        "Clip" => one(clip(c)?),
        "Add" | "Sub" | "Mul" | "Div" => arith(c),
        "MaxPool" | "AveragePool" => one(pool(c)?),
        "GlobalAveragePool" => {
            let x = c.var(0)?;
            let s = x.shape().to_vec();
            if s.len() != 4 {
                return Err(c.err(format!("needs [N, C, H, W], got {s:?}")));
            }
            one(F::reshape(&F::global_avg_pool(&x)?, &[s[0], s[1], 1, 1])?)
        }
        "ReduceMean" => one(reduce_mean(c)?),
        "Flatten" => one(flatten(c)?),
        "Reshape" => reshape(c),
        "Transpose" => one(transpose(c)?),
        "Concat" => concat(c),
        "Split" => split(c),
        "Slice" => slice(c),
        "Gemm" => one(gemm(c)?),
        "MatMul" => one(matmul(c)?),
        "Resize" | "Upsample" => one(resize(c)?),
        "Softmax" | "LogSoftmax" => one(softmax(c)?),
        "Identity" | "Dropout" => identity(c),
        "Constant" => constant(c),
        "Shape" => shape(c),
        "Gather" => gather(c),
        "Unsqueeze" | "Squeeze" => squeeze(c),
        "Cast" => cast(c),
        other => Err(c.err(format!("the operator {other} is not supported"))),
    }
}

/// ONNX pads [x1_begin, x2_begin, x1_end, x2_end] (or auto_pad) for a window
/// of `k` (dilated) over `size` with `stride`, as (top, bottom, left, right).
fn pads_2d(c: &Ctx, size: [usize; 2], k: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4]> {
    let n = c.node;
    let auto = n.string("auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" => {
            let p = n.ints("pads").map(<[i64]>::to_vec).unwrap_or(vec![0; 4]);
            if p.len() != 4 || p.iter().any(|&v| v < 0) {
                return Err(c.err(format!("pads {p:?} must be 4 values >= 0 for a 2-D window")));
            }
            Ok([p[0] as usize, p[2] as usize, p[1] as usize, p[3] as usize])
        }
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut out = [0; 4];
            for d in 0..2 {
                let o = size[d].div_ceil(stride[d]);
                let total = ((o - 1) * stride[d] + k[d]).saturating_sub(size[d]);
                let (small, big) = (total / 2, total - total / 2);
                let (begin, end) = if auto == "SAME_UPPER" {
                    (small, big)
                } else {
                    (big, small)
                };
                out[2 * d] = begin;
                out[2 * d + 1] = end;
            }
            Ok(out)
        }
        other => Err(c.err(format!(
            "auto_pad {other:?} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"
        ))),
    }
}

fn pair(c: &Ctx, name: &str, default: usize) -> Result<[usize; 2]> {
    match c.node.ints(name) {
        None => Ok([default; 2]),
        Some([a, b]) if *a >= 1 && *b >= 1 => Ok([*a as usize, *b as usize]),
        Some(v) => Err(c.err(format!("{name} {v:?} must be two values >= 1 (2-D only)"))),
    }
}

fn four_d(c: &Ctx, x: &Var) -> Result<[usize; 4]> {
    match x.shape() {
        &[n, ch, h, w] => Ok([n, ch, h, w]),
        s => Err(c.err(format!(
            "needs a 3-D or 4-D input ([N, C, L] or [N, C, H, W]), got {s:?} (3-D convolutions and pools are not supported)"
        ))),
    }
}

/// The node's 1-D attributes as 2-D ones over a [N, C, 1, L] view (a unit
/// height: kernel 1, stride 1, dilation 1, no padding).
fn lift_1d(n: &Node) -> Node {
    let mut n = n.clone();
    for (name, unit) in [("kernel_shape", 1), ("strides", 1), ("dilations", 1)] {
        if let Some(Attr::Ints(v)) = n.attrs.get(name).cloned() {
            n.attrs
                .insert(name.into(), Attr::Ints([vec![unit], v].concat()));
        }
    }
    if let Some(Attr::Ints(p)) = n.attrs.get("pads").cloned()
        && p.len() == 2
    {
        n.attrs
            .insert("pads".into(), Attr::Ints(vec![0, p[0], 0, p[1]]));
    }
    n
}

/// Runs a 2-D operator on a 1-D input [N, C, L] as [N, C, 1, L] (ONNX's 1-D
/// convolutions and pools), reshaping the weight when there is one.
fn as_2d(c: &Ctx, f: fn(&Ctx, Var, Option<Var>) -> Result<Var>) -> Result<Var> {
    let x = c.var(0)?;
    let w = if c.node.op == "Conv" {
        Some(c.var(1)?)
    } else {
        None
    };
    let s = x.shape().to_vec();
    if s.len() != 3 {
        return f(c, x, w);
    }
    let lifted = lift_1d(c.node);
    let c1 = Ctx {
        model: c.model,
        env: c.env,
        node: &lifted,
        train: c.train,
    };
    let x4 = F::reshape(&x, &[s[0], s[1], 1, s[2]])?;
    let w4 = match w {
        Some(w) => match w.shape() {
            &[m, ci, k] => Some(F::reshape(&w, &[m, ci, 1, k])?),
            ws => return Err(c.err(format!("weight {ws:?} is not 3-D for a 1-D input"))),
        },
        None => None,
    };
    let y = f(&c1, x4, w4)?;
    let ys = y.shape().to_vec();
    F::reshape(&y, &[ys[0], ys[1], ys[3]])
}

fn conv(c: &Ctx) -> Result<Var> {
    as_2d(c, conv_2d)
}

fn conv_2d(c: &Ctx, x: Var, w: Option<Var>) -> Result<Var> {
    let w = w.ok_or_else(|| c.err("needs a weight"))?;
    let b = c.opt_var(2)?;
    let [_, _, h, wd] = four_d(c, &x)?;
    let ws = w.shape().to_vec();
    if ws.len() != 4 || ws[2] == 0 || ws[3] == 0 {
        return Err(c.err(format!("weight {ws:?} is not a 4-D kernel")));
    }
    let dil = pair(c, "dilations", 1)?;
    let stride = pair(c, "strides", 1)?;
    let k = [(ws[2] - 1) * dil[0] + 1, (ws[3] - 1) * dil[1] + 1];
    let [t, bo, l, r] = pads_2d(c, [h, wd], k, stride)?;
    let groups = c.node.int("group", 1);
    if groups < 1 {
        return Err(c.err(format!("group {groups} must be >= 1")));
    }
    let (x, padding) = if t == bo && l == r {
        (x, (t, l))
    } else {
        (F::pad2d(&x, [t, bo, l, r], 0.0)?, (0, 0))
    };
    let cfg = Conv2dConfig {
        stride: (stride[0], stride[1]),
        padding,
        dilation: (dil[0], dil[1]),
        groups: groups as usize,
    };
    F::conv2d(&x, &w, b.as_ref(), cfg).map_err(|e| c.err(e))
}

fn batch_norm(c: &Ctx) -> Result<Var> {
    let n = c.node;
    if n.int("training_mode", 0) != 0 || n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(c.err("training-mode batch norm graphs are not supported; export in eval mode"));
    }
    let x = c.var(0)?;
    let (gamma, beta) = (c.var(1)?, c.var(2)?);
    let (mean, var) = c.model.bn_stats(c)?;
    let s = x.shape().to_vec();
    let x4 = match s.len() {
        4 => x.clone(),
        2 => F::reshape(&x, &[s[0], s[1], 1, 1])?,
        _ => return Err(c.err(format!("needs [N, C] or [N, C, H, W], got {s:?}"))),
    };
    // ONNX's momentum weighs the running value (PyTorch's weighs the batch).
    let cfg = BnConfig {
        training: c.train,
        momentum: 1.0 - n.float("momentum", 0.9),
        eps: n.float("epsilon", 1e-5),
    };
    let y = F::batch_norm(&x4, (&gamma, &beta), (&mean, &var), cfg).map_err(|e| c.err(e))?;
    F::reshape(&y, &s)
}

fn clip(c: &Ctx) -> Result<Var> {
    let n = c.node;
    let (mut lo, mut hi) = (n.float("min", f32::MIN), n.float("max", f32::MAX));
    if c.graph().opset >= 11 {
        if let Some(t) = c.host(1)? {
            lo = t.as_f32().first().copied().unwrap_or(lo);
        }
        if let Some(t) = c.host(2)? {
            hi = t.as_f32().first().copied().unwrap_or(hi);
        }
    }
    let x = c.var(0)?;
    if lo == 0.0 && hi == f32::MAX {
        return F::relu(&x);
    }
    F::activation(&x, UnaryOp::Clip { lo, hi })
}

fn arith(c: &Ctx) -> Result<Vec<Value>> {
    let op = c.node.op.as_str();
    if let (Some(Value::H(a)), Some(Value::H(b))) = (c.value(0)?, c.value(1)?) {
        return Ok(vec![Value::H(host_arith(c, op, &a, &b)?)]);
    }
    let (a, b) = (c.var(0)?, c.var(1)?);
    let y = match op {
        "Add" => F::add(&a, &b),
        "Sub" => F::sub(&a, &b),
        "Mul" => F::mul(&a, &b),
        _ => F::div(&a, &b),
    };
    Ok(vec![Value::F(y.map_err(|e| c.err(e))?)])
}

/// Integer arithmetic on shapes (same shapes or a scalar operand).
fn host_arith(c: &Ctx, op: &str, a: &HostTensor, b: &HostTensor) -> Result<HostTensor> {
    let (x, y) = (a.as_i64(), b.as_i64());
    let n = x.len().max(y.len());
    if !(x.len() == y.len() || x.len() == 1 || y.len() == 1) {
        return Err(c.err("host arithmetic needs equal shapes or a scalar"));
    }
    let at = |v: &[i64], i: usize| if v.len() == 1 { v[0] } else { v[i] };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (p, q) = (at(&x, i), at(&y, i));
        out.push(match op {
            "Add" => p + q,
            "Sub" => p - q,
            "Mul" => p * q,
            _ if q == 0 => return Err(c.err("division by zero in shape arithmetic")),
            _ => p / q,
        });
    }
    let shape = if x.len() >= y.len() {
        a.shape.clone()
    } else {
        b.shape.clone()
    };
    Ok(HostTensor::ints(shape, out))
}

fn pool(c: &Ctx) -> Result<Var> {
    as_2d(c, pool_2d)
}

fn pool_2d(c: &Ctx, x: Var, _: Option<Var>) -> Result<Var> {
    let n = c.node;
    let [_, _, h, w] = four_d(c, &x)?;
    let k = pair(c, "kernel_shape", 0).and_then(|k| {
        if n.ints("kernel_shape").is_none() {
            Err(c.err("kernel_shape is required"))
        } else {
            Ok(k)
        }
    })?;
    let stride = pair(c, "strides", 1)?;
    let dil = pair(c, "dilations", 1)?;
    // The window's extent with its dilation sets the padding and output size.
    let ext = [(k[0] - 1) * dil[0] + 1, (k[1] - 1) * dil[1] + 1];
    if n.int("storage_order", 0) != 0 || n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
        return Err(c.err("the Indices output and storage_order are not supported"));
    }
    let [t, b, l, r] = pads_2d(c, [h, w], ext, stride)?;
    let ceil = n.int("ceil_mode", 0) != 0;
    // Output size; in ceil mode a last window must start inside the input or
    // the leading padding (ONNX and PyTorch agree on this).
    let out = |size: usize, pb: usize, pe: usize, k: usize, s: usize| -> Result<(usize, usize)> {
        let span = size + pb + pe;
        if span < k {
            return Err(c.err(format!("a window of {k} does not fit {size} plus padding")));
        }
        let mut o = if ceil {
            (span - k).div_ceil(s) + 1
        } else {
            (span - k) / s + 1
        };
        if ceil && (o - 1) * s >= size + pb {
            o -= 1;
        }
        let extra = ((o - 1) * s + k).saturating_sub(span);
        Ok((o, extra))
    };
    let (_, eh) = out(h, t, b, ext[0], stride[0])?;
    let (_, ew) = out(w, l, r, ext[1], stride[1])?;
    let cfg = Pool2dConfig {
        kernel: (k[0], k[1]),
        stride: (stride[0], stride[1]),
        padding: (0, 0),
        dilation: (dil[0], dil[1]),
    };
    let pads = [t, b + eh, l, r + ew];
    if n.op == "MaxPool" {
        return F::max_pool2d(&F::pad2d(&x, pads, f32::NEG_INFINITY)?, cfg);
    }
    let y = F::avg_pool2d(&F::pad2d(&x, pads, 0.0)?, cfg)?;
    let include_pad = n.int("count_include_pad", 0) != 0;
    if pads == [0; 4] || (include_pad && eh == 0 && ew == 0) {
        return Ok(y);
    }
    // The divisor is the number of counted positions under each window: the
    // input's, plus the explicit padding when count_include_pad.
    // It depends on the node and the input's size only: made once.
    let key = format!("pool divisor:{}:{h}x{w}", n.name);
    let frac = c.model.constant(&key, || {
        let mask = Var::constant(crate::ops::full(c.model.gpu(), &[1, 1, h, w], 1.0)?);
        let (mt, mb, ml, mr) = if include_pad {
            (t, b, l, r)
        } else {
            (0, 0, 0, 0)
        };
        let mask = F::pad2d(&mask, [mt, mb, ml, mr], 1.0)?;
        let mask = F::pad2d(&mask, [t - mt, b + eh - mb, l - ml, r + ew - mr], 0.0)?;
        F::avg_pool2d(&mask, cfg)
    })?;
    F::div(&y, &frac)
}

/// The mean over `axes` (all when none are given, unless
/// noop_with_empty_axes), keeping them as size 1 when keepdims.
fn reduce_mean(c: &Ctx) -> Result<Var> {
    let n = c.node;
    let x = c.var(0)?;
    let axes = match n.ints("axes") {
        Some(a) => Some(a.to_vec()),
        None => c.ints_input(1)?,
    };
    let s = x.shape().to_vec();
    let mut axes: Vec<usize> = match axes.filter(|a| !a.is_empty()) {
        Some(a) => a
            .iter()
            .map(|&v| c.axis(v, s.len()))
            .collect::<Result<_>>()?,
        None if n.int("noop_with_empty_axes", 0) != 0 => return Ok(x),
        None => (0..s.len()).collect(),
    };
    axes.sort_unstable();
    axes.dedup();
    let keep = n.int("keepdims", 1) != 0;
    if s.len() == 4 && axes == [2, 3] {
        // Global average pooling: one kernel.
        let y = F::global_avg_pool(&x)?;
        return if keep {
            F::reshape(&y, &[s[0], s[1], 1, 1])
        } else {
            Ok(y)
        };
    }
    let mut y = x;
    let mut count = 1usize;
    for &a in &axes {
        y = F::sum_axis(&y, a)?;
        count *= s[a];
    }
    let y = F::scale(&y, 1.0 / count.max(1) as f32)?;
    if keep {
        return Ok(y);
    }
    let out: Vec<usize> = (0..s.len())
        .filter(|d| !axes.contains(d))
        .map(|d| s[d])
        .collect();
    F::reshape(&y, &out)
}

fn flatten(c: &Ctx) -> Result<Var> {
    let x = c.var(0)?;
    let s = x.shape().to_vec();
    let a = c.node.int("axis", 1);
    let a = if a < 0 { a + s.len() as i64 } else { a };
    if !(0..=s.len() as i64).contains(&a) {
        return Err(c.err(format!("axis {a} is out of range for {s:?}")));
    }
    let a = a as usize;
    let outer: usize = s[..a].iter().product();
    let inner: usize = s[a..].iter().product();
    F::reshape(&x, &[outer, inner])
}

/// ONNX's Reshape shape rule: 0 copies the input's dimension (unless allowzero),
/// one -1 is inferred.
fn target_shape(c: &Ctx, input: &[usize], spec: &[i64]) -> Result<Vec<usize>> {
    let allow_zero = c.node.int("allowzero", 0) != 0;
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(*input.get(i).ok_or_else(|| {
                c.err(format!(
                    "shape {spec:?}: 0 at axis {i} copies an axis the input {input:?} lacks"
                ))
            })?),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(c.err(format!("shape {spec:?} is not a valid Reshape target"))),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(c.err(format!("cannot reshape {input:?} to {spec:?}")));
        }
        out[i] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(c.err(format!(
            "cannot reshape {input:?} ({total} values) to {spec:?}"
        )));
    }
    Ok(out)
}

fn reshape(c: &Ctx) -> Result<Vec<Value>> {
    let spec = match c.ints_input(1)? {
        Some(s) => s,
        None => c
            .node
            .ints("shape")
            .map(<[i64]>::to_vec)
            .ok_or_else(|| c.err("needs a shape"))?,
    };
    match c.value(0)? {
        Some(Value::H(h)) => {
            let shape = target_shape(c, &h.shape, &spec)?;
            Ok(vec![Value::H(HostTensor {
                shape,
                data: h.data,
            })])
        }
        _ => {
            let x = c.var(0)?;
            let shape = target_shape(c, x.shape(), &spec)?;
            Ok(vec![Value::F(F::reshape(&x, &shape)?)])
        }
    }
}

fn transpose(c: &Ctx) -> Result<Var> {
    let x = c.var(0)?;
    let r = x.shape().len();
    let perm: Vec<usize> = match c.node.ints("perm") {
        Some(p) => p.iter().map(|&a| c.axis(a, r)).collect::<Result<_>>()?,
        None => (0..r).rev().collect(),
    };
    F::permute(&x, &perm).map_err(|e| c.err(e))
}

fn concat(c: &Ctx) -> Result<Vec<Value>> {
    let n = c.node;
    let vals: Vec<Value> = (0..n.inputs.len())
        .filter_map(|i| c.value(i).transpose())
        .collect::<Result<_>>()?;
    if vals.iter().all(|v| matches!(v, Value::H(_))) {
        let mut out = Vec::new();
        for v in &vals {
            if let Value::H(h) = v {
                if h.shape.len() > 1 {
                    return Err(c.err("host concatenation handles 1-D tensors only"));
                }
                out.extend(h.as_i64());
            }
        }
        return Ok(vec![Value::H(HostTensor::ints(vec![out.len()], out))]);
    }
    let vars: Vec<Var> = (0..n.inputs.len())
        .filter(|&i| n.input(i).is_some())
        .map(|i| c.var(i))
        .collect::<Result<_>>()?;
    let axis = c.axis(n.int("axis", 0), c.rank(&vars[0]))?;
    // Empty pieces (a 0-sized axis) contribute nothing.
    let refs: Vec<&Var> = vars.iter().filter(|v| v.value().numel() > 0).collect();
    Ok(vec![Value::F(
        F::concat(&refs, axis).map_err(|e| c.err(e))?,
    )])
}

fn split(c: &Ctx) -> Result<Vec<Value>> {
    let n = c.node;
    let x = c.var(0)?;
    let axis = c.axis(n.int("axis", 0), c.rank(&x))?;
    let len = x.shape()[axis];
    let parts = n.outputs.len();
    let sizes: Vec<usize> = match n.ints("split").map(<[i64]>::to_vec).or(c.ints_input(1)?) {
        Some(s) => s.iter().map(|&v| v.max(0) as usize).collect(),
        None => {
            let k = n.int("num_outputs", parts as i64).max(1) as usize;
            let each = len.div_ceil(k);
            (0..k)
                .map(|i| each.min(len.saturating_sub(i * each)))
                .collect()
        }
    };
    if sizes.len() != parts || sizes.iter().sum::<usize>() != len {
        return Err(c.err(format!(
            "split sizes {sizes:?} do not divide an axis of {len} into {parts} outputs"
        )));
    }
    let mut start = 0;
    let mut out = Vec::new();
    for s in sizes {
        out.push(Value::F(F::slice(&x, axis, start, s)?));
        start += s;
    }
    Ok(out)
}

fn slice(c: &Ctx) -> Result<Vec<Value>> {
    let n = c.node;
    let get = |i: usize, attr: &str| -> Result<Option<Vec<i64>>> {
        if c.graph().opset >= 10 {
            c.ints_input(i)
        } else {
            Ok(n.ints(attr).map(<[i64]>::to_vec))
        }
    };
    let starts = get(1, "starts")?.ok_or_else(|| c.err("needs starts"))?;
    let ends = get(2, "ends")?.ok_or_else(|| c.err("needs ends"))?;
    let value = c.value(0)?.ok_or_else(|| c.err("needs data"))?;
    let shape = match &value {
        Value::F(v) => v.shape().to_vec(),
        Value::H(h) => h.shape.clone(),
    };
    let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = if c.graph().opset >= 10 {
        c.ints_input(4)?
    } else {
        None
    };
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(c.err("starts, ends, axes and steps differ in length"));
    }
    let mut cur = value;
    for k in 0..starts.len() {
        let ax = c.axis(axes[k], shape.len())?;
        let (first, len, step) = slice_range(shape[ax] as i64, starts[k], ends[k], steps[k])
            .ok_or_else(|| c.err("a slice step of 0"))?;
        cur = match cur {
            Value::F(v) => Value::F(F::step_slice(
                &v,
                StepSlice {
                    axis: ax,
                    start: first,
                    step,
                    len,
                },
            )?),
            Value::H(h) if h.shape.len() == 1 => {
                let src = h.as_i64();
                let v = (0..len)
                    .map(|i| src[(first as isize + i as isize * step) as usize])
                    .collect::<Vec<_>>();
                Value::H(HostTensor::ints(vec![len], v))
            }
            Value::H(_) => return Err(c.err("host slices handle 1-D tensors only")),
        };
    }
    Ok(vec![cur])
}

/// ONNX Slice's clamping on an axis of `d`: (first index, count, step), or
/// None for a zero step.
fn slice_range(d: i64, start: i64, end: i64, step: i64) -> Option<(usize, usize, isize)> {
    if step == 0 {
        return None;
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (norm(start), norm(end));
    let (s, len) = if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        (s, if e > s { (e - s + step - 1) / step } else { 0 })
    } else {
        let (s, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
        (s, if s > e { (s - e - step - 1) / -step } else { 0 })
    };
    Some((
        if len > 0 { s as usize } else { 0 },
        len as usize,
        step as isize,
    ))
}

fn gemm(c: &Ctx) -> Result<Var> {
    let n = c.node;
    let (a, b) = (c.var(0)?, c.var(1)?);
    let (alpha, beta) = (n.float("alpha", 1.0), n.float("beta", 1.0));
    let (ta, tb) = (n.int("transA", 0) != 0, n.int("transB", 0) != 0);
    let mut y = F::matmul(&a, &b, ta, tb).map_err(|e| c.err(e))?;
    if alpha != 1.0 {
        y = F::scale(&y, alpha)?;
    }
    if let Some(bias) = c.opt_var(2)? {
        let bias = if beta != 1.0 {
            F::scale(&bias, beta)?
        } else {
            bias
        };
        y = F::add(&y, &bias).map_err(|e| c.err(e))?;
    }
    Ok(y)
}

/// numpy's matmul: 1-D operands get a unit axis (dropped again), batch axes
/// broadcast; [..., M, K] x [K, N] folds the batch into the rows.
fn matmul(c: &Ctx) -> Result<Var> {
    let (a, b) = (c.var(0)?, c.var(1)?);
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    if sa.is_empty() || sb.is_empty() {
        return Err(c.err("MatMul of a scalar is not defined"));
    }
    let a2 = if sa.len() == 1 {
        F::reshape(&a, &[1, sa[0]])?
    } else {
        a.clone()
    };
    let b2 = if sb.len() == 1 {
        F::reshape(&b, &[sb[0], 1])?
    } else {
        b.clone()
    };
    let (ra, rb) = (a2.shape().to_vec(), b2.shape().to_vec());
    let (m, k, n) = (ra[ra.len() - 2], ra[ra.len() - 1], rb[rb.len() - 1]);
    if rb[rb.len() - 2] != k {
        return Err(c.err(format!("inner sizes differ: {sa:?} x {sb:?}")));
    }
    let batch_a = &ra[..ra.len() - 2];
    let batch_b = &rb[..rb.len() - 2];
    let batch = crate::shape::broadcast_shape("MatMul", batch_a, batch_b).map_err(|e| c.err(e))?;
    let nb: usize = batch.iter().product();
    let y = if batch_b.iter().product::<usize>() == 1 && rb.len() <= 2 {
        let rows = nb * m;
        F::reshape(
            &F::matmul(
                &F::reshape(&a2, &[rows, k])?,
                &F::reshape(&b2, &[k, n])?,
                false,
                false,
            )?,
            &[rows, n],
        )?
    } else {
        // Broadcast both to the full batch (adding zeros keeps the gradient's
        // reduction over broadcast axes), then one batched product.
        let full = |x: &Var, rows: usize, cols: usize| -> Result<Var> {
            let mut s = batch.clone();
            s.extend([rows, cols]);
            let z = Var::constant(Tensor::zeros(c.model.gpu(), &s)?);
            F::reshape(&F::add(x, &z)?, &[nb, rows, cols])
        };
        F::matmul(&full(&a2, m, k)?, &full(&b2, k, n)?, false, false)?
    };
    let mut out = batch.clone();
    if sa.len() > 1 {
        out.push(m);
    }
    if sb.len() > 1 {
        out.push(n);
    }
    F::reshape(&y, &out)
}

fn resize(c: &Ctx) -> Result<Var> {
    super::resize::resize(c, &c.var(0)?)
}

fn softmax(c: &Ctx) -> Result<Var> {
    let n = c.node;
    let x = c.var(0)?;
    let r = c.rank(&x);
    let log = n.op == "LogSoftmax";
    let default = if c.graph().opset >= 13 { -1 } else { 1 };
    let axis = c.axis(n.int("axis", default), r)?;
    if c.graph().opset < 13 && axis != r - 1 {
        // Before opset 13 the input is flattened to 2-D at `axis`.
        let s = x.shape().to_vec();
        let outer: usize = s[..axis].iter().product();
        let y = F::softmax(
            &F::reshape(&x, &[outer, s[axis..].iter().product()])?,
            1.0,
            log,
        )?;
        return F::reshape(&y, &s);
    }
    if axis == r - 1 {
        return F::softmax(&x, 1.0, log);
    }
    let mut perm: Vec<usize> = (0..r).filter(|&a| a != axis).collect();
    perm.push(axis);
    let mut inverse = vec![0; r];
    for (d, &a) in perm.iter().enumerate() {
        inverse[a] = d;
    }
    let y = F::softmax(&F::permute(&x, &perm)?, 1.0, log)?;
    F::permute(&y, &inverse)
}

fn identity(c: &Ctx) -> Result<Vec<Value>> {
    if c.node.op == "Dropout" && c.node.outputs.get(1).is_some_and(|o| !o.is_empty()) {
        return Err(c.err("Dropout's mask output is not supported"));
    }
    Ok(vec![c.value(0)?.ok_or_else(|| c.err("needs an input"))?])
}

fn constant(c: &Ctx) -> Result<Vec<Value>> {
    let n = c.node;
    let t = match n.attrs.iter().next() {
        Some((_, Attr::Tensor(t))) => t.clone(),
        Some((k, Attr::Float(f))) if k == "value_float" => HostTensor {
            shape: vec![],
            data: HostData::F32(vec![*f]),
        },
        Some((k, Attr::Floats(f))) if k == "value_floats" => HostTensor {
            shape: vec![f.len()],
            data: HostData::F32(f.clone()),
        },
        Some((k, Attr::Int(i))) if k == "value_int" => HostTensor::ints(vec![], vec![*i]),
        Some((k, Attr::Ints(v))) if k == "value_ints" => HostTensor::ints(vec![v.len()], v.clone()),
        _ => return Err(c.err("needs a value, value_float(s) or value_int(s) attribute")),
    };
    Ok(vec![Value::H(t)])
}

fn shape(c: &Ctx) -> Result<Vec<Value>> {
    let s: Vec<i64> = match c.value(0)?.ok_or_else(|| c.err("needs an input"))? {
        Value::F(v) => v.shape().iter().map(|&d| d as i64).collect(),
        Value::H(h) => h.shape.iter().map(|&d| d as i64).collect(),
    };
    let r = s.len() as i64;
    let norm = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = norm(c.node.int("start", 0));
    let end = norm(c.node.int("end", r));
    let v = s[start..end.max(start)].to_vec();
    Ok(vec![Value::H(HostTensor::ints(vec![v.len()], v))])
}

/// Indices a Gather on tensors takes.
const MAX_GATHER: usize = 1 << 16;

/// Gather along an axis: integer shape arithmetic on the host; tensors on the
/// GPU as one slice per index, concatenated (so the gradient flows back).
fn gather(c: &Ctx) -> Result<Vec<Value>> {
    let idx = c.host(1)?.ok_or_else(|| c.err("needs indices"))?;
    let axis = c.node.int("axis", 0);
    if let Some(Value::H(data)) = c.value(0)?
        && data.shape.len() == 1
        && axis == 0
        && matches!(data.data, HostData::I64(_))
    {
        return host_gather(c, &data, &idx);
    }
    let x = c.var(0)?;
    let s = x.shape().to_vec();
    let a = c.axis(axis, s.len())?;
    let d = s[a] as i64;
    // One slice per index: a bound keeps a hostile index list from running for hours.
    if idx.numel() > MAX_GATHER {
        return Err(c.err(format!(
            "{} indices are more than the {MAX_GATHER} a Gather on tensors takes",
            idx.numel()
        )));
    }
    let mut pieces = Vec::new();
    for i in idx.as_i64() {
        let j = if i < 0 { i + d } else { i };
        if !(0..d).contains(&j) {
            return Err(c.err(format!("index {i} is outside an axis of {d}")));
        }
        pieces.push(F::slice(&x, a, j as usize, 1)?);
    }
    if pieces.is_empty() {
        return Err(c.err("a Gather with no indices is not supported"));
    }
    let refs: Vec<&Var> = pieces.iter().collect();
    let y = F::concat(&refs, a)?;
    let out: Vec<usize> = s[..a]
        .iter()
        .chain(&idx.shape)
        .chain(&s[a + 1..])
        .copied()
        .collect();
    Ok(vec![Value::F(F::reshape(&y, &out)?)])
}

fn host_gather(c: &Ctx, data: &HostTensor, idx: &HostTensor) -> Result<Vec<Value>> {
    let v = data.as_i64();
    let d = v.len() as i64;
    let mut out = Vec::new();
    for i in idx.as_i64() {
        let j = if i < 0 { i + d } else { i };
        out.push(
            *v.get(j as usize)
                .filter(|_| j >= 0)
                .ok_or_else(|| c.err(format!("index {i} is outside {d} values")))?,
        );
    }
    Ok(vec![Value::H(HostTensor::ints(idx.shape.clone(), out))])
}

fn squeeze(c: &Ctx) -> Result<Vec<Value>> {
    let n = c.node;
    let axes = match n.ints("axes") {
        Some(a) => Some(a.to_vec()),
        None => c.ints_input(1)?,
    };
    let value = c.value(0)?.ok_or_else(|| c.err("needs data"))?;
    let shape = match &value {
        Value::F(v) => v.shape().to_vec(),
        Value::H(h) => h.shape.clone(),
    };
    let new_shape = if n.op == "Unsqueeze" {
        let axes = axes.ok_or_else(|| c.err("needs axes"))?;
        let r = shape.len() + axes.len();
        let mut ax: Vec<usize> = axes.iter().map(|&a| c.axis(a, r)).collect::<Result<_>>()?;
        ax.sort_unstable();
        let mut out = shape.clone();
        for a in ax {
            out.insert(a.min(out.len()), 1);
        }
        out
    } else {
        let r = shape.len();
        let drop: Vec<usize> = match axes {
            Some(a) => a.iter().map(|&v| c.axis(v, r)).collect::<Result<_>>()?,
            None => (0..r).filter(|&i| shape[i] == 1).collect(),
        };
        if drop.iter().any(|&a| shape[a] != 1) {
            return Err(c.err(format!("cannot squeeze axes {drop:?} of {shape:?}")));
        }
        shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, &d)| d)
            .collect()
    };
    Ok(vec![match value {
        Value::F(v) => Value::F(F::reshape(&v, &new_shape)?),
        Value::H(h) => Value::H(HostTensor {
            shape: new_shape,
            data: h.data,
        }),
    }])
}

fn cast(c: &Ctx) -> Result<Vec<Value>> {
    let to = c.node.int("to", 1) as i32;
    use super::proto::data_type as dt;
    match c.value(0)?.ok_or_else(|| c.err("needs an input"))? {
        Value::F(v) if to == dt::FLOAT || to == dt::DOUBLE => Ok(vec![Value::F(v)]),
        Value::F(_) => Err(c.err(format!("casting image data to type {to} is not supported"))),
        Value::H(h) if to == dt::FLOAT || to == dt::DOUBLE => Ok(vec![Value::H(HostTensor {
            shape: h.shape.clone(),
            data: HostData::F32(h.as_f32()),
        })]),
        Value::H(h) => Ok(vec![Value::H(HostTensor::ints(
            h.shape.clone(),
            h.as_i64(),
        ))]),
    }
}
