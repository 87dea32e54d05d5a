//! Several parameters' optimiser updates in one launch (shaders/optim_multi.wgsl).
//!
//! A launch per parameter is a dispatch per parameter: 161 of a MobileNetV2
//! training step's 1647, most of them a batch norm's few hundred values.
//! Here a launch updates up to `SGD_SLOTS` (or `ADAM_SLOTS`) parameters, each
//! bound in a slot of its own (WGSL cannot index bindings) and given a run of
//! workgroups, with the single kernels' arithmetic (optim.wgsl's `sgd_step`
//! and `adam_step`): the same bits. Adapters with fewer storage buffers per
//! stage than the slots need keep a launch per parameter.

use std::cell::Cell;

use bytemuck::{Pod, Zeroable};

use super::OptParams;
use crate::error::Result;
use crate::gpu::{Binding, Gpu, KernelSpec};
use crate::ops::u32_of;
use crate::tensor::Tensor;

/// Parameters per launch: SGD binds 3 storage buffers a slot (w, grad,
/// momentum), Adam 4 (w, grad, m, v); both fit 16 per stage (wgpu's GL
/// backend on llvmpipe offers 16).
pub const SGD_SLOTS: usize = 5;
pub const ADAM_SLOTS: usize = 4;
/// The length of optim_multi.wgsl's `seg` array (the most slots a launch has).
const DECLARED: usize = SGD_SLOTS;
const NAME: &str = "optimizer";
/// Invocations (elements) per workgroup, as optim.wgsl's kernels.
const GROUP: usize = 256;

crate::kernel_params! {
    file = "optim_multi";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct MultiOptParams {
        nesterov: u32,
        decoupled: u32,
        _p0: u32,
        _p1: u32,
        lr: f32,
        momentum: f32,
        weight_decay: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        bias1: f32,
        bias2: f32,
        seg: [[u32; 4]; DECLARED],
    }
}

thread_local! {
    static MULTI: Cell<bool> = const { Cell::new(true) };
}

/// Turns the grouped launches off (on) on this thread, so that tests compare
/// them with a launch per parameter.
#[doc(hidden)]
pub fn set_multi_tensor(on: bool) {
    MULTI.with(|m| m.set(on));
}

/// One parameter's update: its weight, gradient and state tensors (SGD: the
/// momentum buffer; Adam: m, v), all of the weight's shape.
pub(super) struct Update {
    pub w: Tensor,
    pub g: Tensor,
    pub state: Vec<Tensor>,
}

/// Which rule: the single kernel's and the grouped kernel's entry points.
#[derive(Clone, Copy)]
pub(super) enum Rule {
    Sgd,
    Adam,
}

impl Rule {
    fn slots(self) -> usize {
        match self {
            Rule::Sgd => SGD_SLOTS,
            Rule::Adam => ADAM_SLOTS,
        }
    }
    fn buffers_per_slot(self) -> usize {
        match self {
            Rule::Sgd => 3,
            Rule::Adam => 4,
        }
    }
    fn entries(self) -> (&'static str, &'static str) {
        match self {
            Rule::Sgd => ("sgd", "sgd_multi"),
            Rule::Adam => ("adam", "adam_multi"),
        }
    }
}

/// Whether `gpu` takes the grouped launches for `rule`.
fn grouped(gpu: &Gpu, rule: Rule) -> bool {
    let need = rule.slots() * rule.buffers_per_slot();
    MULTI.with(Cell::get) && gpu.limits().max_storage_buffers_per_shader_stage as usize >= need
}

/// Applies `rule` with the scalars of `scalars` (its `n` unused) to every update.
pub(super) fn apply(rule: Rule, scalars: OptParams, updates: &[Update]) -> Result<()> {
    let Some(first) = updates.first() else {
        return Ok(());
    };
    let gpu = first.w.gpu();
    if !grouped(gpu, rule) {
        return updates.iter().try_for_each(|u| single(rule, scalars, u));
    }
    groups(updates, rule.slots())
        .into_iter()
        .try_for_each(|chunk| launch_group(rule, scalars, chunk))
}

/// `updates` cut into runs of at most `slots`, in order, a run ending early
/// where a weight would come twice (a parameter listed twice): one launch
/// updating a buffer from two slots would race, where two launches update
/// it one after the other as a launch per parameter does.
fn groups(updates: &[Update], slots: usize) -> Vec<&[Update]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..updates.len() {
        let id = updates[i].w.buffer().id();
        let repeated = updates[start..i].iter().any(|u| u.w.buffer().id() == id);
        if i - start == slots || repeated {
            out.push(&updates[start..i]);
            start = i;
        }
    }
    if start < updates.len() {
        out.push(&updates[start..]);
    }
    out
}

/// The update's arguments in binding order: w, grad, then the state.
fn args(u: &Update) -> impl Iterator<Item = &Tensor> {
    [&u.w, &u.g].into_iter().chain(u.state.iter())
}

fn single(rule: Rule, scalars: OptParams, u: &Update) -> Result<()> {
    let params = OptParams {
        n: u32_of(NAME, u.w.numel())?,
        ..scalars
    };
    let bindings: Vec<Binding> = args(u).map(Tensor::binding).collect();
    u.w.gpu().launch(
        &KernelSpec::new("optim", rule.entries().0),
        bytemuck::bytes_of(&params),
        &bindings,
        u.w.numel().div_ceil(GROUP) as u64,
    )
}

/// One launch for up to `rule.slots()` updates: slot k's workgroups follow
/// slot k - 1's; slots past the chunk are bound to slot 0's buffers and given
/// no workgroups.
fn launch_group(rule: Rule, s: OptParams, chunk: &[Update]) -> Result<()> {
    let gpu = chunk[0].w.gpu();
    let mut seg = [[0u32; 4]; DECLARED];
    let mut next = 0usize;
    for (k, u) in chunk.iter().enumerate() {
        let groups = u.w.numel().div_ceil(GROUP);
        seg[k] = [
            u32_of(NAME, next)?,
            u32_of(NAME, next + groups)?,
            u32_of(NAME, u.w.numel())?,
            0,
        ];
        next += groups;
    }
    let params = MultiOptParams {
        nesterov: s.nesterov,
        decoupled: s.decoupled,
        _p0: 0,
        _p1: 0,
        lr: s.lr,
        momentum: s.momentum,
        weight_decay: s.weight_decay,
        beta1: s.beta1,
        beta2: s.beta2,
        eps: s.eps,
        bias1: s.bias1,
        bias2: s.bias2,
        seg,
    };
    let mut bindings = Vec::new();
    for k in 0..rule.slots() {
        let u = chunk.get(k).unwrap_or(&chunk[0]);
        for (j, t) in args(u).enumerate() {
            bindings.push(t.binding().at((1 + 4 * k + j) as u32));
        }
    }
    let spec = KernelSpec::new("optim_multi", rule.entries().1).with("SLOTS", chunk.len() as f64);
    gpu.launch(&spec, bytemuck::bytes_of(&params), &bindings, next as u64)
}
