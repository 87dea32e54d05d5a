//! Upsampling of NCHW tensors (shaders/resample.wgsl), PyTorch's
//! F.interpolate semantics (align_corners = false).

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsampleMode {
    Nearest,
    Bilinear,
}

crate::kernel_params! {
    file = "resample";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct ResampleParams {
        planes: u32,
        h: u32,
        w: u32,
        oh: u32,
        ow: u32,
        _p: [u32; 3],
    }
}

/// `planes` images of h x w resampled to oh x ow.
fn run(
    entry: &'static str,
    mode: UpsampleMode,
    (out, src): (&Tensor, &Tensor),
    planes: usize,
    [h, w, oh, ow]: [usize; 4],
) -> Result<()> {
    let u = |v| u32_of("upsample", v);
    let p = ResampleParams {
        planes: u(planes)?,
        h: u(h)?,
        w: u(w)?,
        oh: u(oh)?,
        ow: u(ow)?,
        _p: [0; 3],
    };
    let spec = KernelSpec::new("resample", entry)
        .with("BILINEAR", (mode == UpsampleMode::Bilinear) as u8 as f64);
    out.gpu().launch_items(
        &spec,
        bytemuck::bytes_of(&p),
        &[out.binding(), src.binding()],
        out.numel(),
    )
}

/// Resizes [N, C, H, W] to [N, C, oh, ow].
pub fn upsample(x: &Tensor, oh: usize, ow: usize, mode: UpsampleMode) -> Result<Tensor> {
    x.expect_dtype("upsample", DType::F32)?;
    let &[n, c, h, w] = x.shape() else {
        return Err(Error::shape(
            "upsample",
            format!("input must be [N, C, H, W], got {:?}", x.shape()),
        ));
    };
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return Err(Error::shape(
            "upsample",
            format!("sizes must be positive: {h}x{w} -> {oh}x{ow}"),
        ));
    }
    let y = Tensor::empty(x.gpu(), &[n, c, oh, ow], DType::F32)?;
    if y.numel() > 0 {
        run("up_forward", mode, (&y, x), n * c, [h, w, oh, ow])?;
    }
    Ok(y)
}

pub fn upsample_backward(dy: &Tensor, x_shape: &[usize], mode: UpsampleMode) -> Result<Tensor> {
    let (&[n, c, h, w], &[_, _, oh, ow]) = (x_shape, dy.shape()) else {
        return Err(Error::shape(
            "upsample_backward",
            format!("bad shapes {x_shape:?}, {:?}", dy.shape()),
        ));
    };
    let dx = Tensor::empty(dy.gpu(), x_shape, DType::F32)?;
    if dx.numel() > 0 {
        run("up_backward", mode, (&dx, dy), n * c, [h, w, oh, ow])?;
    }
    Ok(dx)
}
