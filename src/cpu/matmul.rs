//! Reference of `ops::matmul`, in f64.

/// The shape of one product: op(A) is [m, k], op(B) is [k, n], C is [m, n];
/// `ta`/`tb`: A is stored [k, m] / B is stored [n, k].
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ta: bool,
    pub tb: bool,
}

/// C = alpha * op(A) @ op(B) + beta * C for one batch (beta = 0 ignores C).
pub fn gemm(a: &[f64], b: &[f64], c: &mut [f64], g: Gemm, alpha: f64, beta: f64) {
    let Gemm { m, n, k, ta, tb } = g;
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|kk| {
                    let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                    let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                    av * bv
                })
                .sum();
            let prev = if beta != 0.0 {
                beta * c[i * n + j]
            } else {
                0.0
            };
            c[i * n + j] = alpha * s + prev;
        }
    }
}

/// Batched matmul with the same batch rules as `ops::matmul`: an operand that is
/// not batched is shared by every batch.
pub fn matmul(
    a: &[f64],
    b: &[f64],
    batch: usize,
    a_batched: bool,
    b_batched: bool,
    g: Gemm,
) -> Vec<f64> {
    let (m, n, k) = (g.m, g.n, g.k);
    let mut c = vec![0f64; batch * m * n];
    for bi in 0..batch {
        let ao = if a_batched { bi * m * k } else { 0 };
        let bo = if b_batched { bi * k * n } else { 0 };
        gemm(
            &a[ao..ao + m * k],
            &b[bo..bo + k * n],
            &mut c[bi * m * n..(bi + 1) * m * n],
            g,
            1.0,
            0.0,
        );
    }
    c
}
