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
    /// `Rows4` reading x through uniform windows (CPU adapters where
    /// `Gpu::windows_ok`, rows of a multiple of 4 values that fit a window,
    /// at least one window of data; others run the adapter's default).
    Windows,
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
    // Windows where they apply, by default or when asked for; else the
    // adapter's default.
    let kernel = match kernel {
        None | Some(SoftmaxKernel::Windows) => {
            if win::launch(x, &out, rows, cols, temperature, log)? {
                return Ok(out);
            }
            None
        }
        k => k,
    };
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
        SoftmaxKernel::Rows
        | SoftmaxKernel::Rows4
        | SoftmaxKernel::Rows8
        // (not reached: replaced by the default above)
        | SoftmaxKernel::Windows => {
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

/// shaders/softmax_win.wgsl: rows in groups, one group per uniform window.
pub(crate) mod win {
    use bytemuck::{Pod, Zeroable};

    use super::u32_of;
    use crate::error::Result;
    use crate::gpu::{Binding, KernelSpec, WINDOW_SLOTS, WINDOW_VEC4S as WIN4};
    use crate::tensor::Tensor;

    /// Windows bound per launch. Not all 14: on lavapipe (Mesa 22.3) rows
    /// read through the 9th to 14th window of a launch came back wrong where
    /// the windows started off 64 KiB boundaries and the launch's windows
    /// reached past about 500 KiB of the tensor (rows of 12288 values, one
    /// per window; found by tests/softmax.rs), while 7 windows per launch
    /// matched the reference on every shape tried. The elementwise and
    /// reduction windows start on 64 KiB boundaries (or, clamped, within
    /// a buffer under 256 KiB: at most 3 windows).
    const SLOTS: usize = 7;

    crate::kernel_params! {
        file = "softmax_win";
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct SmWinParams {
            cols4: u32,
            inv_t: f32,
            _p0: u32,
            _p1: u32,
            slot: [[u32; 4]; WINDOW_SLOTS],
        }
    }

    /// (first row, rows, window start in vec4s) per window: as many whole
    /// rows as fit after the window's start, which is the first row's start
    /// rounded down to the adapter's offset alignment, or the last window of
    /// the buffer where the rows reach its end.
    fn row_groups(rows: usize, cols4: usize, cap4: usize, align4: usize) -> Vec<[usize; 3]> {
        let last = cap4 - WIN4;
        let mut groups = Vec::new();
        let mut row = 0;
        while row < rows {
            let base = row * cols4;
            let start = (base / align4 * align4).min(last);
            let fit = (start + WIN4 - base) / cols4;
            let g = fit.min(rows - row);
            groups.push([row, g, start]);
            row += g;
        }
        groups
    }

    /// Writes softmax (log-softmax) of `x`'s rows into `out` through
    /// windows; false (nothing launched) where they do not apply.
    pub fn launch(
        x: &Tensor,
        out: &Tensor,
        rows: usize,
        cols: usize,
        temperature: f32,
        log: bool,
    ) -> Result<bool> {
        const NAME: &str = "softmax";
        let gpu = x.gpu();
        let align4 = (gpu.limits().min_uniform_buffer_offset_alignment as usize).div_ceil(16);
        let cols4 = cols / 4;
        // A row must fit a window after a start rounded down by < align4.
        let fits = cols.is_multiple_of(4) && cols4 + align4 <= WIN4;
        if !super::super::windows_ok(gpu) || !fits || rows * cols4 < WIN4 {
            return Ok(false);
        }
        let cap4 = (x.buffer().capacity() / 16) as usize;
        let groups = row_groups(rows, cols4, cap4, align4);
        let spec = KernelSpec::new("softmax_win", "softmax_win")
            .with("LOG", if log { 1.0 } else { 0.0 })
            .with("SLOTS", groups.len().min(SLOTS) as f64);
        for chunk in groups.chunks(SLOTS) {
            let mut params = SmWinParams {
                cols4: u32_of(NAME, cols4)?,
                inv_t: 1.0 / temperature,
                _p0: 0,
                _p1: 0,
                // Unused slots: no rows, the last group's window.
                slot: [[0, 0, u32_of(NAME, chunk[chunk.len() - 1][2])?, 0]; WINDOW_SLOTS],
            };
            let mut args = vec![out.binding()];
            for (k, s) in params.slot.iter_mut().enumerate() {
                if let Some(&[row, g, start]) = chunk.get(k) {
                    *s = [u32_of(NAME, row)?, g as u32, u32_of(NAME, start)?, 0];
                }
                let start = s[2] as u64;
                args.push(Binding::window(x.buffer(), 16 * start).at(2 + k as u32));
            }
            let most = chunk.iter().map(|g| g[1]).max().unwrap_or(0);
            gpu.launch_items(&spec, bytemuck::bytes_of(&params), &args, most)?;
        }
        Ok(true)
    }
}
