//! Batch norm (training and eval, running statistics) against src/cpu/norm.rs
//! and finite differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, check_op, gpu, input};
use condenser::Tensor;
use condenser::autograd::Var;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::norm::BnConfig;

#[test]
fn batch_norm_training_and_eval() {
    check_batch_norm(3, 4, 3, 2);
}

/// Planes of a multiple of 8 values run the 64-bit-word kernels where the
/// adapter has them, of 4 the vec4 kernels; the others are checked on the same
/// shapes with those variants turned off.
#[test]
fn batch_norm_wide_vec4_and_scalar_kernels() {
    for (wide, vec4) in [(true, true), (false, true), (false, false)] {
        condenser::ops::set_wide_variants(wide);
        condenser::ops::set_vec4_variants(vec4);
        check_batch_norm(2, 5, 4, 3);
        check_batch_norm(5, 3, 1, 4);
        check_batch_norm(3, 2, 4, 4);
    }
    condenser::ops::set_wide_variants(true);
    condenser::ops::set_vec4_variants(true);
}

/// A batch-norm op on (x, gamma, beta, a residual it may add) with running statistics.
type BnFn<'a> = &'a dyn Fn(&Var, &Var, &Var, &Var, (&Tensor, &Tensor)) -> Var;

/// Values and gradients of `f` on x [n, c, h, w] (with gamma, beta and a
/// residual of x's shape), and the running statistics it leaves.
fn bn_run(f: BnFn, shape: [usize; 4]) -> Vec<Vec<f32>> {
    let g = gpu();
    let c = shape[1];
    let n: usize = shape.iter().product();
    // Half the values below zero after normalisation: the mask matters.
    let x = Var::leaf(
        Tensor::from_slice(&g, &shape, &common::rand_vec(n, 41)).unwrap(),
        true,
    );
    let gamma = Var::leaf(
        Tensor::from_slice(&g, &[c], &common::rand_vec(c, 42)).unwrap(),
        true,
    );
    let beta = Var::leaf(
        Tensor::from_slice(&g, &[c], &common::rand_vec(c, 43)).unwrap(),
        true,
    );
    let rm = Tensor::from_slice(&g, &[c], &common::rand_vec(c, 44)).unwrap();
    let rv = condenser::ops::full(&g, &[c], 1.5).unwrap();
    let res = Var::leaf(
        Tensor::from_slice(&g, &shape, &common::rand_vec(n, 46)).unwrap(),
        true,
    );
    let y = f(&x, &gamma, &beta, &res, (&rm, &rv));
    y.backward_with(Tensor::from_slice(&g, &shape, &common::rand_vec(n, 45)).unwrap())
        .unwrap();
    let grad = |v: &Var| v.grad().unwrap().to_vec().unwrap();
    vec![
        y.value().to_vec().unwrap(),
        grad(&x),
        grad(&gamma),
        grad(&beta),
        res.grad().map(|t| t.to_vec().unwrap()).unwrap_or_default(),
        rm.to_vec().unwrap(),
        rv.to_vec().unwrap(),
    ]
}

/// Batch norm + ReLU as one op gives the two ops' values, gradients and running
/// statistics to the bit, and batch norm + residual + ReLU the three ops', in
/// training and eval, on every kernel variant; and the 64-bit-word kernels
/// give the vec4 kernels' to the bit.
#[test]
fn fused_relu_and_wide_kernels_are_bit_identical() {
    for training in [true, false] {
        let cfg = BnConfig {
            training,
            momentum: 0.1,
            eps: 1e-5,
        };
        let fused = |x: &Var, g: &Var, b: &Var, _: &Var, r: (&Tensor, &Tensor)| {
            F::batch_norm_relu(x, (g, b), r, cfg).unwrap()
        };
        let split = |x: &Var, g: &Var, b: &Var, _: &Var, r: (&Tensor, &Tensor)| {
            F::relu(&F::batch_norm(x, (g, b), r, cfg).unwrap()).unwrap()
        };
        let fused_add = |x: &Var, g: &Var, b: &Var, res: &Var, r: (&Tensor, &Tensor)| {
            F::batch_norm_add_relu(x, res, (g, b), r, cfg).unwrap()
        };
        let split_add = |x: &Var, g: &Var, b: &Var, res: &Var, r: (&Tensor, &Tensor)| {
            let y = F::batch_norm(x, (g, b), r, cfg).unwrap();
            F::relu(&F::add(&y, res).unwrap()).unwrap()
        };
        let pairs: [(BnFn, BnFn, &str); 2] = [
            (&fused, &split, "relu"),
            (&fused_add, &split_add, "add_relu"),
        ];
        // Planes of 16 (words and vec4s), 12 (vec4s only) and 5 values.
        for shape in [[3, 4, 4, 4], [2, 3, 3, 4], [2, 3, 1, 5]] {
            for (one, three, op) in pairs {
                let mut runs = Vec::new();
                for (wide, vec4) in [(true, true), (false, true), (false, false)] {
                    condenser::ops::set_wide_variants(wide);
                    condenser::ops::set_vec4_variants(vec4);
                    let what =
                        format!("{op} training={training} {shape:?} wide={wide} vec4={vec4}");
                    let a = bn_run(one, shape);
                    assert_eq!(a, bn_run(three, shape), "fused against split, {what}");
                    runs.push((what, a));
                }
                condenser::ops::set_wide_variants(true);
                condenser::ops::set_vec4_variants(true);
                // Words and vec4s sum in one order; the scalar kernels in another.
                assert_eq!(runs[0].1, runs[1].1, "{} against {}", runs[0].0, runs[1].0);
            }
        }
    }
}

fn check_batch_norm(n: usize, c: usize, h: usize, w: usize) {
    let g = gpu();
    let hw = h * w;
    for training in [true, false] {
        let rm0 = common::rand_vec(c, 21);
        let rv0: Vec<f32> = common::rand_vec(c, 22)
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect();
        let rm = Tensor::from_slice(&g, &[c], &rm0).unwrap();
        let rv = Tensor::from_slice(&g, &[c], &rv0).unwrap();
        let (rmc, rvc) = (rm.clone(), rv.clone());
        let (rm64, rv64): (Vec<f64>, Vec<f64>) = (
            rm0.iter().map(|&v| v as f64).collect(),
            rv0.iter().map(|&v| v as f64).collect(),
        );
        let cfg = BnConfig {
            training,
            momentum: 0.1,
            eps: 1e-5,
        };
        let reference = |xs: &[Vec<f64>]| {
            if training {
                cpu::norm::batch_norm_train(&xs[0], n, c, hw, &xs[1], &xs[2], 1e-5).0
            } else {
                cpu::norm::batch_norm_eval(
                    &xs[0],
                    [n, c, hw],
                    (&xs[1], &xs[2]),
                    (&rm64, &rv64),
                    1e-5,
                )
            }
        };
        let inputs = [input(&[n, c, h, w], 23), input(&[c], 24), input(&[c], 25)];
        check_op(
            &format!("batch_norm training={training}"),
            &inputs,
            &|v| F::batch_norm(&v[0], (&v[1], &v[2]), (&rmc, &rvc), cfg).unwrap(),
            &reference,
            FWD,
            GRAD,
        );
        // The fused op against batch norm then ReLU in f64 (the running
        // statistics moved twice above are checked on the first call's only).
        let (rm2, rv2) = (
            Tensor::from_slice(&g, &[c], &rm0).unwrap(),
            Tensor::from_slice(&g, &[c], &rv0).unwrap(),
        );
        check_op(
            &format!("batch_norm_relu training={training}"),
            &inputs,
            &|v| F::batch_norm_relu(&v[0], (&v[1], &v[2]), (&rm2, &rv2), cfg).unwrap(),
            &|xs| reference(xs).iter().map(|v| v.max(0.0)).collect(),
            FWD,
            GRAD,
        );
        // And with a residual added before the ReLU.
        let (rm3, rv3) = (
            Tensor::from_slice(&g, &[c], &rm0).unwrap(),
            Tensor::from_slice(&g, &[c], &rv0).unwrap(),
        );
        let with_res = [
            input(&[n, c, h, w], 23),
            input(&[c], 24),
            input(&[c], 25),
            input(&[n, c, h, w], 26),
        ];
        check_op(
            &format!("batch_norm_add_relu training={training}"),
            &with_res,
            &|v| F::batch_norm_add_relu(&v[0], &v[3], (&v[1], &v[2]), (&rm3, &rv3), cfg).unwrap(),
            &|xs| {
                let y = reference(xs);
                y.iter()
                    .zip(&xs[3])
                    .map(|(a, r)| (a + r).max(0.0))
                    .collect()
            },
            FWD,
            GRAD,
        );
        if training {
            // Running statistics moved 10% toward the batch's (unbiased variance).
            let x: Vec<f64> = common::rand_vec(n * c * hw, 23)
                .iter()
                .map(|&v| v as f64)
                .collect();
            let (_, mean, var) =
                cpu::norm::batch_norm_train(&x, n, c, hw, &vec![1.0; c], &vec![0.0; c], 1e-5);
            let m = (n * hw) as f64;
            let want_rm: Vec<f32> = (0..c)
                .map(|i| (0.9 * rm64[i] + 0.1 * mean[i]) as f32)
                .collect();
            let want_rv: Vec<f32> = (0..c)
                .map(|i| (0.9 * rv64[i] + 0.1 * var[i] * m / (m - 1.0)) as f32)
                .collect();
            common::assert_close(&rm.to_vec().unwrap(), &want_rm, 1e-5, 1e-5, "running mean");
            common::assert_close(&rv.to_vec().unwrap(), &want_rv, 1e-5, 1e-5, "running var");
        } else {
            assert_eq!(
                rm.to_vec().unwrap(),
                rm0,
                "eval must not touch running stats"
            );
        }
    }
}

/// A residual of another shape or dtype is a clear error, not a wrong number.
#[test]
fn a_mismatched_residual_is_refused() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &[2, 3, 2, 2], &common::rand_vec(24, 1)).unwrap();
    let gamma = condenser::ops::full(&g, &[3], 1.0).unwrap();
    let beta = Tensor::zeros(&g, &[3]).unwrap();
    let (rm, rv) = (
        Tensor::zeros(&g, &[3]).unwrap(),
        condenser::ops::full(&g, &[3], 1.0).unwrap(),
    );
    let cfg = BnConfig {
        training: true,
        momentum: 0.1,
        eps: 1e-5,
    };
    let short = Tensor::from_slice(&g, &[2, 3, 2, 1], &common::rand_vec(12, 2)).unwrap();
    let Err(e) =
        condenser::ops::norm::batch_norm_add_relu(&x, &short, (&gamma, &beta), (&rm, &rv), cfg)
    else {
        panic!("a residual of another shape was accepted");
    };
    let e = e.to_string();
    assert!(e.contains("residual") && e.contains("[2, 3, 2, 1]"), "{e}");
}

#[test]
fn eval_statistics_are_kept_only_while_the_running_ones_are_unchanged() {
    // Batch norm in eval mode derives (mean, 1/std) from the running
    // statistics; a frozen model's are kept and reused. Every change to the
    // running statistics must be seen: a training-mode call moving them in
    // place, an upload into them, the pool recycling their buffers.
    use condenser::ops::norm::batch_norm;
    let g = gpu();
    let (n, c, h, w) = (2, 5, 3, 4);
    let x = Tensor::rand_uniform(&g, &[n, c, h, w], -1.0, 1.0, 31).unwrap();
    let gamma = Tensor::rand_uniform(&g, &[c], 0.5, 1.5, 32).unwrap();
    let beta = Tensor::rand_uniform(&g, &[c], -0.5, 0.5, 33).unwrap();
    let eval = BnConfig {
        training: false,
        momentum: 0.1,
        eps: 1e-5,
    };
    let f64s = |t: &Tensor| -> Vec<f64> { t.to_vec().unwrap().iter().map(|&v| v as f64).collect() };
    let check = |rm: &Tensor, rv: &Tensor, what: &str| {
        let got = batch_norm(&x, (&gamma, &beta), (rm, rv), eval).unwrap().0;
        let want = cpu::norm::batch_norm_eval(
            &f64s(&x),
            [n, c, h * w],
            (&f64s(&gamma), &f64s(&beta)),
            (&f64s(rm), &f64s(rv)),
            1e-5,
        );
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        common::assert_close(&got.to_vec().unwrap(), &want, 1e-5, 1e-5, what);
    };
    let mut rm = Tensor::rand_uniform(&g, &[c], -0.5, 0.5, 34).unwrap();
    let mut rv = Tensor::rand_uniform(&g, &[c], 0.5, 2.0, 35).unwrap();
    let hits = g.derived_hits();
    for _ in 0..3 {
        check(&rm, &rv, "frozen running statistics");
    }
    assert!(
        g.derived_hits() > hits,
        "the third call reuses the statistics"
    );
    let train = BnConfig {
        training: true,
        ..eval
    };
    batch_norm(&x, (&gamma, &beta), (&rm, &rv), train).unwrap();
    for _ in 0..3 {
        check(&rm, &rv, "after a training step moved them");
    }
    let v: Vec<f32> = (0..c).map(|i| 0.25 + i as f32).collect();
    g.write_buffer(rv.buffer(), bytemuck::cast_slice(&v))
        .unwrap();
    for _ in 0..3 {
        check(&rm, &rv, "after an upload into the variance");
    }
    for seed in 36..39 {
        drop((rm, rv));
        rm = Tensor::rand_uniform(&g, &[c], -0.5, 0.5, seed).unwrap();
        rv = Tensor::rand_uniform(&g, &[c], 0.5, 2.0, seed + 10).unwrap();
        for _ in 0..3 {
            check(&rm, &rv, "new tensors in recycled buffers");
        }
    }
}

/// On CPU adapters the per-element kernels of tensors of a window or more
/// read through uniform windows (shaders/norm_win.wgsl): the same bits as the
/// kernels they replace, for plain, fused-ReLU and residual ops, in training
/// and eval, with runs of 16, 4 and 1 vec4s (planes of 1024, 16, 36 and 4
/// values), runs read interleaved in groups of 8, 4 and 2 (planes of 1024,
/// 256 and 128 values) and not (the rest), several launches and a last
/// window clamped to its buffer's end; and the values against the f64
/// reference.
#[test]
fn window_kernels_match_the_others_to_the_bit() {
    for training in [true, false] {
        let cfg = BnConfig {
            training,
            momentum: 0.1,
            eps: 1e-5,
        };
        let plain = |x: &Var, g: &Var, b: &Var, _: &Var, r: (&Tensor, &Tensor)| {
            F::batch_norm(x, (g, b), r, cfg).unwrap()
        };
        let relu = |x: &Var, g: &Var, b: &Var, _: &Var, r: (&Tensor, &Tensor)| {
            F::batch_norm_relu(x, (g, b), r, cfg).unwrap()
        };
        let add_relu = |x: &Var, g: &Var, b: &Var, res: &Var, r: (&Tensor, &Tensor)| {
            F::batch_norm_add_relu(x, res, (g, b), r, cfg).unwrap()
        };
        let ops: [(BnFn, &str); 3] = [(&plain, "plain"), (&relu, "relu"), (&add_relu, "add_relu")];
        for shape in [
            [8, 32, 32, 32],
            [9, 130, 4, 4],
            [5, 97, 6, 6],
            [64, 80, 2, 2],
            [2, 3, 64, 64],
            [4, 40, 16, 16],
            [3, 50, 8, 16],
        ] {
            // With 64-bit-word stores (norm_win64.wgsl) and with vec4 stores.
            for ((f, op), wide) in ops.into_iter().flat_map(|o| [(o, true), (o, false)]) {
                condenser::ops::set_wide_variants(wide);
                condenser::ops::set_window_variants(false);
                let off = bn_run(f, shape);
                condenser::ops::set_window_variants(true);
                let on = bn_run(f, shape);
                assert_eq!(
                    on, off,
                    "{op} training={training} {shape:?} wide={wide}: windows on/off"
                );
            }
            condenser::ops::set_wide_variants(true);
        }
        // The window kernels' values against the f64 reference.
        let [n, c, h, w] = [8, 32, 32, 32];
        let (hw, len) = (h * w, n * c * h * w);
        let x = common::rand_vec(len, 41);
        let (gamma, beta) = (common::rand_vec(c, 42), common::rand_vec(c, 43));
        let got = bn_run(&plain, [n, c, h, w])[0].clone();
        let rm = common::rand_vec(c, 44);
        let f = |v: &[f32]| common::f64s(v);
        let want = if training {
            cpu::norm::batch_norm_train(&f(&x), n, c, hw, &f(&gamma), &f(&beta), 1e-5).0
        } else {
            let rv = vec![1.5; c];
            cpu::norm::batch_norm_eval(
                &f(&x),
                [n, c, hw],
                (&f(&gamma), &f(&beta)),
                (&f(&rm), &rv),
                1e-5,
            )
        };
        common::assert_close(&got, &common::f32s(&want), FWD, FWD, "window batch norm");
    }
}
