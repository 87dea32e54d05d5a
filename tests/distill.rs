//! Distillation paths against f64 references (with gradient checks), the
//! aggregators' arithmetic, and the trainer's determinism and resume.

mod common;
use common::{Input, check_op, gpu, input, rand_vec};
use condenser::Tensor;
use condenser::autograd::{Var, functional as F};
use condenser::cpu;
use condenser::distill::aggregate::{AggregateSpec, build_aggregator};
use condenser::distill::paths::{attention, build_paths, gram, parse_paths};
use condenser::distill::trainer::{RunConfig, run};

// Forward sums are short here; 1e-4 is loose against f32 rounding. Gradients:
// 2e-3 of the largest component (see tests/layers.rs).
const FWD: f32 = 1e-4;
const GRAD: f64 = 2e-3;

#[test]
fn soft_target_fused_kernel() {
    for t in [1.0f32, 4.0] {
        let zt = Input {
            grad: false,
            data: rand_vec(15, 2).iter().map(|v| 5.0 * v).collect(),
            ..input(&[3, 5], 2)
        };
        check_op(
            &format!("soft target T={t}"),
            &[
                Input {
                    data: rand_vec(15, 1).iter().map(|v| 5.0 * v).collect(),
                    ..input(&[3, 5], 1)
                },
                zt,
            ],
            &|v| F::soft_target(&v[0], v[1].value(), t).unwrap(),
            &|xs| vec![cpu::distill::soft_target(&xs[0], &xs[1], 5, t as f64)],
            FWD,
            GRAD,
        );
    }
}

#[test]
fn attention_and_nst_losses() {
    let (n, c, h, w) = (2, 3, 4, 3);
    let ft = Input {
        grad: false,
        ..input(&[n, 4, h, w], 5)
    };
    check_op(
        "attention transfer",
        &[input(&[n, c, h, w], 4), ft],
        &|v| F::mse(&attention(&v[0]).unwrap(), &attention(&v[1]).unwrap()).unwrap(),
        &|xs| {
            let a = cpu::distill::attention_map(&xs[0], n, c, h * w);
            let b = cpu::distill::attention_map(&xs[1], n, 4, h * w);
            vec![cpu::distill::mse(&a, &b)]
        },
        FWD,
        GRAD,
    );
    let gt = Input {
        grad: false,
        ..input(&[n, c, h, w], 7)
    };
    check_op(
        "nst gram",
        &[input(&[n, c, h, w], 6), gt],
        &|v| F::mse(&gram(&v[0]).unwrap(), &gram(&v[1]).unwrap()).unwrap(),
        &|xs| {
            vec![cpu::distill::mse(
                &cpu::distill::gram(&xs[0], n, c, h * w),
                &cpu::distill::gram(&xs[1], n, c, h * w),
            )]
        },
        FWD,
        GRAD,
    );
}

#[test]
fn path_parsing_and_building() {
    let g = gpu();
    let kinds = parse_paths("soft,hint@1,at,nst").unwrap();
    let paths = build_paths(&g, &kinds, &[4, 8, 16], &[16, 32, 64], true, 4.0, 0).unwrap();
    let names: Vec<&str> = paths.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["soft", "hint", "at1", "at2", "nst"]);
    let one = build_paths(
        &g,
        &parse_paths("at").unwrap(),
        &[4, 8, 16],
        &[16, 32, 64],
        false,
        4.0,
        0,
    )
    .unwrap();
    assert_eq!(one[0].stages, vec![1, 2]);
    assert!(
        parse_paths("soft,wat")
            .unwrap_err()
            .to_string()
            .contains("unknown distillation path")
    );
    assert!(
        build_paths(
            &g,
            &parse_paths("hint@7").unwrap(),
            &[4],
            &[8],
            false,
            4.0,
            0
        )
        .is_err()
    );
    assert!(
        build_paths(
            &g,
            &parse_paths("at,at").unwrap(),
            &[4, 8],
            &[8, 8],
            false,
            4.0,
            0
        )
        .is_err()
    );
}

/// A parameter vector p and losses linear in it: CE = <a, p>, L_k = <b_k, p>,
/// whose gradients are a and b_k.
fn linear_tasks(a: &[f32], bs: &[Vec<f32>]) -> (Var, Var, Vec<Var>) {
    let g = gpu();
    let p = Var::leaf(
        Tensor::from_slice(&g, &[a.len()], &vec![0.5; a.len()]).unwrap(),
        true,
    );
    let dotv = |v: &[f32]| {
        let c = Var::constant(Tensor::from_slice(&g, &[v.len()], v).unwrap());
        F::sum(&F::mul(&p, &c).unwrap()).unwrap()
    };
    let ce = dotv(a);
    let ls = bs.iter().map(|b| dotv(b)).collect();
    (p, ce, ls)
}

fn grad_after(spec: &str, a: &[f32], bs: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let (p, ce, ls) = linear_tasks(a, bs);
    // Aggregators are sized by their paths; stand-ins with no features suffice.
    let kinds = parse_paths(&["logits", "soft"][..bs.len()].join(",")).unwrap();
    let paths = build_paths(&gpu(), &kinds, &[1], &[1], false, 4.0, 0).unwrap();
    let spec: AggregateSpec = spec.parse().unwrap();
    let mut agg = build_aggregator(&spec, &paths, &gpu()).unwrap();
    agg.backward(&ce, &ls, std::slice::from_ref(&p), &p)
        .unwrap();
    (p.grad().unwrap().to_vec().unwrap(), agg.weights().unwrap())
}

#[test]
fn fixed_and_equal_weights() {
    let a = vec![1.0, 2.0, 0.0];
    let b = vec![vec![0.0, 1.0, 1.0]];
    let (g, w) = grad_after("fixed:3", &a, &b);
    assert_eq!(w, vec![3.0]);
    assert_eq!(g, vec![1.0, 5.0, 3.0]);
    // Equal: CE + L_1 + L_2, so the gradient is a + b_1 + b_2.
    let b2 = vec![vec![0.0, 1.0, 1.0], vec![2.0, 0.0, -1.0]];
    let (g, w) = grad_after("equal", &a, &b2);
    assert_eq!(w, vec![1.0, 1.0]);
    assert_eq!(g, vec![3.0, 3.0, 0.0]);
}

#[test]
fn gradnorm_moves_weight_towards_the_path_with_the_smaller_gradient() {
    // Linear losses: path k's gradient at the shared parameter is b_k, with
    // norms 1 and 3. At the first step the loss ratios are all 1, so each
    // weight moves by lr = 0.025 against sign(w_k |b_k| - mean) * |b_k|, and the
    // weights are renormalised to sum to 2 (Chen et al. 2018, alpha = 1.5).
    let a = vec![1.0, 0.0, 0.0];
    let b = vec![vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 3.0]];
    let (g, w) = grad_after("gradnorm", &a, &b);
    let raw = [1.0 + 0.025 * 1.0, 1.0 - 0.025 * 3.0];
    let want = [
        2.0 * raw[0] / (raw[0] + raw[1]),
        2.0 * raw[1] / (raw[0] + raw[1]),
    ];
    common::assert_close(&w, &want, 1e-6, 0.0, "gradnorm weights");
    assert!(w[0] > 1.0 && w[1] < 1.0, "{w:?}");
    common::assert_close(
        &g,
        &[1.0, want[0], 3.0 * want[1]],
        1e-6,
        0.0,
        "gradnorm gradient",
    );
}

#[test]
fn pcgrad_projects_conflicting_gradients() {
    // a = (1, 0), b = (-1, 1): <a, b> = -1 < 0, so
    // a' = a - (-1 / 2) b = (0.5, 0.5), b' = b - (-1 / 1) a = (0, 1); sum (0.5, 1.5).
    let (g, _) = grad_after("pcgrad", &[1.0, 0.0], &[vec![-1.0, 1.0]]);
    common::assert_close(&g, &[0.5, 1.5], 1e-5, 0.0, "pcgrad");
    // No conflict: plain sum.
    let (g, _) = grad_after("pcgrad", &[1.0, 0.0], &[vec![1.0, 1.0]]);
    common::assert_close(&g, &[2.0, 1.0], 1e-5, 0.0, "pcgrad without conflict");
}

#[test]
fn mgda_takes_the_min_norm_combination() {
    // Orthogonal unit gradients: weights 1/2 each, scaled by the 2 tasks.
    let (g, w) = grad_after("mgda", &[1.0, 0.0], &[vec![0.0, 1.0]]);
    common::assert_close(&g, &[1.0, 1.0], 1e-3, 0.0, "mgda");
    assert!((w[0] - 1.0).abs() < 1e-3);
}

#[test]
fn adaptive_alpha_gradient_is_one_minus_weighted_loss() {
    let g = gpu();
    let kinds = parse_paths("soft,logits").unwrap();
    let paths = build_paths(&g, &kinds, &[1], &[1], false, 4.0, 0).unwrap();
    let mut agg = build_aggregator(&AggregateSpec::Adaptive, &paths, &g).unwrap();
    let p = Var::leaf(Tensor::from_slice(&g, &[1], &[2.0]).unwrap(), true);
    let l1 = F::scale(&p, 1.5).unwrap(); // 3.0
    let l2 = F::scale(&p, 0.25).unwrap(); // 0.5
    let ce = F::scale(&p, 0.0).unwrap();
    let l1 = F::reshape(&l1, &[]).unwrap();
    let l2 = F::reshape(&l2, &[]).unwrap();
    let ce = F::reshape(&ce, &[]).unwrap();
    agg.backward(&ce, &[l1, l2], std::slice::from_ref(&p), &p)
        .unwrap();
    // d/d alpha_k [exp(-alpha_k) L_k + alpha_k] at alpha = 0 is 1 - L_k.
    let alpha = &agg.params()[0];
    common::assert_close(
        &alpha.grad().unwrap().to_vec().unwrap(),
        &[-2.0, 0.5],
        1e-5,
        0.0,
        "d alpha",
    );
    assert_eq!(agg.weights().unwrap(), vec![1.0, 1.0]);
    // d/dp = 1.5 + 0.25 (weights exp(0) = 1).
    common::assert_close(
        &p.grad().unwrap().to_vec().unwrap(),
        &[1.75],
        1e-5,
        0.0,
        "d p",
    );
}

#[test]
fn dwa_weights_follow_loss_ratios() {
    let g = gpu();
    let paths = build_paths(
        &g,
        &parse_paths("soft,logits").unwrap(),
        &[1],
        &[1],
        false,
        4.0,
        0,
    )
    .unwrap();
    let mut agg = build_aggregator(&AggregateSpec::Dwa, &paths, &g).unwrap();
    agg.end_epoch(&[1.0, 1.0]);
    assert_eq!(agg.weights().unwrap(), vec![1.0, 1.0]);
    agg.end_epoch(&[0.5, 1.0]);
    // r = (0.5, 1); w = 2 softmax(r / 2)
    let e = [(0.25f32).exp(), (0.5f32).exp()];
    let want = [2.0 * e[0] / (e[0] + e[1]), 2.0 * e[1] / (e[0] + e[1])];
    common::assert_close(&agg.weights().unwrap(), &want, 1e-6, 0.0, "dwa");
}

fn tiny(out: &std::path::Path) -> RunConfig {
    RunConfig {
        data: "shapes".into(),
        image_size: Some(12),
        shapes_count: Some(192),
        test_limit: Some(64),
        student_model: "cnn4".into(),
        epochs: 2,
        batch_size: 32,
        lr: 0.05,
        schedule: "cosine".parse().unwrap(),
        out_dir: out.to_path_buf(),
        progress: false,
        log_every: 2,
        ..RunConfig::default()
    }
}

#[test]
fn distillation_runs_are_deterministic_and_resume_exactly() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("condenser-distill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let teacher_cfg = RunConfig {
        student_model: "cnn8".into(),
        out_dir: dir.join("teacher"),
        ..tiny(&dir)
    };
    run(&g, &teacher_cfg).unwrap();
    let d = |name: &str| RunConfig {
        teacher_model: Some("cnn8".into()),
        teacher_weights: Some(dir.join("teacher/model.safetensors")),
        paths: "soft,hint,at".into(),
        aggregate: "adaptive".parse().unwrap(),
        out_dir: dir.join(name),
        ..tiny(&dir)
    };
    let a = run(&g, &d("a")).unwrap();
    let b = run(&g, &d("b")).unwrap();
    assert_eq!(a.curve, b.curve, "same config, same numbers");
    assert_eq!(a.weight_history, b.weight_history);
    // Stop after one epoch, then resume for the second.
    let one = RunConfig {
        stop_after: Some(1),
        ..d("c")
    };
    run(&g, &one).unwrap();
    let resumed = run(
        &g,
        &RunConfig {
            resume: true,
            ..d("c")
        },
    )
    .unwrap();
    assert_eq!(
        resumed.curve, a.curve,
        "resumed run must match the uninterrupted one"
    );
    let wa = std::fs::read(dir.join("a/model.safetensors")).unwrap();
    let wc = std::fs::read(dir.join("c/model.safetensors")).unwrap();
    assert_eq!(wa, wc, "resumed weights must be byte-identical");
    // A different configuration refuses to resume another run's checkpoint.
    let e = run(
        &g,
        &RunConfig {
            resume: true,
            aggregate: "equal".parse().unwrap(),
            ..d("c")
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("different configuration"), "{e}");
    // Paths need a teacher; a teacher of the wrong architecture is named.
    let e = run(
        &g,
        &RunConfig {
            paths: "soft".into(),
            ..tiny(&dir.join("x"))
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("need a teacher"), "{e}");
    let e = run(
        &g,
        &RunConfig {
            teacher_model: Some("cnn4".into()),
            ..d("y")
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("holds a cnn8"), "{e}");
    let log = std::fs::read_to_string(dir.join("a/metrics.jsonl")).unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"type\":\"epoch\"")) && log.contains("\"weights\""),
        "{log}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dense_soft_target_skips_ignored_pixels() {
    let g = gpu();
    let (n, k, h, w) = (2, 4, 3, 5);
    let s = h * w;
    // Every fourth position ignored, and one image with every position ignored.
    for (name, labels) in [
        (
            "some ignored",
            (0..n * s)
                .map(|i| if i % 4 == 1 { 255 } else { (i % k) as u32 })
                .collect::<Vec<u32>>(),
        ),
        ("all ignored", vec![255u32; n * s]),
    ] {
        let lab = Tensor::from_u32(&g, &[n, h, w], &labels).unwrap();
        for t in [1.0f32, 3.0] {
            let zt = Input {
                grad: false,
                data: rand_vec(n * k * s, 12).iter().map(|v| 4.0 * v).collect(),
                ..input(&[n, k, h, w], 12)
            };
            let labels = labels.clone();
            check_op(
                &format!("dense soft target, {name}, T={t}"),
                &[
                    Input {
                        data: rand_vec(n * k * s, 11).iter().map(|v| 4.0 * v).collect(),
                        ..input(&[n, k, h, w], 11)
                    },
                    zt,
                ],
                &|v| F::soft_target_dense(&v[0], v[1].value(), &lab, 255, t).unwrap(),
                &|xs| {
                    vec![cpu::distill::soft_target_dense(
                        &xs[0],
                        &xs[1],
                        &labels,
                        (k, s),
                        255,
                        t as f64,
                    )]
                },
                FWD,
                GRAD,
            );
        }
    }
    // Shapes that do not fit are refused, not misread.
    let z = Var::constant(Tensor::from_slice(&g, &[2, 4, 3, 5], &[0.0; 120]).unwrap());
    let bad = Tensor::from_u32(&g, &[2, 5, 3], &[0; 30]).unwrap();
    let e = F::soft_target_dense(&z, z.value(), &bad, 255, 1.0).unwrap_err();
    assert!(e.to_string().contains("labels [N, ...]"), "{e}");
}

#[test]
fn affinity_path_matches_reference() {
    use condenser::distill::paths::affinity;
    let (n, h, w) = (2, 3, 2);
    let ft = Input {
        grad: false,
        ..input(&[n, 5, h, w], 21)
    };
    check_op(
        "affinity",
        &[input(&[n, 3, h, w], 20), ft],
        &|v| F::mse(&affinity(&v[0]).unwrap(), &affinity(&v[1]).unwrap()).unwrap(),
        &|xs| {
            vec![cpu::distill::mse(
                &cpu::distill::affinity(&xs[0], n, 3, h * w),
                &cpu::distill::affinity(&xs[1], n, 5, h * w),
            )]
        },
        FWD,
        GRAD,
    );
}

/// Feature paths between stages of different resolutions (teachers of another
/// architecture): the teacher's map is area-averaged to the student's size when
/// it is a whole multiple larger, else resampled bilinearly; the loss equals
/// the one against that map computed by hand.
#[test]
fn feature_paths_match_the_teachers_resolution_to_the_students() {
    use condenser::distill::paths::PathKind;
    use condenser::nn::ModelOutput;
    use condenser::ops::pool::Pool2dConfig;
    use condenser::ops::resample::UpsampleMode;
    let g = gpu();
    let out = |f: Var| ModelOutput {
        logits: Var::constant(Tensor::zeros(&g, &[2, 3]).unwrap()),
        boxes: None,
        pooled: Var::constant(Tensor::zeros(&g, &[2, 3]).unwrap()),
        features: vec![f],
    };
    let fs = Var::leaf(
        Tensor::rand_uniform(&g, &[2, 3, 4, 5], -1.0, 1.0, 1).unwrap(),
        true,
    );
    let paths = build_paths(
        &g,
        &[(PathKind::Attention, Some(0))],
        &[3],
        &[6],
        false,
        4.0,
        0,
    )
    .unwrap();
    for (th, tw) in [(8, 10), (12, 5), (6, 7), (3, 3)] {
        let ft = Var::constant(Tensor::rand_uniform(&g, &[2, 6, th, tw], -1.0, 1.0, 2).unwrap());
        let got = paths[0]
            .loss(&out(fs.clone()), &out(ft.clone()), None, true)
            .unwrap();
        let matched = if th % 4 == 0 && tw % 5 == 0 {
            let k = (th / 4, tw / 5);
            F::avg_pool2d(
                &ft,
                Pool2dConfig {
                    kernel: k,
                    stride: k,
                    padding: (0, 0),
                    dilation: (1, 1),
                },
            )
            .unwrap()
        } else {
            F::upsample(&ft, 4, 5, UpsampleMode::Bilinear).unwrap()
        };
        let want = F::mse(&attention(&fs).unwrap(), &attention(&matched).unwrap()).unwrap();
        let (a, b) = (got.value().item().unwrap(), want.value().item().unwrap());
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{th}x{tw}: {a} vs {b}"
        );
        got.backward().unwrap();
        assert!(fs.grad().is_some(), "the student's feature gets a gradient");
    }
}

/// The numbers a run logged at each step (CE, path losses, weights), without
/// its speed.
fn logged_steps(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"step\""))
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("images_per_s");
            v.to_string()
        })
        .collect()
}

/// A run with replayed steps and the same run without: the same weights
/// (file bytes, running statistics and counters included), curve, path
/// weights and logged losses; `replays` says whether steps must have been
/// replayed (an aggregator that keeps host state per step never is).
fn replayed_run_matches(g: &condenser::Gpu, cfg: &RunConfig, replays: bool) {
    use condenser::tasks::replay::{replayed_steps, set_enabled};
    let dir = cfg.out_dir.clone();
    let (on, off) = (dir.join("on"), dir.join("off"));
    let before = replayed_steps();
    let a = run(
        g,
        &RunConfig {
            out_dir: on.clone(),
            ..cfg.clone()
        },
    )
    .unwrap();
    let replayed = replayed_steps() - before;
    set_enabled(false);
    let b = run(
        g,
        &RunConfig {
            out_dir: off.clone(),
            ..cfg.clone()
        },
    );
    set_enabled(true);
    let b = b.unwrap();
    assert_eq!(
        replayed_steps() - before,
        replayed,
        "replayed while turned off"
    );
    if replays {
        // 2 epochs of 6 steps; a step is kept from the fourth step of an
        // epoch on (the first's pool differs, then the optimiser's state
        // appears), so 5 replays here.
        assert!(
            replayed >= 4,
            "{}: only {replayed} steps replayed",
            cfg.paths
        );
    } else {
        assert_eq!(replayed, 0, "{}: replayed", cfg.paths);
    }
    assert_eq!(a.curve, b.curve, "{}", cfg.paths);
    assert_eq!(a.weight_history, b.weight_history, "{}", cfg.paths);
    assert_eq!(logged_steps(&on), logged_steps(&off), "{}", cfg.paths);
    let wa = std::fs::read(on.join("model.safetensors")).unwrap();
    let wb = std::fs::read(off.join("model.safetensors")).unwrap();
    assert!(
        wa == wb,
        "{}: weights differ with replayed steps",
        cfg.paths
    );
}

#[test]
fn replayed_trainer_steps_match_recorded_ones_to_the_bit() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("condenser-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let teacher = RunConfig {
        student_model: "cnn8".into(),
        log_every: 1,
        out_dir: dir.join("teacher"),
        ..tiny(&dir)
    };
    // Plain supervised training (no teacher), then students of its weights.
    replayed_run_matches(&g, &teacher, true);
    let student = |paths: &str, aggregate: &str, name: &str| RunConfig {
        teacher_model: Some("cnn8".into()),
        teacher_weights: Some(dir.join("teacher/on/model.safetensors")),
        paths: paths.into(),
        aggregate: aggregate.parse().unwrap(),
        log_every: 1,
        out_dir: dir.join(name),
        ..tiny(&dir)
    };
    replayed_run_matches(&g, &student("soft,hint,at", "adaptive", "adaptive"), true);
    // DWA's weights change at the end of the first epoch: captured afresh.
    replayed_run_matches(&g, &student("soft,hint", "dwa", "dwa"), true);
    // PCGrad counts its steps on the host: never replayed.
    replayed_run_matches(&g, &student("soft,hint", "pcgrad", "pcgrad"), false);
    std::fs::remove_dir_all(&dir).unwrap();
}
