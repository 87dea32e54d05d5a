//! Softmax and log-softmax with temperature against src/cpu/softmax.rs (f64).
//!
//! Tolerance: exp and log differ by a few ulp between the GPU and Rust, and the
//! sum of a row of up to ~1000 exponentials errs by ~cols * eps relative:
//! atol 2e-6 + rtol 1e-5 for probabilities; for log-probabilities, which reach
//! -1e5 with extreme inputs, rtol 1e-5 of the value plus atol 1e-5.

mod common;
use common::{FWD, GRAD, check_op, input};
use common::{assert_close, f32s, f64s, gpu, rand_vec};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::cpu::softmax::softmax as reference;
use condenser::ops::softmax::{SoftmaxKernel, softmax_with};

// Rows8 runs Rows4 where the adapter lacks SHADER_INT64 or a row is not a
// multiple of 8 values (the shapes below include both kinds of rows).
// Windows runs the adapter's default where its windows do not apply (tensors
// under 16384 values, rows not of vec4s or longer than a window).
const KERNELS: [SoftmaxKernel; 5] = [
    SoftmaxKernel::Rows,
    SoftmaxKernel::Rows4,
    SoftmaxKernel::Rows8,
    SoftmaxKernel::Workgroup,
    SoftmaxKernel::Windows,
];

fn check(v: &[f32], shape: &[usize], t: f32) {
    let g = gpu();
    let x = Tensor::from_slice(&g, shape, v).unwrap();
    let cols = *shape.last().unwrap();
    for kernel in KERNELS {
        for log in [false, true] {
            let got = softmax_with(&x, t, log, Some(kernel))
                .unwrap()
                .to_vec()
                .unwrap();
            let want = f32s(&reference(&f64s(v), cols, t as f64, log));
            let (atol, rtol) = if log { (1e-5, 1e-5) } else { (2e-6, 1e-5) };
            assert_close(
                &got,
                &want,
                atol,
                rtol,
                &format!("{kernel:?} log={log} {shape:?} T={t}"),
            );
        }
    }
}

#[test]
fn random_rows_and_temperatures() {
    for shape in [
        [1usize, 1],
        [1, 7],
        [5, 3],
        [3, 4],
        [7, 36],
        [3, 257],
        [64, 10],
        [9, 16],
        [70, 40],
        [2, 1000],
    ] {
        let n = shape[0] * shape[1];
        for t in [0.5f32, 1.0, 4.0, 20.0] {
            let v: Vec<f32> = rand_vec(n, 30).iter().map(|x| 8.0 * x).collect();
            check(&v, &shape, t);
        }
    }
}

#[test]
fn extreme_logits_stay_finite() {
    // Logits of +-1e4 overflow a naive exp at any temperature in [0.5, 20].
    // 300 columns: rows of vec4s; 304: of 64-bit words too (Rows8).
    for cols in [300, 304] {
        extreme_logits(cols);
    }
}

fn extreme_logits(cols: usize) {
    let mut v: Vec<f32> = rand_vec(3 * cols, 31).iter().map(|x| 1e4 * x).collect();
    v[5] = 1e4;
    v[cols + 7] = -1e4;
    v[2 * cols] = f32::NEG_INFINITY; // a masked logit
    for t in [0.5f32, 1.0, 20.0] {
        check(&v, &[3, cols], t);
        let g = gpu();
        let x = Tensor::from_slice(&g, &[3, cols], &v).unwrap();
        for kernel in KERNELS {
            let p = softmax_with(&x, t, false, Some(kernel))
                .unwrap()
                .to_vec()
                .unwrap();
            assert!(p.iter().all(|x| x.is_finite()), "{kernel:?} T={t}");
            for row in p.chunks(cols) {
                let s: f32 = row.iter().sum();
                assert!((s - 1.0).abs() < 1e-4, "{kernel:?} T={t}: row sums to {s}");
            }
        }
    }
}

#[test]
fn rows_past_65535_workgroups() {
    // The workgroup-per-row kernel needs one workgroup per row: 70k rows fold into 2D.
    let rows = 70_000;
    let v = rand_vec(rows * 2, 32);
    check(&v, &[rows, 2], 2.0);
}

#[test]
fn bad_temperature_is_an_error() {
    let g = gpu();
    let x = Tensor::zeros(&g, &[2, 2]).unwrap();
    for t in [0.0f32, -1.0, f32::NAN] {
        let e = condenser::ops::softmax(&x, t).unwrap_err().to_string();
        assert!(e.contains("temperature"), "{e}");
    }
}

// Gradient checks (forward 1e-4, gradients 2e-3 of the largest component).

#[test]
fn softmax_with_temperature() {
    for log in [false, true] {
        for t in [0.5f32, 4.0] {
            check_op(
                &format!("softmax log={log} T={t}"),
                &[input(&[3, 5], 61)],
                &|v| F::softmax(&v[0], t, log).unwrap(),
                &|xs| cpu::softmax::softmax(&xs[0], 5, t as f64, log),
                FWD,
                GRAD,
            );
        }
    }
}

/// The uniform-window kernel (shaders/softmax_win.wgsl) on the row layouts it
/// takes: rows 4 KiB long (16 per window), rows whose starts need rounding
/// down to the offset alignment, one row per window (the longest that fit),
/// rows of one vec4 (4096 per window), a last window clamped to the buffer's
/// end, launches whose windows reach past 500 KiB off 64 KiB boundaries
/// (wrong on lavapipe with 14 windows a launch: src/ops/softmax.rs); extreme
/// and masked logits among them. Tolerance as `check`'s; a row
/// longer than a window falls back to the default kernel.
#[test]
fn uniform_window_kernel_matches_the_reference() {
    let g = gpu();
    for (rows, cols) in [
        (64, 1024),
        (300, 100),
        (20, 16_352),
        (20, 12_288),
        (100, 12_000),
        (4099, 4),
        (21, 1000),
    ] {
        let mut v: Vec<f32> = rand_vec(rows * cols, 33).iter().map(|x| 8.0 * x).collect();
        v[cols + 3] = f32::NEG_INFINITY;
        v[rows * cols - 2] = 1e4;
        v[rows * cols - 1] = -1e4;
        let x = Tensor::from_slice(&g, &[rows, cols], &v).unwrap();
        for log in [false, true] {
            assert!(g.profile_begin().unwrap());
            let got = softmax_with(&x, 2.0, log, Some(SoftmaxKernel::Windows))
                .unwrap()
                .to_vec()
                .unwrap();
            let ran = g
                .profile_end()
                .unwrap()
                .iter()
                .any(|t| t.kernel.contains("softmax_win"));
            assert_eq!(
                ran,
                g.windows_ok(),
                "[{rows}, {cols}]: window kernel ran: {ran}"
            );
            let want = f32s(&reference(&f64s(&v), cols, 2.0, log));
            let (atol, rtol) = if log { (1e-5, 1e-5) } else { (2e-6, 1e-5) };
            assert_close(
                &got,
                &want,
                atol,
                rtol,
                &format!("windows log={log} [{rows}, {cols}]"),
            );
        }
    }
    let v = rand_vec(2 * 16_388, 34);
    check(&v, &[2, 16_388], 1.0);
}
