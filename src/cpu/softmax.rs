//! Reference of `ops::softmax`, in f64: the one softmax every other reference
//! (cross-entropy, soft targets) builds on.

/// log softmax(z / t) of one row.
pub fn log_softmax_row(z: &[f64], t: f64) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = z.iter().map(|v| ((v - m) / t).exp()).sum::<f64>().ln();
    z.iter().map(|v| (v - m) / t - lse).collect()
}

/// Softmax (or log-softmax) of each row of length `cols` at temperature `t`.
pub fn softmax(x: &[f64], cols: usize, t: f64, log: bool) -> Vec<f64> {
    x.chunks(cols.max(1))
        .flat_map(|row| {
            let ls = log_softmax_row(row, t);
            ls.into_iter().map(move |v| if log { v } else { v.exp() })
        })
        .collect()
}
