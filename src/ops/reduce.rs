//! Reductions (shaders/reduce.wgsl): sum, mean, max and argmax along one axis or
//! over all elements. Long axes are reduced in passes: each pass cuts the axis to
//! `groups` partials of about `PER_INVOCATION` elements each.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::shape::split_axis;
use crate::tensor::{DType, Tensor};

/// Elements one invocation reduces in a pass when the axis is split.
const PER_INVOCATION: usize = 256;
/// Enough invocations to fill a large GPU; more outputs than this need no split.
const TARGET_INVOCATIONS: usize = 65536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
}

crate::kernel_params! {
    file = "reduce";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct RedParams {
        outer: u32,
        n: u32,
        inner: u32,
        groups: u32,
        scale: f32,
        _pad: [u32; 3],
    }
}

/// Partials per output for one pass over an axis of length `n`.
fn groups_for(outputs: usize, n: usize) -> usize {
    if n <= PER_INVOCATION || outputs >= TARGET_INVOCATIONS / 4 {
        return 1;
    }
    n.div_ceil(PER_INVOCATION)
        .min(TARGET_INVOCATIONS.div_ceil(outputs))
        .max(1)
}

fn dims(
    op: &'static str,
    x: &Tensor,
    axis: Option<usize>,
) -> Result<(usize, usize, usize, Vec<usize>)> {
    x.expect_dtype(op, DType::F32)?;
    if x.numel() == 0 {
        return Err(Error::shape(
            op,
            format!("cannot reduce an empty tensor {:?}", x.shape()),
        ));
    }
    match axis {
        None => Ok((1, x.numel(), 1, vec![])),
        Some(ax) => {
            let (o, n, i) = split_axis(op, x.shape(), ax)?;
            let mut shape = x.shape().to_vec();
            shape.remove(ax);
            Ok((o, n, i, shape))
        }
    }
}

/// Reduces `x` over `axis` (all elements when None); the axis is removed from
/// the shape (a full reduction has shape []).
pub fn reduce(x: &Tensor, axis: Option<usize>, op: ReduceOp) -> Result<Tensor> {
    const NAME: &str = "reduce";
    let (outer, n0, inner, out_shape) = dims(NAME, x, axis)?;
    let code = if op == ReduceOp::Max { 1.0 } else { 0.0 };
    let spec = KernelSpec::new("reduce", "reduce").with("OP", code);
    let mut cur = x.clone();
    let mut n = n0;
    let mut first = true;
    // A contiguous axis: passes through uniform windows while they apply
    // (each leaves every row's partials contiguous, a contiguous axis again).
    let contiguous = inner == 1;
    while let Some(partials) = if contiguous {
        win::pass(&cur, outer, n, op, n0)?
    } else {
        None
    } {
        n /= 4 * win::RUN;
        if n == 1 {
            return partials.reshape(&out_shape);
        }
        cur = partials;
        first = false;
    }
    // A strided axis: passes through windows over groups of k-rows.
    while let Some(partials) = if contiguous {
        None
    } else {
        win::cols_pass(&cur, (outer, n, inner), op, n0)?
    } {
        n /= crate::gpu::WINDOW_VEC4S / (inner / 4);
        if n == 1 {
            return partials.reshape(&out_shape);
        }
        cur = partials;
        first = false;
    }
    loop {
        // The first pass over a contiguous axis of whole vec4s reads vec4s:
        // `groups` then counts partials of vec4s.
        let vec4 = first && inner == 1 && n.is_multiple_of(4) && super::vec4_variants();
        let g = groups_for(outer * inner, if vec4 { n / 4 } else { n });
        first = false;
        let last = g == 1;
        let out = Tensor::empty(x.gpu(), &[outer * g * inner], DType::F32)?;
        let params = RedParams {
            outer: u32_of(NAME, outer)?,
            n: u32_of(NAME, n)?,
            inner: u32_of(NAME, inner)?,
            groups: g as u32,
            scale: if last && op == ReduceOp::Mean {
                1.0 / n0 as f32
            } else {
                1.0
            },
            _pad: [0; 3],
        };
        // A strided axis of whole 64-bit words: 8 columns per invocation,
        // the same order per column as `reduce` (identical results).
        let wide = inner.is_multiple_of(8) && super::wide_ok(x.gpu());
        // The same first pass through 64-bit words where the axis holds
        // whole words (reduce8: reduce4's runs and order, identical results).
        let wide_run = vec4 && n.is_multiple_of(8) && super::wide_ok(x.gpu());
        let (spec, items) = if wide_run {
            (
                KernelSpec::new("reduce64", "reduce8").with("OP", code),
                outer * g,
            )
        } else if vec4 {
            (
                KernelSpec::new("reduce", "reduce4").with("OP", code),
                outer * g,
            )
        } else if wide {
            (
                KernelSpec::new("reduce64", "reduce_cols8").with("OP", code),
                outer * g * inner / 8,
            )
        } else {
            (spec.clone(), outer * g * inner)
        };
        x.gpu().launch_items(
            &spec,
            bytemuck::bytes_of(&params),
            &[out.binding(), cur.binding()],
            items,
        )?;
        if last {
            return out.reshape(&out_shape);
        }
        cur = out;
        n = g;
    }
}

/// Index of the largest element along `axis` (all elements when None), as u32.
/// NaN counts as largest; ties go to the lowest index.
pub fn argmax(x: &Tensor, axis: Option<usize>) -> Result<Tensor> {
    const NAME: &str = "argmax";
    let (outer, n0, inner, out_shape) = dims(NAME, x, axis)?;
    let mut vals = x.clone();
    let mut idx: Option<Tensor> = None;
    let mut n = n0;
    loop {
        let g = groups_for(outer * inner, n);
        let len = outer * g * inner;
        let out_v = Tensor::empty(x.gpu(), &[len], DType::F32)?;
        let out_i = Tensor::empty(x.gpu(), &[len], DType::U32)?;
        let params = RedParams {
            outer: u32_of(NAME, outer)?,
            n: u32_of(NAME, n)?,
            inner: u32_of(NAME, inner)?,
            groups: g as u32,
            scale: 1.0,
            _pad: [0; 3],
        };
        let p = bytemuck::bytes_of(&params);
        match &idx {
            None => x.gpu().launch_items(
                &KernelSpec::new("reduce", "argmax_first"),
                p,
                &[out_v.binding(), vals.binding(), out_i.binding()],
                len,
            )?,
            Some(prev) => x.gpu().launch_items(
                &KernelSpec::new("reduce", "argmax_next"),
                p,
                &[
                    out_v.binding(),
                    vals.binding(),
                    out_i.binding(),
                    prev.binding(),
                ],
                len,
            )?,
        }
        if g == 1 {
            return out_i.reshape(&out_shape);
        }
        vals = out_v;
        idx = Some(out_i);
        n = g;
    }
}

pub fn sum(x: &Tensor, axis: Option<usize>) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Sum)
}
pub fn mean(x: &Tensor, axis: Option<usize>) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Mean)
}
pub fn max(x: &Tensor, axis: Option<usize>) -> Result<Tensor> {
    reduce(x, axis, ReduceOp::Max)
}

/// Passes over a contiguous axis through uniform windows
/// (shaders/reduce_win.wgsl), while the axis (then the partials) is long enough.
pub(crate) mod win {
    use bytemuck::{Pod, Zeroable};

    use super::{ReduceOp, u32_of};
    use crate::error::Result;
    use crate::gpu::{Binding, KernelSpec, WINDOW_SLOTS, WINDOW_VEC4S as WIN4};
    use crate::tensor::{DType, Tensor};

    /// vec4s each partial reduces (reduce_win.wgsl's RUN).
    pub const RUN: usize = 16;
    /// Runs read interleaved where rows hold whole groups of them
    /// (reduce_win.wgsl's GROUP): llvmpipe's 8 lanes side by side.
    pub const GROUP: usize = 8;

    crate::kernel_params! {
        file = "reduce_win";
        #[derive(Clone, Copy, Pod, Zeroable)]
        struct RedWinParams {
            n4: u32,
            first: u32,
            last: u32,
            scale: f32,
            row4: u32,
            _p0: u32,
            _p1: u32,
            _p2: u32,
        }
    }

    impl RedWinParams {
        /// Launch `first` (a window index) over `n4` vec4s of `x`, windows
        /// clamped to `x`'s buffer.
        fn at(x: &Tensor, n4: usize, first: usize, scale: f32, row4: usize) -> Result<Self> {
            const NAME: &str = "reduce";
            let last = (x.buffer().capacity() / 16) as usize - WIN4;
            Ok(RedWinParams {
                n4: u32_of(NAME, n4)?,
                first: u32_of(NAME, first * WIN4)?,
                last: u32_of(NAME, last)?,
                scale,
                row4: u32_of(NAME, row4)?,
                _p0: 0,
                _p1: 0,
                _p2: 0,
            })
        }
    }

    /// Launches `entry` over every window of `x`'s first `n4` vec4s, up to
    /// `WINDOW_SLOTS` windows a launch, `items` invocations each.
    fn launch_windows(
        spec: KernelSpec,
        x: &Tensor,
        out: &Tensor,
        n4: usize,
        op: ReduceOp,
        (scale, row4): (f32, usize),
        items: usize,
    ) -> Result<()> {
        let windows = n4.div_ceil(WIN4);
        let spec = spec
            .with("OP", if op == ReduceOp::Max { 1.0 } else { 0.0 })
            .with("SLOTS", windows.min(WINDOW_SLOTS) as f64);
        for first in (0..windows).step_by(WINDOW_SLOTS) {
            let params = RedWinParams::at(x, n4, first, scale, row4)?;
            let mut args = vec![out.binding()];
            for k in 0..WINDOW_SLOTS {
                let start = ((first + k) * WIN4).min(params.last as usize);
                args.push(Binding::window(x.buffer(), 16 * start as u64).at(2 + k as u32));
            }
            x.gpu()
                .launch_items(&spec, bytemuck::bytes_of(&params), &args, items)?;
        }
        Ok(())
    }

    /// A mean's scale where a pass leaves one value per output, else 1.
    fn scale(op: ReduceOp, last: bool, n0: usize) -> f32 {
        if last && op == ReduceOp::Mean {
            1.0 / n0 as f32
        } else {
            1.0
        }
    }

    /// For x seen as [outer, n, inner], reduced over n: partials [outer, n /
    /// g, inner], each reducing g = 4096 / (inner / 4) consecutive k (the
    /// result itself where g = n: a mean of `n0` scaled). None where the
    /// windows do not apply: inner / 4 not a power of two from 16 to 2048,
    /// n not a multiple of g, or less than one window of data.
    pub fn cols_pass(
        x: &Tensor,
        (outer, n, inner): (usize, usize, usize),
        op: ReduceOp,
        n0: usize,
    ) -> Result<Option<Tensor>> {
        let row4 = inner / 4;
        let n4 = outer * n * row4;
        let ok = inner.is_multiple_of(4)
            && row4.is_power_of_two()
            // g >= 2: every pass shortens the axis.
            && (16..=WIN4 / 2).contains(&row4)
            && n.is_multiple_of(WIN4 / row4)
            && n4 >= WIN4;
        if !super::super::windows_ok(x.gpu()) || !ok {
            return Ok(None);
        }
        let g = WIN4 / row4;
        let out = Tensor::empty(x.gpu(), &[outer * (n / g) * inner], DType::F32)?;
        let sc = scale(op, n == g, n0);
        let spec = KernelSpec::new("reduce_win", "reduce_cols_win");
        launch_windows(spec, x, &out, n4, op, (sc, row4), row4)?;
        Ok(Some(out))
    }

    /// For `rows` rows of `n` contiguous values: each row's n / (4 * RUN)
    /// partials, in order, as a [rows * n / (4 * RUN)] tensor (the result
    /// itself where that is 1 per row: the scale of a mean of `n0` values
    /// applied). None where the windows do not apply (see
    /// `Gpu::windows_ok`): rows not whole runs, or less than one window of data.
    pub fn pass(
        x: &Tensor,
        rows: usize,
        n: usize,
        op: ReduceOp,
        n0: usize,
    ) -> Result<Option<Tensor>> {
        let n4 = rows * n / 4;
        if !super::super::windows_ok(x.gpu()) || !n.is_multiple_of(4 * RUN) || n4 < WIN4 {
            return Ok(None);
        }
        let per_row = n / (4 * RUN);
        let out = Tensor::empty(x.gpu(), &[n4 / RUN], DType::F32)?;
        let sc = scale(op, per_row == 1, n0);
        // Rows of whole groups read interleaved (reduce_win.wgsl's GROUP).
        let group = if n.is_multiple_of(4 * RUN * GROUP) {
            GROUP
        } else {
            1
        };
        let spec = KernelSpec::new("reduce_win", "reduce_win").with("GROUP", group as f64);
        launch_windows(spec, x, &out, n4, op, (sc, 0), WIN4 / RUN)?;
        Ok(Some(out))
    }
}
