//! Reference of `ops::elementwise`, in f64.

use crate::error::Result;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::shape::{broadcast_shape, broadcast_strides};

/// Returns (output shape, values) of `a op b` with numpy broadcasting.
pub fn binary(
    a: &[f64],
    a_shape: &[usize],
    b: &[f64],
    b_shape: &[usize],
    op: BinaryOp,
) -> Result<(Vec<usize>, Vec<f64>)> {
    let out = broadcast_shape("cpu::binary", a_shape, b_shape)?;
    let sa = broadcast_strides(a_shape, &out);
    let sb = broadcast_strides(b_shape, &out);
    let n: usize = out.iter().product();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let (mut r, mut ia, mut ib) = (i, 0, 0);
        for d in (0..out.len()).rev() {
            let c = r % out[d];
            r /= out[d];
            ia += c * sa[d];
            ib += c * sb[d];
        }
        let (x, y) = (a[ia], b[ib]);
        v.push(match op {
            BinaryOp::Add => x + y,
            BinaryOp::Sub => x - y,
            BinaryOp::Mul => x * y,
            BinaryOp::Div => x / y,
            BinaryOp::ReluMask => {
                if y > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            _ => activation_slope(op, y).map_or(0.0, |s| x * s),
        });
    }
    Ok((out, v))
}

/// d f / d x of the activation whose backward `op` is, at its input x (its
/// output for sigmoid); at the kinks, PyTorch's choice. None where the
/// gradient does not pass at all: there dx is 0 whatever dy is (PyTorch's
/// `where`, not a product with 0, so an infinite dy gives 0, not NaN).
fn activation_slope(op: BinaryOp, x: f64) -> Option<f64> {
    let step = |on: bool, v: f64| on.then_some(v);
    match op {
        BinaryOp::ClipGrad { lo, hi } => step(x >= lo as f64 && x <= hi as f64, 1.0),
        BinaryOp::LeakyReluGrad { slope } => {
            if x > 0.0 {
                Some(1.0)
            } else {
                Some(slope as f64)
            }
        }
        BinaryOp::SigmoidGrad => Some(x * (1.0 - x)),
        BinaryOp::HardSigmoidGrad { alpha, beta } => {
            let t = alpha as f64 * x + beta as f64;
            step(t > 0.0 && t < 1.0, alpha as f64)
        }
        BinaryOp::HardSwishGrad if x < -3.0 => None,
        BinaryOp::HardSwishGrad if x > 3.0 => Some(1.0),
        BinaryOp::HardSwishGrad => Some((2.0 * x + 3.0) / 6.0),
        _ => Some(1.0),
    }
}

/// min(max(x, lo), hi), NaN kept.
fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() { x } else { x.max(lo).min(hi) }
}

pub fn unary(a: &[f64], op: UnaryOp) -> Vec<f64> {
    a.iter()
        .map(|&x| match op {
            UnaryOp::Affine { alpha, beta } => alpha as f64 * x + beta as f64,
            // NaN propagates (f64::max would return 0), as in PyTorch and ONNX.
            UnaryOp::Relu if x.is_nan() => x,
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Clip { lo, hi } => clip(x, lo as f64, hi as f64),
            UnaryOp::LeakyRelu { slope } => {
                if x >= 0.0 || x.is_nan() {
                    x
                } else {
                    slope as f64 * x
                }
            }
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::HardSigmoid { alpha, beta } => clip(alpha as f64 * x + beta as f64, 0.0, 1.0),
            UnaryOp::HardSwish => x * clip(x / 6.0 + 0.5, 0.0, 1.0),
        })
        .collect()
}
