//! 2D convolution (shaders/conv.wgsl): im2col + matmul for groups == 1 (the
//! matmul kernels' tiling does the work; where the texture matmul runs, an
//! implicit GEMM instead, see `conv_implicit`), direct kernels for grouped
//! and depthwise convolutions. Forward, backward to input, backward to weight.

use bytemuck::{Pod, Zeroable};

use super::matmul::{Gemm, gemm};
use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, KernelSpec};
use crate::tensor::{DType, Tensor};

/// Stride, padding, dilation (each (h, w)) and groups of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dConfig {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Conv2dConfig {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dConfig {
    pub fn new(stride: usize, padding: usize) -> Self {
        Conv2dConfig {
            stride: (stride, stride),
            padding: (padding, padding),
            ..Default::default()
        }
    }
}

/// All sizes of one convolution, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub cfg: Conv2dConfig,
}

impl ConvGeom {
    pub fn new(x: &[usize], w: &[usize], cfg: Conv2dConfig) -> Result<ConvGeom> {
        const NAME: &str = "conv2d";
        let (&[n, c, h, wd], &[oc, cg, kh, kw]) = (x, w) else {
            return Err(Error::shape(
                NAME,
                format!(
                    "input must be [N, C, H, W] and weight [OC, C/groups, KH, KW], got {x:?} and {w:?}"
                ),
            ));
        };
        let g = cfg.groups;
        if g == 0 || c % g != 0 || oc % g != 0 || cg * g != c {
            return Err(Error::shape(
                NAME,
                format!(
                    "{c} input channels and {oc} output channels with groups = {g} need weight [{oc}, {}, KH, KW], got {w:?}",
                    c.checked_div(g).unwrap_or(0)
                ),
            ));
        }
        if cfg.stride.0 == 0 || cfg.stride.1 == 0 || cfg.dilation.0 == 0 || cfg.dilation.1 == 0 {
            return Err(Error::shape(NAME, "stride and dilation must be at least 1"));
        }
        let out = |size: usize, k: usize, s: usize, p: usize, d: usize| -> Option<usize> {
            let span = d * (k - 1) + 1;
            (size + 2 * p >= span && k > 0).then(|| (size + 2 * p - span) / s + 1)
        };
        let (Some(oh), Some(ow)) = (
            out(h, kh, cfg.stride.0, cfg.padding.0, cfg.dilation.0),
            out(wd, kw, cfg.stride.1, cfg.padding.1, cfg.dilation.1),
        ) else {
            return Err(Error::shape(
                NAME,
                format!(
                    "a {kh}x{kw} kernel (dilation {:?}) does not fit the {h}x{wd} input with padding {:?}",
                    cfg.dilation, cfg.padding
                ),
            ));
        };
        Ok(ConvGeom {
            n,
            c,
            h,
            w: wd,
            oc,
            kh,
            kw,
            oh,
            ow,
            cfg,
        })
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [self.n, self.oc, self.oh, self.ow]
    }

    /// Whether the im2col + matmul path is used (else the direct kernels).
    pub fn uses_gemm(&self) -> bool {
        self.cfg.groups == 1
    }

    fn params(&self) -> Result<ConvParams> {
        let u = |v: usize| u32_of("conv2d", v);
        Ok(ConvParams {
            n: u(self.n)?,
            c: u(self.c)?,
            h: u(self.h)?,
            w: u(self.w)?,
            oc: u(self.oc)?,
            oh: u(self.oh)?,
            ow: u(self.ow)?,
            kh: u(self.kh)?,
            kw: u(self.kw)?,
            sh: u(self.cfg.stride.0)?,
            sw: u(self.cfg.stride.1)?,
            ph: u(self.cfg.padding.0)?,
            pw: u(self.cfg.padding.1)?,
            dh: u(self.cfg.dilation.0)?,
            dw: u(self.cfg.dilation.1)?,
            groups: u(self.cfg.groups)?,
            klen_p: u(self.klen_padded())?,
            _pad: [0; 3],
        })
    }

    /// `spec` with the geometry, all but the batch, as the shader's
    /// constants (see direct_forward in shaders/conv.wgsl).
    fn fixed(&self, spec: KernelSpec) -> KernelSpec {
        let c = self.cfg;
        [
            ("XC", self.c),
            ("XH", self.h),
            ("XW", self.w),
            ("OC", self.oc),
            ("OH", self.oh),
            ("OW", self.ow),
            ("KH", self.kh),
            ("KW", self.kw),
            ("SH", c.stride.0),
            ("SW", c.stride.1),
            ("PH", c.padding.0),
            ("PW", c.padding.1),
            ("DH", c.dilation.0),
            ("DW", c.dilation.1),
            ("GROUPS", c.groups),
        ]
        .into_iter()
        .fold(spec, |s, (name, v)| s.with(name, v as f64))
    }

    /// The output tile (rows, columns) of one `direct_forward_rows`
    /// invocation (and `direct_weight_partial`): powers of two, the input
    /// window extent as the shader computes it.
    fn tile(&self) -> Option<(usize, usize)> {
        let c = self.cfg;
        let extent = |t: usize, s: usize, k: usize, d: usize| (t - 1) * s + (k - 1) * d + 1;
        self.best_tile(
            (1, self.oh),
            (1, self.ow),
            |rh| extent(rh, c.stride.0, self.kh, c.dilation.0),
            |cw| extent(cw, c.stride.1, self.kw, c.dilation.1),
        )
    }

    /// The input-pixel tile (rows, columns) of one
    /// `direct_backward_input_tiles` invocation: rows a multiple of the
    /// vertical stride and columns of the horizontal one, the dy window
    /// extent as the shader computes it.
    fn input_tile(&self) -> Option<(usize, usize)> {
        let c = self.cfg;
        let extent = |t: usize, s: usize, k: usize, d: usize, p: usize| {
            let a = ((k - 1) * d).div_ceil(s) * s;
            let first = (p + a - (k - 1) * d) / s;
            (t - 1 + p + a) / s - first + 1
        };
        self.best_tile(
            (c.stride.0, self.h),
            (c.stride.1, self.w),
            |rh| extent(rh, c.stride.0, self.kh, c.dilation.0, c.padding.0),
            |cw| extent(cw, c.stride.1, self.kw, c.dilation.1, c.padding.1),
        )
    }

    /// Of the tiles `unit * 2^i` along each axis (no longer than the axis
    /// `len` rounded up to a power of two, or than one unit) with at most 16
    /// elements and a window (`rows(rh)` x `cols(cw)`) of at most 64
    /// values, the one that loads the fewest values (window and weights)
    /// over the whole plane, edge tiles' unused elements counted as loads
    /// wasted. None where no tile fits (wide dilated kernels).
    fn best_tile(
        &self,
        (row_unit, height): (usize, usize),
        (col_unit, width): (usize, usize),
        rows: impl Fn(usize) -> usize,
        cols: impl Fn(usize) -> usize,
    ) -> Option<(usize, usize)> {
        let sizes = |unit: usize, len: usize| {
            let max = len.next_power_of_two().max(unit);
            [1usize, 2, 4, 8, 16]
                .map(|m| m * unit)
                .into_iter()
                .filter(move |&t| t <= max)
        };
        let mut best: Option<((usize, usize), usize)> = None;
        for rh in sizes(row_unit, height) {
            for cw in sizes(col_unit, width) {
                let win = rows(rh) * cols(cw);
                if rh * cw > 16 || win > 64 {
                    continue;
                }
                let loads = height.div_ceil(rh) * width.div_ceil(cw) * (win + self.kh * self.kw);
                if best.is_none_or(|(_, l)| loads < l) {
                    best = Some(((rh, cw), loads));
                }
            }
        }
        best.map(|(t, _)| t)
    }

    /// `entry` of conv.wgsl with the geometry and the tile as constants.
    fn tiled(&self, entry: &'static str, (rh, cw): (usize, usize)) -> KernelSpec {
        self.fixed(KernelSpec::new("conv", entry))
            .with("RH", rh as f64)
            .with("CW", cw as f64)
    }

    /// A 1x1 kernel at stride 1 without padding, groups 1: each output
    /// pixel is W times the input pixel.
    fn is_pointwise(&self) -> bool {
        let c = self.cfg;
        self.kh == 1 && self.kw == 1 && c.stride == (1, 1) && c.padding == (0, 0) && c.groups == 1
    }

    fn klen(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Images per im2col pass so that the column matrix fits one storage
    /// buffer (at most 256 MiB, to bound memory).
    fn batch_chunk(&self, gpu: &crate::gpu::Gpu) -> usize {
        let per_image = (self.oh * self.ow * self.klen_padded() * 4).max(1) as u64;
        let limit = gpu.limits().max_storage_buffer_binding_size.min(256 << 20);
        let limit = IM2COL_BUDGET.with(|b| b.get()).unwrap_or(limit);
        ((limit / per_image) as usize).clamp(1, self.n.max(1))
    }

    fn with_batch(&self, n: usize) -> ConvGeom {
        ConvGeom { n, ..*self }
    }

    /// Columns per im2col row: klen rounded up to 4 for the vec4 matmul kernels.
    fn klen_padded(&self) -> usize {
        self.klen().div_ceil(4) * 4
    }

    /// The weight as a [OC, klen_padded] matrix (zero-padded when klen % 4 != 0).
    fn weight_matrix(&self, w: &Tensor) -> Result<Tensor> {
        let w2 = w.reshape(&[self.oc, self.klen()])?;
        if self.klen_padded() == self.klen() {
            return Ok(w2);
        }
        // Kept while w is unchanged (a frozen model's first layer).
        let kp = self.klen_padded();
        super::derived("conv::weight_matrix", &[w], &[kp as u64], || {
            super::layout::pad_last(&w2, kp)
        })
    }
}

crate::kernel_params! {
    file = "conv";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct ConvParams {
        n: u32,
        c: u32,
        h: u32,
        w: u32,
        oc: u32,
        oh: u32,
        ow: u32,
        kh: u32,
        kw: u32,
        sh: u32,
        sw: u32,
        ph: u32,
        pw: u32,
        dh: u32,
        dw: u32,
        groups: u32,
        klen_p: u32,
        _pad: [u32; 3],
    }
}

/// The binding numbers of shaders/conv.wgsl, one per meaning.
#[derive(Clone, Copy)]
enum Slot {
    Inputs = 2,
    Weights = 3,
    GradOut = 4,
    GradCols = 5,
}

/// Runs `entry` writing `out` (binding 1), one invocation per output element.
fn run(g: &ConvGeom, entry: &'static str, out: &Tensor, ins: &[(Slot, &Tensor)]) -> Result<()> {
    let params = g.params()?;
    let spec = KernelSpec::new("conv", entry);
    let ins: Vec<(u32, &Tensor)> = ins.iter().map(|&(s, t)| (s as u32, t)).collect();
    super::launch_slots(&spec, bytemuck::bytes_of(&params), out, &ins, out.numel())
}

fn im2col(g: &ConvGeom, x: &Tensor) -> Result<Tensor> {
    let cols = Tensor::empty(x.gpu(), &[g.n, g.oh * g.ow, g.klen_padded()], DType::F32)?;
    let params = g.params()?;
    let wide = g.klen_padded().is_multiple_of(8) && super::wide_ok(x.gpu());
    let spec = if wide {
        KernelSpec::new("conv64", "im2col8")
    } else {
        KernelSpec::new("conv", "im2col")
    };
    x.gpu().launch_items(
        &spec,
        bytemuck::bytes_of(&params),
        &[cols.binding(), x.binding()],
        g.n * g.oh * g.ow,
    )?;
    Ok(cols)
}

thread_local! {
    static IM2COL_BUDGET: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Caps the bytes of one im2col pass on this thread (None: the adapter's
/// limit), so that tests reach the batch-chunked paths with small tensors.
#[doc(hidden)]
pub fn set_im2col_budget(bytes: Option<u64>) {
    IM2COL_BUDGET.with(|b| b.set(bytes));
}

/// y = conv(x, w) + b. `x` [N, C, H, W], `w` [OC, C/groups, KH, KW], `b` [OC].
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Tensor> {
    let g = conv_geom(x, w, cfg)?;
    if let Some(b) = b
        && b.shape() != [g.oc]
    {
        return Err(Error::shape(
            "conv2d",
            format!("bias must be [{}], got {:?}", g.oc, b.shape()),
        ));
    }
    Ok(conv2d_then(x, w, b, &g, None)?.0)
}

fn conv_geom(x: &Tensor, w: &Tensor, cfg: Conv2dConfig) -> Result<ConvGeom> {
    x.expect_dtype("conv2d", DType::F32)?;
    w.expect_dtype("conv2d", DType::F32)?;
    ConvGeom::new(x.shape(), w.shape(), cfg)
}

/// What follows batch norm in `conv2d_bn_eval`; `R` is the residual.
#[derive(Clone, Copy)]
pub enum BnPost<R> {
    None,
    Relu,
    /// relu(batch norm + this residual), the output's shape.
    AddRelu(R),
}

impl<R> BnPost<R> {
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> BnPost<S> {
        match self {
            BnPost::None => BnPost::None,
            BnPost::Relu => BnPost::Relu,
            BnPost::AddRelu(r) => BnPost::AddRelu(f(r)),
        }
    }

    pub fn residual(self) -> Option<R> {
        match self {
            BnPost::AddRelu(r) => Some(r),
            _ => None,
        }
    }
}

/// Batch norm with its running statistics (eval mode): `affine` (gamma,
/// beta), `running` (mean, var), each [OC]; then `post`.
#[derive(Clone, Copy)]
pub struct EvalBn<'a> {
    pub affine: (&'a Tensor, &'a Tensor),
    pub running: (&'a Tensor, &'a Tensor),
    pub eps: f32,
    pub post: BnPost<&'a Tensor>,
}

impl EvalBn<'_> {
    fn check(&self, oc: usize, out: &[usize]) -> Result<()> {
        let named = [
            ("weight", self.affine.0),
            ("bias", self.affine.1),
            ("running mean", self.running.0),
            ("running var", self.running.1),
        ];
        for (name, t) in named {
            t.expect_dtype("conv2d_bn_eval", DType::F32)?;
            if t.shape() != [oc] {
                return Err(Error::shape(
                    "conv2d_bn_eval",
                    format!("batch norm {name} must be [{oc}], got {:?}", t.shape()),
                ));
            }
        }
        if let BnPost::AddRelu(r) = self.post {
            r.expect_dtype("conv2d_bn_eval", DType::F32)?;
            if r.shape() != out {
                return Err(Error::shape(
                    "conv2d_bn_eval",
                    format!("the residual must be [{out:?}], got {:?}", r.shape()),
                ));
            }
        }
        Ok(())
    }

    /// The batch norm op (and residual, ReLU) on y: what the epilogue computes.
    fn apply(&self, y: &Tensor) -> Result<Tensor> {
        let cfg = super::norm::BnConfig {
            training: false,
            momentum: 0.0,
            eps: self.eps,
        };
        let (a, r) = (self.affine, self.running);
        let out = match self.post {
            BnPost::None => super::norm::batch_norm(y, a, r, cfg)?,
            BnPost::Relu => super::norm::batch_norm_relu(y, a, r, cfg)?,
            BnPost::AddRelu(res) => super::norm::batch_norm_add_relu(y, res, a, r, cfg)?,
        };
        Ok(out.0)
    }
}

/// `bn` (eval mode) after y = conv(x, w) (no bias), as one op: where the
/// implicit GEMM runs the product whole, batch norm, the residual's add and
/// ReLU happen as it stores y (the same bits as the ops one after another,
/// tests/conv.rs); elsewhere the ops run one after another. No backward: for
/// a frozen model's forward (the teacher's, inference).
pub fn conv2d_bn_eval(x: &Tensor, w: &Tensor, cfg: Conv2dConfig, bn: EvalBn<'_>) -> Result<Tensor> {
    let g = conv_geom(x, w, cfg)?;
    bn.check(g.oc, &g.out_shape())?;
    let (y, fused) = conv2d_then(x, w, None, &g, Some(&bn))?;
    if fused { Ok(y) } else { bn.apply(&y) }
}

/// conv2d on checked arguments, with `epi` applied inside the implicit GEMM
/// where it runs the product whole (the bool says whether it was).
fn conv2d_then(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: &ConvGeom,
    epi: Option<&EvalBn<'_>>,
) -> Result<(Tensor, bool)> {
    let g = *g;
    let y = if g.uses_gemm() {
        let w2 = g.weight_matrix(w)?;
        if let Some((y, fused)) = super::conv_implicit::forward(x, &w2, &g, epi)? {
            return Ok((with_bias(y, b, &g)?, fused));
        }
        if g.is_pointwise() {
            // A 1x1 convolution's im2col would only transpose x: y[n] = W
            // [OC, C] @ x[n] [C, HW], already NCHW. The CPU kernels spread
            // a product's columns over the lanes (64 per subgroup), so the
            // longer of pixels and channels goes there: y[n]^T = x[n]^T
            // [HW, C] @ W^T [C, OC], written transposed, when the image
            // has fewer pixels than the layer has channels (small images,
            // late layers: 7 of 8 lanes idle on a 2x2 image otherwise).
            let x3 = x.reshape(&[g.n, g.c, g.h * g.w])?;
            // Unpadded: no column matrix to match.
            let w2 = w.reshape(&[g.oc, g.c])?;
            let y = if g.h * g.w < g.oc {
                let how = Gemm {
                    tc: true,
                    ..Gemm::t(true, true)
                };
                gemm(&x3, &w2, how)?
            } else {
                gemm(&w2, &x3, Gemm::default())?
            };
            let y = y.reshape(&g.out_shape())?;
            return Ok((with_bias(y, b, &g)?, false));
        }
        by_chunks(&g, x.gpu(), &[x], |gc, parts| {
            let cols = im2col(gc, parts[0])?;
            let y = if pixels_as_rows(&cols, &w2)? {
                // y[n]^T = cols[n] [OHW, CKK] @ W^T [CKK, OC], written
                // transposed: the pixels are the GEMM's rows (its long side).
                gemm(
                    &cols,
                    &w2,
                    Gemm {
                        tc: true,
                        ..Gemm::t(false, true)
                    },
                )?
            } else {
                // y[n] = W [OC, CKK] @ cols[n]^T [CKK, OHW]: already NCHW.
                gemm(&w2, &cols, Gemm::t(false, true))?
            };
            y.reshape(&gc.out_shape())
        })?
    } else {
        direct_forward(x, w, &g)?
    };
    Ok((with_bias(y, b, &g)?, false))
}

/// The grouped (depthwise) forward: on CPU adapters by tiles of outputs that
/// share one window of inputs (`direct_forward_rows`), elsewhere
/// one output per invocation (consecutive lanes read consecutive inputs, as
/// GPUs coalesce them).
fn direct_forward(x: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let y = Tensor::empty(x.gpu(), &g.out_shape(), DType::F32)?;
    let ins = [(Slot::Inputs as u32, x), (Slot::Weights as u32, w)];
    let params = g.params()?;
    let rows = DIRECT_TILES
        .with(|r| r.get())
        .unwrap_or(x.gpu().class() == AdapterClass::Cpu);
    let (spec, items) = match g.tile().filter(|_| rows) {
        Some((rh, cw)) => (
            g.tiled("direct_forward_rows", (rh, cw)),
            g.n * g.oc * g.oh.div_ceil(rh) * g.ow.div_ceil(cw),
        ),
        None => (
            g.fixed(KernelSpec::new("conv", "direct_forward")),
            y.numel(),
        ),
    };
    super::launch_slots(&spec, bytemuck::bytes_of(&params), &y, &ins, items)?;
    Ok(y)
}

thread_local! {
    static DIRECT_TILES: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Forces the grouped kernels on this thread: Some(true) tiles (forward,
/// input and weight gradients, where a tile's window fits), Some(false) one
/// output (pixel, weight) per invocation, None the default (the forward and
/// the input gradient tiled on CPU adapters, the weight gradient tiled
/// everywhere); tests run both on the same shapes.
#[doc(hidden)]
pub fn set_direct_tiles(tiles: Option<bool>) {
    DIRECT_TILES.with(|r| r.set(tiles));
}

/// The grouped input gradient by tiles of input pixels that share one window
/// of dy (`direct_backward_input_tiles`), on CPU adapters (or where forced);
/// None elsewhere and where no tile fits.
fn direct_input_by_tiles(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Option<Tensor>> {
    let tiles = DIRECT_TILES
        .with(|r| r.get())
        .unwrap_or(dy.gpu().class() == AdapterClass::Cpu);
    let Some((rh, cw)) = g.input_tile().filter(|_| tiles) else {
        return Ok(None);
    };
    let dx = Tensor::empty(dy.gpu(), &[g.n, g.c, g.h, g.w], DType::F32)?;
    let spec = g.tiled("direct_backward_input_tiles", (rh, cw));
    let ins = [(Slot::GradOut as u32, dy), (Slot::Weights as u32, w)];
    let params = g.params()?;
    let items = g.n * g.c * g.h.div_ceil(rh) * g.w.div_ceil(cw);
    super::launch_slots(&spec, bytemuck::bytes_of(&params), &dx, &ins, items)?;
    Ok(Some(dx))
}

/// The grouped weight gradient in two steps: per image, output channel and
/// input channel of its group, the sums of dy * x over the image for every
/// tap (`direct_weight_partial`, by tiles), then their sum over the images.
/// One invocation per weight, summing over the whole batch alone, kept few
/// lanes busy on long loops of two scattered loads per product (18% of a
/// MobileNetV2 training step on llvmpipe). None where no tile fits or the
/// kernel has more than 64 taps.
fn direct_weight_by_tiles(dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Option<Tensor>> {
    let Some((rh, cw)) = g.tile().filter(|_| g.kh * g.kw <= 64) else {
        return Ok(None);
    };
    if DIRECT_TILES.with(|r| r.get()) == Some(false) {
        return Ok(None);
    }
    let cg = g.c / g.cfg.groups;
    let per_image = g.oc * cg * g.kh * g.kw;
    let partial = Tensor::empty(dy.gpu(), &[g.n, per_image], DType::F32)?;
    let spec = g.tiled("direct_weight_partial", (rh, cw));
    let ins = [(Slot::GradOut as u32, dy), (Slot::Inputs as u32, x)];
    let params = g.params()?;
    super::launch_slots(
        &spec,
        bytemuck::bytes_of(&params),
        &partial,
        &ins,
        g.n * g.oc * cg,
    )?;
    Ok(Some(super::sum(&partial, Some(0))?))
}

fn with_bias(y: Tensor, b: Option<&Tensor>, g: &ConvGeom) -> Result<Tensor> {
    match b {
        Some(b) => super::add(&y, &b.reshape(&[g.oc, 1, 1])?),
        None => Ok(y),
    }
}

/// Whether the forward GEMM should take pixels as rows (and write its output
/// transposed): where that product would run on the texture matmul, which
/// stages its right operand (then the weights, not the columns) in a texture.
fn pixels_as_rows(cols: &Tensor, w2: &Tensor) -> Result<bool> {
    let d = super::matmul::dims(cols.shape(), w2.shape(), false, true)?;
    let k = super::matmul::choose(cols.gpu(), &d, false, true);
    Ok(k == super::matmul::MatmulKernel::CpuTexture)
}

/// Runs `f` on batch chunks small enough for im2col (slicing `inputs` along
/// the batch axis) and concatenates the results along the batch axis.
fn by_chunks(
    g: &ConvGeom,
    gpu: &crate::gpu::Gpu,
    inputs: &[&Tensor],
    f: impl Fn(&ConvGeom, &[&Tensor]) -> Result<Tensor>,
) -> Result<Tensor> {
    let chunk = g.batch_chunk(gpu);
    if chunk >= g.n {
        return f(g, inputs);
    }
    let mut outs = Vec::new();
    for start in (0..g.n).step_by(chunk) {
        let len = chunk.min(g.n - start);
        let parts: Vec<Tensor> = inputs
            .iter()
            .map(|t| super::layout::slice(t, 0, start, len))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        outs.push(f(&g.with_batch(len), &refs)?);
    }
    let refs: Vec<&Tensor> = outs.iter().collect();
    super::layout::concat(&refs, 0)
}

/// Gradient of the input, from dy [N, OC, OH, OW].
pub fn conv2d_backward_input(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    if let Some(cfg) = transposed_config(g)
        && TRANSPOSED_DX.with(|t| t.get())
    {
        // A stride-1 convolution's input gradient is itself a convolution: of
        // dy with the kernel flipped in space and transposed in channels
        // (within each group). im2col of dy then replaces col2im, which
        // gathers 9 scattered values per pixel (the slower of the two by
        // about 3x on llvmpipe); grouped and depthwise ones take the direct
        // forward, tiled on CPU adapters.
        return conv2d(dy, &flipped_transposed(w, g)?, None, cfg);
    }
    if let Some(dx) = super::conv_implicit::input_grad_strided(dy, w, g)? {
        return Ok(dx);
    }
    if g.uses_gemm() {
        let w2 = g.weight_matrix(w)?;
        by_chunks(g, dy.gpu(), &[dy], |gc, parts| {
            // dcols[n] = dy[n]^T [OHW, OC] @ W [OC, CKK], then fold back onto x.
            let dy3 = parts[0].reshape(&[gc.n, gc.oc, gc.oh * gc.ow])?;
            let dcols = gemm(&dy3, &w2, Gemm::t(true, false))?;
            let dx = Tensor::empty(dy.gpu(), &[gc.n, gc.c, gc.h, gc.w], DType::F32)?;
            let spec = KernelSpec::new("conv", "col2im")
                .with("SH", gc.cfg.stride.0 as f64)
                .with("SW", gc.cfg.stride.1 as f64);
            let ins = [(Slot::GradCols as u32, &dcols)];
            let params = gc.params()?;
            super::launch_slots(&spec, bytemuck::bytes_of(&params), &dx, &ins, dx.numel())?;
            Ok(dx)
        })
    } else if let Some(dx) = direct_input_by_tiles(dy, w, g)? {
        Ok(dx)
    } else {
        let dx = Tensor::empty(dy.gpu(), &[g.n, g.c, g.h, g.w], DType::F32)?;
        run(
            g,
            "direct_backward_input",
            &dx,
            &[(Slot::GradOut, dy), (Slot::Weights, w)],
        )?;
        Ok(dx)
    }
}

thread_local! {
    static TRANSPOSED_DX: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Turns the input gradient as a transposed convolution off (on) on this
/// thread, so that tests run the col2im path on the same shapes.
#[doc(hidden)]
pub fn set_transposed_input_grad(on: bool) {
    TRANSPOSED_DX.with(|t| t.set(on));
}

/// The configuration of the convolution that computes the input gradient of
/// `g` (stride 1): same dilation and groups, padding d * (k - 1) - p on each
/// axis, which must not be negative; None where that does not apply.
fn transposed_config(g: &ConvGeom) -> Option<Conv2dConfig> {
    let c = g.cfg;
    if c.stride != (1, 1) {
        return None;
    }
    let ph = (c.dilation.0 * (g.kh - 1)).checked_sub(c.padding.0)?;
    let pw = (c.dilation.1 * (g.kw - 1)).checked_sub(c.padding.1)?;
    Some(Conv2dConfig {
        stride: (1, 1),
        padding: (ph, pw),
        dilation: c.dilation,
        groups: c.groups,
    })
}

/// w [OC, C / G, KH, KW] as the weight of the transposed convolution,
/// [C, OC / G, KH, KW]: within each of the G groups, input and output
/// channels swap places, and each kernel is turned by 180 degrees.
fn flipped_transposed(w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let kk = g.kh * g.kw;
    let groups = g.cfg.groups;
    let (ocg, cg) = (g.oc / groups, g.c / groups);
    let t = if ocg == 1 || cg == 1 {
        // One of the swapped axes has length 1: the same data.
        w.reshape(&[groups, cg, ocg, kk])?
    } else if groups == 1 {
        super::layout::swap01(&w.reshape(&[ocg, cg, kk])?)?.reshape(&[1, cg, ocg, kk])?
    } else {
        super::layout::permute(&w.reshape(&[groups, ocg, cg, kk])?, &[0, 2, 1, 3])?
    };
    let flipped = super::layout::step_slice(
        &t,
        super::layout::StepSlice {
            axis: 3,
            start: kk - 1,
            step: -1,
            len: kk,
        },
    )?;
    flipped.reshape(&[g.c, ocg, g.kh, g.kw])
}

/// Gradient of the weight, from dy and the forward input x.
pub fn conv2d_backward_weight(dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let wshape = [g.oc, g.c / g.cfg.groups, g.kh, g.kw];
    if let Some(dw) = super::conv_implicit::weight_grad(dy, x, g)? {
        return dw.reshape(&wshape);
    }
    if g.uses_gemm() {
        // dW [OC, CKK] = dy as [OC, N*OHW] @ cols as [N*OHW, CKK]: one GEMM per
        // batch chunk, summed.
        let chunk = g.batch_chunk(dy.gpu());
        let mut total: Option<Tensor> = None;
        for start in (0..g.n).step_by(chunk) {
            let len = chunk.min(g.n - start);
            let gc = g.with_batch(len);
            let (dyc, xc) = if len == g.n {
                (dy.clone(), x.clone())
            } else {
                (
                    super::layout::slice(dy, 0, start, len)?,
                    super::layout::slice(x, 0, start, len)?,
                )
            };
            let ohw = gc.oh * gc.ow;
            let dy_t = super::layout::swap01(&dyc.reshape(&[len, gc.oc, ohw])?)?;
            let cols = im2col(&gc, &xc)?;
            let dw = gemm(
                &dy_t.reshape(&[gc.oc, len * ohw])?,
                &cols.reshape(&[len * ohw, gc.klen_padded()])?,
                Gemm::default(),
            )?;
            total = Some(match total {
                Some(t) => super::add(&t, &dw)?,
                None => dw,
            });
        }
        let dw = total.ok_or_else(|| Error::shape("conv2d", "empty batch"))?;
        let dw = if g.klen_padded() == g.klen() {
            dw
        } else {
            super::layout::slice(&dw, 1, 0, g.klen())?
        };
        dw.reshape(&wshape)
    } else if let Some(dw) = direct_weight_by_tiles(dy, x, g)? {
        dw.reshape(&wshape)
    } else {
        let dw = Tensor::empty(dy.gpu(), &wshape, DType::F32)?;
        run(
            g,
            "direct_backward_weight",
            &dw,
            &[(Slot::GradOut, dy), (Slot::Inputs, x)],
        )?;
        Ok(dw)
    }
}
