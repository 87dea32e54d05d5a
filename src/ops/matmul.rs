//! Batched matmul with optional transposes read through strides
//! (shaders/matmul.wgsl). The kernel variant is chosen per adapter and shape.

use bytemuck::{Pod, Zeroable};

use super::{stage_texels, texels_height, u32_of};
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, Binding, Gpu, KernelSpec, PackKey, Packing};
use crate::tensor::{DType, Tensor};

/// The format of the matmul's scratch textures: 4 floats per texel.
const RGBA: wgpu::TextureFormat = wgpu::TextureFormat::Rgba32Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// CPU adapters, contiguous axes multiples of 4: vec4 loads, no barriers.
    CpuVec4,
    /// CPU adapters, any shape.
    CpuScalar,
    /// GPUs: workgroup-memory tiles.
    Tiled,
    /// CPU adapters with 8-wide subgroups (llvmpipe): lanes share A through
    /// subgroupBroadcast; k % 4 == 0 and (B transposed or n % 4 == 0).
    CpuSubgroup,
    /// CpuSubgroup with op(B) packed into a texture first (llvmpipe fetches
    /// texels without its per-lane load loop); same sums, bit-identical.
    CpuTexture,
}

crate::kernel_params! {
    file = "matmul";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct MmParams {
        m: u32,
        n: u32,
        k: u32,
        batch: u32,
        a_rs: u32,
        a_cs: u32,
        a_bs: u32,
        b_rs: u32,
        b_cs: u32,
        b_bs: u32,
        tiles_m: u32,
        tiles_n: u32,
        alpha: f32,
        beta: f32,
        tex_shift: u32,
        tex_mask: u32,
    }
}

/// Sizes of one matmul call, from the operands' shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_batched: bool,
    pub b_batched: bool,
}

/// Checks shapes: `a` is [m, k] or [batch, m, k] ([.., k, m] when `ta`), `b` is
/// [k, n] or [batch, k, n] ([.., n, k] when `tb`). A 2D operand is shared by all batches.
pub fn dims(a: &[usize], b: &[usize], ta: bool, tb: bool) -> Result<MatmulDims> {
    const NAME: &str = "matmul";
    let split = |s: &[usize], what: &str| -> Result<(usize, usize, usize, bool)> {
        match *s {
            [r, c] => Ok((1, r, c, false)),
            [bt, r, c] => Ok((bt, r, c, true)),
            _ => Err(Error::shape(
                NAME,
                format!("{what} must have 2 or 3 axes, got shape {s:?}"),
            )),
        }
    };
    let (ba, ar, ac, a_batched) = split(a, "left operand")?;
    let (bb, br, bc, b_batched) = split(b, "right operand")?;
    let (m, ka) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    if ka != kb {
        return Err(Error::shape(
            NAME,
            format!(
                "inner sizes differ: {a:?}{} @ {b:?}{} has k = {ka} vs {kb}",
                if ta { "^T" } else { "" },
                if tb { "^T" } else { "" }
            ),
        ));
    }
    if a_batched && b_batched && ba != bb {
        return Err(Error::shape(
            NAME,
            format!("batch sizes differ: {a:?} vs {b:?}"),
        ));
    }
    Ok(MatmulDims {
        batch: ba.max(bb),
        m,
        n,
        k: ka,
        a_batched,
        b_batched,
    })
}

pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_t(a, b, false, false)
}

/// op(a) @ op(b), op a transpose where `ta` / `tb` are set (no copies).
pub fn matmul_t(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Tensor> {
    gemm(a, b, Gemm::t(ta, tb))
}

thread_local! {
    static PREFERRED: std::cell::Cell<Option<MatmulKernel>> = const { std::cell::Cell::new(None) };
}

/// Makes `choose` return `kernel` on this thread wherever it can run the shape
/// (None: the usual choice), so that tests run every path that picks a matmul
/// kernel (the layers, conv's choice of orientation) on each variant.
#[doc(hidden)]
pub fn set_preferred_kernel(kernel: Option<MatmulKernel>) {
    PREFERRED.with(|p| p.set(kernel));
}

/// Picks the kernel for this adapter and shape.
pub fn choose(gpu: &Gpu, d: &MatmulDims, ta: bool, tb: bool) -> MatmulKernel {
    if let Some(k) = PREFERRED.with(|p| p.get())
        && supports(gpu, k, d, ta, tb)
    {
        return k;
    }
    match gpu.class() {
        AdapterClass::Gpu => MatmulKernel::Tiled,
        AdapterClass::Cpu if subgroup_ok(gpu, d, tb) && texture_pays(gpu, d) => {
            MatmulKernel::CpuTexture
        }
        AdapterClass::Cpu if subgroup_ok(gpu, d, tb) => MatmulKernel::CpuSubgroup,
        AdapterClass::Cpu if vec4_ok(d, ta, tb) => MatmulKernel::CpuVec4,
        AdapterClass::Cpu => MatmulKernel::CpuScalar,
    }
}

/// The variants that compute the same sums in the same order (bit-identical
/// results), between which `pick` may choose by measurement.
const TUNABLE: [MatmulKernel; 2] = [MatmulKernel::CpuSubgroup, MatmulKernel::CpuTexture];

/// The kernel for this call: `choose`'s where only one variant applies or
/// tuning is off (or a test prefers one), else the measured fastest of the
/// bit-identical variants for this shape (see `gpu::autotune`).
fn pick(a: &Tensor, b: &Tensor, how: Gemm<'_>, d: &MatmulDims) -> Result<MatmulKernel> {
    let gpu = a.gpu();
    let (ta, tb) = (how.ta, how.tb);
    let heuristic = choose(gpu, d, ta, tb);
    let candidates: Vec<MatmulKernel> = TUNABLE
        .into_iter()
        .filter(|&k| supports(gpu, k, d, ta, tb))
        .collect();
    let preferred = PREFERRED.with(|p| p.get()).is_some();
    // Small products are not worth four trial runs (nor a line in the cache).
    let work = d.batch as u64 * d.m as u64 * d.n as u64 * d.k as u64;
    if candidates.len() < 2
        || !candidates.contains(&heuristic)
        || preferred
        || work < 1 << 22
        || !gpu.autotune_enabled()
    {
        return Ok(heuristic);
    }
    let key = format!(
        "matmul:b{}{}{}:m{}:n{}:k{}:t{}{}{}",
        d.batch,
        if d.a_batched { "a" } else { "" },
        if d.b_batched { "b" } else { "" },
        d.m,
        d.n,
        d.k,
        ta as u8,
        tb as u8,
        how.tc as u8
    );
    if let Some(name) = gpu.tuned(&key)
        && let Some(&k) = candidates.iter().find(|k| format!("{k:?}") == name)
    {
        return Ok(k);
    }
    // Each candidate into a fresh output (never into the caller's C, which
    // the product may accumulate into): once to compile and warm up, then once
    // timed, from an idle device.
    let trial = |k: MatmulKernel| {
        gemm(
            a,
            b,
            Gemm {
                c: None,
                beta: 0.0,
                kernel: Some(k),
                ..how
            },
        )
        .map(|_| ())
    };
    let mut best = (f64::INFINITY, heuristic);
    for &k in &candidates {
        trial(k)?;
        gpu.sync()?;
        let t0 = std::time::Instant::now();
        trial(k)?;
        gpu.sync()?;
        let s = t0.elapsed().as_secs_f64();
        if s < best.0 {
            best = (s, k);
        }
    }
    gpu.set_tuned(&key, &format!("{:?}", best.1));
    Ok(best.1)
}

/// Whether `kernel` can run this shape on this adapter.
pub fn supports(gpu: &Gpu, kernel: MatmulKernel, d: &MatmulDims, ta: bool, tb: bool) -> bool {
    match kernel {
        MatmulKernel::CpuSubgroup => subgroup_ok(gpu, d, tb),
        MatmulKernel::CpuTexture => {
            subgroup_ok(gpu, d, tb) && gpu.texel_staging() && texture_fits(gpu, d).is_some()
        }
        MatmulKernel::CpuVec4 => vec4_ok(d, ta, tb),
        MatmulKernel::CpuScalar | MatmulKernel::Tiled => true,
    }
}

fn subgroup_ok(gpu: &Gpu, d: &MatmulDims, tb: bool) -> bool {
    gpu.subgroup_size() == Some(8)
        && d.k.is_multiple_of(4)
        && (tb || d.n.is_multiple_of(4))
        && d.m > 0
        && d.n > 0
}

/// Whether `choose` could pick the texture kernel for `d` (op(B)
/// transposed) whatever the size: a CPU adapter, no other kernel preferred,
/// and the kernel runs the shape here.
pub(crate) fn texture_runs(gpu: &Gpu, d: &MatmulDims) -> bool {
    let preferred = PREFERRED.with(|p| p.get());
    gpu.class() == AdapterClass::Cpu
        && preferred.is_none_or(|k| k == MatmulKernel::CpuTexture)
        && subgroup_ok(gpu, d, true)
        && gpu.texel_staging()
        && texture_fits(gpu, d).is_some()
}

/// Whether staging op(B) in a texture pays for itself: packing costs about
/// 1/m of the product, so m must not be small, nor the product (measured on
/// llvmpipe: 64x512 @ 512x100 loses 1.5x, 256^3 breaks even, 512^3 and the
/// GEMMs of 3x3 convs at batch 64 gain 1.3-2x).
fn texture_pays(gpu: &Gpu, d: &MatmulDims) -> bool {
    let work = d.batch as u64 * d.m as u64 * d.n as u64 * d.k as u64;
    d.m >= 64 && work >= 1 << 25 && gpu.texel_staging() && texture_fits(gpu, d).is_some()
}

/// The vec4 kernel reads 4 consecutive elements along each contiguous axis and
/// steps k by 4; everything it reads in blocks must be a multiple of 4.
fn vec4_ok(d: &MatmulDims, ta: bool, tb: bool) -> bool {
    let a_contig = if ta { d.m } else { d.k };
    let b_contig = if tb { d.k } else { d.n };
    d.k.is_multiple_of(4) && a_contig % 4 == 0 && b_contig % 4 == 0 && d.m > 0 && d.n > 0
}

/// How `gemm` multiplies: C = alpha * op(A) @ op(B) + beta * C.
/// `Gemm::default()` is the plain product (no transposes, alpha 1, a new C).
#[derive(Clone, Copy, Debug)]
pub struct Gemm<'a> {
    /// op(A) = A^T (A stored [k, m]); op(B) = B^T (B stored [n, k]).
    pub ta: bool,
    pub tb: bool,
    /// Write C transposed in each batch: [.., n, m] (a new C only).
    pub tc: bool,
    pub alpha: f32,
    pub beta: f32,
    /// Accumulate into this tensor (with `beta`) and return it; None: a new one.
    pub c: Option<&'a Tensor>,
    /// Force a variant (tests and benchmarks); None chooses per adapter and shape.
    pub kernel: Option<MatmulKernel>,
}

impl Default for Gemm<'_> {
    fn default() -> Self {
        Gemm {
            ta: false,
            tb: false,
            tc: false,
            alpha: 1.0,
            beta: 0.0,
            c: None,
            kernel: None,
        }
    }
}

impl Gemm<'_> {
    /// The plain product with the given transposes.
    pub fn t(ta: bool, tb: bool) -> Self {
        Gemm {
            ta,
            tb,
            ..Gemm::default()
        }
    }
}

/// C = alpha * op(a) @ op(b) + beta * C, as `how` says.
pub fn gemm(a: &Tensor, b: &Tensor, how: Gemm<'_>) -> Result<Tensor> {
    const NAME: &str = "matmul";
    let Gemm {
        ta,
        tb,
        tc,
        alpha,
        beta,
        c,
        kernel,
    } = how;
    a.expect_dtype(NAME, DType::F32)?;
    b.expect_dtype(NAME, DType::F32)?;
    let d = dims(a.shape(), b.shape(), ta, tb)?;
    let (rows, cols) = if tc { (d.n, d.m) } else { (d.m, d.n) };
    let out_shape: Vec<usize> = if d.a_batched || d.b_batched {
        vec![d.batch, rows, cols]
    } else {
        vec![rows, cols]
    };
    let kernel = match kernel {
        Some(k) => k,
        None => pick(a, b, how, &d)?,
    };
    if tc && c.is_some() {
        return Err(Error::Config(
            "matmul: a transposed C (tc) is written fresh; it cannot accumulate into c".into(),
        ));
    }
    if tc && !matches!(kernel, MatmulKernel::CpuSubgroup | MatmulKernel::CpuTexture) {
        return transposed_by_permute(a, b, how, kernel);
    }
    let out = match c {
        Some(c) => {
            if c.shape() != out_shape.as_slice() {
                return Err(Error::shape(
                    NAME,
                    format!("output has shape {:?}, expected {out_shape:?}", c.shape()),
                ));
            }
            c.clone()
        }
        None => Tensor::empty(a.gpu(), &out_shape, DType::F32)?,
    };
    if out.numel() == 0 {
        return Ok(out);
    }
    if d.k == 0 {
        // An empty sum: C = beta * C.
        let fresh = if c.is_some() && beta != 0.0 {
            super::scale(&out, beta)?
        } else {
            Tensor::zeros(a.gpu(), &out_shape)?
        };
        a.gpu()
            .copy_buffer(fresh.buffer(), out.buffer(), out.bytes())?;
        return Ok(out);
    }
    if !supports(a.gpu(), kernel, &d, ta, tb) {
        return Err(Error::Config(format!(
            "the {kernel:?} matmul kernel cannot run {d:?} (ta={ta}, tb={tb}) here: it needs k and \
             the contiguous axes to be multiples of 4 (and 8-wide subgroups for CpuSubgroup)"
        )));
    }
    let (rs_a, cs_a) = if ta { (1, d.m) } else { (d.k, 1) };
    let (rs_b, cs_b) = if tb { (1, d.k) } else { (d.n, 1) };
    let tile = match kernel {
        MatmulKernel::Tiled | MatmulKernel::CpuSubgroup | MatmulKernel::CpuTexture => 64,
        MatmulKernel::CpuVec4 | MatmulKernel::CpuScalar => 32,
    };
    let (tiles_m, tiles_n) = (d.m.div_ceil(tile), d.n.div_ceil(tile));
    // Split-K: a small output with a long k (the weight gradient of a conv, a
    // batch of pixels deep) would leave most of the device idle. Cut k into S
    // equal chunks, computed as a batch over S, then sum the partial products.
    let split = if c.is_none() && !tc && d.batch == 1 && !d.a_batched && !d.b_batched {
        split_k(a.gpu(), tiles_m * tiles_n, d.k)
    } else {
        1
    };
    let kc = d.k / split;
    let (a_bs, b_bs) = if split > 1 {
        (kc * cs_a, kc * rs_b)
    } else {
        (
            if d.a_batched { d.m * d.k } else { 0 },
            if d.b_batched { d.k * d.n } else { 0 },
        )
    };
    let target = if split > 1 {
        Tensor::empty(a.gpu(), &[split, d.m, d.n], DType::F32)?
    } else {
        out.clone()
    };
    let params = MmParams {
        m: u32_of(NAME, d.m)?,
        n: u32_of(NAME, d.n)?,
        k: u32_of(NAME, kc)?,
        batch: u32_of(NAME, d.batch * split)?,
        a_rs: u32_of(NAME, rs_a)?,
        a_cs: u32_of(NAME, cs_a)?,
        a_bs: u32_of(NAME, a_bs)?,
        b_rs: u32_of(NAME, rs_b)?,
        b_cs: u32_of(NAME, cs_b)?,
        b_bs: u32_of(NAME, b_bs)?,
        tiles_m: u32_of(NAME, tiles_m)?,
        tiles_n: u32_of(NAME, tiles_n)?,
        alpha,
        beta: if c.is_some() { beta } else { 0.0 },
        tex_shift: 0,
        tex_mask: 0,
    };
    if kernel == MatmulKernel::CpuTexture {
        return texture_gemm(a, b, &d, params, (ta, tb, tc, split), &target, &out);
    }
    let spec = match kernel {
        MatmulKernel::CpuVec4 => KernelSpec::new("matmul", "mm_cpu_vec4")
            .with("TRANS_A", ta as u8 as f64)
            .with("TRANS_B", tb as u8 as f64),
        MatmulKernel::CpuScalar => KernelSpec::new("matmul", "mm_cpu_scalar"),
        MatmulKernel::Tiled => KernelSpec::new("matmul", "mm_tiled"),
        MatmulKernel::CpuSubgroup => KernelSpec::new("matmul_subgroup", "mm_cpu_subgroup")
            .with("TRANS_A", ta as u8 as f64)
            .with("TRANS_B", tb as u8 as f64)
            .with("SMALL_M", (d.m < 64) as u8 as f64)
            .with("TRANS_C", tc as u8 as f64),
        MatmulKernel::CpuTexture => unreachable!("texture_gemm returned above"),
    };
    a.gpu().launch(
        &spec,
        bytemuck::bytes_of(&params),
        &[target.binding(), a.binding(), b.binding()],
        (tiles_m * tiles_n * d.batch * split) as u64,
    )?;
    finish_split(&target, &out, split)?;
    Ok(out)
}

/// `gemm` with C transposed for kernels that cannot write it so: C, then a
/// transpose of its last two axes.
fn transposed_by_permute(
    a: &Tensor,
    b: &Tensor,
    how: Gemm<'_>,
    kernel: MatmulKernel,
) -> Result<Tensor> {
    let plain = Gemm {
        tc: false,
        kernel: Some(kernel),
        ..how
    };
    let c = gemm(a, b, plain)?;
    let r = c.shape().len();
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    super::layout::permute(&c, &perm)
}

/// The height of the packed op(B)'s texture for `d` (it is
/// `scratch_width` wide), or None where that exceeds the adapter's limit.
fn texture_fits(gpu: &Gpu, d: &MatmulDims) -> Option<u32> {
    let rows = d.k * if d.b_batched { d.batch } else { 1 };
    let texels = rows * d.n.div_ceil(4);
    texels_height(gpu, texels)
}

/// Stages op(B) in a texture (its bytes, or packed by mm_pack_b when B is
/// transposed), and A too where it is row-major and fits, then runs the
/// texture matmul.
fn texture_gemm(
    a: &Tensor,
    b: &Tensor,
    d: &MatmulDims,
    mut params: MmParams,
    (ta, tb, tc, split): (bool, bool, bool, usize),
    target: &Tensor,
    out: &Tensor,
) -> Result<Tensor> {
    const NAME: &str = "matmul";
    let gpu = a.gpu();
    set_texture_fold(gpu, &mut params);
    let b_batches = if d.b_batched { d.batch } else { 1 };
    let texels = b_batches * d.k * d.n.div_ceil(4);
    let b_view = if tb {
        let strided = StridedB {
            t: b,
            batches: b_batches,
            rows: d.k,
            rs: params.b_rs as usize,
            cs: params.b_cs as usize,
            bs: if d.b_batched { params.b_bs as usize } else { 0 },
        };
        pack_b(&strided, params)?.expect("supports() checked the size")
    } else {
        // op(B) = B, rows of n (a multiple of 4) floats one after the other:
        // the packed layout is B's own bytes.
        stage_texels(b, 0, RGBA, texels)?.expect("texture_fits checked B")
    };
    // Where each batch of the product starts in the packed rows, in texels.
    let n4 = d.n.div_ceil(4);
    params.b_bs = u32_of(
        NAME,
        if split > 1 {
            d.k / split * n4
        } else if d.b_batched {
            d.k * n4
        } else {
            0
        },
    )?;
    // A row-major A's rows are texels too (k is a multiple of 4); the kernel
    // reads them at the same offsets, divided by 4.
    let a_texels = if d.a_batched { d.batch } else { 1 } * d.m * d.k / 4;
    let a_view = match ta {
        false => stage_texels(a, 1, RGBA, a_texels)?,
        true => None,
    };
    let (entry, a_arg) = match &a_view {
        Some(v) => ("mm_cpu_texture_a", Binding::texture(v).at(6)),
        None => ("mm_cpu_texture", a.binding().at(2)),
    };
    let spec = KernelSpec::new("matmul_texture", entry)
        .with("TRANS_A", ta as u8 as f64)
        .with("TRANS_B", tb as u8 as f64)
        .with("SMALL_M", (d.m < 64) as u8 as f64)
        .with("TRANS_C", tc as u8 as f64);
    gpu.launch(
        &spec,
        bytemuck::bytes_of(&params),
        &[target.binding(), a_arg, Binding::texture(&b_view).at(4)],
        (params.tiles_m * params.tiles_n * params.batch) as u64,
    )?;
    finish_split(target, out, split)?;
    Ok(out.clone())
}

/// The scratch textures' width as the kernels fold texel indices: (t & mask, t >> shift).
fn set_texture_fold(gpu: &Gpu, params: &mut MmParams) {
    let width = gpu.scratch_width();
    params.tex_shift = width.trailing_zeros();
    params.tex_mask = width - 1;
}

/// op(B) read through strides: `batches` blocks of `rows` rows (k) of the
/// product's n columns, element (bi, r, c) at `bi * bs + r * rs + c * cs` of
/// `t`. Packed block after block, so packed row `bi * rows + r` is row r of
/// block bi.
pub(crate) struct StridedB<'a> {
    pub t: &'a Tensor,
    pub batches: usize,
    pub rows: usize,
    pub rs: usize,
    pub cs: usize,
    pub bs: usize,
}

/// The scratch texture slot B is staged in for mm_pack_b_tex (0 is the packed
/// op(B), 1 a staged A, 2 a convolution's staged x).
const PACK_SRC_SLOT: usize = 3;

/// Packs op(B) into scratch texture 0 (or a kept texture) with mm_pack_b, or
/// on CPU adapters with mm_pack_b_tex from B staged as texels (`params`
/// gives n and the texture fold); None where it would be taller than the
/// adapter allows.
fn pack_b(b: &StridedB<'_>, params: MmParams) -> Result<Option<crate::gpu::View>> {
    const NAME: &str = "matmul";
    let gpu = b.t.gpu();
    let texels = b.batches * b.rows * (params.n as usize).div_ceil(4);
    let Some(height) = texels_height(gpu, texels) else {
        return Ok(None);
    };
    let key = PackKey {
        buffer: b.t.buffer().id(),
        kind: "mm_pack_b",
        layout: [b.batches, b.rows, b.rs, b.cs, b.bs, params.n as usize].map(|v| v as u64),
    };
    let view = match gpu.packed(key, b.t.buffer().content(), RGBA, height) {
        // Packed before from the same contents: no launch.
        Packing::Reuse(view) => return Ok(Some(view)),
        Packing::Fill(view) => view,
        Packing::Scratch => gpu.scratch_texture(0, RGBA, height).1,
    };
    let pack = MmParams {
        k: u32_of(NAME, b.rows)?,
        batch: u32_of(NAME, b.batches)?,
        b_rs: u32_of(NAME, b.rs)?,
        b_cs: u32_of(NAME, b.cs)?,
        b_bs: u32_of(NAME, b.bs)?,
        ..params
    };
    // On CPU adapters B's floats are staged as texels first (a copy), and
    // mm_pack_b_tex fetches them: cheaper there than storage loads.
    let staged = match gpu.class() {
        AdapterClass::Cpu => stage_texels(
            b.t,
            PACK_SRC_SLOT,
            wgpu::TextureFormat::R32Float,
            b.t.numel(),
        )?,
        AdapterClass::Gpu => None,
    };
    let (entry, src) = match &staged {
        Some(v) => ("mm_pack_b_tex", Binding::texture(v).at(7)),
        None => ("mm_pack_b", b.t.binding().at(3)),
    };
    gpu.launch_items(
        &KernelSpec::new("matmul_texture", entry),
        bytemuck::bytes_of(&pack),
        &[src, Binding::texture(&view).at(5)],
        texels,
    )?;
    Ok(Some(view))
}

/// The texture matmul with an op(A) that `kernel` computes itself (an
/// implicit GEMM; `extra` are its own bindings) and op(B) packed from `b`,
/// C written transposed in each batch: [d.batch, n, m], or [n, m] for one
/// batch; or into `into`, where the kernel places each element itself.
/// Batches share op(B). One batch may be cut into split-K chunks (not with
/// `into`): then batch bi of the launch starts at k = bi * p.a_bs (the
/// kernel adds that to its k), and the partial products are summed. None
/// where op(B) does not fit a texture.
pub(crate) fn implicit_gemm(
    d: &MatmulDims,
    b: &StridedB<'_>,
    kernel: KernelSpec,
    extra: &[Binding<'_>],
    into: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    const NAME: &str = "matmul";
    let gpu = b.t.gpu();
    let (tiles_m, tiles_n) = (d.m.div_ceil(64), d.n.div_ceil(64));
    let split = if into.is_none() {
        implicit_split(gpu, d)
    } else {
        1
    };
    let kc = d.k / split;
    let mut params = MmParams {
        m: u32_of(NAME, d.m)?,
        n: u32_of(NAME, d.n)?,
        k: u32_of(NAME, kc)?,
        batch: u32_of(NAME, d.batch * split)?,
        a_rs: 0,
        a_cs: 0,
        a_bs: u32_of(NAME, if split > 1 { kc } else { 0 })?,
        b_rs: 0,
        b_cs: 0,
        b_bs: 0,
        tiles_m: u32_of(NAME, tiles_m)?,
        tiles_n: u32_of(NAME, tiles_n)?,
        alpha: 1.0,
        beta: 0.0,
        tex_shift: 0,
        tex_mask: 0,
    };
    set_texture_fold(gpu, &mut params);
    let Some(b_view) = pack_b(b, params)? else {
        return Ok(None);
    };
    params.b_bs = u32_of(NAME, if split > 1 { kc * d.n.div_ceil(4) } else { 0 })?;
    let shape = if d.batch > 1 || d.a_batched {
        vec![d.batch, d.n, d.m]
    } else {
        vec![d.n, d.m]
    };
    let out = match into {
        Some(t) => t.clone(),
        None => Tensor::empty(gpu, &shape, DType::F32)?,
    };
    let target = if split > 1 {
        Tensor::empty(gpu, &[split, d.n, d.m], DType::F32)?
    } else {
        out.clone()
    };
    let spec = kernel
        .with("SMALL_M", (d.m < 64) as u8 as f64)
        .with("TRANS_C", 1.0);
    let mut args = vec![target.binding(), Binding::texture(&b_view).at(4)];
    args.extend_from_slice(extra);
    gpu.launch(
        &spec,
        bytemuck::bytes_of(&params),
        &args,
        (tiles_m * tiles_n * d.batch * split) as u64,
    )?;
    finish_split(&target, &out, split)?;
    Ok(Some(out))
}

/// How many chunks of k `implicit_gemm` splits a product into (when it
/// writes a fresh tensor): single-batch products with few tiles and long k.
fn implicit_split(gpu: &Gpu, d: &MatmulDims) -> usize {
    if d.batch != 1 {
        return 1;
    }
    split_k(gpu, d.m.div_ceil(64) * d.n.div_ceil(64), d.k)
}

/// Whether `implicit_gemm` splits `d` over k (and so sums partial products
/// after its kernel: an epilogue in the kernel would see partial sums).
pub(crate) fn splits_k(gpu: &Gpu, d: &MatmulDims) -> bool {
    implicit_split(gpu, d) > 1
}

/// Sums the partial products of a split-K launch into `out`.
fn finish_split(target: &Tensor, out: &Tensor, split: usize) -> Result<()> {
    if split > 1 {
        let summed = super::sum(target, Some(0))?;
        out.gpu()
            .copy_buffer(summed.buffer(), out.buffer(), out.bytes())?;
    }
    Ok(())
}

/// How many chunks to cut k into (1: none). Chunks are equal and multiples of 4
/// (so every kernel variant still applies), at least 256 long.
fn split_k(gpu: &Gpu, tiles: usize, k: usize) -> usize {
    let want_wgs = match gpu.class() {
        AdapterClass::Cpu => 32,
        AdapterClass::Gpu => 256,
    };
    if tiles >= want_wgs || k < 2048 || !k.is_multiple_of(4) {
        return 1;
    }
    let target = (want_wgs / tiles.max(1)).clamp(2, k / 256);
    // The largest divisor of k / 4 not above the target.
    (2..=target)
        .rev()
        .find(|s| (k / 4).is_multiple_of(*s))
        .unwrap_or(1)
}
