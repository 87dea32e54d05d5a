/// Softmax (or log-softmax) of each row of length `cols` at temperature `t`, in f64.
pub fn softmax(x: &[f32], cols: usize, t: f32, log: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols.max(1)) {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let z: Vec<f64> = row.iter().map(|&v| (v as f64 - m) / t as f64).collect();
        let s: f64 = z.iter().map(|v| v.exp()).sum();
        out.extend(
            z.iter()
                .map(|&v| if log { v - s.ln() } else { v.exp() / s } as f32),
        );
    }
    out
}
