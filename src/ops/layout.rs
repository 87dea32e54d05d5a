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
    let mut in_strides = vec![1usize; s.len()];
    for d in (0..s.len().saturating_sub(1)).rev() {
        in_strides[d] = in_strides[d + 1] * s[d + 1];
    }
    let shape: Vec<usize> = perm.iter().map(|&a| s[a]).collect();
    let out = Tensor::empty(x.gpu(), &shape, x.dtype())?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let mut p = LayoutParams {
        n: u32_of(NAME, out.numel())?,
        ndim: s.len() as u32,
        ..Default::default()
    };
    for (d, &a) in perm.iter().enumerate() {
        p.shape[d] = u32_of(NAME, s[a])?;
        p.strides[d] = u32_of(NAME, in_strides[a])?;
    }
    x.gpu().launch_items(
        &KernelSpec::new("layout", "permute"),
        bytemuck::bytes_of(&p),
        &[out.binding(), x.binding()],
        out.numel(),
    )?;
    Ok(out)
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
