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
        });
    }
    Ok((out, v))
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
        })
        .collect()
}
