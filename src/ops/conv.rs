//! 2D convolution (shaders/conv.wgsl): im2col + matmul for groups == 1 (the
//! matmul kernels' tiling does the work), direct kernels for grouped and
//! depthwise convolutions. Forward, backward to input, backward to weight.

use bytemuck::{Pod, Zeroable};

use super::matmul::gemm;
use super::{groups, u32_of};
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
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
        })
    }

    fn klen(&self) -> usize {
        self.c * self.kh * self.kw
    }
}

#[repr(C)]
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
}

fn run(g: &ConvGeom, entry: &'static str, out: &Tensor, ins: &[&Tensor]) -> Result<()> {
    let params = g.params()?;
    let mut args = vec![out.binding()];
    args.extend(ins.iter().map(|t| t.binding()));
    out.gpu().launch(
        &KernelSpec::new("conv", entry),
        bytemuck::bytes_of(&params),
        &args,
        groups(out.numel(), 256),
    )
}

fn im2col(g: &ConvGeom, x: &Tensor) -> Result<Tensor> {
    let cols = Tensor::empty(x.gpu(), &[g.n, g.oh * g.ow, g.klen()], DType::F32)?;
    run(g, "im2col", &cols, &[x])?;
    Ok(cols)
}

/// y = conv(x, w) + b. `x` [N, C, H, W], `w` [OC, C/groups, KH, KW], `b` [OC].
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, cfg: Conv2dConfig) -> Result<Tensor> {
    x.expect_dtype("conv2d", DType::F32)?;
    w.expect_dtype("conv2d", DType::F32)?;
    let g = ConvGeom::new(x.shape(), w.shape(), cfg)?;
    if let Some(b) = b
        && b.shape() != [g.oc]
    {
        return Err(Error::shape(
            "conv2d",
            format!("bias must be [{}], got {:?}", g.oc, b.shape()),
        ));
    }
    let y = if g.uses_gemm() {
        // y[n] = W [OC, CKK] @ cols[n]^T [CKK, OHW]: already NCHW.
        let cols = im2col(&g, x)?;
        let w2 = w.reshape(&[g.oc, g.klen()])?;
        gemm(&w2, &cols, None, false, true, 1.0, 0.0, None)?.reshape(&g.out_shape())?
    } else {
        let y = Tensor::empty(x.gpu(), &g.out_shape(), DType::F32)?;
        run(&g, "direct_forward", &y, &[x, w])?;
        y
    };
    match b {
        Some(b) => super::add(&y, &b.reshape(&[g.oc, 1, 1])?),
        None => Ok(y),
    }
}

/// Gradient of the input, from dy [N, OC, OH, OW].
pub fn conv2d_backward_input(dy: &Tensor, w: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    if g.uses_gemm() {
        // dcols[n] = dy[n]^T [OHW, OC] @ W [OC, CKK], then fold back onto x.
        let dy3 = dy.reshape(&[g.n, g.oc, g.oh * g.ow])?;
        let w2 = w.reshape(&[g.oc, g.klen()])?;
        let dcols = gemm(&dy3, &w2, None, true, false, 1.0, 0.0, None)?;
        let dx = Tensor::empty(dy.gpu(), &[g.n, g.c, g.h, g.w], DType::F32)?;
        run(g, "col2im", &dx, &[&dcols])?;
        Ok(dx)
    } else {
        let dx = Tensor::empty(dy.gpu(), &[g.n, g.c, g.h, g.w], DType::F32)?;
        run(g, "direct_backward_input", &dx, &[dy, w])?;
        Ok(dx)
    }
}

/// Gradient of the weight, from dy and the forward input x.
pub fn conv2d_backward_weight(dy: &Tensor, x: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let wshape = [g.oc, g.c / g.cfg.groups, g.kh, g.kw];
    if g.uses_gemm() {
        // dW [OC, CKK] = dy as [OC, N*OHW] @ cols as [N*OHW, CKK]: one GEMM over the batch.
        let ohw = g.oh * g.ow;
        let dy_t = super::layout::swap01(&dy.reshape(&[g.n, g.oc, ohw])?)?;
        let cols = im2col(g, x)?;
        let dw = gemm(
            &dy_t.reshape(&[g.oc, g.n * ohw])?,
            &cols.reshape(&[g.n * ohw, g.klen()])?,
            None,
            false,
            false,
            1.0,
            0.0,
            None,
        )?;
        dw.reshape(&wshape)
    } else {
        let dw = Tensor::empty(dy.gpu(), &wshape, DType::F32)?;
        run(g, "direct_backward_weight", &dw, &[dy, x])?;
        Ok(dw)
    }
}

/// Gradient of the bias: dy summed over N, H, W.
pub fn conv2d_backward_bias(dy: &Tensor, g: &ConvGeom) -> Result<Tensor> {
    let per_image = super::sum(&dy.reshape(&[g.n, g.oc, g.oh * g.ow])?, Some(2))?;
    super::sum(&per_image, Some(0))
}
