//! CIFAR-10 and CIFAR-100 binary files: records of a label byte (CIFAR-100: a
//! coarse and a fine label byte) followed by 3072 bytes of a 32x32 RGB image in
//! CHW order.

use std::path::{Path, PathBuf};

use super::{ImageSet, Split};
use crate::error::{Error, Result};

pub const CIFAR10_CLASSES: &[&str] = &[
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const PIXELS: usize = 3 * 32 * 32;

/// The files of a split, looked for in `dir` and in the folder the official
/// archive unpacks to.
fn files(dir: &Path, cifar100: bool, split: Split) -> Result<Vec<PathBuf>> {
    let names: Vec<String> = match (cifar100, split) {
        (false, Split::Train) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        (false, Split::Test) => vec!["test_batch.bin".into()],
        (true, Split::Train) => vec!["train.bin".into()],
        (true, Split::Test) => vec!["test.bin".into()],
    };
    let sub = if cifar100 {
        "cifar-100-binary"
    } else {
        "cifar-10-batches-bin"
    };
    for base in [dir.to_path_buf(), dir.join(sub)] {
        let paths: Vec<PathBuf> = names.iter().map(|n| base.join(n)).collect();
        if paths.iter().all(|p| p.is_file()) {
            return Ok(paths);
        }
    }
    Err(Error::data(
        dir,
        format!(
            "the CIFAR files {} were not found (also looked in {sub}/)",
            names.join(", ")
        ),
        "download the *binary version* from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it \
         and pass --data-dir <folder>",
    ))
}

pub fn load(dir: &Path, cifar100: bool, split: Split, limit: Option<usize>) -> Result<ImageSet> {
    let label_bytes = if cifar100 { 2 } else { 1 };
    let record = label_bytes + PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let n_classes = if cifar100 { 100 } else { 10 };
    for path in files(dir, cifar100, split)? {
        // A CIFAR batch is 30 MB; anything far larger is not one.
        let bytes = crate::fsutil::read_regular(&path, 1 << 30)?;
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(Error::data(
                &path,
                format!(
                    "{} bytes is not a whole number of {record}-byte records (truncated or not a \
                     CIFAR-{} file)",
                    bytes.len(),
                    if cifar100 { 100 } else { 10 }
                ),
                "download the binary version again",
            ));
        }
        for (i, rec) in bytes.chunks(record).enumerate() {
            // CIFAR-100 keeps the fine label second.
            let label = rec[label_bytes - 1] as u32;
            if label >= n_classes {
                return Err(Error::data(
                    &path,
                    format!("record {i} has label {label}, beyond {n_classes} classes"),
                    "is this a CIFAR-10 file read as CIFAR-100 or the other way round?",
                ));
            }
            labels.push(label);
            images.extend_from_slice(&rec[label_bytes..]);
            if limit.is_some_and(|l| labels.len() >= l) {
                break;
            }
        }
        if limit.is_some_and(|l| labels.len() >= l) {
            break;
        }
    }
    let classes = if cifar100 {
        fine_label_names(dir).unwrap_or_else(|| (0..100).map(|i| format!("class_{i}")).collect())
    } else {
        CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
    };
    Ok(ImageSet {
        name: if cifar100 { "cifar100" } else { "cifar10" }.into(),
        channels: 3,
        height: 32,
        width: 32,
        images,
        labels,
        classes,
        masks: None,
        mask_classes: Vec::new(),
        boxes: None,
    })
}

/// The archive's fine_label_names.txt, when present and complete.
fn fine_label_names(dir: &Path) -> Option<Vec<String>> {
    for p in [
        dir.join("fine_label_names.txt"),
        dir.join("cifar-100-binary/fine_label_names.txt"),
    ] {
        if let Ok(text) = crate::fsutil::read_text(&p, 1 << 20) {
            let names: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            if names.len() == 100 {
                return Some(names);
            }
        }
    }
    None
}
