//! The kernel registry: every WGSL file in `shaders/` is embedded in the binary,
//! compiled once per device, and its pipelines are cached by (entry point,
//! pipeline-overridable constants). On adapters with PIPELINE_CACHE the driver's
//! compiled pipelines are persisted on disk, so a second run starts faster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::error::{Error, Result};

/// Helpers every kernel file may use; prepended to each shader.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
const MATMUL_SUBGROUP: &str = include_str!("../../shaders/matmul_subgroup.wgsl");
const MATMUL_TEXTURE: &str = include_str!("../../shaders/matmul_texture.wgsl");
const CONV: &str = include_str!("../../shaders/conv.wgsl");
const LAYOUT: &str = include_str!("../../shaders/layout.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const SOFTMAX: &str = include_str!("../../shaders/softmax.wgsl");
const WIDE: &str = include_str!("../../shaders/wide.wgsl");
const NORM: &str = include_str!("../../shaders/norm.wgsl");
const ELEMENTWISE: &str = include_str!("../../shaders/elementwise.wgsl");
const WINDOWS: &str = include_str!("../../shaders/windows.wgsl");
const OPTIM: &str = include_str!("../../shaders/optim.wgsl");

/// Every shader module: its name and the files it is made of, in order (after
/// the common prelude). A module is compiled once per device.
pub const SHADERS: &[(&str, &[&str])] = &[
    ("elementwise", &[ELEMENTWISE]),
    ("reduce", &[REDUCE]),
    ("matmul", &[MATMUL]),
    ("softmax", &[SOFTMAX]),
    ("augment", &[include_str!("../../shaders/augment.wgsl")]),
    ("conv", &[CONV]),
    ("layout", &[LAYOUT]),
    ("pool", &[include_str!("../../shaders/pool.wgsl")]),
    ("norm", &[NORM]),
    ("losses", &[include_str!("../../shaders/losses.wgsl")]),
    ("optim", &[OPTIM]),
    // Up to 5 (SGD) or 4 (Adam) parameters' updates a launch; shares optim.wgsl's
    // update functions and slot 0's bindings.
    (
        "optim_multi",
        &[OPTIM, include_str!("../../shaders/optim_multi.wgsl")],
    ),
    ("resample", &[include_str!("../../shaders/resample.wgsl")]),
    ("kd", &[include_str!("../../shaders/kd.wgsl")]),
    ("health", &[include_str!("../../shaders/health.wgsl")]),
    ("detect", &[include_str!("../../shaders/detect.wgsl")]),
    // Needs the SUBGROUP feature; shares matmul.wgsl's parameters and helpers.
    ("matmul_subgroup", &[MATMUL, MATMUL_SUBGROUP]),
    // The subgroup matmul reading op(B) from a texture.
    ("matmul_texture", &[MATMUL, MATMUL_SUBGROUP, MATMUL_TEXTURE]),
    // Convolution as an implicit GEMM on the texture matmul.
    (
        "conv_implicit",
        &[
            MATMUL,
            MATMUL_SUBGROUP,
            MATMUL_TEXTURE,
            include_str!("../../shaders/conv_implicit.wgsl"),
        ],
    ),
    // Needs SHADER_INT64; shares elementwise.wgsl's parameters and operators.
    (
        "elementwise64",
        &[
            ELEMENTWISE,
            WIDE,
            include_str!("../../shaders/elementwise64.wgsl"),
        ],
    ),
    // Needs uniform windows (Gpu::windows_ok); shares elementwise.wgsl's
    // parameters and operators.
    (
        "elementwise_win",
        &[
            ELEMENTWISE,
            WINDOWS,
            include_str!("../../shaders/elementwise_win.wgsl"),
        ],
    ),
    // Needs uniform windows and SHADER_INT64: elementwise_win's kernels
    // writing 64-bit words.
    (
        "elementwise_win64",
        &[
            ELEMENTWISE,
            WIDE,
            WINDOWS,
            include_str!("../../shaders/elementwise_win.wgsl"),
            include_str!("../../shaders/elementwise_win64.wgsl"),
        ],
    ),
    // Needs uniform windows; shares reduce.wgsl's output and max helpers.
    (
        "reduce_win",
        &[
            REDUCE,
            WINDOWS,
            include_str!("../../shaders/reduce_win.wgsl"),
        ],
    ),
    // Needs uniform windows; shares softmax.wgsl's output binding and LOG.
    (
        "softmax_win",
        &[
            SOFTMAX,
            WINDOWS,
            include_str!("../../shaders/softmax_win.wgsl"),
        ],
    ),
    // Needs uniform windows; shares norm.wgsl's output, pipeline constants
    // and activation helpers.
    (
        "norm_win",
        &[NORM, WINDOWS, include_str!("../../shaders/norm_win.wgsl")],
    ),
    // norm_win's per-element kernels writing 64-bit words (SHADER_INT64).
    (
        "norm_win64",
        &[
            NORM,
            WIDE,
            WINDOWS,
            include_str!("../../shaders/norm_win.wgsl"),
            include_str!("../../shaders/norm_win64.wgsl"),
        ],
    ),
    (
        "conv64",
        &[CONV, WIDE, include_str!("../../shaders/conv64.wgsl")],
    ),
    (
        "layout64",
        &[LAYOUT, WIDE, include_str!("../../shaders/layout64.wgsl")],
    ),
    (
        "reduce64",
        &[REDUCE, WIDE, include_str!("../../shaders/reduce64.wgsl")],
    ),
    (
        "norm64",
        &[NORM, WIDE, include_str!("../../shaders/norm64.wgsl")],
    ),
    (
        "softmax64",
        &[SOFTMAX, WIDE, include_str!("../../shaders/softmax64.wgsl")],
    ),
];

/// The full source the device compiles for a shader module: the common prelude
/// followed by the module's files.
pub fn shader_source(module: &str) -> Option<String> {
    SHADERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, parts)| format!("{COMMON}\n{}", parts.join("\n")))
}

/// Names one pipeline: a shader file, an entry point and values for its
/// `override` constants.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSpec {
    pub file: &'static str,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
}

impl KernelSpec {
    pub fn new(file: &'static str, entry: &'static str) -> Self {
        KernelSpec {
            file,
            entry,
            constants: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: f64) -> Self {
        self.constants.push((name, value));
        self
    }

    fn key(&self) -> String {
        let mut k = format!("{}::{}", self.file, self.entry);
        for (n, v) in &self.constants {
            k.push_str(&format!(",{n}={v}"));
        }
        k
    }

    /// A short name for profiles and errors: `matmul::mm_tiled`.
    pub fn name(&self) -> String {
        self.key()
    }
}

/// A compiled compute pipeline and the layout of its bind group 0.
pub struct Kernel {
    pub(crate) name: String,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) info: EntryInfo,
    /// Whether the layout is reflection's (parameters at a dynamic offset),
    /// not wgpu's derived one.
    pub(crate) dynamic_params: bool,
    /// Which pipeline this is, never reused (keys of kept bind groups).
    pub(crate) serial: u64,
}

/// What the launch path needs to know of an entry point, read from the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// `@workgroup_size(x, y, z)`.
    pub workgroup_size: [u32; 3],
    /// Whether it reads the parameter block at binding 0 (bound only if so).
    pub reads_params: bool,
    /// Bit b set: the entry point stores to the storage buffer at binding b,
    /// so a launch changes the buffer bound there (bindings past 63 count as
    /// written). What the content stamps of `gpu::pool` rest on.
    pub writes: u64,
}

impl EntryInfo {
    /// What is assumed of an entry point reflection did not find: it reads
    /// its parameters and may write every binding.
    pub(crate) fn unknown() -> Self {
        EntryInfo {
            workgroup_size: [1, 1, 1],
            reads_params: true,
            writes: u64::MAX,
        }
    }

    /// Whether a launch may write the buffer bound at `slot`.
    pub fn may_write(&self, slot: u32) -> bool {
        slot >= 64 || self.writes & (1 << slot) != 0
    }

    /// Invocations per workgroup.
    pub fn invocations(&self) -> u64 {
        self.workgroup_size.iter().map(|&v| v as u64).product()
    }
}

/// The entry points of a shader module with their `EntryInfo`, read with naga
/// (the front end wgpu uses): workgroup sizes are written once, in the shader.
pub fn reflect(file: &str) -> Result<HashMap<String, EntryInfo>> {
    Ok(reflect_all(file)?
        .into_iter()
        .map(|(name, (info, _))| (name, info))
        .collect())
}

/// What reflection gives each entry point: its `EntryInfo` and, where every
/// binding it uses has a known type, the layout of its bind group 0 with the
/// parameter block at a dynamic offset (None: wgpu derives the layout).
type Reflected = HashMap<String, (EntryInfo, Option<Vec<wgpu::BindGroupLayoutEntry>>)>;

fn reflect_all(file: &str) -> Result<Reflected> {
    let src = shader_source(file).ok_or_else(|| Error::Shader {
        kernel: file.to_string(),
        message: format!("no shader file named {file:?} is registered"),
    })?;
    let bad = |message: String| Error::Shader {
        kernel: file.to_string(),
        message,
    };
    let module = naga::front::wgsl::parse_str(&src).map_err(|e| bad(e.emit_to_string(&src)))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| bad(e.emit_to_string(&src)))?;
    // A module's files may each declare their own parameter block at binding
    // 0 (each entry point reads at most one).
    let params: Vec<_> = module
        .global_variables
        .iter()
        .filter(|(_, g)| {
            g.binding
                .as_ref()
                .is_some_and(|b| b.group == 0 && b.binding == 0)
        })
        .map(|(h, _)| h)
        .collect();
    Ok(module
        .entry_points
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let uses = info.get_entry_point(i);
            let reads_params = params.iter().any(|&h| !uses[h].is_empty());
            let e = EntryInfo {
                workgroup_size: ep.workgroup_size,
                reads_params,
                writes: written_bindings(&module, &info, i),
            };
            (ep.name.clone(), (e, layout_entries(&module, &info, i)))
        })
        .collect())
}

/// The bind group 0 layout of entry point `entry`: the bindings it uses (as
/// wgpu's derived layout has them: naga's use analysis), the parameter
/// block at binding 0 and any uniform window with a dynamic offset, so that
/// one bind group serves every launch with the same buffers whatever the
/// parameters and window positions (see `gpu::dispatch`). None where a binding is of a kind not mapped here.
fn layout_entries(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: usize,
) -> Option<Vec<wgpu::BindGroupLayoutEntry>> {
    let uses = info.get_entry_point(entry);
    let mut out = Vec::new();
    for (h, g) in module.global_variables.iter() {
        let Some(b) = g.binding.as_ref().filter(|b| b.group == 0) else {
            continue;
        };
        if uses[h].is_empty() {
            continue;
        }
        let ty = match g.space {
            // Binding 0: the parameters; any other: a window (`Binding::window`).
            naga::AddressSpace::Uniform => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            naga::AddressSpace::Storage { access } => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: !access.contains(naga::StorageAccess::STORE),
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            naga::AddressSpace::Handle => image_binding(&module.types[g.ty].inner)?,
            _ => return None,
        };
        out.push(wgpu::BindGroupLayoutEntry {
            binding: b.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        });
    }
    Some(out)
}

/// The binding type of a 2D texture the kernels read with textureLoad or
/// write as storage (rgba32float, r32float); None for anything else.
fn image_binding(ty: &naga::TypeInner) -> Option<wgpu::BindingType> {
    let naga::TypeInner::Image {
        dim: naga::ImageDimension::D2,
        arrayed: false,
        class,
    } = ty
    else {
        return None;
    };
    match *class {
        naga::ImageClass::Sampled {
            kind: naga::ScalarKind::Float,
            multi: false,
        } => Some(wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        }),
        naga::ImageClass::Storage { format, access } => {
            let format = match format {
                naga::StorageFormat::Rgba32Float => wgpu::TextureFormat::Rgba32Float,
                naga::StorageFormat::R32Float => wgpu::TextureFormat::R32Float,
                _ => return None,
            };
            let load = access.contains(naga::StorageAccess::LOAD);
            let store = access.contains(naga::StorageAccess::STORE);
            let access = match (load, store) {
                (true, true) => wgpu::StorageTextureAccess::ReadWrite,
                (true, false) => wgpu::StorageTextureAccess::ReadOnly,
                _ => wgpu::StorageTextureAccess::WriteOnly,
            };
            Some(wgpu::BindingType::StorageTexture {
                access,
                format,
                view_dimension: wgpu::TextureViewDimension::D2,
            })
        }
        _ => None,
    }
}

/// The storage buffers of group 0 that entry point `entry` stores to, as a
/// mask, by naga's use analysis (which follows calls into functions): an
/// entry point that only reads a buffer declared `read_write` (batch norm's
/// eval statistics from the running ones, which training updates) leaves
/// its stamp alone. Atomics count as stores.
fn written_bindings(module: &naga::Module, info: &naga::valid::ModuleInfo, entry: usize) -> u64 {
    let uses = info.get_entry_point(entry);
    let mut mask = 0u64;
    for (h, g) in module.global_variables.iter() {
        let (Some(b), naga::AddressSpace::Storage { .. }) = (&g.binding, g.space) else {
            continue;
        };
        let stores =
            uses[h].intersects(naga::valid::GlobalUse::WRITE | naga::valid::GlobalUse::ATOMIC);
        if b.group == 0 && stores {
            mask |= if b.binding < 64 {
                1 << b.binding
            } else {
                u64::MAX
            };
        }
    }
    mask
}

pub(crate) struct Registry {
    modules: HashMap<&'static str, (wgpu::ShaderModule, Reflected)>,
    pipelines: HashMap<String, Rc<Kernel>>,
    cache: Option<wgpu::PipelineCache>,
    cache_path: Option<PathBuf>,
    /// Pipelines created since the cache was loaded; the cache is saved only if > 0.
    new_pipelines: usize,
}

/// Where the pipeline cache lives: `CONDENSER_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/condenser`, else `$HOME/.cache/condenser`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("CONDENSER_CACHE_DIR") {
        return (!d.is_empty()).then(|| PathBuf::from(d));
    }
    if let Ok(d) = std::env::var("XDG_CACHE_HOME")
        && !d.is_empty()
    {
        return Some(PathBuf::from(d).join("condenser"));
    }
    std::env::var("HOME")
        .ok()
        .map(|h| PathBuf::from(h).join(".cache").join("condenser"))
}

impl Registry {
    pub fn new(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Self {
        let mut reg = Registry {
            modules: HashMap::new(),
            pipelines: HashMap::new(),
            cache: None,
            cache_path: None,
            new_pipelines: 0,
        };
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return reg;
        }
        let (Some(dir), Some(key)) = (cache_dir(), wgpu::util::pipeline_cache_key(info)) else {
            return reg;
        };
        let path = dir.join(key);
        // Bounded, regular files only: a cache path that is a FIFO must not hang us.
        let data = crate::fsutil::read_regular(&path, 1 << 30).ok();
        // SAFETY: the data was written by `PipelineCache::get_data` for an adapter with
        // the same cache key (vendor, device, driver); `fallback: true` makes the
        // driver start empty if it rejects the blob (validated by the Vulkan header).
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("condenser.pipeline_cache"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        reg.cache = Some(cache);
        reg.cache_path = Some(path);
        reg
    }

    pub fn get(&mut self, device: &wgpu::Device, spec: &KernelSpec) -> Result<Rc<Kernel>> {
        let key = spec.key();
        if let Some(k) = self.pipelines.get(&key) {
            return Ok(k.clone());
        }
        // Read before the error scope opens, so that an early return leaves none open.
        let reflected = match self.modules.contains_key(spec.file) {
            true => None,
            false => Some(reflect_all(spec.file)?),
        };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        if let Some(entries) = reflected {
            let src = shader_source(spec.file).expect("reflect found the file");
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(spec.file),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            };
            let module = if std::env::var_os("CONDENSER_SHADER_CHECKS").is_some_and(|v| v != "0") {
                device.create_shader_module(desc)
            } else {
                // SAFETY: condenser's kernels clamp or bound-check every index
                // themselves (and are tested on awkward shapes), so naga's extra
                // per-access bounds checks and loop counters only cost time: on
                // llvmpipe they slow the matmul kernels by ~1.7x.
                // CONDENSER_SHADER_CHECKS=1 turns them back on for debugging.
                unsafe {
                    device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            };
            self.modules.insert(spec.file, (module, entries));
        }
        let (module, entries) = &self.modules[spec.file];
        // A missing entry point is reported by the pipeline's error scope below.
        let (info, entries) = entries
            .get(spec.entry)
            .cloned()
            .unwrap_or_else(|| (EntryInfo::unknown(), None));
        let explicit = entries.map(|e| {
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&key),
                entries: &e,
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&key),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (bgl, pl)
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&key),
            layout: explicit.as_ref().map(|(_, pl)| pl),
            module,
            entry_point: Some(spec.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &spec.constants,
                // Kernels initialise their own workgroup memory.
                zero_initialize_workgroup_memory: false,
            },
            cache: self.cache.as_ref(),
        });
        let dynamic_params = explicit.is_some();
        let layout = match explicit {
            Some((bgl, _)) => bgl,
            None => pipeline.get_bind_group_layout(0),
        };
        if let Some(err) = pollster::block_on(scope.pop()) {
            // A broken module stays broken: forget it so the error repeats clearly.
            self.modules.remove(spec.file);
            return Err(Error::Shader {
                kernel: key,
                message: err.to_string(),
            });
        }
        let kernel = Rc::new(Kernel {
            name: key.clone(),
            pipeline,
            layout,
            info,
            dynamic_params,
            serial: super::pool::next_serial(),
        });
        self.pipelines.insert(key, kernel.clone());
        self.new_pipelines += 1;
        Ok(kernel)
    }

    pub fn cache_path(&self) -> Option<&PathBuf> {
        self.cache_path.as_ref()
    }

    /// Writes the pipeline cache atomically (temporary file + rename), so a crash
    /// mid-write never leaves a torn cache behind.
    pub fn save_cache(&mut self) -> Result<()> {
        if self.new_pipelines == 0 {
            return Ok(());
        }
        let (Some(cache), Some(path)) = (&self.cache, &self.cache_path) else {
            return Ok(());
        };
        let Some(data) = cache.get_data() else {
            return Ok(());
        };
        crate::fsutil::write_atomic(path, &data)?;
        self.new_pipelines = 0;
        Ok(())
    }
}
