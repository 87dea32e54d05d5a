//! Pooling (shaders/pool.wgsl): max with indices, average, global average.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

/// Window, stride and padding (each (h, w)) of a pooling op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dConfig {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// Spacing of the window's taps (1: contiguous windows).
    pub dilation: (usize, usize),
}

impl Pool2dConfig {
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Pool2dConfig {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            padding: (padding, padding),
            dilation: (1, 1),
        }
    }

    /// The window's extent with its dilation: (k - 1) * d + 1 per axis.
    pub fn extent(&self) -> (usize, usize) {
        let e = |k: usize, d: usize| k.saturating_sub(1) * d + 1;
        (
            e(self.kernel.0, self.dilation.0),
            e(self.kernel.1, self.dilation.1),
        )
    }

    /// Output (OH, OW) for an input of (H, W) (floor mode, as PyTorch's default).
    pub fn out_size(&self, op: &'static str, h: usize, w: usize) -> Result<(usize, usize)> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (ph, pw) = self.padding;
        if kh == 0 || kw == 0 || sh == 0 || sw == 0 || self.dilation.0 == 0 || self.dilation.1 == 0
        {
            return Err(Error::shape(
                op,
                "kernel, stride and dilation must be at least 1",
            ));
        }
        if ph * 2 > kh || pw * 2 > kw {
            return Err(Error::shape(
                op,
                format!(
                    "padding {:?} must be at most half the kernel {:?}",
                    self.padding, self.kernel
                ),
            ));
        }
        let (eh, ew) = self.extent();
        if h + 2 * ph < eh || w + 2 * pw < ew {
            return Err(Error::shape(
                op,
                format!("a {eh}x{ew} window does not fit a {h}x{w} input"),
            ));
        }
        Ok(((h + 2 * ph - eh) / sh + 1, (w + 2 * pw - ew) / sw + 1))
    }
}

crate::kernel_params! {
    file = "pool";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct PoolParams {
        planes: u32,
        h: u32,
        w: u32,
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
        _p0: u32,
        _p1: u32,
    }
}

fn nchw(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    x.expect_dtype(op, DType::F32)?;
    match *x.shape() {
        [n, c, h, w] => Ok((n, c, h, w)),
        _ => Err(Error::shape(
            op,
            format!("input must be [N, C, H, W], got {:?}", x.shape()),
        )),
    }
}

fn params(
    op: &'static str,
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    cfg: &Pool2dConfig,
) -> Result<PoolParams> {
    let u = |v| u32_of(op, v);
    Ok(PoolParams {
        planes: u(planes)?,
        h: u(h)?,
        w: u(w)?,
        oh: u(oh)?,
        ow: u(ow)?,
        kh: u(cfg.kernel.0)?,
        kw: u(cfg.kernel.1)?,
        sh: u(cfg.stride.0)?,
        sw: u(cfg.stride.1)?,
        ph: u(cfg.padding.0)?,
        pw: u(cfg.padding.1)?,
        dh: u(cfg.dilation.0)?,
        dw: u(cfg.dilation.1)?,
        _p0: 0,
        _p1: 0,
    })
}

/// The binding numbers of shaders/pool.wgsl, one per meaning.
#[derive(Clone, Copy)]
enum Slot {
    IdxOut = 2,
    Inputs = 3,
    GradOut = 4,
    IdxIn = 5,
}

/// Runs `entry` writing `out` (binding 1), one invocation per output element.
fn launch(
    entry: &'static str,
    p: &PoolParams,
    out: &Tensor,
    ins: &[(Slot, &Tensor)],
) -> Result<()> {
    launch_spec(&KernelSpec::new("pool", entry), p, out, ins, out.numel())
}

fn launch_spec(
    spec: &KernelSpec,
    p: &PoolParams,
    out: &Tensor,
    ins: &[(Slot, &Tensor)],
    items: usize,
) -> Result<()> {
    let ins: Vec<(u32, &Tensor)> = ins.iter().map(|&(s, t)| (s as u32, t)).collect();
    super::launch_slots(spec, bytemuck::bytes_of(p), out, &ins, items)
}

/// A max-pool kernel with its strides compiled in (it runs one invocation per
/// row of its output).
fn max_kernel(entry: &'static str, cfg: &Pool2dConfig) -> KernelSpec {
    KernelSpec::new("pool", entry)
        .with("SH", cfg.stride.0 as f64)
        .with("SW", cfg.stride.1 as f64)
}

/// Max pooling; returns the output and, per output, the flat index (y * W + x)
/// of the winning input in its plane (padding never wins).
pub fn max_pool2d(x: &Tensor, cfg: Pool2dConfig) -> Result<(Tensor, Tensor)> {
    let (n, c, h, w) = nchw("max_pool2d", x)?;
    let (oh, ow) = cfg.out_size("max_pool2d", h, w)?;
    let y = Tensor::empty(x.gpu(), &[n, c, oh, ow], DType::F32)?;
    let idx = Tensor::empty(x.gpu(), &[n, c, oh, ow], DType::U32)?;
    if y.numel() > 0 {
        let p = params("max_pool2d", n * c, h, w, oh, ow, &cfg)?;
        launch_spec(
            &max_kernel("max_forward", &cfg),
            &p,
            &y,
            &[(Slot::IdxOut, &idx), (Slot::Inputs, x)],
            n * c * oh,
        )?;
    }
    Ok((y, idx))
}

pub fn max_pool2d_backward(
    dy: &Tensor,
    idx: &Tensor,
    x_shape: &[usize],
    cfg: Pool2dConfig,
) -> Result<Tensor> {
    let &[n, c, h, w] = x_shape else {
        return Err(Error::shape(
            "max_pool2d_backward",
            format!("bad input shape {x_shape:?}"),
        ));
    };
    let (oh, ow) = cfg.out_size("max_pool2d", h, w)?;
    let dx = Tensor::empty(dy.gpu(), x_shape, DType::F32)?;
    if dx.numel() > 0 {
        let p = params("max_pool2d", n * c, h, w, oh, ow, &cfg)?;
        launch_spec(
            &max_kernel("max_backward", &cfg),
            &p,
            &dx,
            &[(Slot::GradOut, dy), (Slot::IdxIn, idx)],
            n * c * h,
        )?;
    }
    Ok(dx)
}

/// Average pooling; padding counts as zeros (PyTorch's count_include_pad).
pub fn avg_pool2d(x: &Tensor, cfg: Pool2dConfig) -> Result<Tensor> {
    let (n, c, h, w) = nchw("avg_pool2d", x)?;
    let (oh, ow) = cfg.out_size("avg_pool2d", h, w)?;
    let y = Tensor::empty(x.gpu(), &[n, c, oh, ow], DType::F32)?;
    if y.numel() > 0 {
        let p = params("avg_pool2d", n * c, h, w, oh, ow, &cfg)?;
        launch("avg_forward", &p, &y, &[(Slot::Inputs, x)])?;
    }
    Ok(y)
}

pub fn avg_pool2d_backward(dy: &Tensor, x_shape: &[usize], cfg: Pool2dConfig) -> Result<Tensor> {
    let &[n, c, h, w] = x_shape else {
        return Err(Error::shape(
            "avg_pool2d_backward",
            format!("bad input shape {x_shape:?}"),
        ));
    };
    let (oh, ow) = cfg.out_size("avg_pool2d", h, w)?;
    let dx = Tensor::empty(dy.gpu(), x_shape, DType::F32)?;
    if dx.numel() > 0 {
        let p = params("avg_pool2d", n * c, h, w, oh, ow, &cfg)?;
        launch("avg_backward", &p, &dx, &[(Slot::GradOut, dy)])?;
    }
    Ok(dx)
}

/// Global average pooling: [N, C, H, W] -> [N, C].
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = nchw("global_avg_pool", x)?;
    super::mean(&x.reshape(&[n * c, h * w])?, Some(1))?.reshape(&[n, c])
}

pub fn global_avg_pool_backward(dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    let &[n, c, h, w] = x_shape else {
        return Err(Error::shape(
            "global_avg_pool_backward",
            format!("bad input shape {x_shape:?}"),
        ));
    };
    let dx = Tensor::empty(dy.gpu(), x_shape, DType::F32)?;
    if dx.numel() > 0 {
        let p = params(
            "global_avg_pool",
            n * c,
            h,
            w,
            1,
            1,
            &Pool2dConfig::new(1, 1, 0),
        )?;
        launch("gap_backward", &p, &dx, &[(Slot::GradOut, dy)])?;
    }
    Ok(dx)
}
