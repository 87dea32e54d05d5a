//! Every shader file parses and validates with naga: no GPU needed.

use condenser::gpu::registry::{SHADERS, shader_source};

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    // Subgroup and 64-bit-word kernels are only compiled where the adapter has
    // SUBGROUP and SHADER_INT64.
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default()
            | naga::valid::Capabilities::SUBGROUP
            | naga::valid::Capabilities::SHADER_INT64,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
}

#[test]
fn every_registered_shader_validates() {
    for (name, _) in SHADERS {
        validate(name, &shader_source(name).unwrap());
    }
}

#[test]
fn every_file_in_shaders_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut found = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            // Shared preludes: common.wgsl goes before every module,
            // wide.wgsl into the 64-bit-word modules, windows.wgsl into the
            // uniform-window modules.
            if stem == "common" || stem == "wide" || stem == "windows" {
                continue;
            }
            found += 1;
            assert!(
                SHADERS.iter().any(|(n, _)| *n == stem),
                "shaders/{stem}.wgsl is not in the registry (src/gpu/registry.rs)"
            );
        }
    }
    assert_eq!(found, SHADERS.len());
}

#[test]
fn a_broken_shader_is_rejected() {
    // The check above must be able to fail.
    let bad = "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }";
    assert!(
        naga::front::wgsl::parse_str(bad)
            .ok()
            .and_then(|m| naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default()
            )
            .validate(&m)
            .ok())
            .is_none()
    );
}

#[test]
fn every_entry_point_has_its_workgroup_size_in_the_shader() {
    // The launch path reads workgroup sizes and whether binding 0 (the
    // parameters) is read from the shader itself; every entry point must
    // reflect, and the module-wide parameter block must exist where read.
    let mut entries = 0;
    for (name, _) in SHADERS {
        let info = condenser::gpu::registry::reflect(name).unwrap();
        assert!(!info.is_empty(), "{name}: no entry points");
        for (ep, e) in &info {
            assert!(
                e.invocations() >= 1 && e.invocations() <= 1024,
                "{name}::{ep}: {e:?}"
            );
            entries += 1;
        }
    }
    assert!(entries >= 40, "{entries}");
    let losses = condenser::gpu::registry::reflect("losses").unwrap();
    assert!(!losses["mean_of"].reads_params && losses["forward"].reads_params);
    assert_eq!(losses["forward"].workgroup_size, [64, 1, 1]);
}

#[test]
fn reflection_marks_the_buffers_each_entry_point_stores_to() {
    // Content stamps (the packed-weight and derived-tensor caches) trust a
    // buffer until a launch binds it where the entry point stores: every
    // storage buffer an entry point writes (naga's use analysis, through
    // called functions) must be marked, and only a buffer declared
    // read_write may be. Known answers, read off the WGSL by hand, pin the
    // analysis: matmul writes C only; batch norm's eval statistics read the
    // running statistics that its training statistics write; the optimisers
    // write the weights and their momentum / moments.
    let mut writes = 0;
    for (name, _) in SHADERS {
        let reflected = condenser::gpu::registry::reflect(name).unwrap();
        let (module, info) = parse(name);
        for (i, ep) in module.entry_points.iter().enumerate() {
            let uses = info.get_entry_point(i);
            let e = reflected[&ep.name];
            // Several globals may share a binding (views as f32 and vec4).
            let mut stored = std::collections::BTreeSet::new();
            let mut storage = std::collections::BTreeSet::new();
            for (h, g) in module.global_variables.iter() {
                let Some(b) = &g.binding else { continue };
                let naga::AddressSpace::Storage { access } = g.space else {
                    continue;
                };
                storage.insert(b.binding);
                if uses[h].contains(naga::valid::GlobalUse::WRITE)
                    || uses[h].contains(naga::valid::GlobalUse::ATOMIC)
                {
                    let at = format!("{name}::{}: binding {}", ep.name, b.binding);
                    assert!(access.contains(naga::StorageAccess::STORE), "{at}");
                    stored.insert(b.binding);
                }
            }
            for b in storage {
                let at = format!("{name}::{}: binding {b}", ep.name);
                assert_eq!(e.may_write(b), stored.contains(&b), "{at}");
            }
            writes += stored.len();
        }
    }
    assert!(writes >= 40, "{writes}");
    let marks = |module: &str, entry: &str, slots: std::ops::Range<u32>| -> Vec<u32> {
        let e = condenser::gpu::registry::reflect(module).unwrap()[entry];
        slots.filter(|&s| e.may_write(s)).collect()
    };
    assert_eq!(marks("matmul_texture", "mm_cpu_texture", 1..8), [1]);
    assert_eq!(
        marks("matmul_texture", "mm_pack_b", 1..8),
        Vec::<u32>::new()
    );
    assert_eq!(marks("norm", "stats_eval", 1..12), [1]);
    assert_eq!(marks("norm", "stats_combine", 1..12), [1, 9, 10]);
    assert_eq!(marks("optim", "sgd", 1..5), [1, 3]);
    assert_eq!(marks("optim", "adam", 1..5), [1, 3, 4]);
    // The grouped updates stamp every slot's weight and state (a stale stamp
    // would let a packed copy of last step's weights be reused).
    assert_eq!(
        marks("optim_multi", "sgd_multi", 1..21),
        [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    );
    assert_eq!(
        marks("optim_multi", "adam_multi", 1..17),
        [1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16]
    );
}

fn parse(name: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = shader_source(name).unwrap();
    let module = naga::front::wgsl::parse_str(&src).unwrap();
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
    (module, info)
}

#[test]
fn every_rust_parameter_block_matches_its_wgsl_struct() {
    let layouts = condenser::gpu::contract::all();
    assert!(layouts.len() >= 14);
    for l in layouts {
        let (module, _) = parse(l.file);
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(l.name))
            .unwrap_or_else(|| panic!("shaders/{}.wgsl declares no struct {}", l.file, l.name));
        let naga::TypeInner::Struct { members, span } = &ty.1.inner else {
            panic!("{} in {} is not a struct", l.name, l.file);
        };
        let what = format!("{} (Rust) vs shaders/{}.wgsl", l.name, l.file);
        assert_eq!(*span as usize, l.size, "{what}: size");
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .filter_map(|m| m.name.as_deref().map(|n| (n, m.offset as usize)))
            .filter(|(n, _)| !n.starts_with('_'))
            .collect();
        let rust: Vec<(&str, usize)> = l
            .fields
            .iter()
            .copied()
            .filter(|(n, _)| !n.starts_with('_'))
            .collect();
        assert_eq!(rust, wgsl, "{what}: fields (name, offset) in order");
    }
}

#[test]
fn a_parameter_mismatch_would_be_caught() {
    // The comparison above must be able to fail: a WGSL struct with a field
    // moved sits at other offsets than the Rust one.
    let l = condenser::ops::kd::PARAMS;
    let moved = "struct KdParams { k: u32, n: u32, inv_t: f32, grad_scale: f32 }\n\
                 @group(0) @binding(0) var<uniform> p: KdParams;\n\
                 @compute @workgroup_size(1) fn main() { _ = p.n; }";
    let module = naga::front::wgsl::parse_str(moved).unwrap();
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("KdParams"))
        .unwrap();
    let naga::TypeInner::Struct { members, .. } = &ty.inner else {
        unreachable!()
    };
    let n_at = members
        .iter()
        .find(|m| m.name.as_deref() == Some("n"))
        .unwrap()
        .offset as usize;
    assert_ne!(
        Some(n_at),
        l.fields.iter().find(|f| f.0 == "n").map(|f| f.1)
    );
}

/// Each module for each entry point, after override processing as wgpu does
/// at pipeline creation, through naga's MSL (Metal), HLSL (DX12) and SPIR-V
/// (Vulkan) writers with subgroups enabled: a kernel that could not run on a
/// Mac or on Windows fails here, without either.
#[test]
fn every_shader_translates_to_msl_hlsl_and_spirv() {
    let mut translated = 0;
    for (name, _) in SHADERS {
        let (module, info) = parse(name);
        for ep in &module.entry_points {
            let stage = (naga::ShaderStage::Compute, ep.name.clone());
            let (m, i) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((naga::ShaderStage::Compute, &ep.name)),
                &Default::default(),
            )
            .unwrap_or_else(|e| panic!("{name}::{}: overrides: {e}", ep.name));
            let msl = naga::back::msl::Options {
                // Metal's simdgroup functions need MSL 2.1 or later.
                lang_version: (2, 4),
                ..Default::default()
            };
            let msl_pipeline = naga::back::msl::PipelineOptions {
                entry_point: Some(stage.clone()),
                ..Default::default()
            };
            naga::back::msl::write_string(&m, &i, &msl, &msl_pipeline)
                .unwrap_or_else(|e| panic!("{name}::{} to MSL: {e}", ep.name));
            let hlsl = naga::back::hlsl::Options {
                // Wave intrinsics (subgroups) need shader model 6.
                shader_model: naga::back::hlsl::ShaderModel::V6_0,
                ..Default::default()
            };
            let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some(stage.clone()),
            };
            let mut out = String::new();
            naga::back::hlsl::Writer::new(&mut out, &hlsl, &hlsl_pipeline)
                .write(&m, &i, None)
                .unwrap_or_else(|e| panic!("{name}::{} to HLSL: {e}", ep.name));
            let spv_pipeline = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.name.clone(),
            };
            naga::back::spv::write_vec(
                &m,
                &i,
                &naga::back::spv::Options::default(),
                Some(&spv_pipeline),
            )
            .unwrap_or_else(|e| panic!("{name}::{} to SPIR-V: {e}", ep.name));
            translated += 1;
        }
    }
    assert!(
        translated >= 40,
        "only {translated} entry points translated"
    );
}
