//! Data sets. Every source (IDX files, CIFAR binaries, image folders, the
//! procedural shapes world) is read into one in-memory form, `ImageSet`: 8-bit
//! images in CHW order with their labels, and for the shapes world per-pixel
//! masks and boxes. `loader` turns a set into shuffled, augmented, normalised
//! batches on the GPU.

pub mod cifar;
pub mod coco;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod shapes;
pub mod voc;

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
    /// COCO's `iscrowd`: a region of many objects, neither to be found nor
    /// to count as a false detection.
    pub crowd: bool,
}

/// Images and labels held in memory.
#[derive(Clone, Debug, Default)]
pub struct ImageSet {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// N x C x H x W bytes, 0..=255.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
    /// N x H x W segmentation masks: each pixel's index into `mask_classes`,
    /// or `IGNORE` where no class is known (borders, padding).
    pub masks: Option<Vec<u8>>,
    /// What each mask value means (background first in the shapes world and
    /// Pascal VOC); empty without masks.
    pub mask_classes: Vec<String>,
    /// Objects of each image (shapes world).
    pub boxes: Option<Vec<Vec<BBox>>>,
}

/// The mask value of pixels that count in no metric and no loss (Pascal VOC's
/// object borders; padding added by a random crop).
pub const IGNORE: u8 = 255;

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
            _ => Err(Error::Config(format!(
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
        if self.is_empty() {
            return Err(Error::data(
                &self.name,
                "holds no images",
                "check the files, --limit and --size",
            ));
        }
        if self.channels == 0 || self.height == 0 || self.width == 0 {
            return bad(format!(
                "images of {}x{}x{} (C x H x W) have no pixels",
                self.channels, self.height, self.width
            ));
        }
        if self.images.len() != self.len() * self.image_len() {
            return bad(format!(
                "{} image bytes for {} labels of {} bytes each",
                self.images.len(),
                self.len(),
                self.image_len()
            ));
        }
        if let Some(m) = &self.masks {
            self.validate_masks(m)?;
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

impl ImageSet {
    fn validate_masks(&self, m: &[u8]) -> Result<()> {
        let bad = |msg: String| Err(Error::data(&self.name, msg, ""));
        let hw = self.height * self.width;
        if m.len() != self.len() * hw {
            return bad(format!(
                "{} mask bytes for {} images of {}x{}",
                m.len(),
                self.len(),
                self.height,
                self.width
            ));
        }
        let k = self.mask_classes.len();
        if let Some(pos) = m.iter().position(|&v| v != IGNORE && v as usize >= k) {
            return bad(format!(
                "mask of image {} holds value {} at pixel {}, but there are {k} mask classes \
                 (0..{}, and {IGNORE} for ignore)",
                pos / hw.max(1),
                m[pos],
                pos % hw.max(1),
                k.saturating_sub(1)
            ));
        }
        Ok(())
    }
}

fn load_shapes(split: Split, opts: &DataOptions, scenes: bool) -> Result<ImageSet> {
    let default = if scenes {
        shapes::SCENE_SIZE
    } else {
        shapes::DEFAULT_SIZE
    };
    let size = opts.size.unwrap_or(default);
    if !(MIN_SHAPES_SIDE..=MAX_SIDE).contains(&size) {
        return Err(Error::range(
            "shapes image size",
            size,
            format!("{MIN_SHAPES_SIDE}..={MAX_SIDE} pixels"),
        ));
    }
    let train = opts.count.unwrap_or(shapes::DEFAULT_COUNT);
    let (count, seed) = match split {
        Split::Train => (train, opts.seed),
        // A disjoint stream of the same world.
        Split::Test => (train.div_ceil(4), opts.seed ^ 0x7E57_7E57),
    };
    let count = opts.limit.map_or(count, |l| l.min(count));
    // Image (3 bytes a pixel) and mask (1 byte a pixel), before anything is allocated.
    let bytes = (count as u64)
        .checked_mul(4 * (size * size) as u64)
        .filter(|&b| b <= MAX_SET_BYTES);
    if bytes.is_none() {
        return Err(Error::range(
            "shapes images x size",
            format!("{count} x {size}x{size}"),
            format!(
                "at most {} GiB of pixels in memory; use fewer images or a smaller size",
                MAX_SET_BYTES >> 30
            ),
        ));
    }
    let world = if scenes {
        shapes::ShapesWorld::scenes(size, seed)
    } else {
        shapes::ShapesWorld::new(size, seed)
    };
    let mut set = world.render_set(count);
    if scenes {
        set.name = "shapes-scenes".into();
    }
    Ok(set)
}

/// The largest image file a reader opens: far above any real photo.
const MAX_IMAGE_FILE: u64 = 256 << 20;

/// The image as CHW RGB bytes at size x size, and its original (h, w).
/// (Shared by the image folder, VOC and COCO readers.)
pub(crate) fn decode_image(file: &Path, size: usize) -> Result<(Vec<u8>, (usize, usize))> {
    let bytes = crate::fsutil::read_regular(file, MAX_IMAGE_FILE)?;
    let img = image::load_from_memory(&bytes).map_err(|e| {
        Error::data(
            file,
            format!("cannot decode the image ({e})"),
            "remove or replace the file",
        )
    })?;
    let hw0 = (img.height() as usize, img.width() as usize);
    let rgb = img
        .resize_exact(
            size as u32,
            size as u32,
            image::imageops::FilterType::Triangle,
        )
        .to_rgb8();
    let px = rgb.as_raw();
    let n = size * size;
    let mut chw = vec![0u8; 3 * n];
    for i in 0..n {
        for c in 0..3 {
            chw[c * n + i] = px[i * 3 + c];
        }
    }
    Ok((chw, hw0))
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

/// The largest image side any reader makes (pixels).
pub const MAX_SIDE: usize = 4096;
/// The most bytes of images (and masks) one data set may take in memory.
pub const MAX_SET_BYTES: u64 = 8 << 30;
/// The smallest side the shapes world can draw its shapes at.
pub const MIN_SHAPES_SIDE: usize = 8;

impl DataOptions {
    /// Refuses values no data set can honour, with the valid range.
    pub fn check(&self) -> Result<()> {
        if self.limit == Some(0) {
            return Err(Error::range("--limit", 0, "at least 1 image"));
        }
        if self.count == Some(0) {
            return Err(Error::range("shapes image count", 0, "at least 1 image"));
        }
        if let Some(s) = self.size
            && (s == 0 || s > MAX_SIDE)
        {
            return Err(Error::range(
                "image size",
                s,
                format!("1..={MAX_SIDE} pixels"),
            ));
        }
        Ok(())
    }
}

/// The names `load` accepts.
pub const DATA_SETS: &str = "fashion-mnist, mnist, cifar10, cifar100, shapes, shapes-scenes, folder:<path>, voc:<path>, coco:<path>";

/// The side VOC-layout images are resized to unless --size says otherwise.
pub const VOC_DEFAULT_SIZE: usize = 64;

/// Loads a data set by name: `fashion-mnist`, `mnist`, `cifar10`, `cifar100`,
/// `shapes` (procedural, built in) or `folder:<path>` (one sub-folder per class).
pub fn load(name: &str, split: Split, opts: &DataOptions) -> Result<ImageSet> {
    opts.check()?;
    let set = match name {
        "fashion-mnist" | "mnist" => {
            let (default_dir, classes) = if name == "mnist" {
                (idx::MNIST_DIR, idx::DIGITS)
            } else {
                (idx::FASHION_MNIST_DIR, idx::FASHION_CLASSES)
            };
            let dir = opts
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(default_dir));
            idx::load_mnist_like(&dir, split, classes, name, opts.limit)?
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
        "shapes" => load_shapes(split, opts, false)?,
        "shapes-scenes" => load_shapes(split, opts, true)?,
        other if other.starts_with("coco:") => coco::load(
            Path::new(&other[5..]),
            split,
            opts.size.unwrap_or(shapes::SCENE_SIZE),
            opts.limit,
        )?,
        other if other.starts_with("voc:") => voc::load(
            Path::new(&other[4..]),
            split,
            opts.size.unwrap_or(VOC_DEFAULT_SIZE),
            opts.limit,
        )?,
        other => match other.strip_prefix("folder:") {
            Some(root) => {
                let set = folder::load_split(
                    Path::new(root),
                    split,
                    opts.size.unwrap_or(32),
                    opts.limit,
                )?;
                if split == Split::Test && set.name.contains("held-out") {
                    eprintln!(
                        "warning: {root} has no test/ folder: the test split is the held-out fifth \
                         of each class (chosen by file name), never used for training"
                    );
                }
                set
            }
            None => {
                return Err(Error::Config(format!(
                    "unknown data set {other:?}; known: {DATA_SETS}"
                )));
            }
        },
    };
    if let Some(s) = opts.size
        && (set.height, set.width) != (s, s)
    {
        return Err(Error::range(
            "--size / --image-size",
            s,
            format!(
                "{name} images are {}x{} and are not resized; leave the size out \
                 (it applies to the shapes world and image folders)",
                set.height, set.width
            ),
        ));
    }
    set.validate()?;
    Ok(set)
}
