//! The one place every kernel launch goes through.
//!
//! Launches are recorded into one command encoder (one open compute pass for
//! consecutive launches) and submitted only at a read-back, an upload into a buffer
//! the pending work may use, an explicit `sync`, or every `FLUSH_EVERY` launches.
//! Kernel parameters go into a uniform arena that is written once per submit.
//! Grids past the per-dimension limit are folded into 2D/3D; every kernel computes
//! its linear workgroup index with `linear_wg` from shaders/common.wgsl.

use super::Gpu;
use super::pool::PooledBuffer;
use super::registry::KernelSpec;
use crate::error::{Error, Result};

/// Submit after this many launches so the device starts working on long sequences.
const FLUSH_EVERY: usize = 512;
/// Bytes per uniform arena chunk.
const CHUNK_BYTES: u64 = 64 * 1024;

/// Bytes of a uniform window (`Binding::window`): WebGPU's least
/// `maxUniformBufferBindingSize`, and an `array<vec4<f32>, 4096>` in WGSL.
pub const WINDOW_BYTES: u64 = 64 * 1024;
/// vec4s of f32 in a window.
pub const WINDOW_VEC4S: usize = (WINDOW_BYTES / 16) as usize;
/// Uniform windows one launch may bind (15 uniform buffers per stage, the
/// parameters one of them).
pub const WINDOW_SLOTS: usize = 14;

/// Whether `limits` allow `WINDOW_SLOTS` windows beside the parameters, at
/// offsets that pool buffers' size classes (multiples of 64 bytes from 256
/// bytes on) keep aligned.
pub(crate) fn windows_fit(limits: &wgpu::Limits) -> bool {
    let slots = WINDOW_SLOTS as u32 + 1;
    limits.max_uniform_buffer_binding_size >= WINDOW_BYTES
        && limits.max_uniform_buffers_per_shader_stage >= slots
        && limits.max_dynamic_uniform_buffers_per_pipeline_layout >= slots
        && limits.min_uniform_buffer_offset_alignment <= 64
}

/// One kernel argument and the WGSL binding number it goes to.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    pub resource: Resource<'a>,
    /// The WGSL binding number; None: the next after the previous argument.
    /// Modules whose entry points share names by meaning give each name one
    /// slot, so an entry point may leave slots out.
    pub slot: Option<u32>,
}

/// What a kernel argument is.
#[derive(Clone, Copy)]
pub enum Resource<'a> {
    /// A pooled storage buffer and how many bytes of it the kernel sees.
    Buffer {
        buffer: &'a PooledBuffer,
        bytes: u64,
    },
    /// A texture (sampled or storage, as the kernel declares it).
    Texture(&'a super::View),
    /// `WINDOW_BYTES` of a pooled buffer from byte `offset`, bound as a
    /// uniform buffer at a dynamic offset (one bind group serves every
    /// window of the buffer).
    Window {
        buffer: &'a PooledBuffer,
        offset: u64,
    },
}

impl<'a> Binding<'a> {
    /// A uniform window of `buffer` from byte `offset` (see `Resource::Window`,
    /// `Gpu::windows_ok`).
    pub fn window(buffer: &'a PooledBuffer, offset: u64) -> Self {
        Binding {
            resource: Resource::Window { buffer, offset },
            slot: None,
        }
    }

    /// A texture argument.
    pub fn texture(view: &'a super::View) -> Self {
        Binding {
            resource: Resource::Texture(view),
            slot: None,
        }
    }

    /// A buffer argument's size rounded up to a multiple of `bytes` (for kernels
    /// that view it as an array of wider elements; the pool rounds buffers up).
    pub fn rounded_up(mut self, bytes: u64) -> Self {
        if let Resource::Buffer { bytes: b, .. } = &mut self.resource {
            *b = b.div_ceil(bytes) * bytes;
        }
        self
    }

    /// The same argument at binding `slot`.
    pub fn at(self, slot: u32) -> Self {
        Binding {
            slot: Some(slot),
            ..self
        }
    }
}

struct ParamArena {
    chunks: Vec<wgpu::Buffer>,
    staged: Vec<Vec<u8>>,
    align: u64,
}

impl ParamArena {
    fn new(align: u64) -> Self {
        ParamArena {
            chunks: Vec::new(),
            staged: Vec::new(),
            align: align.max(16),
        }
    }

    /// Stages `bytes` for this submit; returns (chunk, offset).
    fn push(&mut self, device: &wgpu::Device, bytes: &[u8]) -> (usize, u64) {
        let need = (bytes.len() as u64).div_ceil(16) * 16;
        let mut idx = self.staged.len().saturating_sub(1);
        let fits = |v: &Vec<u8>, align: u64| {
            let off = (v.len() as u64).div_ceil(align) * align;
            off + need <= CHUNK_BYTES
        };
        if self.staged.is_empty() || !fits(&self.staged[idx], self.align) {
            self.staged.push(Vec::with_capacity(CHUNK_BYTES as usize));
            idx = self.staged.len() - 1;
        }
        if idx >= self.chunks.len() {
            self.chunks
                .push(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("condenser.params"),
                    size: CHUNK_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
        }
        let v = &mut self.staged[idx];
        let off = (v.len() as u64).div_ceil(self.align) * self.align;
        v.resize(off as usize, 0);
        v.extend_from_slice(bytes);
        v.resize((off + need) as usize, 0);
        (idx, off)
    }

    /// Writes the staged parameters; queue writes land before the next submit's
    /// commands, and after every earlier submit, so chunks are reused safely.
    fn write(&mut self, queue: &wgpu::Queue) {
        for (i, v) in self.staged.iter().enumerate() {
            if !v.is_empty() {
                queue.write_buffer(&self.chunks[i], 0, v);
            }
        }
        self.staged.clear();
    }
}

pub(crate) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: ParamArena,
    launches: usize,
    /// Bind groups kept, keyed by the pipeline's serial, the parameter chunk
    /// and size, and each binding's slot, buffer or texture serial and size
    /// (see `bind_group_key`): a training step
    /// binds the same pool buffers in the same roles step after step, and
    /// its parameters move by a dynamic offset, so later steps create none.
    bind_groups: std::collections::HashMap<Vec<u64>, wgpu::BindGroup>,
    /// Launches that found their bind group kept, and bind groups created.
    bind_stats: (u64, u64),
    /// Whether bind groups are kept (tests turn it off to compare).
    keep_bind_groups: bool,
}

/// Kept bind groups past which the cache starts again (each holds its
/// buffers alive, so it is emptied with the pool too).
const BIND_GROUPS_MAX: usize = 16384;

impl Batch {
    pub fn new(limits: &wgpu::Limits) -> Self {
        Batch {
            encoder: None,
            pass: None,
            params: ParamArena::new(limits.min_uniform_buffer_offset_alignment as u64),
            launches: 0,
            bind_groups: Default::default(),
            bind_stats: (0, 0),
            keep_bind_groups: true,
        }
    }

    /// (launches that reused a kept bind group, bind groups created, bind
    /// groups kept now).
    pub fn bind_stats(&self) -> (u64, u64, usize) {
        (self.bind_stats.0, self.bind_stats.1, self.bind_groups.len())
    }

    /// Turns keeping bind groups on or off (off also drops those kept).
    pub fn keep_bind_groups(&mut self, on: bool) {
        self.keep_bind_groups = on;
        self.bind_groups.clear();
    }

    /// Drops the kept bind groups (and with them their hold on buffers).
    pub fn forget_bind_groups(&mut self) {
        self.bind_groups.clear();
    }

    fn is_empty(&self) -> bool {
        self.encoder.is_none()
    }
}

/// Each argument with its binding number (see `Binding::slot`).
pub(super) fn slots<'a, 'b>(
    args: &'a [Binding<'b>],
) -> impl Iterator<Item = (u32, &'a Binding<'b>)> {
    let mut next = 1;
    args.iter().map(move |a| {
        let slot = a.slot.unwrap_or(next);
        next = slot + 1;
        (slot, a)
    })
}

/// Stamps the buffers the launch's entry point stores to (new contents).
fn mark_writes(kernel: &super::registry::Kernel, args: &[Binding]) {
    for (slot, a) in slots(args) {
        if let Resource::Buffer { buffer, .. } = a.resource
            && kernel.info.may_write(slot)
        {
            buffer.written();
        }
    }
}

/// What identifies a launch's bind group, where it may be kept (a reflected
/// layout: parameters at a dynamic offset). Pipeline, buffer and texture
/// serials are never reused, so a key never names another launch's
/// bindings.
fn bind_group_key(
    kernel: &super::registry::Kernel,
    chunk: Option<usize>,
    param_bytes: u64,
    args: &[Binding],
) -> Option<Vec<u64>> {
    if !kernel.dynamic_params {
        return None;
    }
    let mut key = Vec::with_capacity(3 + 3 * args.len());
    key.extend([
        kernel.serial,
        chunk.map_or(0, |c| c as u64 + 1),
        param_bytes,
    ]);
    for (slot, a) in slots(args) {
        let (serial, bytes) = match a.resource {
            Resource::Buffer { buffer, bytes } => (buffer.serial(), bytes),
            Resource::Window { buffer, .. } => (buffer.serial(), WINDOW_BYTES),
            Resource::Texture(v) => (v.serial, 0),
        };
        key.extend([slot as u64, serial, bytes]);
    }
    Some(key)
}

/// Refuses arguments no launch may bind: an empty buffer, a window past its
/// buffer's end or misaligned, a window for a kernel whose layout takes no
/// dynamic offsets.
fn check_args(kernel: &super::registry::Kernel, args: &[Binding]) -> Result<()> {
    let windows = args
        .iter()
        .filter(|a| matches!(a.resource, Resource::Window { .. }))
        .count();
    if windows > WINDOW_SLOTS {
        return Err(Error::Config(format!(
            "{}: {windows} uniform windows, at most {WINDOW_SLOTS}",
            kernel.name
        )));
    }
    for a in args {
        let bad = match a.resource {
            Resource::Buffer { bytes: 0, .. } => {
                "empty buffer argument (launch nothing for empty tensors)"
            }
            Resource::Window { buffer, offset } => {
                if !kernel.dynamic_params {
                    "a uniform window for a kernel without dynamic offsets"
                } else if offset % 16 != 0
                    || offset + WINDOW_BYTES > buffer.capacity()
                    || offset > u32::MAX as u64
                {
                    "a uniform window outside its buffer"
                } else {
                    continue;
                }
            }
            _ => continue,
        };
        return Err(Error::Config(format!("{}: {bad}", kernel.name)));
    }
    Ok(())
}

/// The launch's dynamic offsets in binding order: the parameters' (binding
/// 0, where the layout takes them at a dynamic offset: the bind group binds
/// the arena chunk from 0) and each window's.
fn dynamic_offsets(
    kernel: &super::registry::Kernel,
    param_offset: Option<u64>,
    args: &[Binding],
) -> ([u32; WINDOW_SLOTS + 1], usize) {
    let mut at = [(0u32, 0u32); WINDOW_SLOTS + 1];
    let mut count = 0;
    if let Some(off) = param_offset.filter(|_| kernel.dynamic_params) {
        at[0] = (0, off as u32);
        count = 1;
    }
    for (slot, a) in slots(args) {
        if let Resource::Window { offset, .. } = a.resource {
            at[count] = (slot, offset as u32);
            count += 1;
        }
    }
    at[..count].sort_unstable_by_key(|&(slot, _)| slot);
    let mut out = [0u32; WINDOW_SLOTS + 1];
    for (o, &(_, off)) in out.iter_mut().zip(&at[..count]) {
        *o = off;
    }
    (out, count)
}

/// Splits `n` workgroups into a grid whose dimensions stay within `max`.
pub(crate) fn fold_grid(n: u64, max: u32) -> Option<[u32; 3]> {
    let m = max as u64;
    if n <= m {
        return Some([n as u32, 1, 1]);
    }
    let y = n.div_ceil(m);
    if y <= m {
        return Some([max, y as u32, 1]);
    }
    let z = y.div_ceil(m);
    (z <= m).then_some([max, max, z as u32])
}

impl Gpu {
    fn encoder<'b>(&self, batch: &'b mut Batch) -> &'b mut wgpu::CommandEncoder {
        // A pass borrows the encoder; it must end before the encoder is used.
        batch.pass = None;
        batch.encoder.get_or_insert_with(|| {
            self.inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("condenser.batch"),
                })
        })
    }

    /// Launches `spec` with one invocation per item: the workgroup count comes
    /// from the entry point's `@workgroup_size` in the shader.
    pub fn launch_items(
        &self,
        spec: &KernelSpec,
        params: &[u8],
        args: &[Binding],
        items: usize,
    ) -> Result<()> {
        if items == 0 {
            return Ok(());
        }
        let kernel = self.kernel(spec)?;
        let workgroups = (items as u64).div_ceil(kernel.info.invocations());
        self.launch_kernel(&kernel, params, args, workgroups)
    }

    /// Launches `spec` over `workgroups` workgroups (a linear count, folded into a
    /// legal grid). `params` is the kernel's uniform block at binding 0; `args` are
    /// bound at 1, 2, ... in order.
    pub fn launch(
        &self,
        spec: &KernelSpec,
        params: &[u8],
        args: &[Binding],
        workgroups: u64,
    ) -> Result<()> {
        if workgroups == 0 {
            return Ok(());
        }
        let kernel = self.kernel(spec)?;
        self.launch_kernel(&kernel, params, args, workgroups)
    }

    /// The pipeline of `spec` (compiled on first use, then cached).
    fn kernel(&self, spec: &KernelSpec) -> Result<std::rc::Rc<super::registry::Kernel>> {
        self.inner
            .registry
            .borrow_mut()
            .get(&self.inner.device, spec)
    }

    /// Records one dispatch of a looked-up kernel: each launch finds its
    /// pipeline once, whichever entry it came through.
    pub(super) fn launch_kernel(
        &self,
        kernel: &std::rc::Rc<super::registry::Kernel>,
        params: &[u8],
        args: &[Binding],
        workgroups: u64,
    ) -> Result<()> {
        let grid = fold_grid(workgroups, self.inner.max_wg_per_dim.get()).ok_or_else(|| {
            Error::Gpu(format!(
                "{}: {workgroups} workgroups exceed the adapter's grid",
                kernel.name
            ))
        })?;
        check_args(kernel, args)?;
        let t0 = self.wall_start()?;
        let mut batch = self.inner.batch.borrow_mut();
        // Entry points that read no parameters have no binding 0 in their layout.
        let param_at = kernel
            .info
            .reads_params
            .then(|| batch.params.push(&self.inner.device, params));
        let param_bytes = (params.len().max(1) as u64).div_ceil(16) * 16;
        let (offsets, count) = dynamic_offsets(kernel, param_at.map(|p| p.1), args);
        let dynamic = &offsets[..count];
        mark_writes(kernel, args);
        let key = bind_group_key(kernel, param_at.map(|p| p.0), param_bytes, args)
            .filter(|_| batch.keep_bind_groups);
        let bind_group = match key.as_ref().and_then(|k| batch.bind_groups.get(k)) {
            Some(bg) => {
                let bg = bg.clone();
                batch.bind_stats.0 += 1;
                bg
            }
            None => {
                batch.bind_stats.1 += 1;
                let bg = self.create_bind_group(kernel, &batch, param_at, param_bytes, args);
                if let Some(k) = key {
                    if batch.bind_groups.len() >= BIND_GROUPS_MAX {
                        batch.bind_groups.clear();
                    }
                    batch.bind_groups.insert(k, bg.clone());
                }
                bg
            }
        };

        let mut profiler = self.inner.profiler.borrow_mut();
        let wall = profiler.as_ref().is_some_and(|p| p.wall());
        if let Some(prof) = profiler.as_mut().filter(|p| !p.wall()) {
            // Timed launches each get their own pass with begin/end timestamps.
            let (qs, begin) = prof.next_slot(&kernel.name);
            let enc = self.encoder(&mut batch);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&kernel.name),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: qs,
                    beginning_of_pass_write_index: Some(begin),
                    end_of_pass_write_index: Some(begin + 1),
                }),
            });
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind_group, dynamic);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        } else {
            if batch.pass.is_none() {
                let enc = self.encoder(&mut batch);
                let pass = enc
                    .begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("condenser.kernels"),
                        timestamp_writes: None,
                    })
                    .forget_lifetime();
                batch.pass = Some(pass);
            }
            let pass = batch.pass.as_mut().expect("pass just opened");
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, &bind_group, dynamic);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        }
        let full = {
            batch.launches += 1;
            batch.launches >= FLUSH_EVERY || profiler.as_ref().is_some_and(|p| p.is_full())
        };
        drop(profiler);
        drop(batch);
        self.record_launch(kernel, params, args, workgroups);
        if wall {
            self.wall_end(t0, &kernel.name)?;
        } else if full {
            self.flush()?;
        }
        Ok(())
    }

    /// The bind group of one launch: the parameter chunk (from `offset`, or
    /// from 0 where the layout takes a dynamic offset) and the arguments.
    fn create_bind_group(
        &self,
        kernel: &super::registry::Kernel,
        batch: &Batch,
        param_at: Option<(usize, u64)>,
        param_bytes: u64,
        args: &[Binding],
    ) -> wgpu::BindGroup {
        let mut entries = Vec::with_capacity(args.len() + 1);
        if let Some((chunk, offset)) = param_at {
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &batch.params.chunks[chunk],
                    offset: if kernel.dynamic_params { 0 } else { offset },
                    size: wgpu::BufferSize::new(param_bytes),
                }),
            });
        }
        for (slot, a) in slots(args) {
            let resource = match a.resource {
                Resource::Buffer { buffer, bytes } => {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: buffer.raw(),
                        offset: 0,
                        size: wgpu::BufferSize::new(bytes.div_ceil(4) * 4),
                    })
                }
                Resource::Window { buffer, .. } => {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: buffer.raw(),
                        offset: 0,
                        size: wgpu::BufferSize::new(WINDOW_BYTES),
                    })
                }
                Resource::Texture(v) => wgpu::BindingResource::TextureView(&v.view),
            };
            entries.push(wgpu::BindGroupEntry {
                binding: slot,
                resource,
            });
        }
        self.inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            })
    }

    /// In a wall-clock profile (see gpu::timing): waits for the work recorded
    /// so far, so that the next command is timed alone from the returned instant.
    fn wall_start(&self) -> Result<Option<std::time::Instant>> {
        let wall = self
            .inner
            .profiler
            .borrow()
            .as_ref()
            .is_some_and(|p| p.wall());
        if !wall {
            return Ok(None);
        }
        self.sync()?;
        Ok(Some(std::time::Instant::now()))
    }

    /// Submits and waits for the command recorded since `wall_start` and
    /// records its time under `name` (nothing outside a wall-clock profile).
    fn wall_end(&self, t0: Option<std::time::Instant>, name: &str) -> Result<()> {
        let Some(t0) = t0 else { return Ok(()) };
        self.sync()?;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        if let Some(p) = self.inner.profiler.borrow_mut().as_mut() {
            p.record_wall(name, ms);
        }
        Ok(())
    }

    /// Submits the recorded work without waiting for it.
    pub fn flush(&self) -> Result<()> {
        let mut batch = self.inner.batch.borrow_mut();
        if batch.is_empty() {
            drop(batch);
            return self.take_uncaptured();
        }
        batch.pass = None;
        let mut encoder = batch
            .encoder
            .take()
            .expect("non-empty batch has an encoder");
        let mut profiler = self.inner.profiler.borrow_mut();
        if let Some(p) = profiler.as_mut() {
            p.resolve(&mut encoder);
        }
        batch.params.write(&self.inner.queue);
        batch.launches = 0;
        drop(batch);
        self.inner.queue.submit([encoder.finish()]);
        if let Some(p) = profiler.as_mut() {
            p.collect(&self.inner.device, &self.inner.queue)?;
        }
        drop(profiler);
        self.take_uncaptured()
    }

    /// Submits the recorded work and waits until the device has finished it.
    pub fn sync(&self) -> Result<()> {
        self.flush()?;
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the device failed: {e}")))?;
        self.take_uncaptured()
    }

    /// Copies `data` into the start of `dst`.
    pub fn write_buffer(&self, dst: &PooledBuffer, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        // Queue writes land before the next submit's commands: submit what is
        // pending first, or a launch recorded earlier could read the new data.
        if !self.inner.batch.borrow().is_empty() {
            self.flush()?;
        }
        let padded;
        let bytes = if data.len().is_multiple_of(4) {
            data
        } else {
            padded = [data, &[0u8; 3][..4 - data.len() % 4]].concat();
            &padded
        };
        self.inner.queue.write_buffer(dst.raw(), 0, bytes);
        dst.written();
        self.record_upload(dst, data);
        Ok(())
    }

    /// Fills the first `bytes` bytes of `dst` with zeros, in stream order.
    pub(crate) fn clear_buffer(&self, dst: &PooledBuffer, bytes: u64) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let mut batch = self.inner.batch.borrow_mut();
        let enc = self.encoder(&mut batch);
        enc.clear_buffer(dst.raw(), 0, Some(bytes.div_ceil(4) * 4));
        dst.written();
        drop(batch);
        self.record_clear(dst, bytes);
        Ok(())
    }

    /// Copies `bytes` bytes from `src` to `dst`, in stream order.
    pub(crate) fn copy_buffer(
        &self,
        src: &PooledBuffer,
        dst: &PooledBuffer,
        bytes: u64,
    ) -> Result<()> {
        self.copy_runs(src, dst, &[(0, 0, bytes.div_ceil(4) * 4)])
    }

    /// Copies runs of bytes (source offset, destination offset, length; all
    /// multiples of 4) from `src` to `dst` (another buffer), in stream order.
    pub(crate) fn copy_runs(
        &self,
        src: &PooledBuffer,
        dst: &PooledBuffer,
        runs: &[(u64, u64, u64)],
    ) -> Result<()> {
        if runs.iter().all(|r| r.2 == 0) {
            return Ok(());
        }
        let t0 = self.wall_start()?;
        let mut batch = self.inner.batch.borrow_mut();
        let enc = self.encoder(&mut batch);
        for &(from, to, bytes) in runs {
            enc.copy_buffer_to_buffer(src.raw(), from, dst.raw(), to, bytes);
        }
        dst.written();
        drop(batch);
        self.record_copy(src, dst, runs);
        self.wall_end(t0, "copy_buffer")
    }

    /// Copies the first `texels` texels of `src` (16 bytes each for rgba32f
    /// textures, 4 for r32f) into `dst` (whose view's serial is `dst_serial`), row after row of its width (a power
    /// of two, at least 64 texels so that rows are 256-byte aligned in the
    /// buffer); the last row may be partial.
    pub(crate) fn copy_buffer_to_texels(
        &self,
        src: &PooledBuffer,
        dst: &wgpu::Texture,
        dst_serial: u64,
        texels: u64,
    ) -> Result<()> {
        let width = dst.width() as u64;
        let texel_bytes = dst.format().block_copy_size(None).unwrap_or(16) as u64;
        let (full, rest) = (texels / width, texels % width);
        let t0 = self.wall_start()?;
        let mut batch = self.inner.batch.borrow_mut();
        let enc = self.encoder(&mut batch);
        let mut copy = |rows: u64, cols: u64, y: u64| {
            enc.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: src.raw(),
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: y * width * texel_bytes,
                        bytes_per_row: Some((width * texel_bytes) as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: dst,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: y as u32,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: cols as u32,
                    height: rows as u32,
                    depth_or_array_layers: 1,
                },
            );
        };
        if full > 0 {
            copy(full, width, 0);
        }
        if rest > 0 {
            copy(1, rest, full);
        }
        drop(batch);
        self.record_texels(src, dst, dst_serial, texels);
        self.wall_end(t0, "copy_buffer_to_texture")
    }

    /// Reads the first `bytes` bytes of `src` back to the host (waits for the device).
    pub(crate) fn read_buffer(&self, src: &PooledBuffer, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        // The host may act on what it reads: a replay would not.
        self.refuse_replay("it read device values back to the host");
        let size = bytes.div_ceil(4) * 4;
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("condenser.readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut batch = self.inner.batch.borrow_mut();
            let enc = self.encoder(&mut batch);
            enc.copy_buffer_to_buffer(src.raw(), 0, &staging, 0, size);
        }
        self.flush()?;
        map_read(&self.inner.device, &staging, bytes)
    }
}

/// Maps a MAP_READ buffer, waits, and returns its first `bytes` bytes.
pub(crate) fn map_read(device: &wgpu::Device, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let slice = buf.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for a read-back failed: {e}")))?;
    match rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(Error::Gpu(format!(
                "mapping a read-back buffer failed: {e}"
            )));
        }
        Err(_) => return Err(Error::Gpu("read-back was never completed".into())),
    }
    let out = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("read-back range: {e}")))?;
        view[..bytes as usize].to_vec()
    };
    buf.unmap();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::fold_grid;

    #[test]
    fn grids_fold_within_limits_and_cover_every_workgroup() {
        for (n, max) in [
            (1u64, 65535u32),
            (65535, 65535),
            (65536, 65535),
            (7, 3),
            (10, 3),
            (26, 3),
            (27, 3),
        ] {
            let g = fold_grid(n, max).unwrap();
            assert!(g.iter().all(|&d| d >= 1 && d <= max), "{n}/{max}: {g:?}");
            let total = g[0] as u64 * g[1] as u64 * g[2] as u64;
            assert!(total >= n, "{n}/{max}: {g:?} covers {total}");
            // No dimension beyond the first is larger than needed.
            assert!(total - n < g[0] as u64 * g[1] as u64, "{n}/{max}: {g:?}");
        }
        assert_eq!(fold_grid(28, 3), None);
        assert_eq!(fold_grid(27, 3), Some([3, 3, 3]));
    }
}
