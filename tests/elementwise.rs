//! Elementwise kernels against src/cpu/elementwise.rs.
//!
//! Tolerance: add/sub/mul/relu are exact in f32 on both sides (0 error). div,
//! exp and log may differ by a few ulp between the GPU's math library and Rust's:
//! rtol 1e-6 (about 8 ulp) with atol 1e-7 for results near 0.

mod common;
use common::{FWD, GRAD, check_op, input};
use common::{assert_close, f32s, f64s, gpu, rand_vec};
use condenser::autograd::functional as F;
use condenser::ops::elementwise::{BinaryOp, UnaryOp, binary, unary};
use condenser::{Tensor, cpu};

fn check_binary(sa: &[usize], sb: &[usize], op: BinaryOp) {
    let g = gpu();
    let av = rand_vec(sa.iter().product(), 10);
    // Keep divisors away from 0 so div is well conditioned.
    let bv: Vec<f32> = rand_vec(sb.iter().product(), 11)
        .into_iter()
        .map(|v| {
            if op == BinaryOp::Div {
                v.signum() * (v.abs() + 0.5)
            } else {
                v
            }
        })
        .collect();
    let a = Tensor::from_slice(&g, sa, &av).unwrap();
    let b = Tensor::from_slice(&g, sb, &bv).unwrap();
    let out = binary(&a, &b, op).unwrap();
    let (shape, want) = cpu::elementwise::binary(&f64s(&av), sa, &f64s(&bv), sb, op).unwrap();
    let want = f32s(&want);
    assert_eq!(out.shape(), shape.as_slice());
    let (atol, rtol) = if op == BinaryOp::Div {
        (1e-7, 1e-6)
    } else {
        (0.0, 0.0)
    };
    assert_close(
        &out.to_vec().unwrap(),
        &want,
        atol,
        rtol,
        &format!("{op:?} {sa:?} {sb:?}"),
    );
}

/// Runs `f` with the 64-bit-word variants (where the adapter has SHADER_INT64)
/// and with the vec4 kernels they replace.
fn both_widths(f: impl Fn()) {
    for wide in [true, false] {
        condenser::ops::set_wide_variants(wide);
        f();
    }
    condenser::ops::set_wide_variants(true);
}

/// Broadcasting runs a vec4 kernel where the (merged) innermost axis splits
/// into vec4s; the scalar kernel is checked on the same cases with it off.
#[test]
fn binary_ops_with_broadcasting() {
    for vec4 in [true, false] {
        condenser::ops::set_vec4_variants(vec4);
        both_widths(binary_cases);
    }
    condenser::ops::set_vec4_variants(true);
}

fn binary_cases() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[1], &[1]),
        (&[7], &[7]),
        (&[257], &[1]),
        (&[3, 5], &[5]),
        (&[3, 1], &[1, 5]),
        (&[2, 3, 4], &[3, 1]),
        (&[4, 1, 3, 1, 2], &[5, 3, 1, 1]),
        (&[2, 1, 2, 1, 2, 1, 2, 3], &[3, 1, 3]),
        (&[1000, 3], &[1000, 3]),
        (&[8], &[8]),
        (&[9, 17], &[9, 17]),
        (&[64], &[64]),
        // Inner axes of a multiple of 4 once merged: an attention map over
        // channels, a per-channel scale, rows against rows, a column.
        (&[3, 4, 2, 6], &[3, 1, 2, 6]),
        (&[2, 3, 4, 4], &[1, 3, 1, 1]),
        (&[2, 1, 8], &[1, 5, 8]),
        (&[6, 4], &[6, 1]),
    ];
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::ReluMask,
    ] {
        for (sa, sb) in cases {
            check_binary(sa, sb, op);
            check_binary(sb, sa, op);
        }
    }
}

#[test]
fn unary_ops() {
    both_widths(unary_cases);
}

fn unary_cases() {
    let g = gpu();
    for n in [1usize, 5, 8, 256, 1023, 1031] {
        let v = rand_vec(n, 12);
        let pos: Vec<f32> = v.iter().map(|x| x.abs() + 1e-3).collect();
        for (op, input) in [
            (UnaryOp::Relu, &v),
            (UnaryOp::Exp, &v),
            (UnaryOp::Log, &pos),
            (UnaryOp::Sqrt, &pos),
            (
                UnaryOp::Affine {
                    alpha: -2.5,
                    beta: 0.75,
                },
                &v,
            ),
        ] {
            let t = Tensor::from_slice(&g, &[n], input).unwrap();
            let got = unary(&t, op).unwrap().to_vec().unwrap();
            assert_close(
                &got,
                &f32s(&cpu::elementwise::unary(&f64s(input), op)),
                1e-7,
                1e-6,
                &format!("{op:?} n={n}"),
            );
        }
    }
}

#[test]
fn unary_ops_propagate_nan_and_keep_infinities() {
    both_widths(unary_specials);
}

fn unary_specials() {
    let g = gpu();
    let v = [f32::NAN, -1.0, 2.0, f32::INFINITY, f32::NEG_INFINITY, -0.0];
    let want = f32s(&cpu::elementwise::unary(&f64s(&v), UnaryOp::Relu));
    assert!(want[0].is_nan(), "the reference must keep NaN: {want:?}");
    let t = Tensor::from_slice(&g, &[v.len()], &v).unwrap();
    for op in [UnaryOp::Relu, UnaryOp::Exp] {
        let got = unary(&t, op).unwrap().to_vec().unwrap();
        assert_close(
            &got,
            &f32s(&cpu::elementwise::unary(&f64s(&v), op)),
            0.0,
            1e-6,
            &format!("{op:?} specials"),
        );
    }
}

#[test]
fn past_65535_workgroups() {
    // 256 invocations a workgroup: 17M elements need 66,407 workgroups, which the
    // dispatcher folds into a 2D grid.
    let g = gpu();
    let n = 65_536 * 256 + 1_000;
    let a = condenser::ops::full(&g, &[n], 1.5).unwrap();
    let b = Tensor::rand_uniform(&g, &[n], -1.0, 1.0, 5).unwrap();
    let got = condenser::ops::add(&a, &b).unwrap().to_vec().unwrap();
    let bv = b.to_vec().unwrap();
    for i in [0, 1, 65_535 * 256, 65_536 * 256, n - 1] {
        assert_eq!(got[i], 1.5 + bv[i], "element {i}");
    }
    let wrong = got
        .iter()
        .zip(&bv)
        .filter(|(g, b)| **g != 1.5 + **b)
        .count();
    assert_eq!(wrong, 0);
}

#[test]
fn mismatched_shapes_are_clear_errors() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[3, 4]).unwrap();
    let b = Tensor::zeros(&g, &[5]).unwrap();
    let e = condenser::ops::add(&a, &b).unwrap_err().to_string();
    assert!(
        e.contains("do not broadcast") && e.contains("[3, 4]"),
        "{e}"
    );
    let idx = Tensor::from_u32(&g, &[2], &[1, 2]).unwrap();
    let e = condenser::ops::relu(&idx).unwrap_err();
    assert!(
        matches!(e, condenser::Error::DType { .. }),
        "a dtype error, not a shape error: {e}"
    );
    assert!(e.to_string().contains("expects F32 data, got U32"), "{e}");
}

#[test]
fn empty_tensors_launch_nothing() {
    let g = gpu();
    let a = Tensor::zeros(&g, &[0, 3]).unwrap();
    assert_eq!(condenser::ops::relu(&a).unwrap().shape(), &[0, 3]);
    assert_eq!(condenser::ops::add(&a, &a).unwrap().numel(), 0);
}

// Gradient checks (forward 1e-4, gradients 2e-3 of the largest component).

#[test]
fn elementwise_ops_with_broadcast() {
    check_op(
        "add broadcast",
        &[input(&[2, 3, 4], 31), input(&[3, 1], 32)],
        &|v| F::add(&v[0], &v[1]).unwrap(),
        &|xs| (0..24).map(|i| xs[0][i] + xs[1][(i / 4) % 3]).collect(),
        FWD,
        GRAD,
    );
    check_op(
        "mul broadcast",
        &[input(&[2, 3], 33), input(&[3], 34)],
        &|v| F::mul(&v[0], &v[1]).unwrap(),
        &|xs| (0..6).map(|i| xs[0][i] * xs[1][i % 3]).collect(),
        FWD,
        GRAD,
    );
    check_op(
        "sub",
        &[input(&[5], 35), input(&[5], 36)],
        &|v| F::sub(&v[0], &v[1]).unwrap(),
        &|xs| (0..5).map(|i| xs[0][i] - xs[1][i]).collect(),
        FWD,
        GRAD,
    );
    check_op(
        "relu, affine, exp",
        &[input(&[7, 3], 37)],
        &|v| F::exp(&F::affine(&F::relu(&v[0]).unwrap(), 0.5, -0.25).unwrap()).unwrap(),
        &|xs| {
            xs[0]
                .iter()
                .map(|&x| (0.5 * x.max(0.0) - 0.25).exp())
                .collect()
        },
        FWD,
        GRAD,
    );
    check_op(
        "flatten + mean",
        &[input(&[2, 3, 2], 38)],
        &|v| F::mean(&F::flatten(&v[0]).unwrap()).unwrap(),
        &|xs| vec![xs[0].iter().sum::<f64>() / 12.0],
        FWD,
        GRAD,
    );
}

fn activations() -> Vec<UnaryOp> {
    vec![
        UnaryOp::Relu,
        UnaryOp::Clip { lo: -0.5, hi: 0.5 },
        UnaryOp::Clip { lo: 0.0, hi: 6.0 },
        UnaryOp::LeakyRelu { slope: 0.1 },
        UnaryOp::Sigmoid,
        UnaryOp::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        UnaryOp::HardSwish,
    ]
}

/// Inputs spread over [-8, 8] so every activation's saturated and linear parts are hit.
fn spread(n: usize, seed: u64) -> Vec<f32> {
    rand_vec(n, seed).iter().map(|v| v * 8.0).collect()
}

#[test]
fn activations_match_the_reference_and_keep_nan() {
    both_widths(activation_cases);
}

fn activation_cases() {
    // Tolerance: sigmoid's exp may differ by a few ulp from Rust's (rtol 1e-6);
    // the rest are exact or one rounding from it.
    let g = gpu();
    for op in activations() {
        for n in [1usize, 6, 1023] {
            let mut v = spread(n, 14);
            if n == 6 {
                v = vec![f32::NAN, -3.0, 3.0, 0.0, -1e30, 1e30];
            }
            let t = Tensor::from_slice(&g, &[n], &v).unwrap();
            let got = unary(&t, op).unwrap().to_vec().unwrap();
            let want = f32s(&cpu::elementwise::unary(&f64s(&v), op));
            if n == 6 {
                assert!(got[0].is_nan() && want[0].is_nan(), "{op:?} keeps NaN");
            }
            assert_close(&got[1..], &want[1..], 1e-7, 1e-6, &format!("{op:?} n={n}"));
        }
    }
}

#[test]
fn activation_backward_kernels_match_the_reference() {
    both_widths(activation_backward_cases);
}

fn activation_backward_cases() {
    let g = gpu();
    for op in activations() {
        let grad_op = match op {
            UnaryOp::Relu => continue,
            UnaryOp::Clip { lo, hi } => BinaryOp::ClipGrad { lo, hi },
            UnaryOp::LeakyRelu { slope } => BinaryOp::LeakyReluGrad { slope },
            UnaryOp::Sigmoid => BinaryOp::SigmoidGrad,
            UnaryOp::HardSigmoid { alpha, beta } => BinaryOp::HardSigmoidGrad { alpha, beta },
            _ => BinaryOp::HardSwishGrad,
        };
        for (sa, sb) in [
            (&[1000usize][..], &[1000usize][..]),
            (&[3, 5], &[3, 5]),
            (&[4, 3], &[3]),
        ] {
            let dy = rand_vec(sa.iter().product(), 15);
            let x = spread(sb.iter().product(), 16);
            let a = Tensor::from_slice(&g, sa, &dy).unwrap();
            let b = Tensor::from_slice(&g, sb, &x).unwrap();
            let got = binary(&a, &b, grad_op).unwrap().to_vec().unwrap();
            let (_, want) =
                cpu::elementwise::binary(&f64s(&dy), sa, &f64s(&x), sb, grad_op).unwrap();
            assert_close(
                &got,
                &f32s(&want),
                1e-7,
                1e-6,
                &format!("{grad_op:?} {sa:?}"),
            );
        }
    }
}

#[test]
fn activation_gradients() {
    for op in activations() {
        let mut x = input(&[3, 7], 17);
        x.data = spread(21, 17);
        check_op(
            &format!("{op:?}"),
            &[x],
            &|v| F::activation(&v[0], op).unwrap(),
            &|xs| cpu::elementwise::unary(&xs[0], op),
            FWD,
            GRAD,
        );
    }
}

/// Every binary and unary operator through the uniform-window kernels
/// (shaders/elementwise_win.wgsl, and elementwise_win64.wgsl's 64-bit-word
/// stores) at sizes around their boundaries: one
/// window exactly, one and a bit (odd tail), a full launch of 7 windows, and
/// three launches whose last is partial and whose last window is clamped to
/// the buffer's end. Tolerance as above: against the f64 reference exact for
/// add/sub/mul/relu mask, rtol 1e-6 for the rest (one or a few roundings), and the same bits as the kernels the
/// windows replace (same operators in the same order).
#[test]
fn uniform_window_kernels_match_the_reference_and_the_storage_kernels() {
    let g = gpu();
    let window = 16_384; // floats in a 64 KiB window
    // With 64-bit-word stores (elementwise_win64.wgsl) and with vec4 stores.
    for (wide, n) in [true, false]
        .into_iter()
        .flat_map(|w| [window, window + 3, 7 * window, 15 * window - 5].map(|n| (w, n)))
    {
        condenser::ops::set_wide_variants(wide);
        let mut av = spread(n, 21);
        let bv: Vec<f32> = spread(n, 22)
            .iter()
            .map(|v| v.signum() * (v.abs() + 0.5))
            .collect();
        // Specials at both ends and inside the last window.
        for (i, v) in [
            (0, f32::NAN),
            (n - 1, f32::INFINITY),
            (n - 2, -0.0),
            (n / 2, f32::NEG_INFINITY),
        ] {
            av[i] = v;
        }
        let a = Tensor::from_slice(&g, &[n], &av).unwrap();
        let b = Tensor::from_slice(&g, &[n], &bv).unwrap();
        let binary_ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::ReluMask,
            BinaryOp::LeakyReluGrad { slope: 0.1 },
            BinaryOp::HardSwishGrad,
        ];
        for op in binary_ops {
            let (got, windowed) =
                with_windows(&g, || binary(&a, &b, op).unwrap().to_vec().unwrap());
            assert!(
                windowed || !g.windows_ok(),
                "{op:?} n={n}: the window kernel did not run"
            );
            let (_, want) =
                cpu::elementwise::binary(&f64s(&av), &[n], &f64s(&bv), &[n], op).unwrap();
            let exact = matches!(
                op,
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::ReluMask
            );
            let rtol = if exact { 0.0 } else { 1e-6 };
            assert_close_nan(&got, &f32s(&want), rtol, &format!("{op:?} n={n}"));
            condenser::ops::set_window_variants(false);
            let old = binary(&a, &b, op).unwrap().to_vec().unwrap();
            condenser::ops::set_window_variants(true);
            assert_eq!(
                bits(&got),
                bits(&old),
                "{op:?} n={n} wide={wide}: windows vs storage kernels"
            );
        }
        let mut unary_ops = activations();
        unary_ops.extend([
            UnaryOp::Exp,
            UnaryOp::Affine {
                alpha: -2.0,
                beta: 0.5,
            },
        ]);
        for op in unary_ops {
            let (got, windowed) = with_windows(&g, || unary(&a, op).unwrap().to_vec().unwrap());
            assert!(
                windowed || !g.windows_ok(),
                "{op:?} n={n}: the window kernel did not run"
            );
            let want = f32s(&cpu::elementwise::unary(&f64s(&av), op));
            assert_close_nan(&got, &want, 1e-6, &format!("{op:?} n={n}"));
            condenser::ops::set_window_variants(false);
            let old = unary(&a, op).unwrap().to_vec().unwrap();
            condenser::ops::set_window_variants(true);
            assert_eq!(
                bits(&got),
                bits(&old),
                "{op:?} n={n} wide={wide}: windows vs storage kernels"
            );
        }
    }
    condenser::ops::set_wide_variants(true);
}

/// `f`'s result and whether a uniform-window kernel ran in it.
fn with_windows<T>(g: &condenser::Gpu, f: impl FnOnce() -> T) -> (T, bool) {
    assert!(g.profile_begin().unwrap());
    let out = f();
    let ran = g
        .profile_end()
        .unwrap()
        .iter()
        .any(|t| t.kernel.contains("_win"));
    (out, ran)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// NaN where the reference has NaN, else within `rtol` (atol 1e-7), infinities equal.
fn assert_close_nan(got: &[f32], want: &[f32], rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= 1e-7 + rtol * w.abs()
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}
