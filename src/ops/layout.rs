//! Data movement (shaders/layout.wgsl): axis swaps, concatenation and slicing
//! along an axis.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{Error, Result};
use crate::gpu::KernelSpec;
use crate::tensor::{DType, Tensor};

crate::kernel_params! {
    file = "layout";
    #[derive(Clone, Copy, Pod, Zeroable, Default)]
    struct LayoutParams {
        a: u32,
        b: u32,
        c: u32,
        _p0: u32,
        outer: u32,
        len: u32,
        src_stride: u32,
        src_off: u32,
        dst_stride: u32,
        dst_off: u32,
        _p1: u32,
        _p2: u32,
        n: u32,
        ndim: u32,
        offset: u32,
        _p4: u32,
        shape: [u32; 8],
        strides: [u32; 8],
    }
}

/// Axes `permute` handles.
pub const MAX_PERMUTE_DIMS: usize = 8;

/// Checks that `perm` is a permutation of 0..rank.
pub fn check_perm(op: &'static str, perm: &[usize], rank: usize) -> Result<()> {
    let mut seen = vec![false; rank];
    for &a in perm {
        if a >= rank || std::mem::replace(&mut seen[a], true) {
            return Err(Error::shape(
                op,
                format!("{perm:?} is not a permutation of the {rank} axes"),
            ));
        }
    }
    if perm.len() != rank {
        return Err(Error::shape(
            op,
            format!("{perm:?} is not a permutation of the {rank} axes"),
        ));
    }
    Ok(())
}

/// Output axis d is input axis perm[d] (ONNX Transpose, numpy.transpose).
/// Runs on the fewest axes that describe the same move (`coalesce`): where
/// the innermost of them stays innermost and holds a multiple of 8 values,
/// by blocks of 8 through 64-bit words (a channel shuffle moves whole
/// planes), else value by value.
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    const NAME: &str = "permute";
    let s = x.shape();
    check_perm(NAME, perm, s.len())?;
    if s.len() > MAX_PERMUTE_DIMS {
        return Err(Error::shape(
            NAME,
            format!("at most {MAX_PERMUTE_DIMS} axes are supported, got {s:?}"),
        ));
    }
    let shape: Vec<usize> = perm.iter().map(|&a| s[a]).collect();
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let (dims, order) = coalesce(s, perm);
    let last = dims.len() - 1;
    // Values per moved block: 8 where the innermost axis stays put and
    // splits into 8s, else 1.
    let block = if order[last] == last && dims[last].is_multiple_of(8) && super::wide_ok(x.gpu()) {
        8
    } else {
        1
    };
    let mut dims = dims;
    dims[last] /= block;
    let mut in_strides = vec![1usize; dims.len()];
    for d in (0..last).rev() {
        in_strides[d] = in_strides[d + 1] * dims[d + 1];
    }
    let mut p = LayoutParams {
        n: u32_of(NAME, out.numel() / block)?,
        ndim: dims.len() as u32,
        ..Default::default()
    };
    for (d, &a) in order.iter().enumerate() {
        p.shape[d] = u32_of(NAME, dims[a])?;
        p.strides[d] = u32_of(NAME, in_strides[a])?;
    }
    let spec = if block == 8 {
        KernelSpec::new("layout64", "permute8")
    } else {
        KernelSpec::new("layout", "permute")
    };
    x.gpu().launch_items(
        &spec,
        bytemuck::bytes_of(&p),
        &[out.binding(), x.binding()],
        out.numel() / block,
    )?;
    Ok(out)
}

/// The same permutation on fewer axes: axes of length 1 dropped, and input
/// axes that stay next to each other in the same order merged into one.
/// Returns the merged input shape and the permutation of its axes (at least
/// one axis).
pub fn coalesce(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = perm.iter().copied().filter(|&a| shape[a] != 1).collect();
    // Runs of output axes whose input axes are consecutive.
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for a in kept {
        match runs.last_mut() {
            Some(r) if next_kept(shape, *r.last().expect("runs are never empty")) == Some(a) => {
                r.push(a)
            }
            _ => runs.push(vec![a]),
        }
    }
    if runs.is_empty() {
        return (vec![1], vec![0]);
    }
    // Number the runs by where they start in the input.
    let mut by_input: Vec<usize> = (0..runs.len()).collect();
    by_input.sort_by_key(|&r| runs[r][0]);
    let dims: Vec<usize> = by_input
        .iter()
        .map(|&r| runs[r].iter().map(|&a| shape[a]).product())
        .collect();
    let mut order = vec![0; runs.len()];
    for (merged, &r) in by_input.iter().enumerate() {
        order[r] = merged;
    }
    (dims, order)
}

/// The next input axis after `a` that is not of length 1.
fn next_kept(shape: &[usize], a: usize) -> Option<usize> {
    (a + 1..shape.len()).find(|&b| shape[b] != 1)
}

/// [a, b, c] -> [b, a, c].
pub fn swap01(x: &Tensor) -> Result<Tensor> {
    let &[a, b, c] = x.shape() else {
        return Err(Error::shape(
            "swap01",
            format!("needs 3 axes, got {:?}", x.shape()),
        ));
    };
    let out = Tensor::empty(x.gpu(), &[b, a, c], DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let p = LayoutParams {
        a: u32_of("swap01", a)?,
        b: u32_of("swap01", b)?,
        c: u32_of("swap01", c)?,
        ..Default::default()
    };
    if c.is_multiple_of(8) && super::wide_ok(x.gpu()) {
        x.gpu().launch_items(
            &KernelSpec::new("layout64", "swap01_8"),
            bytemuck::bytes_of(&p),
            &[out.binding(), x.binding()],
            out.numel() / 8,
        )?;
        return Ok(out);
    }
    x.gpu().launch_items(
        &KernelSpec::new("layout", "swap01"),
        bytemuck::bytes_of(&p),
        &[out.binding(), x.binding()],
        out.numel(),
    )?;
    Ok(out)
}

/// `outer` runs of `len` elements: run i is read at src_off + i * src_stride
/// and written at dst_off + i * dst_stride.
struct Block {
    outer: usize,
    len: usize,
    src_stride: usize,
    src_off: usize,
    dst_stride: usize,
    dst_off: usize,
}

/// Block copies of at most this many runs, each at least this many values
/// long, go through copy commands (see `copy_block`).
const COPY_RUNS_MAX: usize = 64;
const COPY_RUN_MIN: usize = 1024;

fn copy_block(src: &Tensor, dst: &Tensor, b: Block) -> Result<()> {
    let Block {
        outer,
        len,
        src_stride,
        src_off,
        dst_stride,
        dst_off,
    } = b;
    if outer * len == 0 {
        return Ok(());
    }
    let u = |v| u32_of("copy_block", v);
    let p = LayoutParams {
        outer: u(outer)?,
        len: u(len)?,
        src_stride: u(src_stride)?,
        src_off: u(src_off)?,
        dst_stride: u(dst_stride)?,
        dst_off: u(dst_off)?,
        ..Default::default()
    };
    let cpu = src.gpu().class() == crate::gpu::AdapterClass::Cpu;
    if cpu && outer <= COPY_RUNS_MAX && len >= COPY_RUN_MIN && !src.same_buffer(dst) {
        // A few long runs on a CPU adapter: its own copies (a memcpy on
        // llvmpipe) instead of a kernel dividing its index for every 8
        // values; 3x less device time for ShuffleNetV2's splits and concats.
        // GPUs keep the one launch.
        let f = 4u64;
        let runs: Vec<(u64, u64, u64)> = (0..outer)
            .map(|o| {
                let from = (o * src_stride + src_off) as u64 * f;
                let to = (o * dst_stride + dst_off) as u64 * f;
                (from, to, len as u64 * f)
            })
            .collect();
        return src.gpu().copy_runs(src.buffer(), dst.buffer(), &runs);
    }
    let eights = [len, src_stride, src_off, dst_stride, dst_off];
    if eights.iter().all(|v| v % 8 == 0) && super::wide_ok(src.gpu()) {
        return src.gpu().launch_items(
            &KernelSpec::new("layout64", "copy_block8"),
            bytemuck::bytes_of(&p),
            &[dst.binding(), src.binding()],
            outer * len / 8,
        );
    }
    src.gpu().launch_items(
        &KernelSpec::new("layout", "copy_block"),
        bytemuck::bytes_of(&p),
        &[dst.binding(), src.binding()],
        outer * len,
    )
}

/// Concatenates along `axis`; all other axes must agree.
pub fn concat(xs: &[&Tensor], axis: usize) -> Result<Tensor> {
    let first = xs
        .first()
        .ok_or_else(|| Error::shape("concat", "needs at least one tensor"))?;
    let rank = first.shape().len();
    if axis >= rank {
        return Err(Error::shape(
            "concat",
            format!("axis {axis} out of range for {:?}", first.shape()),
        ));
    }
    let mut total = 0;
    for x in xs {
        let s = x.shape();
        if s.len() != rank
            || s.iter()
                .enumerate()
                .any(|(i, &d)| i != axis && d != first.shape()[i])
        {
            return Err(Error::shape(
                "concat",
                format!("{:?} and {:?} differ outside axis {axis}", first.shape(), s),
            ));
        }
        total += s[axis];
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = total;
    let out = Tensor::empty(first.gpu(), &shape, DType::F32)?;
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut off = 0;
    for x in xs {
        let len = x.shape()[axis] * inner;
        let block = Block {
            outer,
            len,
            src_stride: len,
            src_off: 0,
            dst_stride: total * inner,
            dst_off: off,
        };
        copy_block(x, &out, block)?;
        off += len;
    }
    Ok(out)
}

/// Elements [start, start + len) along `axis`.
pub fn slice(x: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor> {
    let s = x.shape();
    if axis >= s.len() || start + len > s[axis] {
        return Err(Error::shape(
            "slice",
            format!(
                "[{start}, {}) along axis {axis} is outside {s:?}",
                start + len
            ),
        ));
    }
    let mut shape = s.to_vec();
    shape[axis] = len;
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis + 1..].iter().product();
    let block = Block {
        outer,
        len: len * inner,
        src_stride: s[axis] * inner,
        src_off: start * inner,
        dst_stride: len * inner,
        dst_off: 0,
    };
    copy_block(x, &out, block)?;
    Ok(out)
}

/// [rows, len] -> [rows, new_len] with zeros after the original columns.
pub fn pad_last(x: &Tensor, new_len: usize) -> Result<Tensor> {
    let &[rows, len] = x.shape() else {
        return Err(Error::shape(
            "pad_last",
            format!("needs 2 axes, got {:?}", x.shape()),
        ));
    };
    if new_len < len {
        return Err(Error::shape(
            "pad_last",
            format!("cannot pad {len} columns down to {new_len}"),
        ));
    }
    let out = Tensor::zeros(x.gpu(), &[rows, new_len])?;
    let block = Block {
        outer: rows,
        len,
        src_stride: len,
        src_off: 0,
        dst_stride: new_len,
        dst_off: 0,
    };
    copy_block(x, &out, block)?;
    Ok(out)
}

/// A slice with a step along one axis: elements start, start + step, ...
/// (`len` of them; a negative step walks backwards), as ONNX Slice and numpy's
/// `x[start::step]`. `start` must lie inside the axis when len > 0.
#[derive(Clone, Copy, Debug)]
pub struct StepSlice {
    pub axis: usize,
    pub start: usize,
    pub step: isize,
    pub len: usize,
}

fn view_params(
    name: &'static str,
    shape: &[usize],
    s: StepSlice,
) -> Result<(LayoutParams, Vec<usize>)> {
    if s.axis >= shape.len() || shape.len() > MAX_PERMUTE_DIMS || s.step == 0 {
        return Err(Error::shape(name, format!("{s:?} does not fit {shape:?}")));
    }
    let last = s.start as isize + (s.len as isize - 1) * s.step;
    if s.len > 0 && (s.start >= shape[s.axis] || last < 0 || last >= shape[s.axis] as isize) {
        return Err(Error::shape(
            name,
            format!("{s:?} reaches outside axis {} of {shape:?}", s.axis),
        ));
    }
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let mut out_shape = shape.to_vec();
    out_shape[s.axis] = s.len;
    let n: usize = out_shape.iter().product();
    let mut p = LayoutParams {
        n: u32_of(name, n)?,
        ndim: shape.len() as u32,
        offset: u32_of(name, s.start * strides[s.axis])?,
        ..Default::default()
    };
    for d in 0..shape.len() {
        let st = if d == s.axis {
            strides[d] as isize * s.step
        } else {
            strides[d] as isize
        };
        let st =
            i32::try_from(st).map_err(|_| Error::shape(name, "strides beyond 2^31 elements"))?;
        p.shape[d] = u32_of(name, out_shape[d])?;
        p.strides[d] = st as u32;
    }
    Ok((p, out_shape))
}

/// The elements `s` selects, as a new tensor.
pub fn step_slice(x: &Tensor, s: StepSlice) -> Result<Tensor> {
    let (p, shape) = view_params("step_slice", x.shape(), s)?;
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    if out.numel() > 0 {
        x.gpu().launch_items(
            &KernelSpec::new("layout", "view"),
            bytemuck::bytes_of(&p),
            &[out.binding(), x.binding()],
            out.numel(),
        )?;
    }
    Ok(out)
}

/// The backward of `step_slice`: `g` placed where the slice read, zeros elsewhere.
pub fn step_slice_backward(g: &Tensor, x_shape: &[usize], s: StepSlice) -> Result<Tensor> {
    let (p, shape) = view_params("step_slice_backward", x_shape, s)?;
    if shape != g.shape() {
        return Err(Error::shape(
            "step_slice_backward",
            format!("gradient {:?} is not the slice's {shape:?}", g.shape()),
        ));
    }
    let out = Tensor::zeros(g.gpu(), x_shape)?;
    if g.numel() > 0 {
        g.gpu().launch_items(
            &KernelSpec::new("layout", "scatter"),
            bytemuck::bytes_of(&p),
            &[out.binding(), g.binding()],
            g.numel(),
        )?;
    }
    Ok(out)
}
