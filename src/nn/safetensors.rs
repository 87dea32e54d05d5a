//! Weights in the safetensors format (a little-endian u64 header length, a JSON
//! header of name -> dtype, shape, byte range, then the raw data), with PyTorch's
//! parameter names, so files move both ways between condenser and PyTorch.
//! Written atomically; loading checks every name, shape and byte range and says
//! what differs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Entry, Module};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::tensor::Tensor;

type Raw = (String, &'static str, Vec<usize>, Vec<u8>);

/// A module's entries as (name, dtype, shape, little-endian bytes).
fn module_entries(m: &dyn Module, prefix: &str) -> Result<Vec<Raw>> {
    let mut tensors: Vec<Raw> = Vec::new();
    let mut err = None;
    m.visit(prefix, &mut |name, e| {
        let item = match e {
            Entry::Param(v) => v
                .value()
                .to_vec()
                .map(|d| ("F32", v.shape().to_vec(), bytemuck::cast_slice(&d).to_vec())),
            Entry::Buffer(t) => t
                .to_vec()
                .map(|d| ("F32", t.shape().to_vec(), bytemuck::cast_slice(&d).to_vec())),
            Entry::Counter(c) => Ok(("I64", vec![], c.get().to_le_bytes().to_vec())),
        };
        match item {
            Ok((dt, shape, bytes)) => tensors.push((name, dt, shape, bytes)),
            Err(e) => err = Some(e),
        }
    });
    err.map_or(Ok(tensors), Err)
}

fn write_file(path: &Path, tensors: &[Raw], metadata: &[(&str, String)]) -> Result<()> {
    // A file of NaNs would be a trap for whoever loads it: refuse to write one.
    let f32s = tensors
        .iter()
        .filter(|t| t.1 == "F32")
        .map(|t| (t.0.as_str(), t.3.as_slice()));
    if let Some((name, i, v)) = first_non_finite(f32s) {
        return Err(Error::weights(
            path,
            format!("not written: tensor {name} holds {v} (element {i})"),
            "the model diverged; any earlier file at this path is unchanged",
        ));
    }
    let mut header = Map::new();
    let meta: Map<String, Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    if !meta.is_empty() {
        header.insert("__metadata__".into(), Value::Object(meta));
    }
    let mut offset = 0usize;
    for (name, dt, shape, bytes) in tensors {
        header.insert(
            name.clone(),
            json!({"dtype": dt, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
    }
    let mut h = Value::Object(header).to_string().into_bytes();
    // Pad the header with spaces so the data starts 8-byte aligned (as the format recommends).
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    write_atomic(path, &out)
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
            "F32",
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
    let (stored, base) = parse(path, &bytes)?;
    let mut out = Vec::new();
    for (name, s) in &stored {
        if let Some(rest) = name.strip_prefix(prefix)
            && s.dtype == "F32"
        {
            let data: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[base + s.start..base + s.end]);
            out.push((rest.to_string(), Tensor::from_slice(gpu, &s.shape, &data)?));
        }
    }
    Ok(out)
}

/// The largest weights file read (bytes); everything is read into memory.
pub const MAX_FILE_BYTES: u64 = 16 << 30;
/// The format's own bound on the JSON header.
const MAX_HEADER_BYTES: usize = 100 << 20;

fn read(path: &Path) -> Result<Vec<u8>> {
    crate::fsutil::read_regular(path, MAX_FILE_BYTES)
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

struct Stored {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

fn parse(path: &Path, bytes: &[u8]) -> Result<(BTreeMap<String, Stored>, usize)> {
    let bad = |msg: String| {
        Error::weights(
            path,
            msg,
            "the file is not a safetensors file or is damaged",
        )
    };
    if bytes.len() < 8 {
        return Err(bad(format!(
            "{} bytes is too short for a header",
            bytes.len()
        )));
    }
    let hlen = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if hlen > MAX_HEADER_BYTES as u64 {
        return Err(bad(format!(
            "header length {hlen} is over the format's limit of {MAX_HEADER_BYTES} bytes"
        )));
    }
    let hlen = hlen as usize;
    if hlen > bytes.len() - 8 {
        return Err(bad(format!(
            "header length {hlen} runs past the end of the {}-byte file (truncated?)",
            bytes.len()
        )));
    }
    let header: Value = serde_json::from_slice(&bytes[8..8 + hlen])
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?;
    let data_len = bytes.len() - 8 - hlen;
    let mut out = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let field = |k: &str| v.get(k).ok_or_else(|| bad(format!("{name}: missing {k}")));
        let dtype = field("dtype")?
            .as_str()
            .ok_or_else(|| bad(format!("{name}: dtype is not a string")))?
            .to_string();
        let shape: Vec<usize> = field("shape")?
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("{name}: bad shape")))?;
        let offs: Vec<usize> = field("data_offsets")?
            .as_array()
            .and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
            .ok_or_else(|| bad(format!("{name}: bad data_offsets")))?;
        let [start, end] = offs[..] else {
            return Err(bad(format!("{name}: data_offsets must hold two numbers")));
        };
        let elem = match dtype.as_str() {
            "F32" | "I32" | "U32" => 4,
            "I64" | "F64" => 8,
            "F16" | "BF16" => 2,
            _ => 1,
        };
        let want = shape
            .iter()
            .try_fold(elem as usize, |a: usize, &d| a.checked_mul(d))
            .ok_or_else(|| bad(format!("{name}: shape {shape:?} overflows")))?;
        if start > end || end > data_len || end - start != want {
            return Err(bad(format!(
                "{name}: bytes {start}..{end} do not hold a {dtype} tensor of shape {shape:?} inside {data_len} bytes of data"
            )));
        }
        out.insert(
            name.clone(),
            Stored {
                dtype,
                shape,
                start,
                end,
            },
        );
    }
    Ok((out, 8 + hlen))
}

/// Loads weights into a module. Every parameter and buffer must be in the file
/// with the same shape; extra entries are an error too. Nothing is changed unless
/// everything matches.
pub fn load(m: &dyn Module, path: &Path) -> Result<()> {
    load_impl(m, path, "", true)
}

fn load_impl(m: &dyn Module, path: &Path, prefix: &str, exact: bool) -> Result<()> {
    let bytes = read(path)?;
    let (stored, base) = parse(path, &bytes)?;
    let mut problems = Vec::new();
    let mut expected = Vec::new();
    m.visit(prefix, &mut |name, e| {
        let (shape, want_dtype) = match &e {
            Entry::Param(v) => (v.shape().to_vec(), "F32"),
            Entry::Buffer(t) => (t.shape().to_vec(), "F32"),
            Entry::Counter(_) => (vec![], "I64"),
        };
        match stored.get(&name) {
            None => problems.push(format!("missing {name} {shape:?}")),
            Some(s) if s.shape != shape && !(shape.is_empty() && s.shape == [1]) => problems.push(
                format!("{name}: file has {:?}, model has {shape:?}", s.shape),
            ),
            Some(s) if s.dtype != want_dtype => problems.push(format!(
                "{name}: file has {}, model wants {want_dtype}",
                s.dtype
            )),
            Some(_) => {}
        }
        expected.push(name);
    });
    if exact {
        for name in stored.keys() {
            if !expected.contains(name) {
                problems.push(format!("unexpected {name} {:?}", stored[name].shape));
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
        .filter(|(_, s)| s.dtype == "F32")
        .map(|(n, s)| (n, &bytes[base + s.start..base + s.end]));
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
        let s = &stored[&name];
        let raw = &bytes[base + s.start..base + s.end];
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

/// The string metadata of a weights file.
pub fn metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let bytes = read(path)?;
    parse(path, &bytes)?;
    let hlen = u64::from_le_bytes(bytes[..8].try_into().expect("checked")) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + hlen])
        .map_err(|e| Error::weights(path, e.to_string(), ""))?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default())
}
