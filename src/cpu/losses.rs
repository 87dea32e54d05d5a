use crate::ops::losses::CeConfig;

/// Mean cross-entropy of logits [N, C, S] against labels [N, S], in f64.
pub fn cross_entropy(
    logits: &[f64],
    labels: &[u32],
    n: usize,
    c: usize,
    s: usize,
    cfg: &CeConfig,
) -> f64 {
    let eps = cfg.label_smoothing as f64;
    let mut total = 0.0;
    let mut count = 0usize;
    for i in 0..n {
        for si in 0..s {
            let label = labels[i * s + si];
            if Some(label) == cfg.ignore_index || label as usize >= c {
                continue;
            }
            let z: Vec<f64> = (0..c).map(|k| logits[(i * c + k) * s + si]).collect();
            let logp = super::softmax::log_softmax_row(&z, 1.0);
            let nll = -logp[label as usize];
            let uniform = -logp.iter().sum::<f64>() / c as f64;
            total += (1.0 - eps) * nll + eps * uniform;
            count += 1;
        }
    }
    total / count.max(1) as f64
}
