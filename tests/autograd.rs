//! The tape itself: no_grad records nothing, retained intermediate gradients.
//! Tolerances (see tests/common): forwards 1e-4 absolute plus relative, gradients
//! 2e-3 of the largest component against f64 finite differences.

mod common;
use common::gpu;
use condenser::Tensor;
use condenser::autograd::{Var, functional as F, no_grad};

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
