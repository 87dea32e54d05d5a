//! Reference of `ops::layout`'s permutation.

/// Output axis d is input axis perm[d]; returns (shape, values).
pub fn permute(x: &[f64], shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut coord = vec![0usize; shape.len()];
    for _ in 0..n {
        let at: usize = coord.iter().zip(perm).map(|(&c, &a)| c * strides[a]).sum();
        out.push(x[at]);
        // Next output coordinate, last axis fastest.
        for d in (0..coord.len()).rev() {
            coord[d] += 1;
            if coord[d] < out_shape[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    (out_shape, out)
}

/// Reference of `ops::layout::step_slice`: (shape, values).
pub fn step_slice(
    x: &[f64],
    shape: &[usize],
    axis: usize,
    start: usize,
    step: isize,
    len: usize,
) -> (Vec<usize>, Vec<f64>) {
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * len * inner);
    for o in 0..outer {
        for k in 0..len {
            let a = (start as isize + k as isize * step) as usize;
            let base = (o * shape[axis] + a) * inner;
            out.extend_from_slice(&x[base..base + inner]);
        }
    }
    let mut s = shape.to_vec();
    s[axis] = len;
    (s, out)
}
