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
    /// The output relu(y), where batch norm and ReLU ran as one op
    /// (`batch_norm_relu`): its sign masks dy.
    pub act: Option<Tensor>,
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
    Act = 11,
    Residual = 12,
}

/// One entry point of shaders/norm.wgsl (or its 64-bit-word twin) with its
/// pipeline constants.
#[derive(Clone, Copy)]
struct Kernel {
    module: &'static str,
    entry: &'static str,
    training: bool,
    relu: bool,
    residual: bool,
}

impl Kernel {
    fn plain(entry: &'static str, training: bool) -> Kernel {
        Kernel {
            module: "norm",
            entry,
            training,
            relu: false,
            residual: false,
        }
    }
}

/// Runs `k` writing `out` (binding 1) from the inputs at their slots.
fn launch(
    k: Kernel,
    p: &NormParams,
    out: &Tensor,
    ins: &[(Slot, &Tensor)],
    items: usize,
) -> Result<()> {
    let spec = KernelSpec::new(k.module, k.entry)
        .with("TRAINING", k.training as u8 as f64)
        .with("RELU", k.relu as u8 as f64)
        .with("RESIDUAL", k.residual as u8 as f64);
    let ins: Vec<(u32, &Tensor)> = ins.iter().map(|&(s, t)| (s as u32, t)).collect();
    super::launch_slots(&spec, bytemuck::bytes_of(p), out, &ins, items)
}

/// The kernel for `entry` of an op on `x`: its 64-bit-word variant when planes
/// split into 8 values and the adapter has them, else its vec4 variant when
/// they split into vec4s (either can be turned off: the tests reach all three),
/// and the items it runs over.
fn variant(x: &Tensor, k: Kernel, hw: usize, per_element: bool, items: usize) -> (Kernel, usize) {
    if !hw.is_multiple_of(4) || !super::vec4_variants() {
        return (k, items);
    }
    let wide = hw.is_multiple_of(8) && super::wide_ok(x.gpu());
    let (e4, e8) = match k.entry {
        "stats_partial" => ("stats_partial4", "stats_partial8"),
        "apply" => ("apply4", "apply8"),
        "backward_partial" => ("backward_partial4", "backward_partial8"),
        "backward_input" => ("backward_input4", "backward_input8"),
        _ => return (k, items),
    };
    let (module, entry, per) = match wide {
        true => ("norm64", e8, 8),
        false => ("norm", e4, 4),
    };
    let items = if per_element { items / per } else { items };
    (Kernel { module, entry, ..k }, items)
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
    affine: (&Tensor, &Tensor),
    running: (&Tensor, &Tensor),
    cfg: BnConfig,
) -> Result<(Tensor, BnSaved)> {
    batch_norm_act(x, affine, running, cfg, Act::None)
}

/// relu(batch_norm(x)) in one op, bit-identical to the two (see shaders/norm.wgsl).
pub fn batch_norm_relu(
    x: &Tensor,
    affine: (&Tensor, &Tensor),
    running: (&Tensor, &Tensor),
    cfg: BnConfig,
) -> Result<(Tensor, BnSaved)> {
    batch_norm_act(x, affine, running, cfg, Act::Relu)
}

/// relu(batch_norm(x) + residual) in one op, bit-identical to the three ops
/// (see shaders/norm.wgsl). Its backward is `batch_norm_backward` of dy
/// masked by the output's sign (`saved.act` stays None: the mask is the
/// caller's, who needs the masked dy for the residual as well).
pub fn batch_norm_add_relu(
    x: &Tensor,
    residual: &Tensor,
    affine: (&Tensor, &Tensor),
    running: (&Tensor, &Tensor),
    cfg: BnConfig,
) -> Result<(Tensor, BnSaved)> {
    residual.expect_dtype("batch_norm_add_relu", DType::F32)?;
    if residual.shape() != x.shape() {
        return Err(Error::shape(
            "batch_norm_add_relu",
            format!(
                "the residual must have the input's shape {:?}, got {:?}",
                x.shape(),
                residual.shape()
            ),
        ));
    }
    batch_norm_act(x, affine, running, cfg, Act::AddRelu(residual))
}

/// What follows batch norm inside its op.
#[derive(Clone, Copy)]
enum Act<'a> {
    None,
    Relu,
    AddRelu(&'a Tensor),
}

fn batch_norm_act(
    x: &Tensor,
    (gamma, beta): (&Tensor, &Tensor),
    running: (&Tensor, &Tensor),
    cfg: BnConfig,
    act: Act<'_>,
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
    let stats = if training {
        let stats = Tensor::empty(x.gpu(), &[c, 2], DType::F32)?;
        let partial = Tensor::empty(x.gpu(), &[n * c, 2], DType::F32)?;
        let k = Kernel::plain("stats_partial", true);
        if win::planes_apply(x, hw) {
            let k = Kernel {
                module: "norm_win",
                entry: "stats_partial_win",
                ..k
            };
            win::launch(k, &partial, (n, c, hw), (&[x], 14), &[], hw / 4)?;
        } else {
            let (k, items) = variant(x, k, hw, false, n * c);
            launch(k, &p, &partial, &[(Slot::X, x)], items)?;
        }
        let ins = [
            (Slot::Partial, &partial),
            (Slot::RunningMean, running_mean),
            (Slot::RunningVar, running_var),
        ];
        launch(Kernel::plain("stats_combine", true), &p, &stats, &ins, c)?;
        stats
    } else {
        eval_stats(running, eps)?
    };
    let y = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    // The apply kernels' layout has the residual's binding whether or not a
    // pipeline constant turns its read on: x stands in.
    let (relu, residual) = match act {
        Act::None => (false, None),
        Act::Relu => (true, None),
        Act::AddRelu(r) => (true, Some(r)),
    };
    let ins = [
        (Slot::X, x),
        (Slot::Stats, &stats),
        (Slot::Gamma, gamma),
        (Slot::Beta, beta),
        (Slot::Residual, residual.unwrap_or(x)),
    ];
    let apply = Kernel {
        relu,
        residual: residual.is_some(),
        ..Kernel::plain("apply", training)
    };
    if win::applies(x, hw) {
        let k = win::per_element(x, apply, "apply_win", hw);
        let chans = [
            (win::Chan::Stats, &stats),
            (win::Chan::Gamma, gamma),
            (win::Chan::Beta, beta),
        ];
        let ins = [x, residual.unwrap_or(x)];
        win::launch(k, &y, (n, c, hw), (&ins, 7), &chans, win::run4(hw))?;
    } else {
        let (k, items) = variant(x, apply, hw, true, y.numel());
        launch(k, &p, &y, &ins, items)?;
    }
    let act = matches!(act, Act::Relu).then(|| y.clone());
    Ok((
        y,
        BnSaved {
            stats,
            training,
            act,
        },
    ))
}

/// (mean, 1/sqrt(var + eps)) per channel from the running statistics, [C, 2]:
/// what batch norm in eval mode applies (and a convolution's epilogue).
/// Kept while the running statistics are unchanged (a frozen model's).
pub(crate) fn eval_stats(running: (&Tensor, &Tensor), eps: f32) -> Result<Tensor> {
    let c = running.0.numel();
    let eps_bits = eps.to_bits() as u64;
    super::derived(
        "norm::eval_stats",
        &[running.0, running.1],
        &[eps_bits],
        || {
            let stats = Tensor::empty(running.0.gpu(), &[c, 2], DType::F32)?;
            eval_stats_into(&stats, &params(1, c, 1, eps, 0.0)?, running)?;
            Ok(stats)
        },
    )
}

fn eval_stats_into(stats: &Tensor, p: &NormParams, running: (&Tensor, &Tensor)) -> Result<()> {
    let ins = [
        (Slot::RunningMean, running.0),
        (Slot::RunningVar, running.1),
    ];
    let c = p.c as usize;
    launch(Kernel::plain("stats_eval", false), p, stats, &ins, c)
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
    // Without ReLU the kernels never read the mask, but their layout has its
    // binding (a pipeline constant turns the read off): dy stands in.
    let (relu, act) = match &saved.act {
        Some(a) => (true, a),
        None => (false, dy),
    };
    let k = |entry| Kernel {
        relu,
        ..Kernel::plain(entry, t)
    };
    let ins = [
        (Slot::X, x),
        (Slot::Dy, dy),
        (Slot::Stats, &saved.stats),
        (Slot::Act, act),
    ];
    if win::planes_apply(x, hw) {
        let kw = Kernel {
            module: "norm_win",
            entry: "backward_partial_win",
            ..k("backward_partial")
        };
        let chans = [(win::Chan::Stats, &saved.stats)];
        win::launch(kw, &partial, (n, c, hw), (&[dy, act, x], 4), &chans, hw / 4)?;
    } else {
        let (kp, items) = variant(x, k("backward_partial"), hw, false, n * c);
        launch(kp, &p, &partial, &ins, items)?;
    }
    let sums = Tensor::empty(x.gpu(), &[c, 2], DType::F32)?;
    let ins = [(Slot::Partial, &partial)];
    launch(Kernel::plain("backward_combine", t), &p, &sums, &ins, c)?;
    let dx = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let ins = [
        (Slot::X, x),
        (Slot::Dy, dy),
        (Slot::Stats, &saved.stats),
        (Slot::Gamma, gamma),
        (Slot::Sums, &sums),
        (Slot::Act, act),
    ];
    if win::applies(x, hw) {
        let kw = win::per_element(x, k("backward_input"), "backward_input_win", hw);
        let chans = [
            (win::Chan::Stats, &saved.stats),
            (win::Chan::Gamma, gamma),
            (win::Chan::Sums, &sums),
        ];
        win::launch(
            kw,
            &dx,
            (n, c, hw),
            (&[dy, act, x], 4),
            &chans,
            win::run4(hw),
        )?;
    } else {
        let (ki, items) = variant(x, k("backward_input"), hw, true, dx.numel());
        launch(ki, &p, &dx, &ins, items)?;
    }
    let dgamma = super::layout::slice(&sums, 1, 0, 1)?.reshape(&[c])?;
    let dbeta = super::layout::slice(&sums, 1, 1, 1)?.reshape(&[c])?;
    Ok((dx, dgamma, dbeta))
}

/// Batch norm's training kernels (per-element and per-plane sums) reading
/// their large inputs through uniform windows (shaders/norm_win.wgsl, and
/// norm_win64.wgsl's 64-bit-word stores) on CPU adapters.
pub(crate) mod win {
    use bytemuck::{Pod, Zeroable};

    use super::{Kernel, u32_of};
    use crate::error::Result;
    use crate::gpu::{Binding, KernelSpec, WINDOW_VEC4S as WIN4};
    use crate::tensor::Tensor;

    crate::kernel_params! {
        file = "norm_win";
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct NormWinParams {
            n4: u32,
            first: u32,
            last: u32,
            plane4: u32,
            c: u32,
            m: f32,
            _p0: u32,
            _p1: u32,
        }
    }

    /// The per-channel bindings of shaders/norm_win.wgsl.
    #[derive(Clone, Copy)]
    pub(super) enum Chan {
        Stats = 16,
        Gamma = 17,
        Beta = 18,
        Sums = 19,
    }

    /// Whether `x` [n, c, hw] takes the window kernels: a CPU adapter that
    /// allows them, planes of whole vec4s, and at least one window of data.
    pub(super) fn applies(x: &Tensor, hw: usize) -> bool {
        super::super::windows_ok(x.gpu())
            && hw.is_multiple_of(4)
            && x.numel() / 4 >= WIN4
            && super::super::vec4_variants()
    }

    /// Whether the per-plane sums of `x` [n, c, hw] take the window kernels
    /// too: planes of a power of two of vec4s that fit a window, so that
    /// windows hold whole planes. Not on wgpu's GL backend: there (llvmpipe
    /// through GL) these two kernels' variances differ from the storage
    /// kernels' in the last bit for some planes (GLSL's relaxed float rules;
    /// the storage kernels give the Vulkan bits there), and every variant on
    /// one adapter must give the same bits (tests/norm.rs keeps the shapes).
    pub(super) fn planes_apply(x: &Tensor, hw: usize) -> bool {
        applies(x, hw) && (hw / 4).is_power_of_two() && hw / 4 <= WIN4 && !x.gpu().is_gl()
    }

    /// `k` as the window kernel `entry` (norm_win), or its 64-bit-word twin
    /// (norm_win64, `entry` + "8") where the adapter has the words and runs
    /// pair up.
    pub(super) fn per_element(x: &Tensor, k: Kernel, entry: &'static str, hw: usize) -> Kernel {
        let wide = super::super::wide_ok(x.gpu()) && run4(hw) >= 4;
        let (module, entry) = match (wide, entry) {
            (true, "apply_win") => ("norm_win64", "apply_win8"),
            (true, "backward_input_win") => ("norm_win64", "backward_input_win8"),
            _ => ("norm_win", entry),
        };
        Kernel { module, entry, ..k }
    }

    /// vec4s per run: the largest of 16, 4 and 1 that divides a plane.
    pub(super) fn run4(hw: usize) -> usize {
        [16, 4, 1]
            .into_iter()
            .find(|r| (hw / 4).is_multiple_of(*r))
            .unwrap_or(1)
    }

    /// Runs read interleaved (norm_win.wgsl's GROUP): the most of 8, 4, 2
    /// and 1 whose runs of `unit` vec4s together divide a plane of `plane4`
    /// (1 where an invocation takes a whole plane).
    fn group(plane4: usize, unit: usize) -> usize {
        [8, 4, 2, 1]
            .into_iter()
            .find(|g| plane4.is_multiple_of(g * unit))
            .unwrap_or(1)
    }

    /// Runs `k.entry` (norm_win) over `ins[0]` [n, c, hw], writing `out`: each
    /// input of `ins` takes `per` window slots in turn (slot 2 + i * per + k),
    /// the per-channel tensors bind at their own numbers. An invocation takes
    /// `unit` vec4s of a window (a run, RUN4, or a whole plane).
    pub(super) fn launch(
        k: Kernel,
        out: &Tensor,
        (n, c, hw): (usize, usize, usize),
        (ins, per): (&[&Tensor], usize),
        chans: &[(Chan, &Tensor)],
        unit: usize,
    ) -> Result<()> {
        const NAME: &str = "batch_norm";
        let n4 = ins[0].numel() / 4;
        let windows = n4.div_ceil(WIN4);
        let cap4 = super::super::window_cap4(ins);
        let spec = KernelSpec::new(k.module, k.entry)
            .with("TRAINING", k.training as u8 as f64)
            .with("RELU", k.relu as u8 as f64)
            .with("RESIDUAL", k.residual as u8 as f64)
            .with("RUN4", unit as f64)
            .with("GROUP", group(hw / 4, unit) as f64)
            .with("UNIT", if k.module == "norm_win64" { 2.0 } else { 1.0 })
            .with("SLOTS", windows.min(per) as f64);
        for first in (0..windows).step_by(per) {
            let params = NormWinParams {
                n4: u32_of(NAME, n4)?,
                first: u32_of(NAME, first * WIN4)?,
                last: u32_of(NAME, cap4 - WIN4)?,
                plane4: u32_of(NAME, hw / 4)?,
                c: u32_of(NAME, c)?,
                m: (n * hw) as f32,
                _p0: 0,
                _p1: 0,
            };
            let mut args = vec![out.binding()];
            for (i, t) in ins.iter().enumerate() {
                for s in 0..per {
                    let start = ((first + s) * WIN4).min(cap4 - WIN4);
                    let slot = 2 + i * per + s;
                    args.push(Binding::window(t.buffer(), 16 * start as u64).at(slot as u32));
                }
            }
            args.extend(chans.iter().map(|(s, t)| t.binding().at(*s as u32)));
            out.gpu()
                .launch_items(&spec, bytemuck::bytes_of(&params), &args, WIN4 / unit)?;
        }
        Ok(())
    }
}
