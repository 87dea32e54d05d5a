//! Batches for training and evaluation: a deterministic order from a seed,
//! random crop with padding and horizontal flip, per-channel normalisation.
//!
//! When the data set fits in one storage buffer it is uploaded once, as bytes,
//! and every batch is assembled on the GPU (shaders/augment.wgsl): a step then
//! uploads only its sample list. Otherwise batches are assembled on the host
//! with the same arithmetic and uploaded.

use bytemuck::{Pod, Zeroable};

use super::{BBox, ImageSet};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, KernelSpec};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// Largest device copy of a data set we make (bytes), below the adapter's limit.
const DEVICE_BUDGET: u64 = 1 << 30;

#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Shuffle every epoch (from `seed` and the epoch number).
    pub shuffle: bool,
    /// Random crop: pad each side by this many zero pixels, crop back to size (0: none).
    pub crop_pad: usize,
    /// Random horizontal flip with probability 1/2.
    pub flip: bool,
    /// Per-channel mean and std of pixels in [0, 1]; None keeps [0, 1].
    pub normalize: Option<(Vec<f32>, Vec<f32>)>,
    pub seed: u64,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
}

impl LoaderConfig {
    /// Evaluation: fixed order, no augmentation.
    pub fn eval(batch_size: usize, normalize: Option<(Vec<f32>, Vec<f32>)>) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: false,
            crop_pad: 0,
            flip: false,
            normalize,
            seed: 0,
            drop_last: false,
        }
    }
}

/// One sample of a batch: which image, crop offsets in [0, 2 * pad], flip.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct SampleSpec {
    pub index: u32,
    pub dx: u32,
    pub dy: u32,
    pub flip: u32,
}

pub struct Batch {
    /// [B, C, H, W]
    pub images: Tensor,
    /// [B] u32
    pub labels: Tensor,
    /// [B, H, W] u32, moved with the images; `IGNORE` where the crop padded
    /// (sets with segmentation masks only).
    pub masks: Option<Tensor>,
    /// Each sample's objects, moved with its image (sets with boxes only).
    pub boxes: Option<Vec<Vec<BBox>>>,
    pub samples: Vec<SampleSpec>,
}

crate::kernel_params! {
    file = "augment";
    #[derive(Clone, Copy, Pod, Zeroable)]
    struct AugParams {
        batch: u32,
        channels: u32,
        height: u32,
        width: u32,
        pad: u32,
        _pad: [u32; 3],
        mean: [f32; 4],
        inv_std: [f32; 4],
    }
}

pub struct Loader<'a> {
    set: &'a ImageSet,
    gpu: Gpu,
    cfg: LoaderConfig,
    mean: [f32; 4],
    inv_std: [f32; 4],
    /// The whole set as packed bytes on the device, when it fits.
    device_images: Option<Tensor>,
    /// Its masks likewise.
    device_masks: Option<Tensor>,
}

/// Bytes packed four to a u32 word, on the device.
fn packed(gpu: &Gpu, bytes: &[u8]) -> Result<Tensor> {
    let mut words = vec![0u32; bytes.len().div_ceil(4).max(1)];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    Tensor::from_u32(gpu, &[words.len()], &words)
}

impl<'a> Loader<'a> {
    pub fn new(gpu: &Gpu, set: &'a ImageSet, cfg: LoaderConfig) -> Result<Self> {
        Self::with_device_copy(gpu, set, cfg, true)
    }

    /// `device_copy: false` forces host assembly (tests compare both paths).
    pub fn with_device_copy(
        gpu: &Gpu,
        set: &'a ImageSet,
        cfg: LoaderConfig,
        device_copy: bool,
    ) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(Error::Config("batch size must be at least 1".into()));
        }
        if set.is_empty() {
            return Err(Error::data(&set.name, "the data set is empty", ""));
        }
        if set.channels > 4 {
            return Err(Error::Config(format!(
                "images with {} channels are not supported (at most 4)",
                set.channels
            )));
        }
        let (mut mean, mut inv_std) = ([0f32; 4], [1f32; 4]);
        if let Some((m, s)) = &cfg.normalize {
            if m.len() != set.channels || s.len() != set.channels {
                return Err(Error::Config(format!(
                    "normalisation has {} means and {} stds for {} channels",
                    m.len(),
                    s.len(),
                    set.channels
                )));
            }
            for c in 0..set.channels {
                if s[c].is_nan() || s[c] <= 0.0 {
                    return Err(Error::Config(format!(
                        "std of channel {c} is {}, must be > 0",
                        s[c]
                    )));
                }
                mean[c] = m[c];
                inv_std[c] = 1.0 / s[c];
            }
        }
        let bytes = set.images.len() as u64;
        let fits = bytes
            <= gpu
                .limits()
                .max_storage_buffer_binding_size
                .min(DEVICE_BUDGET);
        let (device_images, device_masks) = if device_copy && fits {
            let masks = set.masks.as_deref().map(|m| packed(gpu, m)).transpose()?;
            (Some(packed(gpu, &set.images)?), masks)
        } else {
            (None, None)
        };
        Ok(Loader {
            set,
            gpu: gpu.clone(),
            cfg,
            mean,
            inv_std,
            device_images,
            device_masks,
        })
    }

    pub fn on_device(&self) -> bool {
        self.device_images.is_some()
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.set.len();
        if self.cfg.drop_last {
            (n / self.cfg.batch_size).max(1)
        } else {
            n.div_ceil(self.cfg.batch_size)
        }
    }

    /// The order of an epoch: a seeded permutation, or 0..n.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let n = self.set.len();
        let mut order: Vec<usize> = (0..n).collect();
        if self.cfg.shuffle {
            let mut rng =
                Rng::new(self.cfg.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407));
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
        }
        order
    }

    /// Samples of batch `b` of `epoch` (deterministic from seed, epoch, b).
    pub fn samples(&self, epoch: usize, b: usize, order: &[usize]) -> Vec<SampleSpec> {
        let bs = self.cfg.batch_size;
        let end = ((b + 1) * bs).min(order.len());
        let start = (b * bs).min(end);
        let mut rng = Rng::new(
            self.cfg.seed
                ^ 0x5EED_0000_0000
                ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (b as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
        );
        let pad = self.cfg.crop_pad as u32;
        order[start..end]
            .iter()
            .map(|&i| SampleSpec {
                index: i as u32,
                dx: if pad > 0 {
                    rng.below(2 * pad as usize + 1) as u32
                } else {
                    0
                },
                dy: if pad > 0 {
                    rng.below(2 * pad as usize + 1) as u32
                } else {
                    0
                },
                flip: (self.cfg.flip && rng.uniform() < 0.5) as u32,
            })
            .collect()
    }

    /// Batch `b` of `epoch`.
    pub fn batch(&self, epoch: usize, b: usize) -> Result<Batch> {
        let order = self.order(epoch);
        self.batch_in(epoch, b, &order)
    }

    /// All batches of an epoch, in order.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Result<Batch>> + '_ {
        let order = self.order(epoch);
        (0..self.batches_per_epoch()).map(move |b| self.batch_in(epoch, b, &order))
    }

    fn batch_in(&self, epoch: usize, b: usize, order: &[usize]) -> Result<Batch> {
        let samples = self.samples(epoch, b, order);
        if samples.is_empty() {
            return Err(Error::Config(format!(
                "batch {b} is past the end of the epoch"
            )));
        }
        let s = self.set;
        let shape = [samples.len(), s.channels, s.height, s.width];
        let labels: Vec<u32> = samples.iter().map(|x| s.labels[x.index as usize]).collect();
        let labels = Tensor::from_u32(&self.gpu, &[samples.len()], &labels)?;
        let mask_shape = [samples.len(), s.height, s.width];
        let (images, masks) = match &self.device_images {
            Some(dev) => {
                let spec_words: &[u32] = bytemuck::cast_slice(&samples);
                let spec = Tensor::from_u32(&self.gpu, &[spec_words.len()], spec_words)?;
                let out = Tensor::empty(&self.gpu, &shape, DType::F32)?;
                let params = AugParams {
                    batch: samples.len() as u32,
                    channels: s.channels as u32,
                    height: s.height as u32,
                    width: s.width as u32,
                    pad: self.cfg.crop_pad as u32,
                    _pad: [0; 3],
                    mean: self.mean,
                    inv_std: self.inv_std,
                };
                let p = bytemuck::bytes_of(&params);
                self.gpu.launch_items(
                    &KernelSpec::new("augment", "augment"),
                    p,
                    &[out.binding(), dev.binding(), spec.binding()],
                    out.numel(),
                )?;
                let masks = match &self.device_masks {
                    Some(dm) => {
                        let m = Tensor::empty(&self.gpu, &mask_shape, DType::U32)?;
                        self.gpu.launch_items(
                            &KernelSpec::new("augment", "augment_mask"),
                            p,
                            &[spec.binding().at(3), m.binding().at(4), dm.binding().at(5)],
                            m.numel(),
                        )?;
                        Some(m)
                    }
                    None => None,
                };
                (out, masks)
            }
            None => {
                let v = assemble(s, &samples, self.cfg.crop_pad, &self.mean, &self.inv_std);
                let masks = match assemble_masks(s, &samples, self.cfg.crop_pad) {
                    Some(m) => Some(Tensor::from_u32(&self.gpu, &mask_shape, &m)?),
                    None => None,
                };
                (Tensor::from_slice(&self.gpu, &shape, &v)?, masks)
            }
        };
        let boxes = s.boxes.as_ref().map(|all| {
            samples
                .iter()
                .map(|sp| {
                    transform_boxes(
                        &all[sp.index as usize],
                        sp,
                        self.cfg.crop_pad,
                        (s.height, s.width),
                    )
                })
                .collect()
        });
        Ok(Batch {
            images,
            labels,
            masks,
            boxes,
            samples,
        })
    }
}

/// Where output pixel (x, y) of a sample reads in its source image, or None in
/// the crop's padding (the arithmetic of shaders/augment.wgsl).
fn source_of(
    sp: &SampleSpec,
    x: usize,
    y: usize,
    pad: usize,
    (h, w): (usize, usize),
) -> Option<usize> {
    let xc = if sp.flip != 0 { w - 1 - x } else { x };
    let sx = (xc + sp.dx as usize) as isize - pad as isize;
    let sy = (y + sp.dy as usize) as isize - pad as isize;
    (sx >= 0 && sy >= 0 && (sx as usize) < w && (sy as usize) < h)
        .then(|| sy as usize * w + sx as usize)
}

/// A sample's boxes after its crop and flip (the pixel mapping of
/// `source_of`), clipped to the image; boxes left without a pixel are dropped.
pub fn transform_boxes(
    boxes: &[BBox],
    sp: &SampleSpec,
    pad: usize,
    (h, w): (usize, usize),
) -> Vec<BBox> {
    let shift = |v: u16, d: u32| v as i64 + pad as i64 - d as i64;
    boxes
        .iter()
        .filter_map(|b| {
            let (mut x0, mut x1) = (shift(b.x0, sp.dx), shift(b.x1, sp.dx));
            let (y0, y1) = (shift(b.y0, sp.dy), shift(b.y1, sp.dy));
            if sp.flip != 0 {
                (x0, x1) = (w as i64 - x1, w as i64 - x0);
            }
            let cx = |v: i64| v.clamp(0, w as i64) as u16;
            let cy = |v: i64| v.clamp(0, h as i64) as u16;
            let out = BBox {
                x0: cx(x0),
                y0: cy(y0),
                x1: cx(x1),
                y1: cy(y1),
                ..*b
            };
            (out.x1 > out.x0 && out.y1 > out.y0).then_some(out)
        })
        .collect()
}

/// The host version of `augment_mask`: the masks of `samples`, cropped and
/// flipped as their images, `IGNORE` in the padding (None without masks).
pub fn assemble_masks(set: &ImageSet, samples: &[SampleSpec], pad: usize) -> Option<Vec<u32>> {
    let (h, w) = (set.height, set.width);
    let mut out = Vec::with_capacity(samples.len() * h * w);
    for sp in samples {
        let mask = set.mask(sp.index as usize)?;
        for y in 0..h {
            for x in 0..w {
                out.push(
                    source_of(sp, x, y, pad, (h, w)).map_or(super::IGNORE, |at| mask[at]) as u32,
                );
            }
        }
    }
    Some(out)
}

/// The host version of shaders/augment.wgsl (also its test reference).
pub fn assemble(
    set: &ImageSet,
    samples: &[SampleSpec],
    pad: usize,
    mean: &[f32; 4],
    inv_std: &[f32; 4],
) -> Vec<f32> {
    let (c_n, h, w) = (set.channels, set.height, set.width);
    let mut out = Vec::with_capacity(samples.len() * c_n * h * w);
    for sp in samples {
        let img = set.image(sp.index as usize);
        for c in 0..c_n {
            let plane = &img[c * h * w..(c + 1) * h * w];
            for y in 0..h {
                for x in 0..w {
                    let v = source_of(sp, x, y, pad, (h, w)).map_or(0.0, |at| plane[at] as f32);
                    out.push((v * (1.0 / 255.0) - mean[c]) * inv_std[c]);
                }
            }
        }
    }
    out
}
