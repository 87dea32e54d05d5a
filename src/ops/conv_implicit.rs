//! Convolution as an implicit GEMM (shaders/conv_implicit.wgsl) on the
//! texture matmul: the forward product (and so a stride-1 input gradient) and
//! the weight gradient read the input from a texture instead of an im2col
//! matrix, with the same sums in the same order as im2col + the texture
//! matmul: bit-identical (tests/conv.rs). A strided input gradient runs as
//! one such product per class of input pixels (a sub-pixel convolution)
//! instead of GEMM + col2im. Used where the texture matmul would run the
//! products; elsewhere `conv` keeps im2col and col2im.

use std::cell::Cell;

use super::conv::{BnPost, ConvGeom, EvalBn};
use super::matmul::{
    MatmulDims, MatmulKernel, StridedB, choose, implicit_gemm, splits_k, texture_runs,
};
use crate::error::Result;
use crate::gpu::{Binding, KernelSpec};
use crate::tensor::Tensor;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Turns the implicit GEMM off (on) on this thread, so that tests compare it
/// with im2col on the same shapes.
#[doc(hidden)]
pub fn set_implicit_conv(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// The scratch texture slot of the staged input (the matmul uses 0 and 1).
const X_SLOT: usize = 2;

/// The window a launch slides over its input: the shader's constants.
#[derive(Clone, Copy)]
struct Window {
    /// Input channels, height, width.
    c: usize,
    h: usize,
    w: usize,
    /// The grid of output pixels (rows of the GEMM per image).
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: (usize, usize),
    /// Subtracted from a pixel's position: may be negative for sub-kernels.
    pad: (i64, i64),
    dilation: (usize, usize),
}

impl Window {
    fn of(g: &ConvGeom) -> Window {
        let c = g.cfg;
        Window {
            c: g.c,
            h: g.h,
            w: g.w,
            oh: g.oh,
            ow: g.ow,
            kh: g.kh,
            kw: g.kw,
            stride: c.stride,
            pad: (c.padding.0 as i64, c.padding.1 as i64),
            dilation: c.dilation,
        }
    }

    /// The kernel for this window as `mode` uses it: the geometry as
    /// constants, so that the shader's index arithmetic divides by constants.
    fn kernel(&self, mode: Mode) -> KernelSpec {
        let (weight_grad, sub) = match mode {
            Mode::Forward => (false, None),
            Mode::WeightGrad => (true, None),
            Mode::Subpixel { class, dx } => (false, Some((class, dx))),
        };
        let mut spec = [
            ("XC", self.c as f64),
            ("XH", self.h as f64),
            ("XW", self.w as f64),
            ("OH", self.oh as f64),
            ("OW", self.ow as f64),
            ("KH", self.kh as f64),
            ("KW", self.kw as f64),
            ("SH", self.stride.0 as f64),
            ("SW", self.stride.1 as f64),
            ("PH", self.pad.0 as f64),
            ("PW", self.pad.1 as f64),
            ("DH", self.dilation.0 as f64),
            ("DW", self.dilation.1 as f64),
            ("WEIGHT_GRAD", weight_grad as u8 as f64),
        ]
        .into_iter()
        .fold(
            KernelSpec::new("conv_implicit", "mm_conv_texture"),
            |s, (name, v)| s.with(name, v),
        );
        if let Some(((a, b), (dxh, dxw))) = sub {
            spec = spec
                .with("SUBPIXEL", 1.0)
                .with("SUB_A", a as f64)
                .with("SUB_B", b as f64)
                .with("DXH", dxh as f64)
                .with("DXW", dxw as f64);
        }
        spec
    }
}

/// Which product of a convolution a launch computes (see the shader).
#[derive(Clone, Copy)]
enum Mode {
    Forward,
    WeightGrad,
    /// The input pixels (iy % SH, ix % SW) = `class` of a strided
    /// convolution's input gradient, written into dx of `dx` (H, W).
    Subpixel {
        class: (usize, usize),
        dx: (usize, usize),
    },
}

/// Whether the implicit GEMM may run `d` at all: on, a groups-1 convolution
/// and a product the texture matmul would run.
fn applies(x: &Tensor, g: &ConvGeom, d: &MatmulDims) -> bool {
    ENABLED.with(|e| e.get())
        && g.uses_gemm()
        && choose(x.gpu(), d, false, true) == MatmulKernel::CpuTexture
}

/// Whether the forward product runs as an implicit GEMM: wherever the
/// texture kernel can run it and the batch has a tile's worth of output
/// pixels. Not only where `choose` finds that staging op(B) pays for a plain
/// product (work past 2^25): here the alternative also writes and reads the
/// im2col matrix, and op(B) is the weight, packed once while it is unchanged
/// (a frozen model's). Measured on llvmpipe: resnet8x4 at batch 1 and
/// MobileNetV2 at batch 64, whose layers fall under that bound, gain
/// 1.3-1.5x in device time. The sums are the same either way (tests/conv.rs).
fn forward_applies(x: &Tensor, g: &ConvGeom, d: &MatmulDims) -> bool {
    let anyway = ENABLED.with(|e| e.get())
        && g.uses_gemm()
        && d.batch * d.m >= 64
        && texture_runs(x.gpu(), d);
    anyway || applies(x, g, d)
}

/// Copies x into the r32float scratch texture (a texel per float); None
/// where it would be taller than the adapter allows.
fn stage_x(x: &Tensor) -> Result<Option<crate::gpu::View>> {
    super::stage_texels(x, X_SLOT, wgpu::TextureFormat::R32Float, x.numel())
}

/// The epilogue's bindings (8-11 of the shader) for launches without one: the
/// layout has them whatever the pipeline constants say; `t`, a tensor the
/// launch does not write, stands in.
fn stand_ins(t: &Tensor) -> [Binding<'_>; 4] {
    [8, 9, 10, 11].map(|slot| t.binding().at(slot))
}

/// y [N, OC, OH, OW] = conv(x, w) with `w2` the weight as [OC, klen_padded],
/// and `epi` applied as y is stored where the product runs whole (the bool
/// says whether it was; a product split over k runs plain). None where the
/// implicit GEMM does not apply (the caller runs im2col).
pub(super) fn forward(
    x: &Tensor,
    w2: &Tensor,
    g: &ConvGeom,
    epi: Option<&EvalBn<'_>>,
) -> Result<Option<(Tensor, bool)>> {
    let klen_p = w2.shape()[1];
    // Per image: y^T [OHW, OC] = columns [OHW, klen_p] @ W^T.
    let d = MatmulDims {
        batch: g.n,
        m: g.oh * g.ow,
        n: g.oc,
        k: klen_p,
        a_batched: true,
        b_batched: false,
    };
    if !forward_applies(x, g, &d) {
        return Ok(None);
    }
    let epi = epi.filter(|_| !splits_k(x.gpu(), &d));
    let Some(xv) = stage_x(x)? else {
        return Ok(None);
    };
    let w_t = StridedB {
        t: w2,
        batches: 1,
        rows: klen_p,
        rs: 1,
        cs: klen_p,
        bs: 0,
    };
    let stats = epi
        .map(|e| super::norm::eval_stats(e.running, e.eps))
        .transpose()?;
    let mut spec = Window::of(g).kernel(Mode::Forward);
    let mut args = vec![Binding::texture(&xv).at(7)];
    match (epi, &stats) {
        (Some(e), Some(stats)) => {
            let residual = e.post.residual();
            spec = spec
                .with("EPI_BN", 1.0)
                .with("EPI_RESIDUAL", residual.is_some() as u8 as f64)
                .with("EPI_RELU", !matches!(e.post, BnPost::None) as u8 as f64);
            args.extend([
                stats.binding().at(8),
                e.affine.0.binding().at(9),
                e.affine.1.binding().at(10),
                residual.unwrap_or(stats).binding().at(11),
            ]);
        }
        _ => args.extend(stand_ins(w2)),
    }
    let fused = epi.is_some();
    implicit_gemm(&d, &w_t, spec, &args, None)?
        .map(|y| Ok((y.reshape(&g.out_shape())?, fused)))
        .transpose()
}

/// dW [OC, C * KH * KW] from dy [N, OC, OH, OW] and x; None where the
/// implicit GEMM does not apply.
pub(super) fn weight_grad(dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Option<Tensor>> {
    let ohw = g.oh * g.ow;
    // dW^T [klen, OC] = columns^T [klen, N * OHW] @ dy as [N * OHW, OC].
    let d = MatmulDims {
        batch: 1,
        m: g.c * g.kh * g.kw,
        n: g.oc,
        k: g.n * ohw,
        a_batched: false,
        b_batched: false,
    };
    // k (the pixels) is not padded: dy's packed rows are exactly the pixels.
    if !d.k.is_multiple_of(4) || !applies(x, g, &d) {
        return Ok(None);
    }
    let Some(xv) = stage_x(x)? else {
        return Ok(None);
    };
    // Row q of image n's block is pixel n * OHW + q: dy[n, :, q].
    let dy_rows = StridedB {
        t: dy,
        batches: g.n,
        rows: ohw,
        rs: 1,
        cs: ohw,
        bs: g.oc * ohw,
    };
    let x_arg = Binding::texture(&xv).at(7);
    let spec = Window::of(g).kernel(Mode::WeightGrad);
    let [s8, s9, s10, s11] = stand_ins(dy);
    implicit_gemm(&d, &dy_rows, spec, &[x_arg, s8, s9, s10, s11], None)
}

/// One class of input pixels (iy % SH, ix % SW) = `at` of a strided
/// convolution's input gradient: its pixel grid, and the taps that reach it.
struct Class {
    at: (usize, usize),
    grid: (usize, usize),
    /// The first tap (ky0, kx0) and how many (every stride-th from there).
    first: (usize, usize),
    taps: (usize, usize),
    /// (a + pad - first) / stride on each axis: dy row i + q - t feeds
    /// class pixel i through tap t.
    q: (usize, usize),
}

impl Class {
    fn new(g: &ConvGeom, at: (usize, usize)) -> Class {
        let c = g.cfg;
        // On one axis: pixels of the class, first tap, taps, q.
        let axis = |a: usize, size: usize, k: usize, s: usize, p: usize| {
            let pixels = if size > a { (size - a).div_ceil(s) } else { 0 };
            let first = (a + p) % s;
            let taps = if first < k {
                (k - 1 - first) / s + 1
            } else {
                0
            };
            (pixels, first, taps, (a + p - first) / s)
        };
        let y = axis(at.0, g.h, g.kh, c.stride.0, c.padding.0);
        let x = axis(at.1, g.w, g.kw, c.stride.1, c.padding.1);
        Class {
            at,
            grid: (y.0, x.0),
            first: (y.1, x.1),
            taps: (y.2, x.2),
            q: (y.3, x.3),
        }
    }

    fn is_empty(&self) -> bool {
        self.grid.0 * self.grid.1 * self.taps.0 * self.taps.1 == 0
    }

    /// The product for this class: per image, the class's pixels x C, over
    /// OC x its taps.
    fn dims(&self, g: &ConvGeom) -> MatmulDims {
        MatmulDims {
            batch: g.n,
            m: self.grid.0 * self.grid.1,
            n: g.c,
            k: g.oc * self.taps.0 * self.taps.1,
            a_batched: true,
            b_batched: false,
        }
    }

    /// The stride-1 window over dy whose taps, walked forwards, are this
    /// class's taps backwards: the sub-kernel is flipped to match.
    fn window(&self, g: &ConvGeom) -> Window {
        let pad = |taps: usize, q: usize| (taps as i64 - 1) - q as i64;
        Window {
            c: g.oc,
            h: g.oh,
            w: g.ow,
            oh: self.grid.0,
            ow: self.grid.1,
            kh: self.taps.0,
            kw: self.taps.1,
            stride: g.cfg.stride,
            pad: (pad(self.taps.0, self.q.0), pad(self.taps.1, self.q.1)),
            dilation: (1, 1),
        }
    }

    /// w's taps for this class, flipped: [OC, C, taps.0, taps.1].
    fn sub_kernel(&self, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
        let (sh, sw) = g.cfg.stride;
        let along = |t: &Tensor, axis: usize, first: usize, taps: usize, s: usize| {
            super::layout::step_slice(
                t,
                super::layout::StepSlice {
                    axis,
                    start: first + s * (taps - 1),
                    step: -(s as isize),
                    len: taps,
                },
            )
        };
        let rows = along(w, 2, self.first.0, self.taps.0, sh)?;
        along(&rows, 3, self.first.1, self.taps.1, sw)
    }
}

/// dx [N, C, H, W] of a strided convolution (groups 1, dilation 1) from dy:
/// each class of input pixels (iy % SH, ix % SW) is a stride-1 convolution
/// of dy with the taps that reach it (a sub-pixel convolution), one implicit
/// GEMM per class, written into its places of dx. The FLOPs of the column
/// GEMM, without its column matrix or col2im's gathers. None where it does
/// not apply (the caller runs GEMM + col2im).
pub(super) fn input_grad_strided(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Option<Tensor>> {
    let cfg = g.cfg;
    if cfg.stride == (1, 1) || cfg.dilation != (1, 1) {
        return Ok(None);
    }
    let classes: Vec<Class> = (0..cfg.stride.0)
        .flat_map(|a| (0..cfg.stride.1).map(move |b| (a, b)))
        .map(|at| Class::new(g, at))
        .collect();
    let live: Vec<&Class> = classes.iter().filter(|c| !c.is_empty()).collect();
    let fits = |c: &&Class| {
        let d = c.dims(g);
        d.k.is_multiple_of(4) && applies(dy, g, &d)
    };
    if live.is_empty() || !live.iter().all(fits) {
        return Ok(None);
    }
    let Some(dyv) = stage_x(dy)? else {
        return Ok(None);
    };
    let dx_shape = [g.n, g.c, g.h, g.w];
    // Pixels no tap reaches (a 1x1 kernel with stride 2) get no gradient.
    let dx = if live.len() == classes.len() {
        Tensor::empty(dy.gpu(), &dx_shape, crate::tensor::DType::F32)?
    } else {
        Tensor::zeros(dy.gpu(), &dx_shape)?
    };
    let dy_arg = Binding::texture(&dyv).at(7);
    for class in live {
        let sub = class.sub_kernel(w, g)?;
        let taps = class.taps.0 * class.taps.1;
        // Row t of block oc is tap t of output channel oc: sub[oc, :, t].
        let b = StridedB {
            t: &sub,
            batches: g.oc,
            rows: taps,
            rs: 1,
            cs: taps,
            bs: g.c * taps,
        };
        let mode = Mode::Subpixel {
            class: class.at,
            dx: (g.h, g.w),
        };
        let spec = class.window(g).kernel(mode);
        let mut args = vec![dy_arg];
        args.extend(stand_ins(&sub));
        if implicit_gemm(&class.dims(g), &b, spec, &args, Some(&dx))?.is_none() {
            // A sub-kernel too large for a texture: the caller computes dx
            // afresh (this one is dropped).
            return Ok(None);
        }
    }
    Ok(Some(dx))
}
