//! The GPU context: adapter and device, the buffer pool, the kernel registry, and
//! the one place every kernel launch goes through (see `dispatch`).

mod adapter;
mod autotune;
mod capture;
pub mod contract;
mod derived;
mod dispatch;
mod memo;
mod pool;
pub mod registry;
mod textures;
mod timing;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

pub use adapter::AdapterClass;
pub use capture::{Replay, Trace};
pub(crate) use derived::{DerivedKey, Kept, Lookup};
pub use dispatch::{Binding, Resource, WINDOW_BYTES, WINDOW_SLOTS, WINDOW_VEC4S};
pub use pool::{PoolStats, PooledBuffer};
pub use registry::KernelSpec;
pub(crate) use textures::{PackKey, Packing};
pub use textures::{PackStats, View};
pub use timing::KernelTime;

use crate::error::{Error, Result};

/// A handle to the device. Cheap to clone; every tensor keeps one.
#[derive(Clone)]
pub struct Gpu {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    info: wgpu::AdapterInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    class: AdapterClass,
    /// See `Gpu::texel_staging`.
    texel_staging: bool,
    /// See `Gpu::windows_ok`.
    windows: bool,
    pool: pool::Pool,
    registry: RefCell<registry::Registry>,
    batch: RefCell<dispatch::Batch>,
    /// The capture in progress (`Gpu::capture`), if any.
    recording: RefCell<Option<capture::Recording>>,
    profiler: RefCell<Option<timing::Profiler>>,
    scratch: RefCell<textures::Scratch>,
    packed: RefCell<textures::Packed>,
    derived: RefCell<derived::Derived>,
    tuner: RefCell<autotune::Tuner>,
    /// Errors wgpu reports outside any error scope (validation at submit, device
    /// lost). Checked at every submit and sync, so none is swallowed.
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Lowered only by tests, to exercise grid folding with small grids.
    max_wg_per_dim: Cell<u32>,
    /// The tallest scratch texture kernels may stage into (tests lower it).
    max_texture_rows: Cell<u32>,
}

/// What `condenser info` prints.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub class: AdapterClass,
    pub features: Vec<String>,
    pub limits: Vec<(&'static str, u64)>,
}

impl Gpu {
    /// Opens the best adapter (see `CONDENSER_ADAPTER`, `WGPU_BACKEND`) with its
    /// own limits and the optional features condenser uses.
    pub fn new() -> Result<Gpu> {
        adapter::check_env()?;
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = adapter::choose_adapter(&instance)?;
        let (device, queue) = adapter::open_device(&adapter)?;
        let info = adapter.get_info();
        let texel_staging = adapter::reads_storage_texels(&adapter);
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let sink = uncaptured.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut v) = sink.lock() {
                v.push(format!("device lost ({reason:?}): {msg}"));
            }
        });
        let limits = device.limits();
        let registry = registry::Registry::new(&device, &info);
        let tuner = autotune::Tuner::new(&info);
        let batch = dispatch::Batch::new(&limits);
        let class = adapter::classify(&info);
        let windows = class == AdapterClass::Cpu && dispatch::windows_fit(&limits);
        Ok(Gpu {
            inner: Rc::new(Inner {
                class,
                texel_staging,
                windows,
                info,
                limits: limits.clone(),
                max_wg_per_dim: Cell::new(limits.max_compute_workgroups_per_dimension),
                max_texture_rows: Cell::new(limits.max_texture_dimension_2d),
                device,
                queue,
                pool: pool::Pool::new(windows),
                registry: RefCell::new(registry),
                batch: RefCell::new(batch),
                recording: RefCell::new(None),
                profiler: RefCell::new(None),
                scratch: RefCell::new(textures::Scratch::default()),
                packed: RefCell::new(textures::Packed::default()),
                derived: RefCell::new(derived::Derived::default()),
                tuner: RefCell::new(tuner),
                uncaptured,
            }),
        })
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    pub fn adapter_name(&self) -> &str {
        &self.inner.info.name
    }
    /// CPU-like adapters get barrier-free kernels; real GPUs get shared-memory tiles.
    /// `CONDENSER_KERNELS=cpu|gpu` overrides the choice.
    pub fn class(&self) -> AdapterClass {
        self.inner.class
    }
    /// Whether kernels may read inputs through uniform windows
    /// (`Binding::window`): on CPU adapters whose limits allow
    /// `dispatch::WINDOW_SLOTS` 64 KiB dynamic uniform bindings. llvmpipe
    /// reads a lane-varying uniform address as a straight-line gather (scalar
    /// loads, no branch) and a storage address with a per-lane loop (benches/ROUNDS.md,
    /// eleventh round, shows the generated code), so memory-bound kernels read
    /// their inputs this way there; pool buffers then carry UNIFORM usage.
    pub fn windows_ok(&self) -> bool {
        self.inner.windows
    }
    /// Whether the adapter runs through wgpu's GL backend.
    pub fn is_gl(&self) -> bool {
        self.inner.info.backend == wgpu::Backend::Gl
    }
    /// Whether kernels may use 64-bit integers (SHADER_INT64).
    pub fn has_int64(&self) -> bool {
        self.inner
            .device
            .features()
            .contains(wgpu::Features::SHADER_INT64)
    }

    /// Whether kernels may read rgba32float and r32float storage textures
    /// (where operands are staged as texels: the texture matmul and the
    /// implicit-GEMM convolution).
    pub fn texel_staging(&self) -> bool {
        self.inner.texel_staging
    }

    /// The subgroup width when the adapter has subgroups of one fixed size.
    pub fn subgroup_size(&self) -> Option<u32> {
        let i = &self.inner.info;
        let has = self
            .inner
            .device
            .features()
            .contains(wgpu::Features::SUBGROUP);
        (has && i.subgroup_min_size == i.subgroup_max_size).then_some(i.subgroup_min_size)
    }

    pub fn has_timestamps(&self) -> bool {
        self.inner
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.inner.pool.stats()
    }
    /// Frees the pool's idle buffers, the scratch textures and the packed
    /// operands (made again when next needed).
    pub fn pool_trim(&self) {
        self.inner.pool.trim();
        self.inner.scratch.borrow_mut().clear();
        let mut packed = self.inner.packed.borrow_mut();
        let budget = packed.budget();
        packed.reset(budget);
        self.inner.derived.borrow_mut().clear();
        self.forget_bind_groups();
    }
    /// Launches so far that reused a kept bind group, bind groups created,
    /// and bind groups kept now (see `gpu::dispatch`).
    pub fn bind_group_stats(&self) -> (u64, u64, usize) {
        self.inner.batch.borrow().bind_stats()
    }
    /// Turns keeping bind groups on (the default) or off, for tests that
    /// compare the two.
    #[doc(hidden)]
    pub fn set_keep_bind_groups(&self, on: bool) {
        self.inner.batch.borrow_mut().keep_bind_groups(on);
    }
    pub fn pool_reset_peak(&self) {
        self.inner.pool.reset_peak()
    }

    /// A pooled buffer of at least `bytes` bytes (contents undefined).
    pub fn alloc(&self, bytes: u64) -> Result<PooledBuffer> {
        let limit = self
            .inner
            .limits
            .max_storage_buffer_binding_size
            .min(self.inner.limits.max_buffer_size);
        if bytes > limit {
            return Err(Error::TooLarge {
                bytes,
                limit,
                what: "one storage buffer",
            });
        }
        Ok(self.inner.pool.alloc(&self.inner.device, bytes))
    }

    /// The variant the autotuner chose for `key` (a run of this process or an
    /// earlier one on this adapter and driver; see `gpu::autotune`), if any.
    pub fn tuned(&self, key: &str) -> Option<String> {
        self.inner.tuner.borrow().get(key).map(str::to_string)
    }

    /// Records the fastest variant for `key` (kept on disk).
    pub fn set_tuned(&self, key: &str, variant: &str) {
        self.inner.tuner.borrow_mut().put(key, variant)
    }

    /// Whether variants are chosen by measurement (`CONDENSER_AUTOTUNE`).
    pub fn autotune_enabled(&self) -> bool {
        autotune::enabled()
    }

    /// How many shapes this process has tuned (a second run with the same
    /// cache tunes none).
    pub fn tunings(&self) -> usize {
        self.inner.tuner.borrow().tunings
    }

    /// The width of the scratch textures, in texels (a power of two).
    pub fn scratch_width(&self) -> u32 {
        textures::scratch_width(&self.inner.limits)
    }

    /// An rgba32float texture `scratch_width()` texels wide and at least
    /// `height` tall for a kernel to stage data in (storage-writable, sampled,
    /// a copy target; contents undefined), one per `slot`: the textures one
    /// launch binds together need different slots.
    pub fn scratch_texture(
        &self,
        slot: usize,
        format: wgpu::TextureFormat,
        height: u32,
    ) -> (wgpu::Texture, crate::gpu::View) {
        let mut scratch = self.inner.scratch.borrow_mut();
        let drops = scratch.drops;
        let got = scratch.get(&self.inner.device, slot, format, height);
        if scratch.drops != drops {
            self.forget_bind_groups();
        }
        got
    }

    /// Drops the kept bind groups: a texture they may bind was let go, and
    /// they would keep it alive.
    fn forget_bind_groups(&self) {
        self.inner.batch.borrow_mut().forget_bind_groups();
    }

    /// Where to pack operand `key` whose buffer holds contents `content`
    /// into a texture of `format`, `height` rows: a kept texture that holds
    /// it already, a new one to keep, or scratch (see `textures::Packed`).
    pub(crate) fn packed(
        &self,
        key: PackKey,
        content: u64,
        format: wgpu::TextureFormat,
        height: u32,
    ) -> Packing {
        let mut packed = self.inner.packed.borrow_mut();
        let drops = packed.drops();
        let got = packed.lookup(&self.inner.device, key, content, format, height);
        if packed.drops() != drops {
            self.forget_bind_groups();
        }
        got
    }

    /// Whether the result derived as `key` is kept (see `gpu::derived`).
    pub(crate) fn derived(&self, key: &DerivedKey) -> Lookup {
        self.inner.derived.borrow_mut().lookup(key)
    }

    /// Keeps the result of `key` after a `Lookup::Keep`.
    pub(crate) fn keep_derived(&self, key: &DerivedKey, kept: Kept) {
        self.inner.derived.borrow_mut().keep(key, kept)
    }

    /// How many derived tensors were handed out kept instead of computed.
    pub fn derived_hits(&self) -> u64 {
        self.inner.derived.borrow().hits
    }

    /// The packed-operand cache's counters (hits save a pack launch).
    pub fn pack_stats(&self) -> PackStats {
        self.inner.packed.borrow().stats()
    }

    /// Empties the packed-operand cache and bounds its textures to `bytes`
    /// (0 turns it off): tests compare with and without it.
    #[doc(hidden)]
    pub fn set_pack_budget(&self, bytes: u64) {
        self.inner.packed.borrow_mut().reset(bytes);
        self.forget_bind_groups();
    }

    pub fn pipeline_cache_path(&self) -> Option<std::path::PathBuf> {
        self.inner.registry.borrow().cache_path().cloned()
    }

    /// How many rows of `scratch_width` texels a staged operand may take: the
    /// adapter's texture limit, unless a test lowered it.
    pub fn max_texture_rows(&self) -> u32 {
        self.inner.max_texture_rows.get()
    }

    /// Test hook: pretend the adapter allows textures only `n` rows tall, so
    /// that tests reach the paths for operands too large to stage.
    #[doc(hidden)]
    pub fn set_max_texture_rows(&self, n: u32) {
        let hw = self.inner.limits.max_texture_dimension_2d;
        self.inner.max_texture_rows.set(n.clamp(1, hw));
    }

    /// Test hook: pretend the adapter allows only `n` workgroups per grid dimension.
    #[doc(hidden)]
    pub fn set_max_workgroups_per_dim(&self, n: u32) {
        let hw = self.inner.limits.max_compute_workgroups_per_dimension;
        self.inner.max_wg_per_dim.set(n.clamp(1, hw));
    }

    pub(crate) fn take_uncaptured(&self) -> Result<()> {
        let msgs: Vec<String> = match self.inner.uncaptured.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => vec!["error log poisoned".into()],
        };
        if msgs.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu(msgs.join("; ")))
        }
    }

    pub fn report(&self) -> AdapterReport {
        let i = &self.inner.info;
        let l = &self.inner.limits;
        let features = self
            .inner
            .device
            .features()
            .iter_names()
            .map(|(n, _)| n.to_string())
            .collect();
        AdapterReport {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
            class: self.inner.class,
            features,
            limits: vec![
                ("max_buffer_size", l.max_buffer_size),
                (
                    "max_storage_buffer_binding_size",
                    l.max_storage_buffer_binding_size,
                ),
                (
                    "max_compute_workgroup_storage_size",
                    l.max_compute_workgroup_storage_size as u64,
                ),
                (
                    "max_compute_invocations_per_workgroup",
                    l.max_compute_invocations_per_workgroup as u64,
                ),
                (
                    "max_compute_workgroups_per_dimension",
                    l.max_compute_workgroups_per_dimension as u64,
                ),
                (
                    "max_storage_buffers_per_shader_stage",
                    l.max_storage_buffers_per_shader_stage as u64,
                ),
                (
                    "max_uniform_buffer_binding_size",
                    l.max_uniform_buffer_binding_size,
                ),
                (
                    "min_uniform_buffer_offset_alignment",
                    l.min_uniform_buffer_offset_alignment as u64,
                ),
            ],
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The cache only speeds up the next start; failing to save it is not fatal.
        if let Err(e) = self.registry.get_mut().save_cache() {
            eprintln!("condenser: warning: pipeline cache not saved: {e}");
        }
    }
}
