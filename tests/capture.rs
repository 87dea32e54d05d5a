//! Captured work (`Gpu::capture`, `Trace`, `Replay`) and the captured
//! training step (`CapturedStep`): a replayed step must leave every weight,
//! batch-norm statistic, counter and loss bit-identical to the same steps run
//! as usual, and a capture must refuse what it cannot replay.

mod common;
use common::{gpu, rand_vec};
use condenser::Tensor;
use condenser::autograd::Var;
use condenser::nn::{self, Entry, ModelSpec, build_model};
use condenser::ops::losses::CeConfig;
use condenser::optim::{Adam, Optimizer, Sgd};
use condenser::tasks::classification::{CapturedStep, train_step};

/// Every saved number of a model, as bits (weights, statistics, counters).
fn state_bits(m: &dyn nn::Model) -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();
    m.visit("", &mut |name, e| {
        let bits = match e {
            Entry::Param(p) => p.value().to_vec().unwrap(),
            Entry::Buffer(t) => t.to_vec().unwrap(),
            Entry::Counter(c) => vec![c.get() as f32],
        };
        out.push((name, bits.iter().map(|v| v.to_bits()).collect()));
    });
    out
}

struct Run {
    losses: Vec<u32>,
    state: Vec<(String, Vec<u32>)>,
    replays: usize,
}

/// `steps` steps of `arch` on a new batch each step (copied into the same
/// input tensors), eagerly or through a `CapturedStep`; from step
/// `swap_at` on, the images come through another tensor.
fn train(arch: &str, adam: bool, captured: bool, steps: usize, swap_at: Option<usize>) -> Run {
    let g = gpu();
    let (c, s, b) = if arch == "cnn8" {
        (1, 28, 8)
    } else {
        (3, 32, 8)
    };
    let spec = ModelSpec {
        arch: arch.into(),
        in_channels: c,
        num_classes: 10,
        task: condenser::tasks::Task::Classify,
    };
    let m = build_model(&g, &spec, 3).unwrap();
    let params = nn::parameters(m.as_ref());
    let mut opt: Box<dyn Optimizer> = if adam {
        Box::new(Adam::new(params, 1e-4, true).unwrap())
    } else {
        Box::new(Sgd::new(params, 0.9, true, 5e-4).unwrap())
    };
    let x = Var::constant(Tensor::zeros(&g, &[b, c, s, s]).unwrap());
    let x2 = Var::constant(Tensor::zeros(&g, &[b, c, s, s]).unwrap());
    let labels = Tensor::from_u32(&g, &[b], &vec![0; b]).unwrap();
    let ce = CeConfig {
        label_smoothing: 0.1,
        ..CeConfig::default()
    };
    let mut cap = CapturedStep::new();
    let mut losses = Vec::new();
    for step in 0..steps {
        let input = if swap_at.is_some_and(|k| step >= k) {
            &x2
        } else {
            &x
        };
        let batch = Tensor::from_slice(
            &g,
            &[b, c, s, s],
            &rand_vec(b * c * s * s, 100 + step as u64),
        )
        .unwrap();
        input.value().copy_from(&batch).unwrap();
        let lab: Vec<u32> = (0..b as u32).map(|i| (i * 7 + step as u32) % 10).collect();
        labels
            .copy_from(&Tensor::from_u32(&g, &[b], &lab).unwrap())
            .unwrap();
        // A learning rate that changes every step: the update is not replayed.
        let lr = 0.05 / (1.0 + step as f32);
        let loss = if captured {
            cap.step(m.as_ref(), opt.as_mut(), input, &labels, lr, ce)
                .unwrap()
        } else {
            train_step(m.as_ref(), opt.as_mut(), input, &labels, lr, ce).unwrap()
        };
        losses.push(loss.value().item().unwrap().to_bits());
    }
    assert_eq!(cap.replay_off(), None, "{arch}: replay turned off");
    Run {
        losses,
        state: state_bits(m.as_ref()),
        replays: cap.replays(),
    }
}

fn check_same(arch: &str, adam: bool, steps: usize, swap_at: Option<usize>) {
    let eager = train(arch, adam, false, steps, swap_at);
    let replayed = train(arch, adam, true, steps, swap_at);
    // Up to four steps to learn the step (the first steps' pool differs:
    // no gradients yet, then the optimiser's state appears), as many again
    // after a swap of the inputs.
    let least = steps - 4 - if swap_at.is_some() { 4 } else { 0 };
    assert!(
        replayed.replays >= least,
        "{arch}: only {} of {steps} steps replayed",
        replayed.replays
    );
    assert_eq!(replayed.losses, eager.losses, "{arch}: losses differ");
    for ((name, a), (_, b)) in replayed.state.iter().zip(&eager.state) {
        assert!(
            a == b,
            "{arch} (adam {adam}): {name} differs after replayed steps"
        );
    }
}

#[test]
fn replayed_steps_match_eager_steps_to_the_bit_cnn8_sgd() {
    check_same("cnn8", false, 8, None);
}

#[test]
fn replayed_steps_match_eager_steps_to_the_bit_resnet8_adam() {
    check_same("resnet8", true, 8, None);
}

#[test]
fn replayed_steps_match_eager_steps_to_the_bit_mobilenetv2_sgd() {
    check_same("mobilenetv2", false, 8, None);
}

#[test]
fn other_inputs_are_captured_afresh_not_replayed_stale() {
    check_same("cnn8", false, 12, Some(6));
}

#[test]
fn a_capture_that_reads_back_cannot_be_kept() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &[5], &[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let (_, trace) = g
        .capture(|| {
            let y = condenser::ops::sum(&condenser::ops::add(&x, &x)?, None)?;
            y.item().map(|_| ())
        })
        .unwrap();
    assert!(trace.problem().is_some_and(|p| p.contains("read")));
    let err = trace.keep().err().expect("kept a capture that read back");
    assert!(err.to_string().contains("cannot be replayed"), "{err}");
    // Captures do not nest.
    let nested = g.capture(|| g.capture(|| Ok(())).map(|_| ()));
    assert!(nested.is_err());
}

#[test]
fn traces_differ_where_uploaded_bytes_or_parameters_differ() {
    let g = gpu();
    let out = Tensor::zeros(&g, &[64]).unwrap();
    let work = |v: f32, scale: f32| {
        g.capture(|| {
            let t = Tensor::from_slice(&g, &[64], &[v; 64])?;
            let y = condenser::ops::scale(&t, scale)?;
            out.copy_from(&y)
        })
        .unwrap()
        .1
    };
    let a = work(1.0, 2.0);
    assert!(a.launches() >= 1);
    assert!(
        a.same_as(&work(1.0, 2.0)),
        "the same work recorded differently"
    );
    assert!(
        !a.same_as(&work(1.5, 2.0)),
        "other uploaded bytes went unseen"
    );
    assert!(
        !a.same_as(&work(1.0, 3.0)),
        "other kernel parameters went unseen"
    );
}

#[test]
fn a_kept_capture_keeps_its_buffers_from_other_tensors() {
    let g = gpu();
    let x = Tensor::from_slice(&g, &[1000], &rand_vec(1000, 5)).unwrap();
    let out = Tensor::zeros(&g, &[1000]).unwrap();
    let (_, trace) = g
        .capture(|| {
            // A temporary freed inside the capture, then the result.
            let t = condenser::ops::add(&x, &x)?;
            let y = condenser::ops::mul(&t, &x)?;
            out.copy_from(&y)
        })
        .unwrap();
    let replay = trace.keep().unwrap();
    // Tensors of the temporaries' size made now must not get their buffers.
    let others: Vec<Tensor> = (0..8)
        .map(|i| Tensor::from_slice(&g, &[1000], &[i as f32; 1000]).unwrap())
        .collect();
    let xs = x.to_vec().unwrap();
    x.copy_from(&Tensor::from_slice(&g, &[1000], &vec![0.5; 1000]).unwrap())
        .unwrap();
    replay.run().unwrap();
    for (i, o) in others.iter().enumerate() {
        assert!(
            o.to_vec().unwrap().iter().all(|&v| v == i as f32),
            "a replay wrote into tensor {i}, made after the capture"
        );
    }
    // The replay read x's new contents: (x + x) * x = 0.5.
    assert!(out.to_vec().unwrap().iter().all(|&v| v == 0.5));
    assert!(xs.iter().any(|&v| v != 0.5));
    drop(replay);
}
