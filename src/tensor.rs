//! A GPU tensor: a shape, an element type and a pooled buffer. Tensors are
//! dense and row-major; cloning shares the buffer (ops always write new tensors,
//! except the explicitly in-place ones such as optimizer updates).

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::{Binding, Gpu, PooledBuffer};
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    buf: Rc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.dtype, self.shape)
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A tensor with undefined contents (kernels overwrite it).
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = shape
            .iter()
            .try_fold(4u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| {
                Error::Config(format!("tensor of shape {shape:?} is too large to address"))
            })?;
        Ok(Tensor {
            gpu: gpu.clone(),
            buf: Rc::new(gpu.alloc(bytes)?),
            shape: shape.to_vec(),
            dtype,
        })
    }

    pub fn from_slice(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        check_len("Tensor::from_slice", shape, data.len())?;
        let t = Tensor::empty(gpu, shape, DType::F32)?;
        gpu.write_buffer(&t.buf, bytemuck::cast_slice(data))?;
        Ok(t)
    }

    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        check_len("Tensor::from_u32", shape, data.len())?;
        let t = Tensor::empty(gpu, shape, DType::U32)?;
        gpu.write_buffer(&t.buf, bytemuck::cast_slice(data))?;
        Ok(t)
    }

    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::empty(gpu, shape, DType::F32)?;
        gpu.clear_buffer(&t.buf, t.bytes())?;
        Ok(t)
    }

    /// Uniform in [lo, hi), drawn on the host from `seed` so the values are the
    /// same on every adapter.
    pub fn rand_uniform(gpu: &Gpu, shape: &[usize], lo: f32, hi: f32, seed: u64) -> Result<Tensor> {
        // The device buffer first: it checks the size against the adapter's
        // limits before the host is asked for memory it may not have.
        let t = Tensor::empty(gpu, shape, DType::F32)?;
        let v = Rng::new(seed).vec_uniform(numel(shape), lo, hi);
        gpu.write_buffer(&t.buf, bytemuck::cast_slice(&v))?;
        Ok(t)
    }

    /// Normal(mean, std), drawn on the host from `seed`.
    pub fn rand_normal(
        gpu: &Gpu,
        shape: &[usize],
        mean: f32,
        std: f32,
        seed: u64,
    ) -> Result<Tensor> {
        let t = Tensor::empty(gpu, shape, DType::F32)?;
        let v = Rng::new(seed).vec_normal(numel(shape), mean, std);
        gpu.write_buffer(&t.buf, bytemuck::cast_slice(&v))?;
        Ok(t)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
    /// Whether `self` and `other` share one buffer (clones of one tensor).
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Rc::ptr_eq(&self.buf, &other.buf)
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Overwrites this tensor's contents with `src`'s (same shape and type),
    /// in stream order: how a batch goes into the inputs a captured step
    /// (`tasks::classification::CapturedStep`) replays from.
    pub fn copy_from(&self, src: &Tensor) -> Result<()> {
        if src.shape != self.shape || src.dtype != self.dtype {
            return Err(crate::error::Error::shape(
                "copy_from",
                format!(
                    "a {:?} {:?} tensor into a {:?} {:?} one; shapes and types must match",
                    src.dtype, src.shape, self.dtype, self.shape
                ),
            ));
        }
        if self.same_buffer(src) {
            return Ok(());
        }
        self.gpu.copy_buffer(&src.buf, &self.buf, self.bytes())
    }

    pub fn buffer(&self) -> &PooledBuffer {
        &self.buf
    }

    /// The tensor as the derived-tensor memo keeps it (see `gpu::derived`).
    pub(crate) fn kept(&self) -> crate::gpu::Kept {
        crate::gpu::Kept {
            buf: self.buf.clone(),
            shape: self.shape.clone(),
            dtype: self.dtype,
            content: self.buf.content(),
        }
    }

    /// A tensor over a kept result's buffer.
    pub(crate) fn from_kept(gpu: &Gpu, k: crate::gpu::Kept) -> Tensor {
        Tensor {
            gpu: gpu.clone(),
            buf: k.buf,
            shape: k.shape,
            dtype: k.dtype,
        }
    }

    pub fn binding(&self) -> Binding<'_> {
        Binding {
            resource: crate::gpu::Resource::Buffer {
                buffer: &self.buf,
                bytes: self.bytes(),
            },
            slot: None,
        }
    }

    /// The same data under another shape with as many elements (no copy).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot view {:?} ({} elements) as {shape:?} ({} elements)",
                    self.shape,
                    self.numel(),
                    numel(shape)
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    /// Reads an f32 tensor back (waits for the device).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.expect_dtype("to_vec", DType::F32)?;
        let raw = self.gpu.read_buffer(&self.buf, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    /// Reads a u32 tensor back (waits for the device).
    pub fn to_vec_u32(&self) -> Result<Vec<u32>> {
        self.expect_dtype("to_vec_u32", DType::U32)?;
        let raw = self.gpu.read_buffer(&self.buf, self.bytes())?;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    /// The single value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!("needs one element, tensor has shape {:?}", self.shape),
            ));
        }
        Ok(self.to_vec()?[0])
    }

    pub(crate) fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op,
                want: format!("{dtype:?}"),
                got: format!("{:?}", self.dtype),
            });
        }
        Ok(())
    }
}

fn check_len(op: &'static str, shape: &[usize], len: usize) -> Result<()> {
    if numel(shape) != len {
        return Err(Error::shape(
            op,
            format!(
                "shape {shape:?} holds {} elements, data has {len}",
                numel(shape)
            ),
        ));
    }
    Ok(())
}
