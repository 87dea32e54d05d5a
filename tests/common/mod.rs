#![allow(dead_code)]
//! Helpers shared by the GPU tests.

pub mod onnx;

use condenser::Gpu;
use condenser::rng::Rng;

thread_local! {
    static GPU: Gpu = Gpu::new().unwrap_or_else(|e| {
        // Never skip silently: a machine without an adapter fails the GPU tests.
        panic!("GPU tests need an adapter: {e}")
    });
}

/// One device per test thread (devices are not shared across threads).
pub fn gpu() -> Gpu {
    GPU.with(|g| g.clone())
}

/// f32 data as the f64 the references take, and their f64 results back.
pub fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
pub fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    Rng::new(seed).vec_uniform(n, -1.0, 1.0)
}

/// Asserts |got - want| <= atol + rtol * |want| elementwise, NaN matching NaN and
/// infinities matching exactly. Reports the worst element.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            let excess = if g.is_finite() {
                (g - w).abs()
            } else {
                f32::INFINITY
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {} but the reference says {} (atol {atol}, rtol {rtol})",
            got[i], want[i]
        );
    }
}

use condenser::Tensor;
use condenser::autograd::Var;

/// One differentiable input of an op under test.
pub struct Input {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub grad: bool,
}

pub fn input(shape: &[usize], seed: u64) -> Input {
    Input {
        shape: shape.to_vec(),
        data: rand_vec(shape.iter().product(), seed),
        grad: true,
    }
}

/// Tolerances of `check_op`: forwards sum at most a few hundred f32 products,
/// so 1e-4 (absolute plus relative) leaves a wide margin over their ~1e-6
/// rounding; gradients are f32 sums of up to ~1000 terms checked against f64
/// finite differences, so 2e-3 of the largest gradient component. Exact ops
/// (pooling selection, copies) use the same bounds for uniformity.
pub const FWD: f32 = 1e-4;
pub const GRAD: f64 = 2e-3;

/// Checks an op end to end against its f64 reference `reference`:
/// - forward: GPU output vs reference, |d| <= fwd_tol * (1 + |want|);
/// - backward: for L = sum(up * f(inputs)) with a random `up`, the GPU gradient
///   of every input with `grad` vs central finite differences of the reference
///   in f64 (step 1e-6, truncation error ~1e-12), on up to 48 coordinates per
///   input, |d| <= grad_tol * max(1, max |numeric|).
pub fn check_op(
    what: &str,
    inputs: &[Input],
    gpu_f: &dyn Fn(&[Var]) -> Var,
    reference: &dyn Fn(&[Vec<f64>]) -> Vec<f64>,
    fwd_tol: f32,
    grad_tol: f64,
) {
    let g = gpu();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|i| Var::leaf(Tensor::from_slice(&g, &i.shape, &i.data).unwrap(), i.grad))
        .collect();
    let y = gpu_f(&vars);
    let got = y.value().to_vec().unwrap();
    let xs: Vec<Vec<f64>> = inputs
        .iter()
        .map(|i| i.data.iter().map(|&v| v as f64).collect())
        .collect();
    let want: Vec<f32> = reference(&xs).iter().map(|&v| v as f32).collect();
    assert_close(&got, &want, fwd_tol, fwd_tol, &format!("{what}: forward"));

    let up = rand_vec(got.len(), 99);
    y.backward_with(Tensor::from_slice(&g, y.shape(), &up).unwrap())
        .unwrap();
    let loss = |xs: &[Vec<f64>]| -> f64 {
        reference(xs)
            .iter()
            .zip(&up)
            .map(|(a, &b)| a * b as f64)
            .sum()
    };
    for (k, inp) in inputs.iter().enumerate() {
        if !inp.grad {
            continue;
        }
        let gpu_grad = vars[k]
            .grad()
            .unwrap_or_else(|| panic!("{what}: input {k} got no gradient"))
            .to_vec()
            .unwrap();
        assert_eq!(
            gpu_grad.len(),
            inp.data.len(),
            "{what}: gradient size of input {k}"
        );
        let n = inp.data.len();
        let picks: Vec<usize> = if n <= 48 {
            (0..n).collect()
        } else {
            let mut r = Rng::new(7 + k as u64);
            (0..48).map(|_| r.below(n)).collect()
        };
        let mut numeric = Vec::new();
        for &i in &picks {
            let h = 1e-6;
            let mut xp = xs.clone();
            xp[k][i] += h;
            let mut xm = xs.clone();
            xm[k][i] -= h;
            numeric.push((loss(&xp) - loss(&xm)) / (2.0 * h));
        }
        let scale = numeric.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (&i, &num) in picks.iter().zip(&numeric) {
            let d = (gpu_grad[i] as f64 - num).abs();
            assert!(
                d <= grad_tol * scale,
                "{what}: d/d input{k}[{i}] is {} on the GPU, {num} by finite differences (tol {})",
                gpu_grad[i],
                grad_tol * scale
            );
        }
    }
}
