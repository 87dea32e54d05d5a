//! Softmax and log-softmax with temperature along the last axis
//! (shaders/softmax.wgsl), fused into one kernel.

use bytemuck::{Pod, Zeroable};

use super::{groups, u32_of};
use crate::error::{Error, Result};
use crate::gpu::{AdapterClass, KernelSpec};
use crate::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKernel {
    /// One invocation per row, no barriers (CPU adapters).
    Rows,
    /// Rows read and written as vec4s (CPU adapters, rows of a multiple of 4
    /// values; other rows run `Rows`).
    Rows4,
    /// Rows read and written as 64-bit words, max then sum then write (CPU
    /// adapters with SHADER_INT64, rows of a multiple of 8 values; other rows
    /// run `Rows4`).
    Rows8,
    /// One workgroup per row with a shared-memory reduction (GPUs).
    Workgroup,
}

crate::kernel_params! {
    file = "softmax";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct SmParams {
        rows: u32,
        cols: u32,
        inv_t: f32,
        _pad: u32,
    }
}

pub fn softmax(x: &Tensor, temperature: f32) -> Result<Tensor> {
    softmax_with(x, temperature, false, None)
}

pub fn log_softmax(x: &Tensor, temperature: f32) -> Result<Tensor> {
    softmax_with(x, temperature, true, None)
}

/// Picks the variant for the adapter unless `kernel` forces one (tests run both).
pub fn softmax_with(
    x: &Tensor,
    temperature: f32,
    log: bool,
    kernel: Option<SoftmaxKernel>,
) -> Result<Tensor> {
    const NAME: &str = "softmax";
    x.expect_dtype(NAME, DType::F32)?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::Config(format!(
            "softmax temperature must be a positive number, got {temperature}"
        )));
    }
    let Some(&cols) = x.shape().last() else {
        return Err(Error::shape(NAME, "needs at least one axis, got a scalar"));
    };
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    if x.numel() == 0 {
        return Ok(out);
    }
    let rows = x.numel() / cols;
    let kernel = kernel.unwrap_or(match x.gpu().class() {
        AdapterClass::Cpu if super::wide_ok(x.gpu()) => SoftmaxKernel::Rows8,
        AdapterClass::Cpu => SoftmaxKernel::Rows4,
        AdapterClass::Gpu if cols >= 64 => SoftmaxKernel::Workgroup,
        AdapterClass::Gpu => SoftmaxKernel::Rows,
    });
    let params = SmParams {
        rows: u32_of(NAME, rows)?,
        cols: u32_of(NAME, cols)?,
        inv_t: 1.0 / temperature,
        _pad: 0,
    };
    let wide = kernel == SoftmaxKernel::Rows8 && x.gpu().has_int64() && cols.is_multiple_of(8);
    let (entry, wgs) = match kernel {
        SoftmaxKernel::Rows8 if wide => ("softmax_rows8", groups(rows, 64)),
        SoftmaxKernel::Rows4 | SoftmaxKernel::Rows8 if cols.is_multiple_of(4) => {
            ("softmax_rows4", groups(rows, 64))
        }
        SoftmaxKernel::Rows | SoftmaxKernel::Rows4 | SoftmaxKernel::Rows8 => {
            ("softmax_rows", groups(rows, 64))
        }
        SoftmaxKernel::Workgroup => ("softmax_wg", rows as u64),
    };
    let module = if wide { "softmax64" } else { "softmax" };
    let spec = KernelSpec::new(module, entry).with("LOG", if log { 1.0 } else { 0.0 });
    x.gpu().launch(
        &spec,
        bytemuck::bytes_of(&params),
        &[out.binding(), x.binding()],
        wgs,
    )?;
    Ok(out)
}
