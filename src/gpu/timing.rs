//! Per-kernel time. On GPUs with timestamp queries each launch runs in its own
//! compute pass with begin/end timestamps, read back at every submit. On CPU
//! adapters (and adapters without timestamps) each launch is submitted and
//! waited for on its own and timed by the wall clock: llvmpipe writes its
//! timestamps when it flushes its rasteriser's queue, not when a compute
//! dispatch runs, so a kernel that binds a texture (which flushes that queue)
//! shows the time of its neighbours and itself none. Either way profiling
//! trades throughput for per-kernel times.

use super::Gpu;
use super::dispatch::map_read;
use crate::error::{Error, Result};

const QUERIES: u32 = 2048;

/// GPU time of one launch.
#[derive(Clone, Debug)]
pub struct KernelTime {
    pub kernel: String,
    pub ms: f64,
}

pub(crate) struct Profiler {
    /// None in wall-clock mode: `launch_kernel` times each launch itself.
    queries: Option<Queries>,
    pending: Vec<String>,
    done: Vec<KernelTime>,
    period_ns: f64,
}

struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Queries {
    fn new(device: &wgpu::Device) -> Self {
        let bytes = QUERIES as u64 * 8;
        Queries {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("condenser.timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("condenser.timestamps.resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("condenser.timestamps.readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }
}

impl Profiler {
    fn new(device: &wgpu::Device, queue: &wgpu::Queue, wall: bool) -> Self {
        Profiler {
            queries: (!wall).then(|| Queries::new(device)),
            pending: Vec::new(),
            done: Vec::new(),
            period_ns: queue.get_timestamp_period() as f64,
        }
    }

    /// Whether launches are timed by the wall clock (no timestamp queries).
    pub fn wall(&self) -> bool {
        self.queries.is_none()
    }

    /// Reserves two queries for a launch of `kernel`; returns (set, first
    /// index). Only for timestamp profilers.
    pub fn next_slot(&mut self, kernel: &str) -> (&wgpu::QuerySet, u32) {
        let i = self.pending.len() as u32 * 2;
        self.pending.push(kernel.to_string());
        let q = self.queries.as_ref().expect("a timestamp profiler");
        (&q.set, i)
    }

    /// Records the wall time of one launch (wall-clock mode).
    pub fn record_wall(&mut self, kernel: &str, ms: f64) {
        self.done.push(KernelTime {
            kernel: kernel.to_string(),
            ms,
        });
    }

    pub fn is_full(&self) -> bool {
        self.pending.len() as u32 * 2 >= QUERIES
    }

    pub fn resolve(&mut self, enc: &mut wgpu::CommandEncoder) {
        let n = self.pending.len() as u32 * 2;
        let Some(q) = &self.queries else { return };
        if n == 0 {
            return;
        }
        enc.resolve_query_set(&q.set, 0..n, &q.resolve, 0);
        enc.copy_buffer_to_buffer(&q.resolve, 0, &q.readback, 0, n as u64 * 8);
    }

    pub fn collect(&mut self, device: &wgpu::Device, _queue: &wgpu::Queue) -> Result<()> {
        let Some(q) = &self.queries else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let n = self.pending.len();
        let raw = map_read(device, &q.readback, n as u64 * 16)?;
        let ticks: &[u64] = bytemuck::try_cast_slice(&raw)
            .map_err(|e| Error::Gpu(format!("timestamp read-back: {e}")))?;
        for (i, name) in self.pending.drain(..).enumerate() {
            let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]);
            self.done.push(KernelTime {
                kernel: name,
                ms: dt as f64 * self.period_ns / 1e6,
            });
        }
        Ok(())
    }
}

impl Gpu {
    /// Whether per-kernel times come from the wall clock (CPU adapters and
    /// adapters without TIMESTAMP_QUERY) rather than timestamp queries.
    pub fn profiles_by_wall_clock(&self) -> bool {
        self.class() == super::AdapterClass::Cpu || !self.has_timestamps()
    }

    /// Starts timing every launch (see the module's doc for how). Returns
    /// whether it did (always, now; kept for callers that handle adapters
    /// without a clock).
    pub fn profile_begin(&self) -> Result<bool> {
        self.sync()?;
        // A wall-clock profile needs no query set; a GPU's needs the feature.
        let wall = self.profiles_by_wall_clock();
        if !wall && !self.has_timestamps() {
            return Ok(false);
        }
        *self.inner.profiler.borrow_mut() =
            Some(Profiler::new(&self.inner.device, &self.inner.queue, wall));
        Ok(true)
    }

    /// Stops timing; returns the time of each launch since `profile_begin`, in order.
    pub fn profile_end(&self) -> Result<Vec<KernelTime>> {
        self.sync()?;
        let p = self.inner.profiler.borrow_mut().take();
        Ok(p.map(|p| p.done).unwrap_or_default())
    }
}
