//! Batch norm (training and eval, running statistics) against src/cpu/norm.rs
//! and finite differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, check_op, gpu, input};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::norm::BnConfig;

#[test]
fn batch_norm_training_and_eval() {
    check_batch_norm(3, 4, 3, 2);
}

/// Planes of a multiple of 4 values run the vec4 kernels; the scalar ones are
/// checked on the same shape with the vec4 variants turned off.
#[test]
fn batch_norm_vec4_and_scalar_kernels() {
    for vec4 in [true, false] {
        condenser::ops::set_vec4_variants(vec4);
        check_batch_norm(2, 5, 4, 3);
        check_batch_norm(5, 3, 1, 4);
    }
    condenser::ops::set_vec4_variants(true);
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
        check_op(
            &format!("batch_norm training={training}"),
            &[input(&[n, c, h, w], 23), input(&[c], 24), input(&[c], 25)],
            &|v| {
                F::batch_norm(
                    &v[0],
                    (&v[1], &v[2]),
                    (&rmc, &rvc),
                    BnConfig {
                        training,
                        momentum: 0.1,
                        eps: 1e-5,
                    },
                )
                .unwrap()
            },
            &|xs| {
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
