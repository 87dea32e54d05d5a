//! Elementwise ops (shaders/elementwise.wgsl): binary with broadcasting, unary, fill.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::{KernelSpec, WINDOW_VEC4S as WIN4};
use crate::shape::{broadcast_shape, broadcast_strides};
use crate::tensor::{DType, Tensor};

const MAX_DIMS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// a where b > 0, else 0 (the backward of ReLU: a = dy, b = y).
    ReluMask,
    /// The backwards of the activations below: a = dy, b = the activation's
    /// input (its output for sigmoid).
    ClipGrad {
        lo: f32,
        hi: f32,
    },
    LeakyReluGrad {
        slope: f32,
    },
    SigmoidGrad,
    HardSigmoidGrad {
        alpha: f32,
        beta: f32,
    },
    HardSwishGrad,
}

impl BinaryOp {
    /// The shader's OP code and its two scalar parameters.
    fn code(self) -> (u32, f32, f32) {
        match self {
            BinaryOp::Add => (0, 0.0, 0.0),
            BinaryOp::Sub => (1, 0.0, 0.0),
            BinaryOp::Mul => (2, 0.0, 0.0),
            BinaryOp::Div => (3, 0.0, 0.0),
            BinaryOp::ReluMask => (4, 0.0, 0.0),
            BinaryOp::ClipGrad { lo, hi } => (5, lo, hi),
            BinaryOp::LeakyReluGrad { slope } => (6, slope, 0.0),
            BinaryOp::SigmoidGrad => (7, 0.0, 0.0),
            BinaryOp::HardSigmoidGrad { alpha, beta } => (8, alpha, beta),
            BinaryOp::HardSwishGrad => (9, 0.0, 0.0),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// alpha * x + beta (scale, shift, negate).
    Affine {
        alpha: f32,
        beta: f32,
    },
    Relu,
    Exp,
    Log,
    Sqrt,
    /// min(max(x, lo), hi) (ONNX Clip; ReLU6 is [0, 6]).
    Clip {
        lo: f32,
        hi: f32,
    },
    /// x for x >= 0, slope * x below.
    LeakyRelu {
        slope: f32,
    },
    Sigmoid,
    /// max(0, min(1, alpha * x + beta)) (ONNX's defaults: 0.2, 0.5).
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// x * max(0, min(1, x / 6 + 1 / 2)).
    HardSwish,
}

impl UnaryOp {
    /// The shader's OP code and its two scalar parameters.
    fn code(self) -> (u32, f32, f32) {
        match self {
            UnaryOp::Affine { alpha, beta } => (0, alpha, beta),
            UnaryOp::Relu => (1, 0.0, 0.0),
            UnaryOp::Exp => (2, 0.0, 0.0),
            UnaryOp::Log => (3, 0.0, 0.0),
            UnaryOp::Sqrt => (4, 0.0, 0.0),
            UnaryOp::Clip { lo, hi } => (5, lo, hi),
            UnaryOp::LeakyRelu { slope } => (6, slope, 0.0),
            UnaryOp::Sigmoid => (7, 0.0, 0.0),
            UnaryOp::HardSigmoid { alpha, beta } => (8, alpha, beta),
            UnaryOp::HardSwish => (9, 0.0, 0.0),
        }
    }
}

crate::kernel_params! {
    file = "elementwise";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct EwParams {
        n: u32,
        ndim: u32,
        alpha: f32,
        beta: f32,
        shape: [u32; MAX_DIMS],
        sa: [u32; MAX_DIMS],
        sb: [u32; MAX_DIMS],
    }
}

impl EwParams {
    fn flat(n: u32, alpha: f32, beta: f32) -> Self {
        EwParams {
            n,
            ndim: 0,
            alpha,
            beta,
            shape: [0; MAX_DIMS],
            sa: [0; MAX_DIMS],
            sb: [0; MAX_DIMS],
        }
    }
}

fn pack(op: &'static str, v: &[usize]) -> Result<[u32; MAX_DIMS]> {
    let mut out = [0; MAX_DIMS];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = u32_of(op, x)?;
    }
    Ok(out)
}

/// `a op b` with numpy broadcasting; the result has the broadcast shape.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    const NAME: &str = "elementwise::binary";
    a.expect_dtype(NAME, DType::F32)?;
    b.expect_dtype(NAME, DType::F32)?;
    let out_shape = broadcast_shape(NAME, a.shape(), b.shape())?;
    if out_shape.len() > MAX_DIMS {
        return Err(Error::shape(
            NAME,
            format!("at most {MAX_DIMS} axes are supported, got {out_shape:?}"),
        ));
    }
    let out = Tensor::empty(a.gpu(), &out_shape, DType::F32)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let same = a.shape() == out_shape.as_slice() && b.shape() == out_shape.as_slice();
    if same {
        return binary_flat(a, b, &out, op);
    }
    let (code, alpha, beta) = op.code();
    let (shape, sa, sb) = merge_axes(
        &out_shape,
        &broadcast_strides(a.shape(), &out_shape),
        &broadcast_strides(b.shape(), &out_shape),
    );
    // The vec4 kernel where the innermost axis splits into vec4s and each
    // input runs along it or repeats one value across it.
    let inner = shape.len().checked_sub(1);
    let rows = inner.filter(|&d| {
        shape[d].is_multiple_of(4) && sa[d] <= 1 && sb[d] <= 1 && super::vec4_variants()
    });
    let per = if rows.is_some() { 4 } else { 1 };
    let params = EwParams {
        ndim: shape.len() as u32,
        shape: pack(NAME, &shape)?,
        sa: pack(NAME, &sa)?,
        sb: pack(NAME, &sb)?,
        ..EwParams::flat(u32_of(NAME, n / per)?, alpha, beta)
    };
    let spec = match rows {
        Some(d) => KernelSpec::new("elementwise", "binary_rows4")
            .with("A_ROW", sa[d] as f64)
            .with("B_ROW", sb[d] as f64),
        None => KernelSpec::new("elementwise", "binary"),
    };
    a.gpu().launch_items(
        &spec.with("OP", code as f64),
        bytemuck::bytes_of(&params),
        &[
            group_binding(&out, per),
            group_binding(a, per),
            group_binding(b, per),
        ],
        n / per,
    )?;
    Ok(out)
}

/// The broadcast's axes with those of length 1 left out and neighbours merged
/// where both inputs step through them as through one axis (stride of the
/// outer = stride of the inner * its length, for each input; broadcast axes
/// have stride 0 and merge with each other). Same elements, same order, fewer
/// index divisions; e.g. [N, C, H, W] * [N, 1, H, W] is [N, C, H*W] with b's
/// strides [H*W, 0, 1].
fn merge_axes(shape: &[usize], sa: &[usize], sb: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut s, mut a, mut b): (Vec<usize>, Vec<usize>, Vec<usize>) = (vec![], vec![], vec![]);
    for d in (0..shape.len()).rev().filter(|&d| shape[d] != 1) {
        match (s.last_mut(), a.last(), b.last()) {
            (Some(len), Some(&ia), Some(&ib)) if sa[d] == ia * *len && sb[d] == ib * *len => {
                *len *= shape[d];
            }
            _ => {
                s.push(shape[d]);
                a.push(sa[d]);
                b.push(sb[d]);
            }
        }
    }
    s.reverse();
    a.reverse();
    b.reverse();
    (s, a, b)
}

/// Same-shape `a op b`, a vec4 per invocation (the kernel's comment says why).
fn binary_flat(a: &Tensor, b: &Tensor, out: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let (code, alpha, beta) = op.code();
    launch_flat(Flat::Binary, code, out, &[a, b], (alpha, beta))?;
    Ok(out.clone())
}

fn group_binding(t: &Tensor, per: usize) -> crate::gpu::Binding<'_> {
    t.binding().rounded_up(4 * per as u64)
}

#[derive(Clone, Copy)]
enum Flat {
    Binary,
    Unary,
}

/// Launches the same-shape kernel of `kind` with operator `code`: 8 floats
/// per invocation through 64-bit words where `ops::wide_ok`, else a vec4.
/// Bindings are rounded up to whole groups (pool buffers are multiples of 64
/// bytes, so the padding exists).
fn launch_flat(
    kind: Flat,
    code: u32,
    out: &Tensor,
    ins: &[&Tensor],
    (alpha, beta): (f32, f32),
) -> Result<()> {
    if super::windows_ok(out.gpu()) && out.numel() >= 4 * WIN4 {
        return launch_windows(kind, code, out, ins, (alpha, beta));
    }
    let wide = super::wide_ok(out.gpu());
    let (module, entry, per) = match (kind, wide) {
        (Flat::Binary, true) => ("elementwise64", "binary8", 8),
        (Flat::Binary, false) => ("elementwise", "binary4", 4),
        (Flat::Unary, true) => ("elementwise64", "unary8", 8),
        (Flat::Unary, false) => ("elementwise", "unary4", 4),
    };
    let spec = KernelSpec::new(module, entry).with("OP", code as f64);
    let groups = out.numel().div_ceil(per);
    let params = EwParams::flat(u32_of("elementwise", groups)?, alpha, beta);
    let mut args = vec![group_binding(out, per)];
    args.extend(ins.iter().map(|t| group_binding(t, per)));
    out.gpu()
        .launch_items(&spec, bytemuck::bytes_of(&params), &args, groups)
}

/// Windows of each input per launch (shaders/elementwise_win.wgsl).
const WIN_SLOTS: usize = 7;

/// The same-shape kernels of shaders/elementwise_win.wgsl: inputs through
/// uniform windows, `WIN_SLOTS` windows of each per launch. Every input
/// holds at least one window (the caller checks the size), and the last
/// window of a launch is clamped to end where the smallest input buffer
/// ends, so windows never leave their buffers.
fn launch_windows(
    kind: Flat,
    code: u32,
    out: &Tensor,
    ins: &[&Tensor],
    (alpha, beta): (f32, f32),
) -> Result<()> {
    const NAME: &str = "elementwise";
    let n4 = out.numel().div_ceil(4);
    let windows = n4.div_ceil(WIN4);
    let cap4 = super::window_cap4(ins);
    // 64-bit-word stores where the adapter has them: an invocation per two vec4s.
    let wide = super::wide_ok(out.gpu());
    let (module, entry, per) = match (kind, wide) {
        (Flat::Binary, false) => ("elementwise_win", "binary_win", 1),
        (Flat::Unary, false) => ("elementwise_win", "unary_win", 1),
        (Flat::Binary, true) => ("elementwise_win64", "binary_win8", 2),
        (Flat::Unary, true) => ("elementwise_win64", "unary_win8", 2),
    };
    let spec = KernelSpec::new(module, entry)
        .with("OP", code as f64)
        .with("SLOTS", windows.min(WIN_SLOTS) as f64);
    for first in (0..windows).step_by(WIN_SLOTS) {
        let starts: [usize; WIN_SLOTS] =
            std::array::from_fn(|k| ((first + k) * WIN4).min(cap4 - WIN4));
        let mut params = EwParams::flat(u32_of(NAME, n4)?, alpha, beta);
        params.ndim = u32_of(NAME, first * WIN4)?;
        for (s, &start) in params.shape.iter_mut().zip(&starts) {
            *s = u32_of(NAME, start)?;
        }
        let mut args = vec![group_binding(out, 4 * per)];
        for (i, t) in ins.iter().enumerate() {
            for (k, &start) in starts.iter().enumerate() {
                let slot = 2 + i * WIN_SLOTS + k;
                args.push(
                    crate::gpu::Binding::window(t.buffer(), 16 * start as u64).at(slot as u32),
                );
            }
        }
        out.gpu()
            .launch_items(&spec, bytemuck::bytes_of(&params), &args, WIN4 / per)?;
    }
    Ok(())
}

pub fn unary(a: &Tensor, op: UnaryOp) -> Result<Tensor> {
    const NAME: &str = "elementwise::unary";
    a.expect_dtype(NAME, DType::F32)?;
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    let n = a.numel();
    if n == 0 {
        return Ok(out);
    }
    let (code, alpha, beta) = op.code();
    launch_flat(Flat::Unary, code, &out, &[a], (alpha, beta))?;
    Ok(out)
}

/// A new f32 tensor with every element `value`.
pub fn full(gpu: &crate::Gpu, shape: &[usize], value: f32) -> Result<Tensor> {
    let t = Tensor::empty(gpu, shape, DType::F32)?;
    fill(&t, value)?;
    Ok(t)
}

/// Sets every element of `t` to `value`, in place.
pub fn fill(t: &Tensor, value: f32) -> Result<()> {
    const NAME: &str = "elementwise::fill";
    t.expect_dtype(NAME, DType::F32)?;
    let n = t.numel();
    if n == 0 {
        return Ok(());
    }
    let params = EwParams::flat(u32_of(NAME, n)?, value, 0.0);
    t.gpu().launch_items(
        &KernelSpec::new("elementwise", "fill"),
        bytemuck::bytes_of(&params),
        &[t.binding()],
        n,
    )
}

pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Add)
}
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Sub)
}
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Mul)
}
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Div)
}
pub fn scale(a: &Tensor, s: f32) -> Result<Tensor> {
    unary(
        a,
        UnaryOp::Affine {
            alpha: s,
            beta: 0.0,
        },
    )
}
pub fn relu(a: &Tensor) -> Result<Tensor> {
    unary(a, UnaryOp::Relu)
}
pub fn exp(a: &Tensor) -> Result<Tensor> {
    unary(a, UnaryOp::Exp)
}
pub fn log(a: &Tensor) -> Result<Tensor> {
    unary(a, UnaryOp::Log)
}
