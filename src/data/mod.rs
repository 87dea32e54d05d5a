//! Data sets. Every source (IDX files, CIFAR binaries, image folders, the
//! procedural shapes world) is read into one in-memory form, `ImageSet`: 8-bit
//! images in CHW order with their labels, and for the shapes world per-pixel
//! masks and boxes. `loader` turns a set into shuffled, augmented, normalised
//! batches on the GPU.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod shapes;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An axis-aligned box in pixels, `x1`/`y1` exclusive, with its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub x0: u16,
    pub y0: u16,
    pub x1: u16,
    pub y1: u16,
    pub class: u16,
}

/// Images and labels held in memory.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// N x C x H x W bytes, 0..=255.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    /// N x H x W: 0 background, k + 1 for a pixel of class k (shapes world).
    pub masks: Option<Vec<u8>>,
    /// Objects of each image (shapes world).
    pub boxes: Option<Vec<Vec<BBox>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Split> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            _ => Err(Error::Invalid(format!(
                "unknown split {s:?}: use `train` or `test`"
            ))),
        }
    }
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Bytes (pixels x channels) of one image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }
    pub fn mask(&self, i: usize) -> Option<&[u8]> {
        let n = self.height * self.width;
        self.masks.as_ref().map(|m| &m[i * n..(i + 1) * n])
    }
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// The first `n` images (all if fewer).
    pub fn take(mut self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        self.images.truncate(n * self.image_len());
        self.labels.truncate(n);
        if let Some(m) = &mut self.masks {
            m.truncate(n * self.height * self.width);
        }
        if let Some(b) = &mut self.boxes {
            b.truncate(n);
        }
        self
    }

    /// Per-channel mean and standard deviation of the pixels in [0, 1].
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let hw = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut sq = vec![0f64; self.channels];
        for img in self.images.chunks(self.image_len().max(1)) {
            for (c, plane) in img.chunks(hw.max(1)).enumerate() {
                for &v in plane {
                    let x = v as f64 / 255.0;
                    sum[c] += x;
                    sq[c] += x * x;
                }
            }
        }
        let n = (self.len() * hw).max(1) as f64;
        let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
        let std = sq
            .iter()
            .zip(&sum)
            .map(|(q, s)| ((q / n - (s / n).powi(2)).max(1e-12).sqrt()) as f32)
            .collect();
        (mean, std)
    }

    /// Size, image shape and per-class counts, for `condenser data show`.
    pub fn describe(&self) -> String {
        let mut counts = vec![0usize; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        let mut s = format!(
            "{}: {} images of {}x{}x{} (C x H x W), {} classes",
            self.name,
            self.len(),
            self.channels,
            self.height,
            self.width,
            self.classes.len()
        );
        if self.masks.is_some() {
            s.push_str(", with segmentation masks and boxes");
        }
        for (i, (name, n)) in self.classes.iter().zip(&counts).enumerate() {
            s.push_str(&format!("\n  {i:>3} {name:<16} {n}"));
        }
        s
    }

    /// Checks the invariants every reader must establish.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::data(&self.name, msg, ""));
        if self.images.len() != self.len() * self.image_len() {
            return bad(format!(
                "{} image bytes for {} labels of {} bytes each",
                self.images.len(),
                self.len(),
                self.image_len()
            ));
        }
        if let Some(&l) = self
            .labels
            .iter()
            .find(|&&l| l as usize >= self.classes.len())
        {
            return bad(format!(
                "label {l} is out of range for {} classes",
                self.classes.len()
            ));
        }
        Ok(())
    }
}

/// Where and how to find a data set.
#[derive(Clone, Debug, Default)]
pub struct DataOptions {
    /// Folder of the files; each data set has a default.
    pub data_dir: Option<PathBuf>,
    /// Only the first `limit` images.
    pub limit: Option<usize>,
    /// Image side for image folders and the shapes world.
    pub size: Option<usize>,
    /// Seed of the shapes world.
    pub seed: u64,
    /// Images of the shapes world (train split; test gets a quarter).
    pub count: Option<usize>,
}

/// The names `load` accepts.
pub const DATA_SETS: &str = "fashion-mnist, mnist, cifar10, cifar100, shapes, folder:<path>";

/// Loads a data set by name: `fashion-mnist`, `mnist`, `cifar10`, `cifar100`,
/// `shapes` (procedural, built in) or `folder:<path>` (one sub-folder per class).
pub fn load(name: &str, split: Split, opts: &DataOptions) -> Result<ImageSet> {
    let set = match name {
        "fashion-mnist" => {
            let dir = opts
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(idx::FASHION_MNIST_DIR));
            idx::load_mnist_like(
                &dir,
                split,
                idx::FASHION_CLASSES,
                "fashion-mnist",
                opts.limit,
            )?
        }
        "mnist" => {
            let dir = opts
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(idx::MNIST_DIR));
            idx::load_mnist_like(&dir, split, idx::DIGITS, "mnist", opts.limit)?
        }
        "cifar10" | "cifar100" => {
            let dir = opts.data_dir.clone().ok_or_else(|| {
                Error::data(
                    name,
                    "no folder given",
                    "download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html, \
                     unpack it and pass --data-dir <folder>",
                )
            })?;
            cifar::load(&dir, name == "cifar100", split, opts.limit)?
        }
        "shapes" => {
            let size = opts.size.unwrap_or(shapes::DEFAULT_SIZE);
            let train = opts.count.unwrap_or(shapes::DEFAULT_COUNT);
            let (count, seed) = match split {
                Split::Train => (train, opts.seed),
                // A disjoint stream of the same world.
                Split::Test => (train.div_ceil(4), opts.seed ^ 0x7E57_7E57),
            };
            let count = opts.limit.map_or(count, |l| l.min(count));
            shapes::ShapesWorld::new(size, seed).render_set(count)
        }
        other => match other.strip_prefix("folder:") {
            Some(root) => {
                let root = Path::new(root);
                let sub = match split {
                    Split::Train => "train",
                    Split::Test => "test",
                };
                // root/train/<class> and root/test/<class> if present, else root/<class>.
                let dir = if root.join(sub).is_dir() {
                    root.join(sub)
                } else {
                    root.to_path_buf()
                };
                folder::load(&dir, opts.size.unwrap_or(32), opts.limit)?
            }
            None => {
                return Err(Error::Invalid(format!(
                    "unknown data set {other:?}; known: {DATA_SETS}"
                )));
            }
        },
    };
    set.validate()?;
    Ok(set)
}
