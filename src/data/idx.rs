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

/// The most data one IDX file may declare (bytes): far above any image set
/// that fits in memory here, far below what a corrupt header can claim.
pub const MAX_IDX_BYTES: u64 = 8 << 30;

/// Reads and parses an IDX file, gunzipping it if it starts with the gzip
/// magic. Never reads more than the header declares: a gzip bomb or a file of
/// endless data is an error, not an allocation.
pub fn read(path: &Path) -> Result<IdxArray> {
    let (mut f, _) = crate::fsutil::open_regular(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut f, &mut magic).map_err(|e| crate::fsutil::io_error(path, e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let gz = magic[..n] == [0x1f, 0x8b];
    let stream: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(head.chain(f)))
    } else {
        Box::new(head.chain(f))
    };
    parse_from(stream, path, gz)
}

/// Fills `buf` as far as the stream allows; returns how much was read.
fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}

/// Parses IDX bytes: magic 0x0000 0x08 (u8 data) <ndims>, big-endian u32 sizes, data.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    parse_from(bytes, path, false)
}

fn parse_from(mut r: impl Read, path: &Path, gz: bool) -> Result<IdxArray> {
    let corrupt = |msg: String| {
        Error::data(
            path,
            msg,
            "the file is not an IDX file or is damaged; download it again",
        )
    };
    let stream_err = |e: std::io::Error| {
        if gz {
            corrupt(format!("the gzip stream is corrupt or truncated ({e})"))
        } else {
            crate::fsutil::io_error(path, e)
        }
    };
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut r, &mut magic).map_err(stream_err)?;
    if n < 4 || magic[0] != 0 || magic[1] != 0 {
        return Err(corrupt(
            "bad magic number (an IDX file starts with 0x00 0x00)".into(),
        ));
    }
    if magic[2] != 0x08 {
        return Err(corrupt(format!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            magic[2]
        )));
    }
    let nd = magic[3] as usize;
    let mut sizes = vec![0u8; 4 * nd];
    if nd == 0 || read_up_to(&mut r, &mut sizes).map_err(stream_err)? < sizes.len() {
        return Err(corrupt(format!("header of {nd} dimensions is truncated")));
    }
    let dims: Vec<usize> = sizes
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")) as usize)
        .collect();
    let want = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&n| n <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            corrupt(format!(
                "dimensions {dims:?} declare more than {MAX_IDX_BYTES} bytes of data"
            ))
        })?;
    let mut data = Vec::new();
    data.try_reserve_exact(want as usize).map_err(|_| {
        corrupt(format!(
            "dimensions {dims:?} need {want} bytes, more memory than is free"
        ))
    })?;
    let got = r
        .by_ref()
        .take(want)
        .read_to_end(&mut data)
        .map_err(stream_err)?;
    let mut extra = [0u8; 1];
    let trailing = read_up_to(&mut r, &mut extra).map_err(stream_err)?;
    if got as u64 != want || trailing != 0 {
        let has = if trailing != 0 {
            "more".to_string()
        } else {
            got.to_string()
        };
        return Err(corrupt(format!(
            "dimensions {dims:?} need {want} bytes of data, the file has {has} (truncated or damaged?)"
        )));
    }
    Ok(IdxArray { dims, data })
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
    let images = read(&img_path)?;
    let labels = read(&lab_path)?;
    if images.dims.len() != 3 || images.dims[1] == 0 || images.dims[2] == 0 {
        return Err(Error::data(
            &img_path,
            format!(
                "images must have 3 dimensions (count, rows, cols), none of the sides 0; got {:?}",
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
        mask_classes: Vec::new(),
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
