//! Cross-entropy (label smoothing, ignore index, per-pixel) against
//! src/cpu/losses.rs and finite differences.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::{FWD, GRAD, Input, check_op, gpu, input};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::losses::CeConfig;

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
