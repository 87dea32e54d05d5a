//! Image folders: `root/<class>/*.png|jpg|jpeg`, or `root/train/<class>` with
//! `root/test/<class>`. Classes come from the training folders in sorted order;
//! test folders are matched to them by name. Hidden entries (`.ipynb_checkpoints`,
//! `.DS_Store`) are ignored. Without a `test/` folder a fixed fifth of each
//! class, chosen by a hash of the file name, is held out as the test split and
//! never trained on. Every image is resized to `size` x `size` RGB.

use std::path::{Path, PathBuf};

use super::{ImageSet, Split};
use crate::error::{Error, Result};

const LAYOUT: &str = "an image folder data set is root/<class name>/<images>.png|jpg, \
                      or root/train/<class name>/... with root/test/<class name>/...";

/// One in this many images of each class is held out when there is no test folder.
pub const HOLDOUT_EVERY: u64 = 5;

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The visible entries of `dir`, sorted.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| crate::fsutil::io_error(dir, e))?;
    let mut v: Vec<_> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !is_hidden(p))
        .collect();
    v.sort();
    Ok(v)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The class folders of `dir` (visible sub-folders), sorted by name.
fn class_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::data(dir, "is not a folder", LAYOUT));
    }
    let dirs: Vec<_> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if dirs.is_empty() {
        return Err(Error::data(dir, "has no class sub-folders", LAYOUT));
    }
    Ok(dirs)
}

/// The image files of a class folder: regular files only (a FIFO named
/// x.png would block the decoder forever).
fn images_of(dir: &Path) -> Result<Vec<PathBuf>> {
    let files: Vec<_> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| is_image(p) && p.is_file())
        .collect();
    if files.is_empty() {
        return Err(Error::data(
            dir,
            "class folder holds no .png/.jpg/.jpeg images",
            "remove the empty folder or add images to it",
        ));
    }
    Ok(files)
}

/// Whether a file belongs to the held-out test fifth: FNV-1a of its name, so
/// the choice is the same on every machine and does not move when files are added.
fn held_out(file: &Path) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name_of(file).bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h.is_multiple_of(HOLDOUT_EVERY)
}

/// Loads one split of an image folder data set (see the module doc).
pub fn load_split(
    root: &Path,
    split: Split,
    size: usize,
    limit: Option<usize>,
) -> Result<ImageSet> {
    check_size(size)?;
    let (train_root, test_root) = (root.join("train"), root.join("test"));
    let split_folders = train_root.is_dir() || test_root.is_dir();
    if split_folders && !(train_root.is_dir() && test_root.is_dir()) {
        let (has, lacks) = if train_root.is_dir() {
            ("train", "test")
        } else {
            ("test", "train")
        };
        return Err(Error::data(
            root,
            format!("has a {has}/ folder but no {lacks}/ folder"),
            format!(
                "add {lacks}/<class>/ folders, or put the class folders directly under the root"
            ),
        ));
    }
    let class_root = if split_folders { &train_root } else { root };
    let classes: Vec<String> = class_dirs(class_root)?.iter().map(|d| name_of(d)).collect();
    let mut set = empty_set(root, size, classes.clone());
    if split_folders {
        let dir = match split {
            Split::Train => &train_root,
            Split::Test => &test_root,
        };
        for cdir in class_dirs(dir)? {
            let name = name_of(&cdir);
            let label = classes.iter().position(|c| *c == name).ok_or_else(|| {
                Error::data(
                    &cdir,
                    format!(
                        "class {name:?} of the test split has no training folder (training classes: {})",
                        classes.join(", ")
                    ),
                    "add train/<class>/ images for it, or remove the test folder",
                )
            })?;
            add_images(&mut set, &images_of(&cdir)?, label, size, limit)?;
        }
    } else {
        set.name.push_str(match split {
            Split::Train => " (train: 4/5 of each class; 1/5 held out)",
            Split::Test => " (test: the held-out 1/5 of each class; no test/ folder)",
        });
        for (label, cdir) in class_dirs(root)?.iter().enumerate() {
            let all = images_of(cdir)?;
            let (test, train): (Vec<PathBuf>, Vec<PathBuf>) =
                all.into_iter().partition(|f| held_out(f));
            let chosen = match split {
                Split::Train => train,
                Split::Test => test,
            };
            add_images(&mut set, &chosen, label, size, limit)?;
        }
        if set.is_empty() {
            return Err(Error::data(
                root,
                format!("too few images to hold out a {} split", split_name(split)),
                "add images, or give separate train/ and test/ folders",
            ));
        }
    }
    Ok(set)
}

fn split_name(s: Split) -> &'static str {
    match s {
        Split::Train => "train",
        Split::Test => "test",
    }
}

/// Loads every image under `root/<class>/` (no split), e.g. to inspect a folder.
pub fn load(root: &Path, size: usize, limit: Option<usize>) -> Result<ImageSet> {
    check_size(size)?;
    let dirs = class_dirs(root)?;
    let mut set = empty_set(root, size, dirs.iter().map(|d| name_of(d)).collect());
    for (label, cdir) in dirs.iter().enumerate() {
        add_images(&mut set, &images_of(cdir)?, label, size, limit)?;
    }
    Ok(set)
}

fn check_size(size: usize) -> Result<()> {
    if size == 0 || size > super::MAX_SIDE {
        return Err(Error::range(
            "image size",
            size,
            format!("1..={} pixels", super::MAX_SIDE),
        ));
    }
    Ok(())
}

fn empty_set(root: &Path, size: usize, classes: Vec<String>) -> ImageSet {
    ImageSet {
        name: format!("folder:{}", root.display()),
        channels: 3,
        height: size,
        width: size,
        images: Vec::new(),
        labels: Vec::new(),
        classes,
        masks: None,
        mask_classes: Vec::new(),
        boxes: None,
    }
}

fn add_images(
    set: &mut ImageSet,
    files: &[PathBuf],
    label: usize,
    size: usize,
    limit: Option<usize>,
) -> Result<()> {
    let hw = size * size;
    for f in files {
        if limit.is_some_and(|l| set.len() >= l) {
            break;
        }
        let (chw, _) = super::decode_image(f, size)?;
        set.images.try_reserve(3 * hw).map_err(|_| {
            Error::data(
                f,
                "out of memory while reading the image folder",
                "use --limit or a smaller --size",
            )
        })?;
        set.images.extend_from_slice(&chw);
        set.labels.push(label as u32);
    }
    Ok(())
}
