//! Pascal VOC segmentation layout: `JPEGImages/<id>.jpg`,
//! `SegmentationClass/<id>.png` (palette PNGs whose indices are the classes,
//! 8-bit grey PNGs holding the class numbers, or RGB PNGs in the VOC colour
//! map), `ImageSets/Segmentation/{train,val}.txt` (one id per line; `val` is
//! the test split). 255 marks pixels to ignore (object borders). The classes
//! are VOC's 21 unless `classes.txt` at the root names them, one per line,
//! background first. Images are resized to `size` x `size` (bilinear), masks
//! likewise with nearest neighbours, so that no class is invented at an edge.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::{IGNORE, ImageSet, Split};
use crate::error::{Error, Result};

pub const VOC_CLASSES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

const LAYOUT: &str = "a VOC segmentation set is root/JPEGImages/<id>.jpg, \
                      root/SegmentationClass/<id>.png and root/ImageSets/Segmentation/{train,val}.txt";

/// The largest file (image or mask) read: far above any real photo.
const MAX_FILE: u64 = 256 << 20;

/// The VOC colour of class index `i` (the devkit's bit-interleaved map).
pub fn voc_color(i: u8) -> [u8; 3] {
    let (mut rgb, mut c) = ([0u8; 3], i);
    for j in 0..8 {
        for (k, ch) in rgb.iter_mut().enumerate() {
            *ch |= ((c >> k) & 1) << (7 - j);
        }
        c >>= 3;
    }
    rgb
}

/// The ids of a split, from its list file.
fn split_ids(root: &Path, split: Split) -> Result<Vec<String>> {
    let name = match split {
        Split::Train => "train.txt",
        Split::Test => "val.txt",
    };
    let list = root.join("ImageSets/Segmentation").join(name);
    if !list.is_file() {
        return Err(Error::data(&list, "is missing", LAYOUT));
    }
    let text = crate::fsutil::read_text(&list, 64 << 20)?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.split_whitespace().next().unwrap_or("");
        if id.is_empty() {
            continue;
        }
        if id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(Error::data(
                &list,
                format!("line {} names {id:?}, which is not a plain file id", n + 1),
                "list ids such as 2007_000032, one per line",
            ));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(Error::data(&list, "lists no images", LAYOUT));
    }
    Ok(ids)
}

/// The class names: `classes.txt` when present, else VOC's.
fn class_names(root: &Path) -> Result<Vec<String>> {
    let file = root.join("classes.txt");
    if !file.exists() {
        return Ok(VOC_CLASSES.iter().map(|c| c.to_string()).collect());
    }
    let names: Vec<String> = crate::fsutil::read_text(&file, 1 << 20)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if !(2..=IGNORE as usize).contains(&names.len()) {
        return Err(Error::data(
            &file,
            format!("names {} classes", names.len()),
            format!("list 2..={IGNORE} class names, background first, one per line"),
        ));
    }
    Ok(names)
}

/// The photo of `id`: JPEGImages/<id>.jpg (or .jpeg, .png).
fn image_file(root: &Path, id: &str) -> Result<PathBuf> {
    ["jpg", "jpeg", "png"]
        .iter()
        .map(|e| root.join("JPEGImages").join(format!("{id}.{e}")))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::data(
                root.join("JPEGImages").join(format!("{id}.jpg")),
                "is missing (listed in the split file)",
                LAYOUT,
            )
        })
}

/// A mask's class per pixel at its own size, from a palette, grey or RGB PNG.
pub fn decode_mask(file: &Path) -> Result<(Vec<u8>, usize, usize)> {
    let bytes = crate::fsutil::read_regular(file, MAX_FILE)?;
    let bad = |msg: String| Error::data(file, msg, "masks are palette, 8-bit grey or RGB PNGs");
    let mut dec = png::Decoder::new(Cursor::new(&bytes));
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec
        .read_info()
        .map_err(|e| bad(format!("is not a readable PNG ({e})")))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("is too large".into()))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("is not a readable PNG ({e})")))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let depth = info.bit_depth as usize;
    let row = |y: usize| &buf[y * info.line_size..(y + 1) * info.line_size];
    let mut out = Vec::with_capacity(w * h);
    use png::ColorType::*;
    match (info.color_type, depth) {
        (Indexed | Grayscale, 1 | 2 | 4 | 8) => {
            let per = 8 / depth;
            let m = ((1u16 << depth) - 1) as u8;
            for y in 0..h {
                let r = row(y);
                for x in 0..w {
                    let byte = r[x / per];
                    let shift = 8 - depth * (x % per + 1);
                    out.push((byte >> shift) & m);
                }
            }
        }
        (Rgb, 8) => {
            let lookup: std::collections::HashMap<[u8; 3], u8> = (0..=255u8)
                .map(|i| (voc_color(i), i))
                .chain([([224, 224, 192], IGNORE)])
                .collect();
            for y in 0..h {
                for px in row(y)[..3 * w].chunks(3) {
                    let c = [px[0], px[1], px[2]];
                    out.push(*lookup.get(&c).ok_or_else(|| {
                        bad(format!(
                            "holds the colour {c:?}, which is no class of the VOC colour map"
                        ))
                    })?);
                }
            }
        }
        (ct, d) => return Err(bad(format!("is a {ct:?} PNG of {d} bits"))),
    }
    Ok((out, h, w))
}

/// Nearest-neighbour resize of a class map (pixel centres, as PyTorch's `nearest`).
fn resize_nearest(m: &[u8], (h, w): (usize, usize), size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size * size);
    for y in 0..size {
        let sy = (y * h / size).min(h - 1);
        for x in 0..size {
            out.push(m[sy * w + (x * w / size).min(w - 1)]);
        }
    }
    out
}

/// The class with the most pixels other than background and ignore (0 if none):
/// the image's label for classification views of the set.
fn dominant(mask: &[u8], classes: usize) -> u32 {
    let mut count = vec![0usize; classes];
    for &v in mask {
        if v != IGNORE && (v as usize) < classes {
            count[v as usize] += 1;
        }
    }
    (1..classes)
        .max_by_key(|&c| (count[c], std::cmp::Reverse(c)))
        .filter(|&c| count[c] > 0)
        .unwrap_or(0) as u32
}

/// Loads one split of a VOC-layout segmentation set (see the module doc).
pub fn load(root: &Path, split: Split, size: usize, limit: Option<usize>) -> Result<ImageSet> {
    if !root.is_dir() {
        return Err(Error::data(root, "is not a folder", LAYOUT));
    }
    let classes = class_names(root)?;
    let ids = split_ids(root, split)?;
    let n = limit.map_or(ids.len(), |l| l.min(ids.len()));
    let mut set = ImageSet {
        name: format!("voc:{}", root.display()),
        channels: 3,
        height: size,
        width: size,
        classes: classes.clone(),
        masks: Some(Vec::new()),
        mask_classes: classes,
        ..ImageSet::default()
    };
    for id in &ids[..n] {
        let img_file = image_file(root, id)?;
        let mask_file = root.join("SegmentationClass").join(format!("{id}.png"));
        if !mask_file.is_file() {
            return Err(Error::data(
                &mask_file,
                "is missing (listed in the split file)",
                LAYOUT,
            ));
        }
        let (chw, (ih, iw)) = super::decode_image(&img_file, size)?;
        let (mask, mh, mw) = decode_mask(&mask_file)?;
        if (mh, mw) != (ih, iw) {
            return Err(Error::data(
                &mask_file,
                format!("is {mw}x{mh} but its image is {iw}x{ih}"),
                "a mask must have its image's size",
            ));
        }
        let k = set.mask_classes.len();
        if let Some(&v) = mask.iter().find(|&&v| v != IGNORE && v as usize >= k) {
            return Err(Error::data(
                &mask_file,
                format!(
                    "holds class {v}, but the set has {k} classes (0..{})",
                    k - 1
                ),
                "name the classes in classes.txt at the root, background first",
            ));
        }
        let mask = resize_nearest(&mask, (mh, mw), size);
        set.labels.push(dominant(&mask, k));
        set.images.extend_from_slice(&chw);
        if let Some(m) = &mut set.masks {
            m.extend_from_slice(&mask);
        }
    }
    Ok(set)
}
