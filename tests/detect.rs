//! Detection ops against src/cpu/detect.rs (with gradient checks; tolerances
//! in tests/common), target rendering, box decoding and mAP against numbers
//! pycocotools computed (tests/fixtures/coco_map).

mod common;
use common::{FWD, GRAD, Input, check_op, gpu, input, rand_vec};
use condenser::Tensor;
use condenser::autograd::functional as F;
use condenser::cpu;
use condenser::ops::detect;

/// Gaussian-looking targets in [0, 1) with exact 1s at a few centres.
fn targets(n: usize, ones: &[usize]) -> Vec<f32> {
    let mut t: Vec<f32> = rand_vec(n, 31)
        .iter()
        .map(|v| (v.abs() * 0.9).min(0.95))
        .collect();
    for &i in ones {
        t[i] = 1.0;
    }
    t
}

#[test]
fn focal_loss_matches_reference_and_gradients() {
    let g = gpu();
    let shape = [2, 3, 4, 5];
    for (what, ones) in [
        ("three centres", vec![0usize, 17, 100]),
        ("no centre", vec![]),
    ] {
        let t = targets(120, &ones);
        let tt = Tensor::from_slice(&g, &shape, &t).unwrap();
        check_op(
            &format!("focal loss, {what}"),
            &[Input {
                data: rand_vec(120, 30).iter().map(|v| 3.0 * v).collect(),
                ..input(&shape, 30)
            }],
            &|v| F::focal_loss(&v[0], &tt).unwrap(),
            &|xs| {
                let y: Vec<f64> = t.iter().map(|&v| v as f64).collect();
                vec![cpu::detect::focal_loss(&xs[0], &y)]
            },
            FWD,
            GRAD,
        );
    }
    // Saturated logits stay finite.
    let x = Tensor::from_slice(&g, &[1, 1, 1, 4], &[-200.0, 200.0, -200.0, 200.0]).unwrap();
    let y = Tensor::from_slice(&g, &[1, 1, 1, 4], &[1.0, 1.0, 0.0, 0.0]).unwrap();
    let (l, s) = detect::focal_loss(&x, &y).unwrap();
    let l = l.item().unwrap();
    assert!(l.is_finite() && l > 100.0, "{l}");
    assert!(s.dx.to_vec().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn weighted_l1_matches_reference_and_gradients() {
    let g = gpu();
    let shape = [2, 4, 3, 3];
    let t: Vec<f32> = rand_vec(72, 41);
    // Keep predictions away from the kink at p = t.
    let p: Vec<f32> = rand_vec(72, 40)
        .iter()
        .zip(&t)
        .map(|(v, t)| t + if *v >= 0.0 { 0.05 + v } else { v - 0.05 })
        .collect();
    let w: Vec<f32> = rand_vec(72, 42).iter().map(|v| v.abs()).collect();
    let (tt, wt) = (
        Tensor::from_slice(&g, &shape, &t).unwrap(),
        Tensor::from_slice(&g, &shape, &w).unwrap(),
    );
    check_op(
        "weighted l1",
        &[Input {
            data: p,
            ..input(&shape, 40)
        }],
        &|v| F::weighted_l1(&v[0], &tt, &wt).unwrap(),
        &|xs| {
            let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
            vec![cpu::detect::weighted_l1(&xs[0], &f(&t), &f(&w))]
        },
        FWD,
        GRAD,
    );
}

#[test]
fn confidence_and_peaks_match_reference() {
    let g = gpu();
    // Odd sizes; distinct values so that the order is well defined.
    for (n, k, h, w, topk) in [(2, 3, 5, 7, 10), (1, 2, 1, 1, 4), (3, 1, 6, 4, 128)] {
        let x: Vec<f32> = rand_vec(n * k * h * w, 50 + h as u64)
            .iter()
            .enumerate()
            .map(|(i, v)| 4.0 * v + i as f32 * 1e-3)
            .collect();
        let xt = Tensor::from_slice(&g, &[n, k, h, w], &x).unwrap();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let conf = detect::confidence(&xt).unwrap().to_vec().unwrap();
        let want: Vec<f32> = cpu::detect::confidence(&x64, k, h * w)
            .iter()
            .map(|&v| v as f32)
            .collect();
        common::assert_close(&conf, &want, 1e-6, 1e-6, "confidence");
        let (s, idx) = detect::peaks(&xt, topk).unwrap();
        let (s, idx) = (s.to_vec().unwrap(), idx.to_vec_u32().unwrap());
        let want = cpu::detect::peaks(&x64, [k, h, w], topk);
        for i in 0..n {
            for j in 0..topk {
                let (ws, wi) = want[i][j];
                assert!(
                    (s[i * topk + j] as f64 - ws).abs() < 1e-6,
                    "peak {j} of image {i}: score {} vs {ws}",
                    s[i * topk + j]
                );
                if ws >= 0.0 {
                    assert_eq!(idx[i * topk + j], wi, "peak {j} of image {i}");
                }
            }
        }
    }
    let xt = Tensor::from_slice(&g, &[1, 1, 2, 2], &[0.0; 4]).unwrap();
    assert!(detect::peaks(&xt, 0).is_err() && detect::peaks(&xt, 129).is_err());
}
