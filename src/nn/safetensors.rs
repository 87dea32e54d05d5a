//! Weights in the safetensors format, through Hugging Face's `safetensors`
//! crate (the reference implementation, fuzzed upstream), with PyTorch's
//! parameter names so files move both ways between condenser and PyTorch.
//! Around the crate: condenser's checks and messages (every name, shape and
//! dtype compared, what differs listed; non-finite values refused on load and
//! on save), bounded reads of regular files only, atomic writes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::{Entry, Module};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::tensor::Tensor;

/// (name, dtype, shape, little-endian bytes) of one tensor to write.
type Raw = (String, Dtype, Vec<usize>, Vec<u8>);

/// The largest weights file read (bytes); everything is read into memory.
pub const MAX_FILE_BYTES: u64 = 16 << 30;

/// A module's entries as (name, dtype, shape, little-endian bytes).
fn module_entries(m: &dyn Module, prefix: &str) -> Result<Vec<Raw>> {
    let mut tensors: Vec<Raw> = Vec::new();
    let mut err = None;
    m.visit(prefix, &mut |name, e| {
        let item = match e {
            Entry::Param(v) => v.value().to_vec().map(|d| {
                (
                    Dtype::F32,
                    v.shape().to_vec(),
                    bytemuck::cast_slice(&d).to_vec(),
                )
            }),
            Entry::Buffer(t) => t.to_vec().map(|d| {
                (
                    Dtype::F32,
                    t.shape().to_vec(),
                    bytemuck::cast_slice(&d).to_vec(),
                )
            }),
            Entry::Counter(c) => Ok((Dtype::I64, vec![], c.get().to_le_bytes().to_vec())),
        };
        match item {
            Ok((dt, shape, bytes)) => tensors.push((name, dt, shape, bytes)),
            Err(e) => err = Some(e),
        }
    });
    err.map_or(Ok(tensors), Err)
}

/// The first tensor holding a NaN or an infinity, with the index of the value.
fn first_non_finite<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Option<(String, usize, f32)> {
    for (name, bytes) in tensors {
        let vals: Vec<f32> = bytemuck::pod_collect_to_vec(bytes);
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            return Some((name.to_string(), i, vals[i]));
        }
    }
    None
}

fn write_file(path: &Path, tensors: &[Raw], metadata: &[(&str, String)]) -> Result<()> {
    // A file of NaNs would be a trap for whoever loads it: refuse to write one.
    let f32s = tensors
        .iter()
        .filter(|t| t.1 == Dtype::F32)
        .map(|t| (t.0.as_str(), t.3.as_slice()));
    if let Some((name, i, v)) = first_non_finite(f32s) {
        return Err(Error::weights(
            path,
            format!("not written: tensor {name} holds {v} (element {i})"),
            "the model diverged; any earlier file at this path is unchanged",
        ));
    }
    let views = tensors
        .iter()
        .map(|(name, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::weights(path, format!("tensor {name}: {e}"), ""))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let bytes = safetensors::serialize(views, (!meta.is_empty()).then_some(meta))
        .map_err(|e| Error::weights(path, format!("cannot be encoded: {e}"), ""))?;
    write_atomic(path, &with_sorted_header(&bytes))
}

/// The same file with its JSON header's keys in sorted order. The crate writes
/// the metadata map in hash order, which differs from run to run; sorted, the
/// same model always gives the same bytes (reproducible files, stable hashes).
fn with_sorted_header(file: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().expect("the crate wrote a header")) as usize;
    // serde_json's map (without `preserve_order`) is a BTreeMap: keys come out sorted.
    let header: serde_json::Value =
        serde_json::from_slice(&file[8..8 + n]).expect("the crate wrote valid JSON");
    let mut h = header.to_string().into_bytes();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + h.len() + file.len() - 8 - n);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&file[8 + n..]);
    out
}

/// Saves a module's parameters and buffers (plus string metadata).
pub fn save(m: &dyn Module, path: &Path, metadata: &[(&str, String)]) -> Result<()> {
    write_file(path, &module_entries(m, "")?, metadata)
}

/// Saves several modules under prefixes plus loose f32 tensors, in one file:
/// a checkpoint.
pub fn save_checkpoint(
    path: &Path,
    modules: &[(&str, &dyn Module)],
    tensors: &[(String, Tensor)],
    metadata: &[(&str, String)],
) -> Result<()> {
    let mut all = Vec::new();
    for (prefix, m) in modules {
        all.extend(module_entries(*m, prefix)?);
    }
    for (name, t) in tensors {
        let d = t.to_vec()?;
        all.push((
            name.clone(),
            Dtype::F32,
            t.shape().to_vec(),
            bytemuck::cast_slice(&d).to_vec(),
        ));
    }
    write_file(path, &all, metadata)
}

/// Loads the entries of `m` stored under `prefix` in a checkpoint.
pub fn load_prefixed(m: &dyn Module, path: &Path, prefix: &str) -> Result<()> {
    load_impl(m, path, prefix, false)
}

/// Every F32 tensor whose name starts with `prefix`, uploaded, with the prefix removed.
pub fn load_tensors(gpu: &crate::Gpu, path: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let mut out = Vec::new();
    for (name, v) in &file.tensors {
        if let Some(rest) = name.strip_prefix(prefix)
            && v.dtype() == Dtype::F32
        {
            let data: Vec<f32> = bytemuck::pod_collect_to_vec(v.data());
            out.push((rest.to_string(), Tensor::from_slice(gpu, v.shape(), &data)?));
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_regular(path, MAX_FILE_BYTES)
}

/// A parsed file: its tensors by name and its string metadata.
struct Parsed<'a> {
    tensors: BTreeMap<String, TensorView<'a>>,
    metadata: BTreeMap<String, String>,
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Parsed<'a>> {
    let bad = |e: safetensors::SafeTensorError| {
        Error::weights(
            path,
            explain(&e, bytes),
            "the file is not a safetensors file, or it is truncated or damaged",
        )
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(bad)?
        .tensors()
        .into_iter()
        .collect();
    Ok(Parsed { tensors, metadata })
}

/// The crate's error, said in terms of the file.
fn explain(e: &safetensors::SafeTensorError, bytes: &[u8]) -> String {
    use safetensors::SafeTensorError as E;
    let len = bytes.len();
    let declared = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match e {
        E::HeaderTooSmall => format!("{len} bytes is too short for a header"),
        E::InvalidHeaderLength => format!(
            "header length {} runs past the end of the {len}-byte file (truncated?)",
            declared.unwrap_or(0)
        ),
        E::HeaderTooLarge => format!(
            "header length {} is over the format's limit of 100 MB",
            declared.unwrap_or(0)
        ),
        E::MetadataIncompleteBuffer => format!(
            "the tensors' byte ranges do not hold exactly the {len}-byte file's data (truncated or extended?)"
        ),
        E::InvalidOffset(name) => {
            format!("tensor {name}: its byte range does not hold a tensor of its dtype and shape")
        }
        other => format!("not a valid safetensors file ({other})"),
    }
}

/// Loads weights into a module. Every parameter and buffer must be in the file
/// with the same shape; extra entries are an error too. Nothing is changed unless
/// everything matches.
pub fn load(m: &dyn Module, path: &Path) -> Result<()> {
    load_impl(m, path, "", true)
}

fn load_impl(m: &dyn Module, path: &Path, prefix: &str, exact: bool) -> Result<()> {
    let bytes = read(path)?;
    let stored = parse(path, &bytes)?.tensors;
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    m.visit(prefix, &mut |name, e| {
        let (shape, want_dtype) = match &e {
            Entry::Param(v) => (v.shape().to_vec(), Dtype::F32),
            Entry::Buffer(t) => (t.shape().to_vec(), Dtype::F32),
            Entry::Counter(_) => (vec![], Dtype::I64),
        };
        match stored.get(&name) {
            None => problems.push(format!("missing {name} {shape:?}")),
            Some(s) if s.shape() != shape && !(shape.is_empty() && s.shape() == [1]) => problems
                .push(format!(
                    "{name}: file has {:?}, model has {shape:?}",
                    s.shape()
                )),
            Some(s) if s.dtype() != want_dtype => problems.push(format!(
                "{name}: file has {:?}, model wants {want_dtype:?}",
                s.dtype()
            )),
            Some(_) => {}
        }
        expected.push(name);
    });
    if exact {
        for (name, v) in &stored {
            if !expected.contains(name) {
                problems.push(format!("unexpected {name} {:?}", v.shape()));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::weights(
            path,
            format!(
                "weights do not match the model ({} differences):\n    {}",
                problems.len(),
                problems.join("\n    ")
            ),
            "check --model / --teacher-model against the architecture the file was saved from",
        ));
    }
    let f32s = expected
        .iter()
        .map(|n| (n.as_str(), &stored[n]))
        .filter(|(_, s)| s.dtype() == Dtype::F32)
        .map(|(n, s)| (n, s.data()));
    if let Some((name, i, v)) = first_non_finite(f32s) {
        return Err(Error::weights(
            path,
            format!(
                "tensor {name} holds {v} (element {i}); a model with NaN or infinite weights computes nothing useful"
            ),
            "the file comes from a run that diverged: use an earlier checkpoint or train again",
        ));
    }
    let mut err = None;
    m.visit(prefix, &mut |name, e| {
        let raw = stored[&name].data();
        let r = match e {
            Entry::Param(v) => v.value().gpu().write_buffer(v.value().buffer(), raw),
            Entry::Buffer(t) => t.gpu().write_buffer(t.buffer(), raw),
            Entry::Counter(c) => {
                c.set(i64::from_le_bytes(raw.try_into().unwrap_or([0; 8])));
                Ok(())
            }
        };
        if let Err(e) = r {
            err = Some(e);
        }
    });
    err.map_or(Ok(()), Err)
}

/// The string metadata of a weights file (the whole file is checked).
pub fn metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = read(path)?;
    Ok(parse(path, &bytes)?.metadata)
}
