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

    #[error("{0}")]
    Invalid(String),

    /// A data set that is missing, truncated or corrupt: where, what, and what to do.
    #[error("data set error in {path}: {msg}{}", if hint.is_empty() { String::new() } else { format!("\n  {hint}") })]
    Data {
        path: String,
        msg: String,
        hint: String,
    },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn data(
        path: impl AsRef<std::path::Path>,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::Data {
            path: path.as_ref().display().to_string(),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
}
