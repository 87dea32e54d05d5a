//! f64 references of the detection ops (ops::detect).

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Penalty-reduced focal loss (alpha 2, beta 4), summed over elements and
/// divided by the number of targets equal to 1 (at least 1).
pub fn focal_loss(x: &[f64], y: &[f64]) -> f64 {
    let (mut total, mut pos) = (0.0, 0usize);
    for (&z, &t) in x.iter().zip(y) {
        let p = sigmoid(z);
        if t >= 1.0 {
            total -= (1.0 - p).powi(2) * p.ln();
            pos += 1;
        } else {
            total -= (1.0 - t).powi(4) * p.powi(2) * (1.0 - p).ln();
        }
    }
    total / pos.max(1) as f64
}

pub fn weighted_l1(p: &[f64], t: &[f64], w: &[f64]) -> f64 {
    p.iter()
        .zip(t)
        .zip(w)
        .map(|((a, b), c)| c * (a - b).abs())
        .sum()
}

/// max over the K planes of sigmoid(x), per image and position: [N, H*W].
pub fn confidence(x: &[f64], k: usize, hw: usize) -> Vec<f64> {
    let n = x.len() / (k * hw);
    let mut out = Vec::with_capacity(n * hw);
    for i in 0..n {
        for at in 0..hw {
            let m = (0..k)
                .map(|c| x[(i * k + c) * hw + at])
                .fold(f64::NEG_INFINITY, f64::max);
            out.push(sigmoid(m));
        }
    }
    out
}

/// Per image, the `topk` highest 3x3 peaks of [N, K, H, W] logits as
/// (score, index into K*H*W), by descending score, ties to the lower index;
/// (-1, 0) fills unused slots.
pub fn peaks(x: &[f64], [k, h, w]: [usize; 3], topk: usize) -> Vec<Vec<(f64, u32)>> {
    let plane = h * w;
    let n = x.len() / (k * plane);
    (0..n)
        .map(|i| {
            let mut found: Vec<(f64, u32)> = Vec::new();
            for c in 0..k {
                let base = (i * k + c) * plane;
                for yy in 0..h {
                    for xx in 0..w {
                        let v = x[base + yy * w + xx];
                        let higher = (yy.saturating_sub(1)..(yy + 2).min(h)).any(|ny| {
                            (xx.saturating_sub(1)..(xx + 2).min(w))
                                .any(|nx| x[base + ny * w + nx] > v)
                        });
                        if !higher {
                            found.push((sigmoid(v), (c * plane + yy * w + xx) as u32));
                        }
                    }
                }
            }
            found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            found.resize(topk, (-1.0, 0));
            found
        })
        .collect()
}
