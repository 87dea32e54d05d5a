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

#[test]
fn mean_ap_agrees_with_pycocotools() {
    use condenser::tasks::detection::{Detection, Truth, mean_ap};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coco_map");
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let (gt, dt, want) = (read("gt.json"), read("dt.json"), read("expected.json"));
    let ids: Vec<i64> = gt["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    let at = |id: i64| ids.iter().position(|&x| x == id).unwrap();
    let xyxy = |b: &serde_json::Value| {
        let v: Vec<f64> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        [v[0], v[1], v[0] + v[2], v[1] + v[3]]
    };
    let mut truth = vec![Vec::new(); ids.len()];
    for a in gt["annotations"].as_array().unwrap() {
        truth[at(a["image_id"].as_i64().unwrap())].push(Truth {
            b: xyxy(&a["bbox"]),
            class: a["category_id"].as_u64().unwrap() as usize - 1,
            crowd: a["iscrowd"].as_i64().unwrap() == 1,
        });
    }
    let mut dets = vec![Vec::new(); ids.len()];
    for d in dt.as_array().unwrap() {
        dets[at(d["image_id"].as_i64().unwrap())].push(Detection {
            b: xyxy(&d["bbox"]),
            class: d["category_id"].as_u64().unwrap() as usize - 1,
            score: d["score"].as_f64().unwrap(),
        });
    }
    let (map, map50) = mean_ap(&dets, &truth, 3);
    let (wm, w50) = (
        want["map"].as_f64().unwrap(),
        want["map50"].as_f64().unwrap(),
    );
    // Same arithmetic in f64: only summation order may differ.
    assert!((map - wm).abs() < 1e-12, "mAP {map} vs pycocotools {wm}");
    assert!(
        (map50 - w50).abs() < 1e-12,
        "mAP@.5 {map50} vs pycocotools {w50}"
    );
    // Perfect detections score 1; none score 0.
    let perfect: Vec<Vec<Detection>> = truth
        .iter()
        .map(|ts| {
            ts.iter()
                .filter(|t| !t.crowd)
                .map(|t| Detection {
                    b: t.b,
                    class: t.class,
                    score: 0.9,
                })
                .collect()
        })
        .collect();
    assert_eq!(mean_ap(&perfect, &truth, 3), (1.0, 1.0));
    assert_eq!(mean_ap(&vec![Vec::new(); ids.len()], &truth, 3), (0.0, 0.0));
}

#[test]
fn targets_peak_at_centres_and_decode_back_to_the_boxes() {
    use condenser::data::BBox;
    use condenser::tasks::detection::{decode, render_targets};
    let b = |x0, y0, x1, y1, class| BBox {
        x0,
        y0,
        x1,
        y1,
        class,
        crowd: false,
    };
    let boxes = vec![
        vec![b(4, 8, 20, 16, 1), b(30, 30, 62, 50, 0)],
        vec![b(0, 0, 8, 8, 2)],
    ];
    let t = render_targets(&boxes, 3, (16, 16));
    let plane = 256;
    // Centre of box 1 of image 0: (12, 12) px -> cell (3, 3), offset 0.
    assert_eq!(t.heat[plane + 3 * 16 + 3], 1.0);
    assert_eq!(
        t.heat.iter().filter(|&&v| v == 1.0).count(),
        3,
        "one peak per object"
    );
    assert!(t.heat.iter().all(|v| (0.0..=1.0).contains(v)));
    // Regression at that cell: width 4 cells, height 2 (as logs), offsets 0;
    // weights / 3 objects.
    let reg = |img: usize, c: usize, at: usize| t.reg[(img * 4 + c) * plane + at];
    assert_eq!(
        [reg(0, 0, 51), reg(0, 1, 51), reg(0, 2, 51), reg(0, 3, 51)],
        [4f32.ln(), 2f32.ln(), 0.0, 0.0]
    );
    assert!((t.weight[51] - condenser::tasks::detection::SIZE_WEIGHT / 3.0).abs() < 1e-7);
    // Box 2: centre (46, 40) px -> cell (11.5, 10) -> (11, 10), offset (0.5, 0).
    assert_eq!(reg(0, 2, 10 * 16 + 11), 0.5);
    // Logits that are the targets' logit, with the regression targets as the
    // head's output, decode back to the boxes.
    let g = gpu();
    let logit: Vec<f32> = t
        .heat
        .iter()
        .map(|&p| {
            if p >= 1.0 {
                6.0
            } else {
                (p.max(1e-4) / (1.0 - p.min(0.999))).ln() - 3.0
            }
        })
        .collect();
    let heat = Tensor::from_slice(&g, &[2, 3, 16, 16], &logit).unwrap();
    let regt = Tensor::from_slice(&g, &[2, 4, 16, 16], &t.reg).unwrap();
    let dets = decode(&heat, &regt, 3).unwrap();
    for (img, want) in boxes.iter().enumerate() {
        for w in want {
            let want = [w.x0 as f32, w.y0 as f32, w.x1 as f32, w.y1 as f32];
            assert!(
                dets[img].iter().any(|d| d.class == w.class as usize
                    && d.b.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4)),
                "image {img}: {w:?} not in {:?}",
                dets[img]
            );
        }
    }
}
