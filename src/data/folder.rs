//! Image folders: `root/<class>/*.png|jpg|jpeg`, classes in sorted order, every
//! image resized to `size` x `size` RGB.

use std::path::Path;

use super::ImageSet;
use crate::error::{Error, Result};

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    let mut v: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    Ok(v)
}

pub fn load(root: &Path, size: usize, limit: Option<usize>) -> Result<ImageSet> {
    if !root.is_dir() {
        return Err(Error::data(
            root,
            "is not a folder",
            "an image folder data set is root/<class name>/<images>.png|jpg",
        ));
    }
    if size == 0 || size > 4096 {
        return Err(Error::Invalid(format!(
            "image size {size} must be in 1..=4096"
        )));
    }
    let class_dirs: Vec<_> = sorted_entries(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(Error::data(
            root,
            "has no class sub-folders",
            "an image folder data set is root/<class name>/<images>.png|jpg",
        ));
    }
    let mut set = ImageSet {
        name: format!("folder:{}", root.display()),
        channels: 3,
        height: size,
        width: size,
        images: Vec::new(),
        labels: Vec::new(),
        classes: Vec::new(),
        masks: None,
        boxes: None,
    };
    let hw = size * size;
    for (label, dir) in class_dirs.iter().enumerate() {
        let files: Vec<_> = sorted_entries(dir)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        if files.is_empty() {
            return Err(Error::data(
                dir,
                "class folder holds no .png/.jpg/.jpeg images",
                "remove the empty folder or add images to it",
            ));
        }
        set.classes.push(
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for f in files {
            if limit.is_some_and(|l| set.len() >= l) {
                break;
            }
            let img = image::open(&f).map_err(|e| {
                Error::data(
                    &f,
                    format!("cannot decode the image ({e})"),
                    "remove or replace the file",
                )
            })?;
            let rgb = img
                .resize_exact(
                    size as u32,
                    size as u32,
                    image::imageops::FilterType::Triangle,
                )
                .to_rgb8();
            // HWC -> CHW
            let px = rgb.as_raw();
            let base = set.images.len();
            set.images.resize(base + 3 * hw, 0);
            for i in 0..hw {
                for c in 0..3 {
                    set.images[base + c * hw + i] = px[i * 3 + c];
                }
            }
            set.labels.push(label as u32);
        }
    }
    Ok(set)
}
