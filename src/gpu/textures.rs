//! Scratch textures for kernels that stage an operand as texels (the texture
//! matmul). Creating a texture per launch would make wgpu zero it before its
//! first use every time; kept by size, one is created and zeroed once and every
//! later launch of that shape reuses it (a training step repeats its shapes).
//! Reuse is safe within one queue: wgpu orders a kernel's texture writes after
//! the reads of earlier launches.

use std::collections::VecDeque;

/// Most bytes of scratch textures kept; the oldest go first past it.
const KEEP_BYTES: u64 = 256 << 20;

#[derive(Default)]
pub(crate) struct Scratch {
    /// Most recently used last.
    kept: VecDeque<(wgpu::Texture, wgpu::TextureView)>,
}

fn bytes(t: &wgpu::Texture) -> u64 {
    t.width() as u64 * t.height() as u64 * 16
}

impl Scratch {
    /// An rgba32float texture of exactly `width` x `height` texels and its
    /// view, usable as a storage texture, a sampled one and a copy target.
    pub fn get(
        &mut self,
        device: &wgpu::Device,
        width: u32,
        height: u32,
    ) -> (wgpu::Texture, wgpu::TextureView) {
        if let Some(i) = self
            .kept
            .iter()
            .position(|(t, _)| (t.width(), t.height()) == (width, height))
        {
            let entry = self.kept.remove(i).expect("found above");
            self.kept.push_back(entry.clone());
            return entry;
        }
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("condenser.scratch"),
            size: wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba32Float,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.kept.push_back((texture.clone(), view.clone()));
        let mut total: u64 = self.kept.iter().map(|(t, _)| bytes(t)).sum();
        while total > KEEP_BYTES && self.kept.len() > 1 {
            let (t, _) = self.kept.pop_front().expect("len > 1");
            total -= bytes(&t);
        }
        (texture, view)
    }
}
