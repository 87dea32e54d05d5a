//! `condenser bench`'s captured training steps (`replay_step_*`): the
//! `train_step_*` cases' models, batch and optimiser, run through
//! `tasks::classification::CapturedStep`, so that each timed step replays
//! the captured forward, loss and backward. The rows' host time against the
//! `train_step_*` rows' is what a replay saves the CPU; their wall time is
//! the device's, which replay does not change.
//!
//! Apart from `bench.rs` because `benches/before_after.sh` builds that file
//! against older commits, which have no captured steps.

use crate::autograd::Var;
use crate::bench::{BenchOptions, BenchResult, images_row, time_steps, wanted};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{self, ModelSpec, build_model};
use crate::ops::losses::CeConfig;
use crate::optim::Sgd;
use crate::tasks::classification::CapturedStep;
use crate::tensor::Tensor;

/// Steps a case runs before its timed ones, at most, to reach a replay.
const LEARN_STEPS: usize = 8;

/// The replayed training-step rows (a subset of `run_train_steps`' shapes).
pub fn run_replay_steps(
    gpu: &Gpu,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    let cases: &[(&str, usize, usize, usize)] = if opts.quick {
        &[("cnn8", 1, 28, 16)]
    } else {
        &[
            ("cnn8", 1, 28, 64),
            ("resnet8x4", 3, 32, 64),
            ("mobilenetv2", 3, 32, 64),
        ]
    };
    let mut out = Vec::new();
    for &(arch, c, s, b) in cases {
        let name = format!("replay_step_{arch}");
        if !wanted(opts, &name) {
            continue;
        }
        let r = replay_case(gpu, opts, name, arch, [b, c, s, s])?;
        on_result(&r);
        out.push(r);
    }
    Ok(out)
}

fn replay_case(
    gpu: &Gpu,
    opts: &BenchOptions,
    name: String,
    arch: &str,
    shape: [usize; 4],
) -> Result<BenchResult> {
    let [b, c, _, _] = shape;
    let m = build_model(
        gpu,
        &ModelSpec {
            arch: arch.into(),
            in_channels: c,
            num_classes: 10,
            task: crate::tasks::Task::Classify,
        },
        0,
    )?;
    let mut opt = Sgd::new(nn::parameters(m.as_ref()), 0.9, false, 5e-4)?;
    let x = Var::constant(Tensor::rand_uniform(gpu, &shape, -1.0, 1.0, 1)?);
    let labels: Vec<u32> = (0..b as u32).map(|i| i % 10).collect();
    let lab = Tensor::from_u32(gpu, &[b], &labels)?;
    let ce = CeConfig::default();
    let mut cap = CapturedStep::new();
    let mut step = |cap: &mut CapturedStep| {
        cap.step(m.as_ref(), &mut opt, &x, &lab, 0.01, ce)
            .map(|_| ())
    };
    for _ in 0..LEARN_STEPS {
        if cap.launches().is_some() {
            break;
        }
        step(&mut cap)?;
    }
    let Some(launches) = cap.launches() else {
        return Err(Error::Internal(format!(
            "{name}: the step was not kept for replay after {LEARN_STEPS} steps: {}",
            cap.replay_off()
                .unwrap_or("consecutive steps kept recording different work")
        )));
    };
    let before = cap.replays();
    let times = time_steps(gpu, opts, &name, || step(&mut cap))?;
    // Two warm-up steps and the timed ones, every one a replay.
    let replayed = cap.replays() - before;
    if replayed < opts.runs.max(1) + 2 {
        return Err(Error::Internal(format!(
            "{name}: only {replayed} of the timed steps were replays"
        )));
    }
    let shape = format!("{shape:?} {launches} launches replayed");
    Ok(images_row(gpu, name, shape, b, times))
}
