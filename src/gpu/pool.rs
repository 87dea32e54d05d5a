//! A buffer pool by size class. Freed buffers go back to a free list of their
//! class and are handed out again, so a training step allocates nothing once warm.
//!
//! Classes are powers of two split in four steps (1, 1.25, 1.5, 1.75 x 2^k), so at
//! most a quarter of a buffer is slack.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

/// Smallest buffer handed out; also keeps every binding a multiple of 16 bytes.
const MIN_CLASS: u64 = 256;

pub(crate) fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(MIN_CLASS);
    let pow = 63 - (b - 1).leading_zeros(); // 2^pow < b <= 2^(pow+1) (for b > 1)
    let base = 1u64 << pow;
    let step = base / 4;
    let steps = (b - base).div_ceil(step);
    base + steps * step
}

/// Pool counters, all in bytes of size-class capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Held by live tensors now.
    pub live_bytes: u64,
    /// Highest `live_bytes` seen.
    pub peak_bytes: u64,
    /// Created from the device, live or free (what the pool costs in memory).
    pub reserved_bytes: u64,
    /// Allocations served from a free list.
    pub reuses: u64,
    /// Allocations that had to create a new buffer.
    pub creations: u64,
}

#[derive(Default)]
pub(crate) struct PoolState {
    /// Free buffers by size class and serial. An allocation takes the
    /// lowest serial of its class, so which buffer it gets depends only on
    /// which are free, not on the order they were freed in: a training step
    /// that repeats gets the same buffers in the same roles, and the bind
    /// groups `gpu::dispatch` keeps for them are found again.
    free: HashMap<u64, BTreeMap<u64, wgpu::Buffer>>,
    /// Buffers a kept capture (`gpu::capture`) replays into, by serial, and
    /// how many captures hold each: they are never handed out again while held.
    reserved: HashMap<u64, usize>,
    /// Reserved buffers nothing else holds (out of the free lists), by serial.
    parked: HashMap<u64, (u64, wgpu::Buffer)>,
    stats: PoolStats,
}

/// Where content stamps come from: one counter for the process, so that a
/// stamp names one state of one buffer for good (never reused by another
/// buffer, another device or a later write).
static STAMPS: AtomicU64 = AtomicU64::new(1);

fn next_stamp() -> u64 {
    STAMPS.fetch_add(1, Ordering::Relaxed)
}

/// A number never handed out before (from the same counter as the stamps):
/// names a wgpu buffer or a pipeline for the life of the process.
pub(crate) fn next_serial() -> u64 {
    next_stamp()
}

/// A buffer from the pool. Dropping it returns the buffer to its free list.
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    /// The wgpu buffer's serial: the same while the pool recycles it, never
    /// another buffer's (unlike `id`, which is this handle's).
    serial: u64,
    class: u64,
    pool: Weak<RefCell<PoolState>>,
    /// This handle's own stamp (a recycled wgpu buffer gets a new one).
    id: u64,
    /// Changed by every write recorded into the buffer (see `Gpu`'s launch,
    /// upload, copy and clear paths, the only code that can reach the raw
    /// buffer): equal stamps mean equal contents in stream order. Shared
    /// with the handle's aliases (`alias`), so writes through them count.
    content: Rc<Cell<u64>>,
}

impl PooledBuffer {
    /// The wgpu buffer; only the gpu module may touch it, so that every write
    /// goes through a path that calls `written`.
    pub(super) fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
    pub fn capacity(&self) -> u64 {
        self.class
    }
    /// Which wgpu buffer this handle holds (see `serial`).
    pub(super) fn serial(&self) -> u64 {
        self.serial
    }
    /// Which buffer this is, for as long as it lives.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    /// A stamp of the contents: it changes whenever a write into the buffer
    /// is recorded, and no other buffer state ever has it.
    pub(crate) fn content(&self) -> u64 {
        self.content.get()
    }
    /// Records that a write into the buffer was recorded (new contents).
    pub(super) fn written(&self) {
        self.content.set(next_stamp());
    }
    /// A second handle on the same buffer, id and content stamp, that does not
    /// return the buffer to the pool when dropped (a capture's handle on the
    /// buffers it replays into: the pool keeps them out of its free lists
    /// while the capture is kept, see `Pool::reserve`).
    pub(super) fn alias(&self) -> PooledBuffer {
        PooledBuffer {
            buffer: Some(self.raw().clone()),
            serial: self.serial,
            class: self.class,
            pool: Weak::new(),
            id: self.id,
            content: self.content.clone(),
        }
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buf), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            let mut p = pool.borrow_mut();
            p.stats.live_bytes -= self.class;
            if p.reserved.contains_key(&self.serial) {
                p.parked.insert(self.serial, (self.class, buf));
                return;
            }
            p.free
                .entry(self.class)
                .or_default()
                .insert(self.serial, buf);
        }
    }
}

pub(crate) struct Pool {
    state: Rc<RefCell<PoolState>>,
    /// Buffers may also be bound as uniform windows (see `Gpu::windows_ok`).
    uniform: bool,
}

impl Pool {
    pub fn new(uniform: bool) -> Self {
        Pool {
            state: Rc::new(RefCell::new(PoolState::default())),
            uniform,
        }
    }

    /// A buffer of at least `bytes` bytes, usable as storage and as copy source
    /// and destination. Its contents are whatever the last user left.
    pub fn alloc(&self, device: &wgpu::Device, bytes: u64) -> PooledBuffer {
        let class = size_class(bytes);
        let mut st = self.state.borrow_mut();
        let reused = st.free.get_mut(&class).and_then(|v| v.pop_first());
        let (serial, buffer) = match reused {
            Some(b) => {
                st.stats.reuses += 1;
                b
            }
            None => {
                st.stats.creations += 1;
                st.stats.reserved_bytes += class;
                let b = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("condenser.pool"),
                    size: class,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST
                        | if self.uniform {
                            wgpu::BufferUsages::UNIFORM
                        } else {
                            wgpu::BufferUsages::empty()
                        },
                    mapped_at_creation: false,
                });
                (next_serial(), b)
            }
        };
        st.stats.live_bytes += class;
        st.stats.peak_bytes = st.stats.peak_bytes.max(st.stats.live_bytes);
        PooledBuffer {
            buffer: Some(buffer),
            serial,
            class,
            pool: Rc::downgrade(&self.state),
            id: next_stamp(),
            content: Rc::new(Cell::new(next_stamp())),
        }
    }

    /// Keeps the buffers `held` (serial, size class) out of the free lists
    /// until as many `release`s: a free one is parked now, a live one when
    /// its tensor drops it.
    pub fn reserve(&self, held: &[(u64, u64)]) {
        let mut st = self.state.borrow_mut();
        for &(serial, class) in held {
            *st.reserved.entry(serial).or_default() += 1;
            if let Some(buf) = st.free.get_mut(&class).and_then(|f| f.remove(&serial)) {
                st.parked.insert(serial, (class, buf));
            }
        }
    }

    /// Undoes one `reserve` of `held`; a parked buffer no capture holds any
    /// more goes back to its free list.
    pub fn release(&self, held: &[(u64, u64)]) {
        let mut st = self.state.borrow_mut();
        for &(serial, _) in held {
            let Some(n) = st.reserved.get_mut(&serial) else {
                continue;
            };
            *n -= 1;
            if *n > 0 {
                continue;
            }
            st.reserved.remove(&serial);
            if let Some((class, buf)) = st.parked.remove(&serial) {
                st.free.entry(class).or_default().insert(serial, buf);
            }
        }
    }

    pub fn stats(&self) -> PoolStats {
        self.state.borrow().stats
    }

    /// Destroys every free buffer (returns their memory to the driver).
    pub fn trim(&self) {
        let mut st = self.state.borrow_mut();
        let freed: u64 = st.free.iter().map(|(c, v)| c * v.len() as u64).sum();
        st.free.clear();
        st.stats.reserved_bytes -= freed;
    }

    pub fn reset_peak(&self) {
        let mut st = self.state.borrow_mut();
        st.stats.peak_bytes = st.stats.live_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_bound_slack_to_a_quarter() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 320);
        assert_eq!(size_class(1024), 1024);
        assert_eq!(size_class(1025), 1280);
        for b in [
            300u64,
            1000,
            4097,
            65_537,
            1 << 20,
            (1 << 24) + 3,
            123_456_789,
        ] {
            let c = size_class(b);
            assert!(c >= b, "{b} -> {c}");
            assert!((c - b) * 4 <= c, "slack over 25%: {b} -> {c}");
            assert_eq!(size_class(c), c, "a class maps to itself");
        }
    }
}
