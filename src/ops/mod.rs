//! GPU ops: shape checks and kernel launches, one file per kernel family
//! (its WGSL lives in shaders/, its reference in src/cpu/).

pub mod conv;
pub mod conv_implicit;
pub mod detect;
pub mod elementwise;
pub mod health;
pub mod kd;
pub mod layout;
pub mod losses;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resample;
pub mod softmax;

pub use elementwise::{BinaryOp, UnaryOp, add, div, exp, full, log, mul, relu, scale, sub};
pub use matmul::{MatmulKernel, matmul, matmul_t};
pub use reduce::{ReduceOp, argmax, max, mean, sum};
pub use softmax::{log_softmax, softmax};

thread_local! {
    static VEC4_VARIANTS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    static WIDE_VARIANTS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    static WINDOW_VARIANTS: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Turns the uniform-window variants (`Gpu::windows_ok`: same-shape
/// elementwise ops) off (on) on this thread, so that tests run the kernels
/// they replace on the same shapes.
#[doc(hidden)]
pub fn set_window_variants(on: bool) {
    WINDOW_VARIANTS.with(|v| v.set(on));
}

/// vec4s in the smallest buffer of `ins`: windows over them all start at most
/// this less one window, so none leaves its buffer.
pub(crate) fn window_cap4(ins: &[&crate::Tensor]) -> usize {
    ins.iter()
        .map(|t| (t.buffer().capacity() / 16) as usize)
        .min()
        .unwrap_or(0)
}

/// Whether ops may read inputs through uniform windows on `gpu`.
pub(crate) fn windows_ok(gpu: &crate::gpu::Gpu) -> bool {
    gpu.windows_ok() && WINDOW_VARIANTS.with(|v| v.get())
}

/// Turns the 64-bit-word variants (shaders/wide.wgsl: same-shape elementwise
/// ops, softmax rows, strided-axis reductions, im2col, axis swaps and block
/// copies) off (on) on this thread, so that tests run the kernels they replace
/// on adapters with SHADER_INT64 too.
#[doc(hidden)]
pub fn set_wide_variants(on: bool) {
    WIDE_VARIANTS.with(|v| v.set(on));
}

/// Whether ops may pick their 64-bit-word variants (see `set_wide_variants`).
pub(crate) fn wide_variants() -> bool {
    WIDE_VARIANTS.with(|v| v.get())
}

/// Rows of `scratch_width` texels that `texels` texels take, if the adapter
/// allows a texture that tall.
pub(crate) fn texels_height(gpu: &crate::gpu::Gpu, texels: usize) -> Option<u32> {
    let height = texels.max(1).div_ceil(gpu.scratch_width() as usize);
    u32::try_from(height)
        .ok()
        .filter(|&h| h <= gpu.max_texture_rows())
}

/// Copies the first `texels` texels of `t` (4 floats each for rgba32float,
/// 1 for r32float) into scratch texture `slot` of that format, for kernels
/// that fetch their operand as texels (llvmpipe gathers texels without the
/// per-lane loop of its storage loads); None where that texture would be
/// taller than the adapter allows.
pub(crate) fn stage_texels(
    t: &crate::tensor::Tensor,
    slot: usize,
    format: wgpu::TextureFormat,
    texels: usize,
) -> crate::error::Result<Option<crate::gpu::View>> {
    let gpu = t.gpu();
    let Some(height) = texels_height(gpu, texels) else {
        return Ok(None);
    };
    let (texture, view) = gpu.scratch_texture(slot, format, height);
    gpu.copy_buffer_to_texels(t.buffer(), &texture, view.serial, texels as u64)?;
    Ok(Some(view))
}

/// `compute`'s result, a pure function of `inputs` (and of `params`),
/// kept while the inputs' buffers are unchanged (see `gpu::derived`): a
/// frozen model's derived tensors are computed twice, then reused.
pub(crate) fn derived(
    kind: &'static str,
    inputs: &[&crate::tensor::Tensor],
    params: &[u64],
    compute: impl FnOnce() -> crate::error::Result<crate::tensor::Tensor>,
) -> crate::error::Result<crate::tensor::Tensor> {
    use crate::gpu::{DerivedKey, Lookup};
    let Some(gpu) = inputs.first().map(|t| t.gpu()) else {
        return compute();
    };
    let mut all = params.to_vec();
    for t in inputs {
        all.push(t.shape().len() as u64);
        all.extend(t.shape().iter().map(|&d| d as u64));
    }
    let key = DerivedKey {
        kind,
        inputs: inputs
            .iter()
            .map(|t| (t.buffer().id(), t.buffer().content()))
            .collect(),
        params: all,
    };
    match gpu.derived(&key) {
        Lookup::Hit(k) => Ok(crate::tensor::Tensor::from_kept(gpu, k)),
        Lookup::Keep => {
            let t = compute()?;
            gpu.keep_derived(&key, t.kept());
            Ok(t)
        }
        Lookup::Compute => compute(),
    }
}

/// Whether the 64-bit-word variants apply on `gpu`: a CPU adapter (llvmpipe's
/// per-component loop is what they halve) with SHADER_INT64, and not turned
/// off on this thread.
pub(crate) fn wide_ok(gpu: &crate::gpu::Gpu) -> bool {
    gpu.class() == crate::gpu::AdapterClass::Cpu && gpu.has_int64() && wide_variants()
}

/// Turns the vec4 variants of batch norm, reductions and broadcasting binary
/// ops off (on) on this thread, so that tests run their scalar twins on the
/// same shapes.
#[doc(hidden)]
pub fn set_vec4_variants(on: bool) {
    VEC4_VARIANTS.with(|v| v.set(on));
}

/// Whether ops may pick their vec4 variants (see `set_vec4_variants`).
pub(crate) fn vec4_variants() -> bool {
    VEC4_VARIANTS.with(|v| v.get())
}

/// Launches `spec` writing `out` (binding 1) from inputs at their binding
/// numbers, one invocation per item: the shape shared by the modules whose
/// WGSL names each binding by meaning (conv, norm, pool).
pub(crate) fn launch_slots(
    spec: &crate::gpu::KernelSpec,
    params: &[u8],
    out: &crate::Tensor,
    ins: &[(u32, &crate::Tensor)],
    items: usize,
) -> crate::Result<()> {
    let mut b = vec![out.binding()];
    b.extend(ins.iter().map(|(slot, t)| t.binding().at(*slot)));
    out.gpu().launch_items(spec, params, &b, items)
}

/// Number of workgroups of `size` invocations that cover `n` items.
pub(crate) fn groups(n: usize, size: usize) -> u64 {
    n.div_ceil(size) as u64
}

/// u32 conversion of a size the kernels index with; tensors are bounded by the
/// adapter's buffer limits, so this only fails on absurd shapes.
pub(crate) fn u32_of(op: &'static str, v: usize) -> crate::Result<u32> {
    u32::try_from(v).map_err(|_| {
        crate::Error::shape(
            op,
            format!("size {v} exceeds the 32-bit indices kernels use"),
        )
    })
}
