//! COCO detection sets: `annotations/instances_<split>.json` (images,
//! categories, annotations with `bbox` [x, y, w, h] in pixels and
//! `iscrowd`) beside the image folder of the same split name
//! (`train2017/`, `val2017/`, or `images/`). The training split is the first
//! `instances_train*.json`, the test split the first `instances_val*.json`.
//! Categories become classes 0..K in the order of their ids; images are
//! resized to `size` x `size` and their boxes scaled with them. Crowd regions
//! are kept, flagged: they are neither targets nor false detections.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BBox, ImageSet, Split};
use crate::error::{Error, Result};

const LAYOUT: &str = "a COCO set is root/annotations/instances_<split>.json with the images in \
                      root/<split>/ (e.g. train2017, val2017) or root/images/";

/// The largest annotation file read (COCO 2017 train is 450 MiB).
const MAX_JSON: u64 = 2 << 30;

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnn>,
    categories: Vec<CocoCat>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoAnn {
    image_id: u64,
    category_id: u64,
    bbox: [f64; 4],
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Deserialize)]
struct CocoCat {
    id: u64,
    name: String,
}

/// The annotation file of a split and the folder of its images.
fn split_files(root: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let want = match split {
        Split::Train => "instances_train",
        Split::Test => "instances_val",
    };
    let dir = root.join("annotations");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|_| Error::data(&dir, "is missing", LAYOUT))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(want) && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    let json = found
        .into_iter()
        .next()
        .ok_or_else(|| Error::data(&dir, format!("holds no {want}*.json"), LAYOUT))?;
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.strip_prefix("instances_"))
        .unwrap_or("");
    let images = [root.join(stem), root.join("images")]
        .into_iter()
        .find(|p| !stem.is_empty() && p.is_dir())
        .ok_or_else(|| {
            Error::data(
                root.join(stem),
                "is missing (the images of the split)",
                LAYOUT,
            )
        })?;
    Ok((json, images))
}

/// A file name that stays inside the image folder.
fn plain_name(json: &Path, name: &str) -> Result<()> {
    let p = Path::new(name);
    let escapes = p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes || name.is_empty() {
        return Err(Error::data(
            json,
            format!("names the image {name:?}, which is not a file inside the image folder"),
            "file_name must be relative, without `..`",
        ));
    }
    Ok(())
}

/// Loads one split of a COCO set (see the module doc).
pub fn load(root: &Path, split: Split, size: usize, limit: Option<usize>) -> Result<ImageSet> {
    if !root.is_dir() {
        return Err(Error::data(root, "is not a folder", LAYOUT));
    }
    let (json, dir) = split_files(root, split)?;
    let text = crate::fsutil::read_text(&json, MAX_JSON)?;
    let file: CocoFile = serde_json::from_str(&text)
        .map_err(|e| Error::data(&json, format!("is not COCO instances JSON ({e})"), LAYOUT))?;
    let mut cats: Vec<&CocoCat> = file.categories.iter().collect();
    cats.sort_by_key(|c| c.id);
    if cats.is_empty() || cats.windows(2).any(|w| w[0].id == w[1].id) {
        return Err(Error::data(
            &json,
            "has no categories, or one id twice",
            LAYOUT,
        ));
    }
    let class_of: HashMap<u64, u16> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i as u16))
        .collect();
    let n = limit.map_or(file.images.len(), |l| l.min(file.images.len()));
    let index: HashMap<u64, usize> = file
        .images
        .iter()
        .enumerate()
        .map(|(i, im)| (im.id, i))
        .collect();
    if index.len() != file.images.len() {
        return Err(Error::data(&json, "lists an image id twice", LAYOUT));
    }
    let mut set = ImageSet {
        name: format!("coco:{}", root.display()),
        channels: 3,
        height: size,
        width: size,
        classes: cats.iter().map(|c| c.name.clone()).collect(),
        boxes: Some(vec![Vec::new(); n]),
        ..ImageSet::default()
    };
    let mut dims = Vec::with_capacity(n);
    for im in &file.images[..n] {
        plain_name(&json, &im.file_name)?;
        let file = dir.join(&im.file_name);
        if !file.is_file() {
            return Err(Error::data(
                &json,
                format!(
                    "image {} is {}, which is missing",
                    im.id,
                    crate::fsutil::shown(&file)
                ),
                LAYOUT,
            ));
        }
        let (chw, hw) = super::decode_image(&file, size)?;
        set.images.extend_from_slice(&chw);
        dims.push(hw);
    }
    for (k, a) in file.annotations.iter().enumerate() {
        let bad =
            |msg: String| Error::data(&json, format!("annotation {k}: {msg}"), "fix or remove it");
        let &i = index
            .get(&a.image_id)
            .ok_or_else(|| bad(format!("image_id {} is no listed image", a.image_id)))?;
        let &class = class_of.get(&a.category_id).ok_or_else(|| {
            bad(format!(
                "category_id {} is no listed category",
                a.category_id
            ))
        })?;
        let [x, y, w, h] = a.bbox;
        if !(a.bbox.iter().all(|v| v.is_finite()) && w >= 0.0 && h >= 0.0) {
            return Err(bad(format!(
                "bbox {:?} is not [x, y, width >= 0, height >= 0]",
                a.bbox
            )));
        }
        if i >= n {
            continue;
        }
        let (ih, iw) = dims[i];
        let (sx, sy) = (size as f64 / iw as f64, size as f64 / ih as f64);
        let px = |v: f64, s: f64| (v * s).round().clamp(0.0, size as f64) as u16;
        let b = BBox {
            x0: px(x, sx),
            y0: px(y, sy),
            x1: px(x + w, sx),
            y1: px(y + h, sy),
            class,
            crowd: a.iscrowd != 0,
        };
        if b.x1 > b.x0
            && b.y1 > b.y0
            && let Some(all) = &mut set.boxes
        {
            all[i].push(b);
        }
    }
    // An image's label: the class of its largest object (0 if it has none).
    set.labels = set
        .boxes
        .iter()
        .flatten()
        .map(|bs| {
            bs.iter()
                .filter(|b| !b.crowd)
                .max_by_key(|b| (b.x1 - b.x0) as u32 * (b.y1 - b.y0) as u32)
                .map_or(0, |b| b.class as u32)
        })
        .collect();
    Ok(set)
}
