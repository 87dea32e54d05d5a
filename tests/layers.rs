//! Every differentiable op: GPU forward against its f64 reference in src/cpu/,
//! and GPU gradients against finite differences of that reference.
//!
//! Tolerances: forwards sum at most a few hundred f32 products, so 1e-4
//! (absolute plus relative) leaves a wide margin over their ~1e-6 rounding;
//! gradients are f32 sums of up to ~1000 terms checked against f64 finite
//! differences, so 2e-3 of the largest gradient component. Exact ops (pooling
//! selection, copies) use the same bounds for uniformity.

mod common;
use common::{Input, check_op, gpu, input};
use condenser::Tensor;
use condenser::autograd::{Var, functional as F, no_grad};
use condenser::cpu;
use condenser::ops::conv::{Conv2dConfig, ConvGeom};
use condenser::ops::losses::CeConfig;
use condenser::ops::pool::Pool2dConfig;
use condenser::ops::resample::UpsampleMode;

const FWD: f32 = 1e-4;
const GRAD: f64 = 2e-3;

fn conv_case(
    what: &str,
    x: [usize; 4],
    oc: usize,
    k: (usize, usize),
    cfg: Conv2dConfig,
    bias: bool,
) {
    let cg = x[1] / cfg.groups;
    let w = [oc, cg, k.0, k.1];
    let geom = ConvGeom::new(&x, &w, cfg).unwrap();
    let mut inputs = vec![input(&x, 1), input(&w, 2)];
    if bias {
        inputs.push(input(&[oc], 3));
    }
    check_op(
        what,
        &inputs,
        &|v| F::conv2d(&v[0], &v[1], v.get(2), cfg).unwrap(),
        &|xs| cpu::conv::conv2d(&xs[0], &xs[1], xs.get(2).map(|b| b.as_slice()), &geom),
        FWD,
        GRAD,
    );
}

#[test]
fn conv2d_gemm_path() {
    conv_case(
        "3x3 pad 1",
        [2, 3, 7, 5],
        4,
        (3, 3),
        Conv2dConfig::new(1, 1),
        true,
    );
    conv_case(
        "3x3 stride 2",
        [1, 5, 9, 11],
        7,
        (3, 3),
        Conv2dConfig::new(2, 0),
        false,
    );
    conv_case(
        "1x1",
        [3, 8, 4, 4],
        5,
        (1, 1),
        Conv2dConfig::default(),
        true,
    );
    conv_case(
        "kernel = input",
        [2, 2, 3, 3],
        3,
        (3, 3),
        Conv2dConfig::default(),
        true,
    );
    let dil = Conv2dConfig {
        dilation: (2, 1),
        padding: (2, 1),
        stride: (1, 2),
        groups: 1,
    };
    conv_case("dilated, rectangular", [1, 3, 8, 7], 2, (3, 2), dil, true);
}

#[test]
fn conv2d_grouped_and_depthwise() {
    let grouped = Conv2dConfig {
        groups: 2,
        ..Conv2dConfig::new(1, 1)
    };
    conv_case("groups 2", [2, 4, 6, 5], 6, (3, 3), grouped, true);
    let depthwise = Conv2dConfig {
        groups: 3,
        ..Conv2dConfig::new(2, 1)
    };
    conv_case("depthwise", [2, 3, 7, 7], 3, (3, 3), depthwise, false);
}

#[test]
fn conv2d_shape_errors() {
    let g = gpu();
    let x = Tensor::zeros(&g, &[1, 3, 5, 5]).unwrap();
    let w = Tensor::zeros(&g, &[4, 2, 3, 3]).unwrap();
    let e = condenser::ops::conv::conv2d(&x, &w, None, Conv2dConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups = 1"), "{e}");
    let w = Tensor::zeros(&g, &[4, 3, 7, 7]).unwrap();
    let e = condenser::ops::conv::conv2d(&x, &w, None, Conv2dConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit"), "{e}");
}

#[test]
fn linear_and_matmul() {
    check_op(
        "linear",
        &[input(&[3, 5], 1), input(&[4, 5], 2), input(&[4], 3)],
        &|v| F::linear(&v[0], &v[1], Some(&v[2])).unwrap(),
        &|xs| cpu::conv::linear(&xs[0], &xs[1], Some(&xs[2]), 3, 5, 4),
        FWD,
        GRAD,
    );
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (sa, sb) = (
            if ta { [5, 3] } else { [3, 5] },
            if tb { [4, 5] } else { [5, 4] },
        );
        check_op(
            &format!("matmul ta={ta} tb={tb}"),
            &[input(&sa, 4), input(&sb, 5)],
            &|v| F::matmul(&v[0], &v[1], ta, tb).unwrap(),
            &|xs| {
                let dims = cpu::matmul::Gemm {
                    m: 3,
                    n: 4,
                    k: 5,
                    ta,
                    tb,
                };
                cpu::matmul::matmul(&xs[0], &xs[1], 1, false, false, dims)
            },
            FWD,
            GRAD,
        );
    }
    // A batched left operand with a shared right operand: dB sums over the batch.
    check_op(
        "batched matmul, shared B",
        &[input(&[2, 3, 4], 6), input(&[4, 2], 7)],
        &|v| F::matmul(&v[0], &v[1], false, false).unwrap(),
        &|xs| {
            let dims = cpu::matmul::Gemm {
                m: 3,
                n: 2,
                k: 4,
                ta: false,
                tb: false,
            };
            cpu::matmul::matmul(&xs[0], &xs[1], 2, true, false, dims)
        },
        FWD,
        GRAD,
    );
}

#[test]
fn pooling() {
    for (what, shape, cfg) in [
        ("2x2/2", [2, 3, 6, 6], Pool2dConfig::new(2, 2, 0)),
        ("3x3/2 pad 1", [1, 2, 7, 7], Pool2dConfig::new(3, 2, 1)),
        ("3x3/1 odd", [1, 1, 5, 4], Pool2dConfig::new(3, 1, 1)),
    ] {
        let planes = shape[0] * shape[1];
        check_op(
            &format!("max_pool {what}"),
            &[input(&shape, 11)],
            &|v| F::max_pool2d(&v[0], cfg).unwrap(),
            &|xs| cpu::pool::max_pool2d(&xs[0], planes, shape[2], shape[3], &cfg).0,
            FWD,
            GRAD,
        );
        check_op(
            &format!("avg_pool {what}"),
            &[input(&shape, 12)],
            &|v| F::avg_pool2d(&v[0], cfg).unwrap(),
            &|xs| cpu::pool::avg_pool2d(&xs[0], planes, shape[2], shape[3], &cfg),
            FWD,
            GRAD,
        );
    }
    check_op(
        "global_avg_pool",
        &[input(&[2, 3, 5, 3], 13)],
        &|v| F::global_avg_pool(&v[0]).unwrap(),
        &|xs| {
            xs[0]
                .chunks(15)
                .map(|p| p.iter().sum::<f64>() / 15.0)
                .collect()
        },
        FWD,
        GRAD,
    );
}

#[test]
fn max_pool_indices_point_at_the_maxima() {
    let g = gpu();
    let v: Vec<f32> = (0..16).map(|i| ((i * 7) % 16) as f32).collect();
    let x = Tensor::from_slice(&g, &[1, 1, 4, 4], &v).unwrap();
    let (y, idx) = condenser::ops::pool::max_pool2d(&x, Pool2dConfig::new(2, 2, 0)).unwrap();
    let want = cpu::pool::max_pool2d(
        &v.iter().map(|&a| a as f64).collect::<Vec<_>>(),
        1,
        4,
        4,
        &Pool2dConfig::new(2, 2, 0),
    );
    assert_eq!(idx.to_vec_u32().unwrap(), want.1);
    assert_eq!(
        y.to_vec().unwrap(),
        want.0.iter().map(|&a| a as f32).collect::<Vec<_>>()
    );
}

#[test]
fn batch_norm_training_and_eval() {
    let g = gpu();
    let (n, c, h, w) = (3, 4, 3, 2);
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
        check_op(
            &format!("batch_norm training={training}"),
            &[input(&[n, c, h, w], 23), input(&[c], 24), input(&[c], 25)],
            &|v| F::batch_norm(&v[0], &v[1], &v[2], &rmc, &rvc, training, 0.1, 1e-5).unwrap(),
            &|xs| {
                if training {
                    cpu::norm::batch_norm_train(&xs[0], n, c, hw, &xs[1], &xs[2], 1e-5).0
                } else {
                    cpu::norm::batch_norm_eval(&xs[0], n, c, hw, &xs[1], &xs[2], &rm64, &rv64, 1e-5)
                }
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
                cpu::norm::batch_norm_train(&x, n, c, hw, &[1.0; 4], &[0.0; 4], 1e-5);
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

#[test]
fn concat_and_upsample() {
    check_op(
        "concat channels",
        &[input(&[2, 2, 3], 41), input(&[2, 3, 3], 42)],
        &|v| F::concat(&[&v[0], &v[1]], 1).unwrap(),
        &|xs| {
            let mut out = Vec::new();
            for n in 0..2 {
                out.extend_from_slice(&xs[0][n * 6..(n + 1) * 6]);
                out.extend_from_slice(&xs[1][n * 9..(n + 1) * 9]);
            }
            out
        },
        FWD,
        GRAD,
    );
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        for (h, w, oh, ow) in [(3, 4, 6, 8), (5, 3, 7, 8), (6, 5, 4, 3)] {
            check_op(
                &format!("upsample {mode:?} {h}x{w}->{oh}x{ow}"),
                &[input(&[2, 2, h, w], 43)],
                &|v| F::upsample(&v[0], oh, ow, mode).unwrap(),
                &|xs| cpu::resample::upsample(&xs[0], 4, h, w, oh, ow, mode),
                FWD,
                GRAD,
            );
        }
    }
}

#[test]
fn cross_entropy_classification_and_segmentation() {
    let g = gpu();
    let labels = [2u32, 0, 4, 1];
    let lab = Tensor::from_u32(&g, &[4], &labels).unwrap();
    for smoothing in [0.0, 0.1] {
        let cfg = CeConfig {
            label_smoothing: smoothing,
            ignore_index: None,
        };
        check_op(
            &format!("cross_entropy smoothing={smoothing}"),
            &[Input {
                data: common::rand_vec(20, 51).iter().map(|v| 4.0 * v).collect(),
                ..input(&[4, 5], 51)
            }],
            &|v| F::cross_entropy(&v[0], &lab, cfg).unwrap(),
            &|xs| vec![cpu::losses::cross_entropy(&xs[0], &labels, 4, 5, 1, &cfg)],
            FWD,
            GRAD,
        );
    }
    // Per-pixel logits [N, C, H, W] with ignored pixels (255).
    let seg: Vec<u32> = (0..2 * 6)
        .map(|i| if i % 5 == 3 { 255 } else { (i % 3) as u32 })
        .collect();
    let seg_t = Tensor::from_u32(&g, &[2, 2, 3], &seg).unwrap();
    let cfg = CeConfig {
        label_smoothing: 0.0,
        ignore_index: Some(255),
    };
    check_op(
        "cross_entropy segmentation",
        &[input(&[2, 3, 2, 3], 52)],
        &|v| F::cross_entropy(&v[0], &seg_t, cfg).unwrap(),
        &|xs| vec![cpu::losses::cross_entropy(&xs[0], &seg, 2, 3, 6, &cfg)],
        FWD,
        GRAD,
    );
}

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

#[test]
fn no_grad_records_nothing_and_intermediate_grads_can_be_kept() {
    let g = gpu();
    let w = Var::leaf(
        Tensor::rand_uniform(&g, &[3, 3], -1.0, 1.0, 1).unwrap(),
        true,
    );
    let x = Var::constant(Tensor::rand_uniform(&g, &[2, 3], -1.0, 1.0, 2).unwrap());
    {
        let _ng = no_grad();
        let y = F::linear(&x, &w, None).unwrap();
        assert!(
            !y.requires_grad() && y.is_leaf(),
            "no_grad must record no node"
        );
        assert!(F::sum(&y).unwrap().backward().is_err());
    }
    let h = F::relu(&F::linear(&x, &w, None).unwrap()).unwrap();
    h.retain_grad();
    let loss = F::sum(&h).unwrap();
    loss.backward().unwrap();
    let gh = h.grad().expect("retained gradient");
    assert_eq!(gh.to_vec().unwrap(), vec![1.0; 6], "d sum / d h = 1");
    assert!(w.grad().is_some());
    // A second backward accumulates into the leaf.
    let before = w.grad().unwrap().to_vec().unwrap();
    F::sum(&F::relu(&F::linear(&x, &w, None).unwrap()).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let after = w.grad().unwrap().to_vec().unwrap();
    for (a, b) in after.iter().zip(&before) {
        assert!((a - 2.0 * b).abs() < 1e-5);
    }
}
