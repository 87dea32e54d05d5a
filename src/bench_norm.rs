//! `condenser bench`'s batch norm rows (`bn_fwd_*`, `bn_bwd_*`): training
//! forward (batch statistics, then normalise) and backward (the per-channel
//! sums, then the input's gradient) at layer shapes of resnet8x4, in GB/s of
//! an ideal kernel's traffic: the forward reads x twice (its statistics need
//! a whole pass before any value can be normalised) and writes y, 12 bytes a
//! value; the backward reads dy and x twice and writes dx, 20 bytes a value.
//! The per-channel vectors are left out (a few KiB).
//!
//! Apart from `bench.rs` because `benches/before_after.sh` builds that file
//! against older commits, whose batch norm had another signature.

use crate::bench::{BenchOptions, BenchResult, Rate, time_op, wanted};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::norm::{BnConfig, batch_norm, batch_norm_backward};
use crate::tensor::Tensor;

/// The batch norm rows, [n, c, h, w] each.
pub fn run_norm_kernels(
    gpu: &Gpu,
    opts: &BenchOptions,
    on_result: &mut dyn FnMut(&BenchResult),
) -> Result<Vec<BenchResult>> {
    // resnet8x4's first stage (planes of 1024 values) and last (64).
    let shapes: &[[usize; 4]] = if opts.quick {
        &[[16, 16, 16, 16]]
    } else {
        &[[64, 64, 32, 32], [64, 256, 8, 8]]
    };
    let mut out = Vec::new();
    for s in shapes {
        let tag = format!("{}x{}x{}x{}", s[0], s[1], s[2], s[3]);
        let rows = [
            (format!("bn_fwd_{tag}"), 12.0),
            (format!("bn_bwd_{tag}"), 20.0),
        ];
        if !rows.iter().any(|(name, _)| wanted(opts, name)) {
            continue;
        }
        let times = time_pair(gpu, opts, s)?;
        for ((name, bytes), time) in rows.into_iter().zip(times) {
            if let (true, (ms, clock)) = (wanted(opts, &name), time) {
                let n: usize = s.iter().product();
                let r = BenchResult {
                    name,
                    shape: format!("{s:?} training"),
                    rate: Rate::Gbps(bytes * n as f64 / ms / 1e6),
                    median_ms: ms,
                    clock,
                    adapter: gpu.adapter_name().to_string(),
                    host_ms: None,
                };
                on_result(&r);
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// (forward, backward) medians for a batch of shape `s`.
fn time_pair(gpu: &Gpu, opts: &BenchOptions, s: &[usize; 4]) -> Result<[(f64, &'static str); 2]> {
    let c = s[1];
    let x = Tensor::rand_uniform(gpu, s, -1.0, 1.0, 5)?;
    let dy = Tensor::rand_uniform(gpu, s, -1.0, 1.0, 6)?;
    let gamma = Tensor::rand_uniform(gpu, &[c], 0.5, 1.5, 7)?;
    let beta = Tensor::rand_uniform(gpu, &[c], -0.5, 0.5, 8)?;
    let mean = Tensor::zeros(gpu, &[c])?;
    let var = Tensor::from_slice(gpu, &[c], &vec![1.0; c])?;
    let cfg = BnConfig {
        training: true,
        momentum: 0.1,
        eps: 1e-5,
    };
    let forward = || batch_norm(&x, (&gamma, &beta), (&mean, &var), cfg);
    let fwd = time_op(gpu, opts.runs, || forward().map(|_| ()))?;
    let (_, saved) = forward()?;
    let bwd = time_op(gpu, opts.runs, || {
        batch_norm_backward(&dy, &x, &gamma, &saved).map(|_| ())
    })?;
    Ok([fwd, bwd])
}
