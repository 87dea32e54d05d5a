//! Adapter choice and device creation: the adapter's own limits, the optional
//! features condenser can use, and errors that say how to get an adapter.

use crate::error::{Error, Result};

/// What kind of machine runs the kernels; kernels pick variants by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterClass {
    /// A CPU rasterizer such as llvmpipe: few big invocations, no barriers.
    Cpu,
    /// A real GPU: shared-memory tiles and many invocations.
    Gpu,
}

/// Optional features we ask for when the adapter has them.
pub(crate) fn wanted_features(available: wgpu::Features) -> wgpu::Features {
    let wanted = wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
        | wgpu::Features::PIPELINE_CACHE
        | wgpu::Features::SUBGROUP
        | wgpu::Features::SHADER_INT64;
    wanted & available
}

/// Whether the adapter lets kernels read rgba32float and r32float storage
/// textures (the formats operands are staged in).
pub(crate) fn reads_storage_texels(adapter: &wgpu::Adapter) -> bool {
    [
        wgpu::TextureFormat::Rgba32Float,
        wgpu::TextureFormat::R32Float,
    ]
    .iter()
    .all(|&f| {
        adapter
            .get_texture_format_features(f)
            .flags
            .contains(wgpu::TextureFormatFeatureFlags::STORAGE_READ_ONLY)
    })
}

fn rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 1,
        wgpu::DeviceType::Cpu => 0,
    }
}

/// Picks the adapter: `CONDENSER_ADAPTER=<substring>` by name (case-insensitive),
/// otherwise the highest-performance kind present. `WGPU_BACKEND` is honoured by
/// the instance descriptor.
pub(crate) fn choose_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if adapters.is_empty() {
        let detail = match std::env::var("WGPU_BACKEND") {
            Ok(b) => format!(" (WGPU_BACKEND={b} restricts the search)"),
            Err(_) => String::new(),
        };
        return Err(Error::NoAdapter { detail });
    }
    let wanted = std::env::var("CONDENSER_ADAPTER")
        .ok()
        .filter(|s| !s.is_empty());
    let mut candidates: Vec<wgpu::Adapter> = match &wanted {
        Some(w) => {
            let w_lower = w.to_lowercase();
            let (hit, miss): (Vec<_>, Vec<_>) = adapters
                .into_iter()
                .partition(|a| a.get_info().name.to_lowercase().contains(&w_lower));
            if hit.is_empty() {
                let found = miss
                    .iter()
                    .map(|a| {
                        let i = a.get_info();
                        format!("{:?} ({:?})", i.name, i.backend)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::AdapterNotFound {
                    wanted: w.clone(),
                    found,
                });
            }
            hit
        }
        None => adapters,
    };
    // Stable: among equal ranks keep the enumeration order (Vulkan first on Linux).
    candidates.sort_by_key(|a| std::cmp::Reverse(rank(a.get_info().device_type)));
    Ok(candidates.remove(0))
}

pub(crate) fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let features = wanted_features(adapter.features());
    let desc = wgpu::DeviceDescriptor {
        label: Some("condenser"),
        required_features: features,
        // The adapter's own limits: wgpu's defaults cap storage buffers at 128 MiB
        // and workgroup counts lower than most GPUs allow.
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    };
    pollster::block_on(adapter.request_device(&desc)).map_err(|e| Error::RequestDevice {
        adapter: adapter.get_info().name,
        reason: e.to_string(),
    })
}

/// Refuses values of condenser's environment variables that would otherwise be
/// ignored silently (a typo in CONDENSER_KERNELS would test the wrong kernels).
pub(crate) fn check_env() -> Result<()> {
    let check = |var: &str, allowed: &[&str]| match std::env::var(var) {
        Ok(v) if !allowed.contains(&v.as_str()) => Err(Error::range(
            var,
            format!("{v:?}"),
            format!("one of {}, or unset", allowed.join(", ")),
        )),
        _ => Ok(()),
    };
    check("CONDENSER_KERNELS", &["cpu", "gpu"])?;
    check("CONDENSER_SHADER_CHECKS", &["0", "1"])?;
    check("CONDENSER_AUTOTUNE", &["0", "1"])
}

pub(crate) fn classify(info: &wgpu::AdapterInfo) -> AdapterClass {
    match std::env::var("CONDENSER_KERNELS").ok().as_deref() {
        Some("cpu") => return AdapterClass::Cpu,
        Some("gpu") => return AdapterClass::Gpu,
        _ => {}
    }
    if info.device_type == wgpu::DeviceType::Cpu {
        AdapterClass::Cpu
    } else {
        AdapterClass::Gpu
    }
}
