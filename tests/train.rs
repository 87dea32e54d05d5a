//! Models, weight files and training end to end.

mod common;
use std::collections::HashMap;
use std::time::Instant;

use common::gpu;
use condenser::autograd::{Var, functional as F};
use condenser::data::loader::{Loader, LoaderConfig};
use condenser::data::{DataOptions, Split, idx, load};
use condenser::nn::{self, ModelSpec, build_model, safetensors};
use condenser::ops::conv::Conv2dConfig;
use condenser::ops::losses::CeConfig;
use condenser::ops::pool::Pool2dConfig;
use condenser::optim::Sgd;
use condenser::tasks::classification::{checked_loss, evaluate, train_step};
use condenser::{Tensor, cpu};

fn spec(arch: &str, cin: usize, classes: usize) -> ModelSpec {
    ModelSpec {
        arch: arch.into(),
        in_channels: cin,
        num_classes: classes,
        task: condenser::tasks::Task::Classify,
    }
}

#[test]
fn parameter_counts_match_the_published_models() {
    let g = gpu();
    // CIFAR-100 heads; figures as reported by RepDistiller / the WRN paper.
    for (arch, want) in [
        ("resnet8x4", 1.23e6),
        ("resnet32x4", 7.43e6),
        ("resnet20", 0.278e6),
        ("resnet56", 0.861e6),
        ("wrn-16-2", 0.704e6),
        ("wrn-40-2", 2.255e6),
    ] {
        let m = build_model(&g, &spec(arch, 3, 100), 0).unwrap();
        let n = nn::param_count(m.as_ref()) as f64;
        assert!(
            (n - want).abs() / want < 0.02,
            "{arch}: {n} parameters, expected about {want}"
        );
    }
    let e = build_model(&g, &spec("resnet9", 3, 10), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("6n + 2"), "{e}");
    let e = build_model(&g, &spec("vgg", 3, 10), 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unknown model"), "{e}");
}

#[test]
fn pytorch_style_names() {
    let g = gpu();
    let m = build_model(&g, &spec("resnet8x4", 3, 10), 0).unwrap();
    let names: Vec<String> = nn::named_parameters(m.as_ref())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for want in [
        "conv1.weight",
        "bn1.weight",
        "layer1.0.conv1.weight",
        "layer1.0.downsample.0.weight",
        "layer3.0.bn2.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let w = build_model(&g, &spec("wrn-16-2", 3, 10), 0).unwrap();
    let names: Vec<String> = nn::named_parameters(w.as_ref())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n == "block1.layer.0.convShortcut.weight"),
        "{names:?}"
    );
}

#[test]
fn every_model_runs_forward_and_backward() {
    let g = gpu();
    for arch in ["cnn4", "resnet8", "resnet8x4", "wrn-10-1"] {
        let m = build_model(&g, &spec(arch, 3, 7), 1).unwrap();
        let x = Var::constant(Tensor::rand_uniform(&g, &[2, 3, 16, 16], -1.0, 1.0, 2).unwrap());
        let out = m.forward(&x, true).unwrap();
        assert_eq!(out.logits.shape(), &[2, 7], "{arch}");
        assert_eq!(out.features.len(), m.feature_channels().len(), "{arch}");
        for (f, &c) in out.features.iter().zip(&m.feature_channels()) {
            assert_eq!(f.shape()[1], c, "{arch}");
        }
        let labels = Tensor::from_u32(&g, &[2], &[1, 5]).unwrap();
        F::cross_entropy(&out.logits, &labels, CeConfig::default())
            .unwrap()
            .backward()
            .unwrap();
        for (name, p) in nn::named_parameters(m.as_ref()) {
            let gr = p
                .grad()
                .unwrap_or_else(|| panic!("{arch}: {name} has no gradient"));
            assert!(
                gr.to_vec().unwrap().iter().all(|v| v.is_finite()),
                "{arch}: {name}"
            );
        }
    }
}

/// The f64 reference forward of cnn<w> in training mode (batch statistics).
fn cnn_reference(
    p: &HashMap<String, Vec<f64>>,
    x: &[f64],
    shape: [usize; 4],
    w: usize,
    classes: usize,
) -> Vec<f64> {
    let [n, mut c, mut h, mut wd] = shape;
    let mut a = x.to_vec();
    let chans = [w, 2 * w, 4 * w];
    for i in 0..3 {
        let w = &p[&format!("conv{}.weight", i + 1)];
        let cfg = Conv2dConfig::new(1, 1);
        a = cpu::conv::conv2d(&a, [n, c, h, wd], w, [chans[i], c, 3, 3], None, &cfg).0;
        c = chans[i];
        a = cpu::norm::batch_norm_train(
            &a,
            n,
            c,
            h * wd,
            &p[&format!("bn{}.weight", i + 1)],
            &p[&format!("bn{}.bias", i + 1)],
            1e-5,
        )
        .0;
        a.iter_mut().for_each(|v| *v = v.max(0.0));
        if i < 2 {
            a = cpu::pool::max_pool2d(&a, n * c, h, wd, &Pool2dConfig::new(2, 2, 0)).0;
            h /= 2;
            wd /= 2;
        }
    }
    let pooled: Vec<f64> = a
        .chunks(h * wd)
        .map(|pl| pl.iter().sum::<f64>() / (h * wd) as f64)
        .collect();
    cpu::conv::linear(&pooled, &p["fc.weight"], Some(&p["fc.bias"]), n, c, classes)
}

#[test]
fn a_training_step_matches_the_cpu_reference() {
    let g = gpu();
    let (n, classes, w) = (4, 5, 4);
    let shape = [n, 1, 12, 12];
    let m = build_model(&g, &spec("cnn4", 1, classes), 3).unwrap();
    let xv = common::rand_vec(shape.iter().product(), 4);
    let x = Var::constant(Tensor::from_slice(&g, &shape, &xv).unwrap());
    let labels = [0u32, 3, 1, 4];
    let lab = Tensor::from_u32(&g, &[n], &labels).unwrap();
    let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, false, 5e-4).unwrap();
    for step in 0..3 {
        let params: HashMap<String, Vec<f64>> = nn::named_parameters(m.as_ref())
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    v.value()
                        .to_vec()
                        .unwrap()
                        .iter()
                        .map(|&x| x as f64)
                        .collect(),
                )
            })
            .collect();
        let x64: Vec<f64> = xv.iter().map(|&v| v as f64).collect();
        let logits = cnn_reference(&params, &x64, shape, w, classes);
        let want =
            cpu::losses::cross_entropy(&logits, &labels, n, classes, 1, &CeConfig::default());
        let loss = train_step(m.as_ref(), &mut opt, &x, &lab, 0.1, CeConfig::default()).unwrap();
        let got = checked_loss(&loss, step).unwrap() as f64;
        // f32 network vs f64 reference: a few 1e-6 relative through ~10 layers.
        assert!(
            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
            "step {step}: GPU loss {got}, reference {want}"
        );
    }
}

#[test]
fn weights_round_trip_and_mismatches_are_listed() {
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("condenser-weights-{}", std::process::id()));
    let path = dir.join("m.safetensors");
    let a = build_model(&g, &spec("resnet8", 3, 10), 1).unwrap();
    // Move running statistics off their initial values first.
    let x = Var::constant(Tensor::rand_uniform(&g, &[2, 3, 8, 8], -1.0, 1.0, 9).unwrap());
    a.forward(&x, true).unwrap();
    safetensors::save(a.as_ref(), &path, &[("arch", "resnet8".into())]).unwrap();
    let b = build_model(&g, &spec("resnet8", 3, 10), 2).unwrap();
    safetensors::load(b.as_ref(), &path).unwrap();
    let ya = a
        .forward(&x, false)
        .unwrap()
        .logits
        .value()
        .to_vec()
        .unwrap();
    let yb = b
        .forward(&x, false)
        .unwrap()
        .logits
        .value()
        .to_vec()
        .unwrap();
    assert_eq!(ya, yb);
    assert_eq!(safetensors::metadata(&path).unwrap()["arch"], "resnet8");

    let other = build_model(&g, &spec("resnet14", 3, 10), 2).unwrap();
    let e = safetensors::load(other.as_ref(), &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing layer1.1.conv1.weight"), "{e}");
    let wide = build_model(&g, &spec("resnet8", 3, 12), 2).unwrap();
    let e = safetensors::load(wide.as_ref(), &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fc.weight: file has [10, 64], model has [12, 64]"),
        "{e}"
    );

    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let e = safetensors::load(b.as_ref(), &path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not hold") && e.contains("truncated"), "{e}");
    std::fs::write(&path, &bytes[..4]).unwrap();
    assert!(
        safetensors::load(b.as_ref(), &path)
            .unwrap_err()
            .to_string()
            .contains("too short")
    );
    std::fs::write(&path, [&100000u64.to_le_bytes()[..], b"{}"].concat()).unwrap();
    assert!(
        safetensors::load(b.as_ref(), &path)
            .unwrap_err()
            .to_string()
            .contains("runs past the end")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn small_cnn_learns_fashion_mnist_on_this_adapter() {
    if !std::path::Path::new(idx::FASHION_MNIST_DIR).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install dataset-fashion-mnist"
        );
        eprintln!("skipped: Fashion-MNIST is not installed");
        return;
    }
    let g = gpu();
    let opts = |limit| DataOptions {
        limit: Some(limit),
        ..Default::default()
    };
    let train = load("fashion-mnist", Split::Train, &opts(5000)).unwrap();
    let test = load("fashion-mnist", Split::Test, &opts(1000)).unwrap();
    let norm = Some(train.channel_stats());
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle: true,
        crop_pad: 0,
        flip: false,
        normalize: norm.clone(),
        seed: 1,
        drop_last: true,
    };
    let loader = Loader::new(&g, &train, cfg).unwrap();
    let test_loader = Loader::new(&g, &test, LoaderConfig::eval(250, norm)).unwrap();
    let m = build_model(&g, &spec("cnn8", 1, 10), 1).unwrap();
    let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, true, 5e-4).unwrap();
    let before = evaluate(m.as_ref(), &test_loader).unwrap();
    let t0 = Instant::now();
    let mut steps = 0;
    let warm = g.pool_stats();
    for epoch in 0..3 {
        for batch in loader.epoch(epoch) {
            let b = batch.unwrap();
            let loss = train_step(
                m.as_ref(),
                &mut opt,
                &Var::constant(b.images),
                &b.labels,
                0.1,
                CeConfig::default(),
            )
            .unwrap();
            steps += 1;
            if steps % 20 == 0 {
                checked_loss(&loss, steps).unwrap();
            }
        }
    }
    let after = evaluate(m.as_ref(), &test_loader).unwrap();
    eprintln!(
        "cnn8 on 5000 Fashion-MNIST images, 3 epochs ({steps} steps) in {:.1} s: test accuracy {before:.3} -> {after:.3}; pool {:?} -> {:?}",
        t0.elapsed().as_secs_f32(),
        warm,
        g.pool_stats()
    );
    // Chance is 0.10. This recipe reached 0.75 here (0.72 in the 2nd epoch).
    assert!(
        after > 0.70,
        "test accuracy {after} after {steps} steps (before: {before})"
    );
}

#[test]
fn memory_is_flat_across_training_steps() {
    let g = gpu();
    let m = build_model(&g, &spec("resnet8", 3, 10), 1).unwrap();
    let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, false, 5e-4).unwrap();
    let x = Var::constant(Tensor::rand_uniform(&g, &[8, 3, 8, 8], -1.0, 1.0, 2).unwrap());
    let lab = Tensor::from_u32(&g, &[8], &[0, 1, 2, 3, 4, 5, 6, 7]).unwrap();
    for _ in 0..3 {
        train_step(m.as_ref(), &mut opt, &x, &lab, 0.01, CeConfig::default()).unwrap();
    }
    g.sync().unwrap();
    let warm = g.pool_stats();
    for _ in 0..100 {
        train_step(m.as_ref(), &mut opt, &x, &lab, 0.01, CeConfig::default()).unwrap();
    }
    g.sync().unwrap();
    let after = g.pool_stats();
    assert_eq!(
        after.reserved_bytes, warm.reserved_bytes,
        "pool grew: {warm:?} -> {after:?}"
    );
    assert_eq!(
        after.live_bytes, warm.live_bytes,
        "live memory grew: {warm:?} -> {after:?}"
    );
}

#[test]
fn repeated_steps_reuse_their_bind_groups_and_train_the_same() {
    // The pool hands a repeated step the same buffers in the same roles, so
    // after a few steps a step creates no bind group (parameters move by a
    // dynamic offset); kept or created anew, the weights come out the same
    // to the bit. MobileNetV2 at batch 4 binds buffers and textures (the
    // implicit GEMM's staged inputs, packed operands).
    let g = gpu();
    let run = |keep: bool| -> (Vec<Vec<f32>>, u64) {
        g.set_keep_bind_groups(keep);
        let m = build_model(&g, &spec("mobilenetv2", 3, 10), 5).unwrap();
        let x = Tensor::rand_uniform(&g, &[4, 3, 16, 16], -1.0, 1.0, 7).unwrap();
        let x = Var::constant(x);
        let lab = Tensor::from_u32(&g, &[4], &[1, 2, 3, 4]).unwrap();
        let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, false, 5e-4).unwrap();
        let mut created = 0;
        for _ in 0..6 {
            let before = g.bind_group_stats().1;
            train_step(m.as_ref(), &mut opt, &x, &lab, 0.05, CeConfig::default()).unwrap();
            g.sync().unwrap();
            created = g.bind_group_stats().1 - before;
        }
        let w = nn::parameters(m.as_ref())
            .iter()
            .map(|p| p.value().to_vec().unwrap())
            .collect();
        (w, created)
    };
    let (kept, created) = run(true);
    assert_eq!(created, 0, "the sixth step created {created} bind groups");
    let (fresh, created) = run(false);
    assert!(
        created > 0,
        "with bind groups not kept, every launch creates one"
    );
    g.set_keep_bind_groups(true);
    for (i, (a, b)) in kept.iter().zip(&fresh).enumerate() {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "parameter {i} differs with bind groups kept");
    }
}
