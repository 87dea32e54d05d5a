//! Every shader file parses and validates with naga: no GPU needed.

use condenser::gpu::registry::{SHADERS, shader_source};

fn validate(name: &str, src: &str) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    // Subgroup kernels are only compiled where the adapter has SUBGROUP.
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
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
            if stem == "common" {
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
fn every_entry_point_uses_its_parameter_block() {
    // Gpu::launch always binds the parameters at binding 0; an entry point that
    // never reads them gets a layout without binding 0 and fails at submit.
    for (name, _) in SHADERS {
        let src = shader_source(name).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
        )
        .validate(&module)
        .unwrap();
        let params = module
            .global_variables
            .iter()
            .find(|(_, g)| {
                g.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == 0)
            })
            .map(|(h, _)| h)
            .unwrap_or_else(|| panic!("{name}: no parameter block at binding 0"));
        for (i, ep) in module.entry_points.iter().enumerate() {
            assert!(
                !info.get_entry_point(i)[params].is_empty(),
                "{name}::{} never reads its parameters",
                ep.name
            );
        }
    }
}
