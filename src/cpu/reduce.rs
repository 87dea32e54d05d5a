//! Reference of `ops::reduce`, in f64.

use crate::error::Result;
use crate::ops::reduce::ReduceOp;
use crate::shape::split_axis;

/// Reduces over `axis` (all elements when None), in f64.
/// Max and argmax propagate NaN (the first NaN wins); ties go to the lowest index.
pub fn reduce(x: &[f64], shape: &[usize], axis: Option<usize>, op: ReduceOp) -> Result<Vec<f64>> {
    let (outer, n, inner) = match axis {
        Some(ax) => split_axis("cpu::reduce", shape, ax)?,
        None => (1, x.len(), 1),
    };
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| x[(o * n + k) * inner + i];
            out.push(match op {
                ReduceOp::Sum => (0..n).map(at).sum::<f64>(),
                ReduceOp::Mean => (0..n).map(at).sum::<f64>() / n as f64,
                ReduceOp::Max => at(argmax_of(n, &at)),
            });
        }
    }
    Ok(out)
}

pub fn argmax(x: &[f64], shape: &[usize], axis: Option<usize>) -> Result<Vec<u32>> {
    let (outer, n, inner) = match axis {
        Some(ax) => split_axis("cpu::argmax", shape, ax)?,
        None => (1, x.len(), 1),
    };
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            out.push(argmax_of(n, &|k: usize| x[(o * n + k) * inner + i]) as u32);
        }
    }
    Ok(out)
}

fn argmax_of(n: usize, at: &dyn Fn(usize) -> f64) -> usize {
    let mut best = 0;
    for k in 1..n {
        let (v, b) = (at(k), at(best));
        if b.is_nan() {
            break;
        }
        if v.is_nan() || v > b {
            best = k;
        }
    }
    best
}
