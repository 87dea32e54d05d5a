//! Batch normalisation over NCHW (shaders/norm.wgsl).

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

crate::kernel_params! {
    file = "norm";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct NormParams {
        n: u32,
        c: u32,
        hw: u32,
        _p0: u32,
        eps: f32,
        momentum: f32,
        _p1: u32,
        _p2: u32,
    }
}

/// What the backward pass needs from the forward.
pub struct BnSaved {
    /// (mean, 1/std) per channel, [C, 2].
    pub stats: Tensor,
    pub training: bool,
}

fn dims(x: &Tensor, gamma: &Tensor) -> Result<(usize, usize, usize)> {
    x.expect_dtype("batch_norm", DType::F32)?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::shape(
            "batch_norm",
            format!("input must be [N, C, ...], got {s:?}"),
        ));
    }
    let (n, c) = (s[0], s[1]);
    if gamma.shape() != [c] {
        return Err(Error::shape(
            "batch_norm",
            format!("weight must be [{c}], got {:?}", gamma.shape()),
        ));
    }
    Ok((n, c, s[2..].iter().product()))
}

fn params(n: usize, c: usize, hw: usize, eps: f32, momentum: f32) -> Result<NormParams> {
    Ok(NormParams {
        n: u32_of("batch_norm", n)?,
        c: u32_of("batch_norm", c)?,
        hw: u32_of("batch_norm", hw)?,
        _p0: 0,
        eps,
        momentum,
        _p1: 0,
        _p2: 0,
    })
}

/// The binding numbers of shaders/norm.wgsl, one per meaning.
#[derive(Clone, Copy)]
enum Slot {
    X = 2,
    Dy = 3,
    Stats = 4,
    Gamma = 5,
    Beta = 6,
    Partial = 7,
    Sums = 8,
    RunningMean = 9,
    RunningVar = 10,
}

/// Runs `entry` writing `out` (binding 1) from the inputs at their slots.
fn launch(
    entry: &'static str,
    training: bool,
    p: &NormParams,
    out: &Tensor,
    ins: &[(Slot, &Tensor)],
    items: usize,
) -> Result<()> {
    let spec = KernelSpec::new("norm", entry).with("TRAINING", training as u8 as f64);
    let ins: Vec<(u32, &Tensor)> = ins.iter().map(|&(s, t)| (s as u32, t)).collect();
    super::launch_slots(&spec, bytemuck::bytes_of(p), out, &ins, items)
}

/// The entry point for `entry`: its vec4 variant when planes split into vec4s
/// (and `vec4` is on: the tests reach both), and the items it runs over.
fn variant(
    entry: &'static str,
    hw: usize,
    per_element: bool,
    items: usize,
) -> (&'static str, usize) {
    if !hw.is_multiple_of(4) || !super::vec4_variants() {
        return (entry, items);
    }
    let e = match entry {
        "stats_partial" => "stats_partial4",
        "apply" => "apply4",
        "backward_partial" => "backward_partial4",
        "backward_input" => "backward_input4",
        other => other,
    };
    (e, if per_element { items / 4 } else { items })
}

/// How batch norm normalises: with the batch statistics (training, moving the
/// running ones by `momentum`) or with the running ones (eval).
#[derive(Clone, Copy, Debug)]
pub struct BnConfig {
    pub training: bool,
    pub momentum: f32,
    pub eps: f32,
}

/// y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel. In training the
/// batch statistics are used and the running ones updated in place (momentum as
/// PyTorch: running = (1 - m) * running + m * batch); in eval the running ones.
/// `(gamma, beta)` are the affine parameters, `running` the (mean, var) pair.
pub fn batch_norm(
    x: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    running: (&Tensor, &Tensor),
    cfg: BnConfig,
) -> Result<(Tensor, BnSaved)> {
    let BnConfig {
        training,
        momentum,
        eps,
    } = cfg;
    let (running_mean, running_var) = running;
    let (n, c, hw) = dims(x, gamma)?;
    if n * hw == 0 {
        return Err(Error::shape(
            "batch_norm",
            "needs at least one value per channel",
        ));
    }
    let p = params(n, c, hw, eps, momentum)?;
    let stats = Tensor::empty(x.gpu(), &[c, 2], DType::F32)?;
    if training {
        let partial = Tensor::empty(x.gpu(), &[n * c, 2], DType::F32)?;
        let (e, items) = variant("stats_partial", hw, false, n * c);
        launch(e, true, &p, &partial, &[(Slot::X, x)], items)?;
        let ins = [
            (Slot::Partial, &partial),
            (Slot::RunningMean, running_mean),
            (Slot::RunningVar, running_var),
        ];
        launch("stats_combine", true, &p, &stats, &ins, c)?;
    } else {
        let ins = [
            (Slot::RunningMean, running_mean),
            (Slot::RunningVar, running_var),
        ];
        launch("stats_eval", false, &p, &stats, &ins, c)?;
    }
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let ins = [
        (Slot::X, x),
        (Slot::Stats, &stats),
        (Slot::Gamma, gamma),
        (Slot::Beta, beta),
    ];
    let (e, items) = variant("apply", hw, true, y.numel());
    launch(e, training, &p, &y, &ins, items)?;
    Ok((y, BnSaved { stats, training }))
}

/// Returns (dx, dgamma, dbeta).
pub fn batch_norm_backward(
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    saved: &BnSaved,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (n, c, hw) = dims(x, gamma)?;
    let p = params(n, c, hw, 0.0, 0.0)?;
    let partial = Tensor::empty(x.gpu(), &[n * c, 2], DType::F32)?;
    let t = saved.training;
    let ins = [(Slot::X, x), (Slot::Dy, dy), (Slot::Stats, &saved.stats)];
    let (e, items) = variant("backward_partial", hw, false, n * c);
    launch(e, t, &p, &partial, &ins, items)?;
    let sums = Tensor::empty(x.gpu(), &[c, 2], DType::F32)?;
    launch(
        "backward_combine",
        t,
        &p,
        &sums,
        &[(Slot::Partial, &partial)],
        c,
    )?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let ins = [
        (Slot::X, x),
        (Slot::Dy, dy),
        (Slot::Stats, &saved.stats),
        (Slot::Gamma, gamma),
        (Slot::Sums, &sums),
    ];
    let (e, items) = variant("backward_input", hw, true, dx.numel());
    launch(e, t, &p, &dx, &ins, items)?;
    let dgamma = super::layout::slice(&sums, 1, 0, 1)?.reshape(&[c])?;
    let dbeta = super::layout::slice(&sums, 1, 1, 1)?.reshape(&[c])?;
    Ok((dx, dgamma, dbeta))
}
