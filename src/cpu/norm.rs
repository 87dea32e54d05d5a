/// Batch norm in training mode: batch statistics per channel of [N, C, HW].
/// Returns (y, batch mean, biased batch variance).
pub fn batch_norm_train(
    x: &[f64],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (n * hw) as f64;
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        let vals = (0..n).flat_map(|i| (0..hw).map(move |k| (i * c + ch) * hw + k));
        mean[ch] = vals.clone().map(|j| x[j]).sum::<f64>() / m;
        var[ch] = vals.map(|j| (x[j] - mean[ch]).powi(2)).sum::<f64>() / m;
    }
    let y = batch_norm_eval(x, [n, c, hw], (gamma, beta), (&mean, &var), eps);
    (y, mean, var)
}

/// Batch norm of [N, C, HW] with given per-channel (mean, var) statistics.
pub fn batch_norm_eval(
    x: &[f64],
    [n, c, hw]: [usize; 3],
    (gamma, beta): (&[f64], &[f64]),
    (mean, var): (&[f64], &[f64]),
    eps: f64,
) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for i in 0..n {
        for ch in 0..c {
            let inv = 1.0 / (var[ch] + eps).sqrt();
            for k in 0..hw {
                let j = (i * c + ch) * hw + k;
                y[j] = (x[j] - mean[ch]) * inv * gamma[ch] + beta[ch];
            }
        }
    }
    y
}
