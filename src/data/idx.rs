//! IDX files (MNIST, Fashion-MNIST), gzipped or not.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ImageSet, Split};
use crate::error::{Error, Result};

/// Where Debian's `dataset-fashion-mnist` puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";
pub const MNIST_DIR: &str = "/usr/share/datasets/mnist";

pub const FASHION_CLASSES: &[&str] = &[
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
pub const DIGITS: &[&str] = &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// An IDX array of unsigned bytes: its dimensions and data.
#[derive(Debug)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads a whole file, gunzipping it if it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                Error::data(
                    path,
                    format!("the gzip stream is corrupt or truncated ({e})"),
                    "download the file again",
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses IDX bytes: magic 0x0000 0x08 (u8 data) <ndims>, big-endian u32 sizes, data.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let corrupt = |msg: String| {
        Error::data(
            path,
            msg,
            "the file is not an IDX file or is damaged; download it again",
        )
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(corrupt(
            "bad magic number (an IDX file starts with 0x00 0x00)".into(),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(corrupt(format!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            bytes[2]
        )));
    }
    let nd = bytes[3] as usize;
    let header = 4 + 4 * nd;
    if nd == 0 || bytes.len() < header {
        return Err(corrupt(format!("header of {nd} dimensions is truncated")));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match want {
        Some(n) if bytes.len() - header == n => Ok(IdxArray {
            dims,
            data: bytes[header..].to_vec(),
        }),
        Some(n) => Err(corrupt(format!(
            "dimensions {dims:?} need {n} bytes of data, the file has {} (truncated?)",
            bytes.len() - header
        ))),
        None => Err(corrupt(format!("dimensions {dims:?} overflow"))),
    }
}

/// Finds `<stem>` or `<stem>.gz` in `dir`.
fn find(dir: &Path, stem: &str, name: &str) -> Result<PathBuf> {
    for cand in [dir.join(format!("{stem}.gz")), dir.join(stem)] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    let hint = if name == "fashion-mnist" {
        "install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or pass --data-dir \
         <folder with the IDX files>"
    } else {
        "download the four IDX files and pass --data-dir <folder>"
    };
    Err(Error::data(
        dir.join(format!("{stem}.gz")),
        format!(
            "the {name} file {stem}[.gz] was not found in {}",
            dir.display()
        ),
        hint,
    ))
}

/// Loads the MNIST-format split from `dir`: `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
pub fn load_mnist_like(
    dir: &Path,
    split: Split,
    classes: &[&str],
    name: &str,
    limit: Option<usize>,
) -> Result<ImageSet> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let img_path = find(dir, &format!("{prefix}-images-idx3-ubyte"), name)?;
    let lab_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"), name)?;
    let images = parse(&read_maybe_gz(&img_path)?, &img_path)?;
    let labels = parse(&read_maybe_gz(&lab_path)?, &lab_path)?;
    if images.dims.len() != 3 {
        return Err(Error::data(
            &img_path,
            format!(
                "images must have 3 dimensions (count, rows, cols), got {:?}",
                images.dims
            ),
            "",
        ));
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(Error::data(
            &lab_path,
            format!(
                "labels {:?} do not match {} images in {}",
                labels.dims,
                images.dims[0],
                img_path.display()
            ),
            "the image and label files come from different downloads; fetch both again",
        ));
    }
    if let Some(bad) = labels.data.iter().find(|&&l| l as usize >= classes.len()) {
        return Err(Error::data(
            &lab_path,
            format!("label {bad} is out of range for {} classes", classes.len()),
            "",
        ));
    }
    let set = ImageSet {
        name: name.to_string(),
        channels: 1,
        height: images.dims[1],
        width: images.dims[2],
        images: images.data,
        labels: labels.data.iter().map(|&l| l as u32).collect(),
        classes: classes.iter().map(|s| s.to_string()).collect(),
        masks: None,
        boxes: None,
    };
    Ok(match limit {
        Some(n) => set.take(n),
        None => set,
    })
}

/// IDX bytes for an array of unsigned bytes (tests and tools write small files).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
