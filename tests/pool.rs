//! Pooling (max, average, global average) against src/cpu/pool.rs and finite
//! differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, check_op, gpu, input};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::pool::Pool2dConfig;

#[test]
fn pooling() {
    for (what, shape, cfg) in [
        ("2x2/2", [2, 3, 6, 6], Pool2dConfig::new(2, 2, 0)),
        ("3x3/2 pad 1", [1, 2, 7, 7], Pool2dConfig::new(3, 2, 1)),
        ("3x3/1 odd", [1, 1, 5, 4], Pool2dConfig::new(3, 1, 1)),
        (
            "2x2/1 dilation 2",
            [1, 2, 6, 5],
            Pool2dConfig {
                dilation: (2, 2),
                ..Pool2dConfig::new(2, 1, 0)
            },
        ),
        (
            "3x2/2 dilation (2, 3) pad 1",
            [2, 1, 9, 10],
            Pool2dConfig {
                kernel: (3, 2),
                stride: (2, 2),
                padding: (1, 1),
                dilation: (2, 3),
            },
        ),
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
