//! f64 references of the distillation losses.

use super::softmax::log_softmax_row;

/// T^2 * mean over rows of KL(softmax(zt/T) || softmax(zs/T)), rows of length k.
pub fn soft_target(zs: &[f64], zt: &[f64], k: usize, t: f64) -> f64 {
    let n = zs.len() / k;
    let mut total = 0.0;
    for r in 0..n {
        let ls = log_softmax_row(&zs[r * k..(r + 1) * k], t);
        let lt = log_softmax_row(&zt[r * k..(r + 1) * k], t);
        total += lt
            .iter()
            .zip(&ls)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
    }
    t * t * total / n as f64
}

/// Attention map of [N, C, HW] features: mean over channels of f^2, L2-normalised
/// over HW (with eps^2 = 1e-12 under the root, as functional::normalize_last).
pub fn attention_map(f: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * hw);
    for i in 0..n {
        let a: Vec<f64> = (0..hw)
            .map(|p| {
                (0..c)
                    .map(|ch| f[(i * c + ch) * hw + p].powi(2))
                    .sum::<f64>()
                    / c as f64
            })
            .collect();
        let norm = (a.iter().map(|v| v * v).sum::<f64>() + 1e-12).sqrt();
        out.extend(a.iter().map(|v| v / norm));
    }
    out
}

/// Gram matrices of [N, C, HW] features after L2-normalising each channel: [N, C, C].
pub fn gram(f: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut fnorm = f.to_vec();
    for row in fnorm.chunks_mut(hw) {
        let norm = (row.iter().map(|v| v * v).sum::<f64>() + 1e-12).sqrt();
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let mut g = vec![0f64; n * c * c];
    for i in 0..n {
        for a in 0..c {
            for b in 0..c {
                g[(i * c + a) * c + b] = (0..hw)
                    .map(|p| fnorm[(i * c + a) * hw + p] * fnorm[(i * c + b) * hw + p])
                    .sum();
            }
        }
    }
    g
}

pub fn mse(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64
}

/// T^2 times the mean over positions of [N, K, S] logits (classes strided by
/// S) whose label is not `ignore` of KL(softmax(zt/T) || softmax(zs/T)); 0
/// when no position counts.
pub fn soft_target_dense(
    zs: &[f64],
    zt: &[f64],
    labels: &[u32],
    (k, s): (usize, usize),
    ignore: u32,
    t: f64,
) -> f64 {
    let (mut total, mut count) = (0.0, 0usize);
    for (pos, &l) in labels.iter().enumerate() {
        if l == ignore {
            continue;
        }
        let (img, at) = (pos / s, pos % s);
        let column =
            |z: &[f64]| -> Vec<f64> { (0..k).map(|j| z[(img * k + j) * s + at]).collect() };
        let ls = log_softmax_row(&column(zs), t);
        let lt = log_softmax_row(&column(zt), t);
        total += lt
            .iter()
            .zip(&ls)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
        count += 1;
    }
    t * t * total / count.max(1) as f64
}

/// Affinity of [N, C, HW] features: each position's C-vector L2-normalised
/// (eps^2 = 1e-12 under the root), then every pair's dot product: [N, HW, HW].
pub fn affinity(f: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * hw * hw);
    for i in 0..n {
        let unit: Vec<Vec<f64>> = (0..hw)
            .map(|p| {
                let v: Vec<f64> = (0..c).map(|ch| f[(i * c + ch) * hw + p]).collect();
                let norm = (v.iter().map(|x| x * x).sum::<f64>() + 1e-12).sqrt();
                v.iter().map(|x| x / norm).collect()
            })
            .collect();
        for a in &unit {
            for b in &unit {
                out.push(a.iter().zip(b).map(|(x, y)| x * y).sum());
            }
        }
    }
    out
}
