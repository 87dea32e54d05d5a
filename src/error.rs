//! Errors as values. Every message says what went wrong and, where there is one,
//! what the user can do about it.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{detail}.\n  On a headless Linux machine install a software Vulkan driver: \
         `apt-get install -y mesa-vulkan-drivers` (gives the `llvmpipe` adapter).\n  \
         With a GPU, install its Vulkan/Metal/DX12 driver; WGPU_BACKEND=vulkan|metal|dx12 picks a backend."
    )]
    NoAdapter { detail: String },

    #[error(
        "no adapter name contains {wanted:?} (from CONDENSER_ADAPTER); adapters found: {found}.\n  \
         Unset CONDENSER_ADAPTER or set it to part of one of these names."
    )]
    AdapterNotFound { wanted: String, found: String },

    #[error("could not open the GPU device on {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },

    #[error("shader `{kernel}` failed to compile or validate on this adapter: {message}")]
    Shader { kernel: String, message: String },

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error("shape error in {op}: {msg}")]
    Shape { op: &'static str, msg: String },

    #[error(
        "a {bytes}-byte buffer exceeds this adapter's limit of {limit} bytes for {what}; \
         use smaller batches or tensors"
    )]
    TooLarge {
        bytes: u64,
        limit: u64,
        what: &'static str,
    },

    /// A setting that cannot be used: an unknown name, a bad combination of
    /// flags, a malformed value. The message says which and what is valid.
    #[error("{0}")]
    Config(String),

    /// A tensor of the wrong element type reached an op.
    #[error("dtype error in {op}: expects {want} data, got {got}")]
    DType {
        op: &'static str,
        want: String,
        got: String,
    },

    /// Drawing or encoding a figure failed.
    #[error("report error: {0}")]
    Report(String),

    /// A broken internal invariant: a bug in condenser, never bad input.
    #[error("internal error (a bug in condenser; please report it): {0}")]
    Internal(String),

    /// A data set that is missing, truncated or corrupt: where, what, and what to do.
    #[error("data set error in {path}: {msg}{}", hint_line(hint))]
    Data {
        path: String,
        msg: String,
        hint: String,
    },

    /// A weights file (a model to load): where, what, and what to do.
    #[error("weights file {path}: {msg}{}", hint_line(hint))]
    Weights {
        path: String,
        msg: String,
        hint: String,
    },

    /// A run's checkpoint that cannot be resumed: where, what, and what to do.
    #[error("checkpoint {path}: {msg}{}", hint_line(hint))]
    Checkpoint {
        path: String,
        msg: String,
        hint: String,
    },

    /// A value out of its valid range (a flag, a config field, an environment variable).
    #[error("{what} = {value} is out of range: {range}")]
    Range {
        what: String,
        value: String,
        range: String,
    },

    /// Training produced a non-finite number.
    #[error("{0}")]
    Diverged(String),

    /// The output folder holds a run and the user did not say to resume or replace it.
    #[error(
        "{path} already holds a run ({found}); nothing was changed.\n  \
         Pass --resume to continue it, --overwrite to replace it, or choose another --out"
    )]
    RunExists { path: String, found: String },

    /// Another process holds the run folder's lock.
    #[error(
        "{path} is in use by another condenser run ({holder}); wait for it to finish, \
         or choose another --out"
    )]
    Busy { path: String, holder: String },

    #[error("I/O error on {path}: {source}{}", io_hint(.source))]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn hint_line(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("\n  {hint}")
    }
}

/// What to do about an I/O error whose cause the user can act on: a full
/// disk or a file-size limit (files condenser replaces are written aside and
/// renamed, see `fsutil::write_atomic`, so the old ones stay whole), or a
/// path condenser may not use. The same error comes from reads too, so the
/// hints do not assume a write.
fn io_hint(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let hint = match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            "the disk is full or a size limit was reached: free space (or raise the limit), \
             then run the same command again; a training run continues from its last \
             checkpoint with --resume"
        }
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "condenser may not use this path: check its permissions, or for output \
             choose another --out"
        }
        _ => "",
    };
    hint_line(hint)
}

/// A path for a message: absolute when it names a file system entry, so the
/// message is unambiguous; a data set's bare name (`cifar10`) stays as it is.
fn where_(path: &std::path::Path) -> String {
    if path.exists() || path.parent().is_some_and(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::shown(path)
    } else {
        path.display().to_string()
    }
}

impl Error {
    pub(crate) fn data(
        path: impl AsRef<std::path::Path>,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: where_(path.as_ref()),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn weights(
        path: impl AsRef<std::path::Path>,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Weights {
            path: where_(path.as_ref()),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn checkpoint(
        path: impl AsRef<std::path::Path>,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Checkpoint {
            path: where_(path.as_ref()),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    /// `what = value` outside `range` (say the valid range in words).
    pub fn range(
        what: impl Into<String>,
        value: impl std::fmt::Display,
        range: impl Into<String>,
    ) -> Self {
        Error::Range {
            what: what.into(),
            value: value.to_string(),
            range: range.into(),
        }
    }

    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(code: i32) -> String {
        Error::Io {
            path: "/x/checkpoint.safetensors".into(),
            source: std::io::Error::from_raw_os_error(code),
        }
        .to_string()
    }

    #[test]
    fn io_errors_say_what_to_do_where_the_user_can_act() {
        // ENOSPC, EFBIG (a file-size limit), EDQUOT: free space, then resume.
        for code in [28, 27, 122] {
            let m = io(code);
            assert!(m.contains("free space") && m.contains("--resume"), "{m}");
        }
        // EACCES, EROFS: somewhere else.
        for code in [13, 30] {
            assert!(io(code).contains("choose another --out"), "{}", io(code));
        }
        // ENOENT: the OS's words alone.
        assert!(!io(2).contains('\n'), "{}", io(2));
    }
}
