//! Channel concatenation and nearest / bilinear upsampling against their
//! references and finite differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, check_op, input};
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::resample::UpsampleMode;

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
