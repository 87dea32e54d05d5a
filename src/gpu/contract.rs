//! Kernel parameter blocks from one declaration: `kernel_params!` defines the
//! `#[repr(C)]` Rust struct that is uploaded as a kernel's uniform block and
//! records its layout (size and field offsets) next to the name of the WGSL
//! file that declares its twin. `tests/shaders.rs` checks every such layout
//! against the struct naga reads from the shader, so a field added, removed or
//! reordered on one side only fails in CI, without a GPU.

/// The layout of one Rust parameter struct and where its WGSL twin lives.
#[derive(Clone, Copy, Debug)]
pub struct ParamLayout {
    /// The shader module (a name in `registry::SHADERS`).
    pub file: &'static str,
    /// The struct's name, the same in Rust and WGSL.
    pub name: &'static str,
    pub size: usize,
    /// (field, byte offset) for every field, padding (`_...`) included.
    pub fields: &'static [(&'static str, usize)],
}

/// Declares a kernel parameter struct and its layout constant `PARAMS`.
#[macro_export]
macro_rules! kernel_params {
    (file = $file:literal; $(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        #[repr(C)]
        $(#[$m])*
        struct $name {
            $($(#[$fm])* $f: $t,)*
        }

        /// The layout of this module's parameter block (see `gpu::contract`).
        pub const PARAMS: $crate::gpu::contract::ParamLayout = $crate::gpu::contract::ParamLayout {
            file: $file,
            name: stringify!($name),
            size: ::std::mem::size_of::<$name>(),
            fields: &[$((stringify!($f), ::std::mem::offset_of!($name, $f))),*],
        };
    };
}

/// Every parameter block the kernels are launched with.
pub fn all() -> Vec<ParamLayout> {
    use crate::{data, ops, optim};
    vec![
        ops::conv::PARAMS,
        ops::elementwise::PARAMS,
        ops::health::PARAMS,
        ops::kd::PARAMS,
        ops::layout::PARAMS,
        ops::losses::PARAMS,
        ops::matmul::PARAMS,
        ops::norm::PARAMS,
        ops::norm::win::PARAMS,
        ops::pool::PARAMS,
        ops::reduce::PARAMS,
        ops::reduce::win::PARAMS,
        ops::resample::PARAMS,
        ops::softmax::PARAMS,
        ops::softmax::win::PARAMS,
        optim::PARAMS,
        optim::multi::PARAMS,
        data::loader::PARAMS,
    ]
}
