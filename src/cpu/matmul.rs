/// C = alpha * op(A) @ op(B) + beta * C for one batch, f64 accumulation.
/// `a` is [m, k] (or [k, m] if `ta`), `b` is [k, n] (or [n, k] if `tb`).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    alpha: f32,
    beta: f32,
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for kk in 0..k {
                let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                s += av as f64 * bv as f64;
            }
            let prev = if beta != 0.0 {
                beta * c[i * n + j]
            } else {
                0.0
            };
            c[i * n + j] = alpha * s as f32 + prev;
        }
    }
}

/// Batched matmul with the same batch rules as `ops::matmul`: a 2D operand is
/// shared by every batch.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    b: &[f32],
    batch: usize,
    a_batched: bool,
    b_batched: bool,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
) -> Vec<f32> {
    let mut c = vec![0f32; batch * m * n];
    for bi in 0..batch {
        let ao = if a_batched { bi * m * k } else { 0 };
        let bo = if b_batched { bi * k * n } else { 0 };
        gemm(
            &a[ao..ao + m * k],
            &b[bo..bo + k * n],
            &mut c[bi * m * n..(bi + 1) * m * n],
            m,
            n,
            k,
            ta,
            tb,
            1.0,
            0.0,
        );
    }
    c
}
