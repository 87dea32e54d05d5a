//! Scratch textures for kernels that stage operands as texels (the texture
//! matmul). One texture per slot (the operands one launch binds together),
//! as wide as the adapter allows (a power of two) and grown in height when an
//! operand needs more: a texture created per launch would be zeroed by wgpu
//! before its first use every time, and textures kept per shape cost as much
//! memory again as a training step's buffers. Reuse is safe within one queue:
//! wgpu orders a launch's writes to a texture after earlier launches' reads.

#[derive(Default)]
pub(crate) struct Scratch {
    slots: Vec<Option<(wgpu::Texture, wgpu::TextureView)>>,
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
    ) -> (wgpu::Texture, wgpu::TextureView) {
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, None);
        }
        if let Some((t, v)) = &self.slots[slot]
            && t.height() >= height
            && t.format() == format
        {
            return (t.clone(), v.clone());
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("condenser.scratch"),
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
        self.slots[slot] = Some((texture.clone(), view.clone()));
        (texture, view)
    }
}
