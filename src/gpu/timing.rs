//! Per-kernel GPU time from timestamp queries. While profiling, each launch runs
//! in its own compute pass with begin/end timestamps; results are read back at
//! every submit (profiling trades throughput for exact per-kernel times).

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
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    pending: Vec<String>,
    done: Vec<KernelTime>,
    period_ns: f64,
}

impl Profiler {
    fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let bytes = QUERIES as u64 * 8;
        Profiler {
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
            pending: Vec::new(),
            done: Vec::new(),
            period_ns: queue.get_timestamp_period() as f64,
        }
    }

    /// Reserves two queries for a launch of `kernel`; returns (set, first index).
    pub fn next_slot(&mut self, kernel: &str) -> (&wgpu::QuerySet, u32) {
        let i = self.pending.len() as u32 * 2;
        self.pending.push(kernel.to_string());
        (&self.set, i)
    }

    pub fn is_full(&self) -> bool {
        self.pending.len() as u32 * 2 >= QUERIES
    }

    pub fn resolve(&mut self, enc: &mut wgpu::CommandEncoder) {
        let n = self.pending.len() as u32 * 2;
        if n == 0 {
            return;
        }
        enc.resolve_query_set(&self.set, 0..n, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, n as u64 * 8);
    }

    pub fn collect(&mut self, device: &wgpu::Device, _queue: &wgpu::Queue) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let n = self.pending.len();
        let raw = map_read(device, &self.readback, n as u64 * 16)?;
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
    /// Starts timing every launch with timestamp queries. Returns false (and times
    /// nothing) if the adapter has no TIMESTAMP_QUERY.
    pub fn profile_begin(&self) -> Result<bool> {
        if !self.has_timestamps() {
            return Ok(false);
        }
        self.sync()?;
        *self.inner.profiler.borrow_mut() =
            Some(Profiler::new(&self.inner.device, &self.inner.queue));
        Ok(true)
    }

    /// Stops timing; returns the time of each launch since `profile_begin`, in order.
    pub fn profile_end(&self) -> Result<Vec<KernelTime>> {
        self.sync()?;
        let p = self.inner.profiler.borrow_mut().take();
        Ok(p.map(|p| p.done).unwrap_or_default())
    }
}
