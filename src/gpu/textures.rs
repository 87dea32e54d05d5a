//! Scratch textures for kernels that stage operands as texels (the texture
//! matmul). One texture per slot (the operands one launch binds together),
//! as wide as the adapter allows (a power of two) and grown in height when an
//! operand needs more: a texture created per launch would be zeroed by wgpu
//! before its first use every time, and textures kept per shape cost as much
//! memory again as a training step's buffers. Reuse is safe within one queue:
//! wgpu orders a launch's writes to a texture after earlier launches' reads.

use super::memo::{Memo, Seen};

/// A texture's view with a serial no other texture or buffer ever has (the
/// kept bind groups of `gpu::dispatch` are keyed by it).
#[derive(Clone)]
pub struct View {
    pub(crate) view: wgpu::TextureView,
    pub(crate) serial: u64,
}

#[derive(Default)]
pub(crate) struct Scratch {
    slots: Vec<Option<(wgpu::Texture, View)>>,
    /// Textures replaced by larger ones (see `Memo::drops`).
    pub drops: u64,
}

/// The width of every scratch texture: the widest power of two the adapter allows.
pub(crate) fn scratch_width(limits: &wgpu::Limits) -> u32 {
    let max = limits.max_texture_dimension_2d.max(1);
    1 << (31 - max.leading_zeros())
}

impl Scratch {
    /// Drops every scratch texture (wgpu keeps those that pending work uses).
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// A texture of `format` (rgba32float or r32float), `scratch_width` x at
    /// least `height` texels, for `slot`, and its view; usable as a storage
    /// texture, a sampled one and a copy target. A slot keeps one format.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        slot: usize,
        format: wgpu::TextureFormat,
        height: u32,
    ) -> (wgpu::Texture, View) {
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        if let Some((t, v)) = &self.slots[slot]
            && t.height() >= height
            && t.format() == format
        {
            return (t.clone(), v.clone());
        }
        let (texture, view) = create(device, format, height, "condenser.scratch");
        if self.slots[slot]
            .replace((texture.clone(), view.clone()))
            .is_some()
        {
            self.drops += 1;
        }
        (texture, view)
    }
}

/// A texture `scratch_width` wide and at least one row high, usable as a
/// storage texture, a sampled one and a copy target, and its view.
fn create(
    device: &wgpu::Device,
    format: wgpu::TextureFormat,
    height: u32,
    label: &str,
) -> (wgpu::Texture, View) {
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: scratch_width(&device.limits()),
            height: height.max(1),
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::STORAGE_BINDING
            | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let serial = super::pool::next_serial();
    (texture, View { view, serial })
}

/// How many buffers the packed-operand cache remembers (with or without a
/// texture) before it forgets the least recently used half.
const MAX_PACK_ENTRIES: usize = 4096;
/// The default bound on the packed-operand cache's textures, in bytes.
pub(crate) const PACK_BUDGET: u64 = 256 << 20;

/// Which operand a packed texture holds and how it was laid out: the buffer
/// (`PooledBuffer::id`), the kernel that packs it and that kernel's layout
/// parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PackKey {
    pub buffer: u64,
    pub kind: &'static str,
    pub layout: [u64; 6],
}

/// What `Packed::lookup` tells the caller to do.
pub(crate) enum Packing {
    /// The texture already holds these contents packed so: bind it.
    Reuse(View),
    /// Pack into this texture (it is kept for the next lookups).
    Fill(View),
    /// Pack into a scratch texture as usual.
    Scratch,
}

/// Counters of the packed-operand cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Lookups answered by a kept texture (a pack launch saved).
    pub hits: u64,
    /// Textures made and packed to be kept.
    pub fills: u64,
    /// Bytes of kept textures now.
    pub bytes: u64,
}

/// Operands packed into textures and kept while their buffer is unchanged:
/// a frozen model's weights are packed once, not at every forward. Contents
/// are known by the buffer's stamp (`PooledBuffer::content`), which every
/// recorded write changes, so a kept texture is never bound for contents it
/// does not hold (see `memo` for when a texture is kept and dropped).
pub(crate) struct Packed {
    memo: Memo<PackKey, View>,
    stats: PackStats,
}

impl Default for Packed {
    fn default() -> Self {
        Packed {
            memo: Memo::new(PACK_BUDGET, MAX_PACK_ENTRIES),
            stats: PackStats::default(),
        }
    }
}

impl Packed {
    /// What to do to pack `key` at content stamp `content` into a texture of
    /// `format`, `height` rows high.
    pub fn lookup(
        &mut self,
        device: &wgpu::Device,
        key: PackKey,
        content: u64,
        format: wgpu::TextureFormat,
        height: u32,
    ) -> Packing {
        let packing = match self.memo.see(&key, content, |_| true) {
            Seen::Kept(view) => {
                self.stats.hits += 1;
                Packing::Reuse(view)
            }
            Seen::First => Packing::Scratch,
            Seen::Second => {
                let bytes = texture_bytes(device, format, height);
                if bytes > self.memo.budget() {
                    return Packing::Scratch;
                }
                // The view keeps its texture alive.
                let (_, view) = create(device, format, height, "condenser.packed");
                self.memo.keep(&key, view.clone(), bytes);
                self.stats.fills += 1;
                Packing::Fill(view)
            }
        };
        self.stats.bytes = self.memo.bytes();
        packing
    }

    /// Drops every kept texture and sets the byte bound.
    pub fn reset(&mut self, budget: u64) {
        self.memo.reset(budget);
        self.stats.bytes = 0;
    }

    /// See `Memo::drops`.
    pub fn drops(&self) -> u64 {
        self.memo.drops()
    }

    pub fn stats(&self) -> PackStats {
        self.stats
    }

    pub fn budget(&self) -> u64 {
        self.memo.budget()
    }
}

/// The bytes of a texture `create` makes.
fn texture_bytes(device: &wgpu::Device, format: wgpu::TextureFormat, height: u32) -> u64 {
    let texel = format.block_copy_size(None).unwrap_or(16) as u64;
    scratch_width(&device.limits()) as u64 * height.max(1) as u64 * texel
}
