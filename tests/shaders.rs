//! CPU-only checks of every shader with naga: it parses and validates; each entry point stays within
//! WebGPU's default limits (≤ 256 invocations, ≤ 16 KiB workgroup storage, ≤ 8 storage buffers per stage but
//! the native-only `gemm_lanes`' 9, everything in bind group 0); every `#[repr(C)]` parameter struct matches naga's layout of its twin; and the
//! cooperative-matrix kernel compiles to SPIR-V.

use beitlab::gpu::shaders::SHADERS;
use beitlab::gpu::{pipelines_reflection as refl, BindingKind};

#[test]
fn every_shader_validates_within_webgpu_defaults() {
    let defaults = wgpu::Limits::default();
    let mut entry_points = 0;
    for (name, source) in SHADERS {
        let (module, info) =
            refl::parse_and_validate(name, source).unwrap_or_else(|e| panic!("{e}"));
        for (i, ep) in module.entry_points.iter().enumerate() {
            entry_points += 1;
            let size = refl::resolved_workgroup_size(&module, &info, &ep.name, &[]).unwrap();
            let invocations = size.iter().product::<u32>();
            assert!(
                invocations <= defaults.max_compute_invocations_per_workgroup,
                "{name}::{} uses {invocations} invocations",
                ep.name
            );
            let fi = info.get_entry_point(i);
            let mut wg_bytes = 0u32;
            for (h, var) in module.global_variables.iter() {
                if var.space == naga::AddressSpace::WorkGroup && !fi[h].is_empty() {
                    wg_bytes += module.types[var.ty].inner.size(module.to_ctx());
                }
                if let Some(b) = &var.binding {
                    assert_eq!(
                        b.group, 0,
                        "{name}: binding {} is outside group 0",
                        b.binding
                    );
                }
            }
            assert!(
                wg_bytes <= defaults.max_compute_workgroup_storage_size,
                "{name}::{} uses {wg_bytes} bytes of workgroup storage",
                ep.name
            );
            let storage = refl::used_bindings(&module, &info, i)
                .iter()
                .filter(|b| b.1 != BindingKind::Uniform)
                .count() as u32;
            // The software adapters' product binds one more; devices with subgroups ask for it.
            let allowed = if *name == "matmul_lanes" {
                beitlab::gpu::LANES_STORAGE_BUFFERS
            } else {
                defaults.max_storage_buffers_per_shader_stage
            };
            assert!(
                storage <= allowed,
                "{name}::{} binds {storage} storage buffers",
                ep.name
            );
        }
    }
    assert!(entry_points >= 25, "only {entry_points} entry points found");
}

#[test]
fn parameter_structs_match_wgsl_layout() {
    for (shader, struct_name, rust_size, fields) in beitlab::ops::param_layouts() {
        let source = beitlab::gpu::shaders::source(shader).unwrap();
        let (module, _) = refl::parse_and_validate(shader, source).unwrap();
        let ty = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some(struct_name))
            .unwrap_or_else(|| panic!("{shader}.wgsl has no struct {struct_name}"))
            .1;
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("{struct_name} is not a struct")
        };
        assert_eq!(
            *span as usize, rust_size,
            "{struct_name}: WGSL size {span} vs Rust {rust_size}"
        );
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(
            names,
            fields.to_vec(),
            "{struct_name}: field names or order differ"
        );
        for (i, m) in members.iter().enumerate() {
            assert_eq!(
                m.offset as usize,
                4 * i,
                "{struct_name}.{}: WGSL offset {}",
                names[i],
                m.offset
            );
            assert_eq!(
                module.types[m.ty].inner.size(module.to_ctx()),
                4,
                "{struct_name}.{} is not 32-bit",
                names[i]
            );
        }
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".wgsl")
                .map(str::to_string)
        })
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = SHADERS
        .iter()
        .chain(beitlab::gpu::shaders::RENDER_SHADERS)
        .map(|(n, _)| n.to_string())
        .collect();
    registered.sort();
    assert_eq!(on_disk, registered);
}

#[test]
fn override_workgroup_sizes_resolve_from_constants_or_defaults() {
    let src = "override WG: u32 = 128u;\n@group(0) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(WG, 2) fn main() { o[0] = 1.0; }";
    let (module, info) = refl::parse_and_validate("inline", src).unwrap();
    assert_eq!(
        refl::resolved_workgroup_size(&module, &info, "main", &[]).unwrap(),
        [128, 2, 1]
    );
    assert_eq!(
        refl::resolved_workgroup_size(&module, &info, "main", &[("WG", 64.0)]).unwrap(),
        [64, 2, 1]
    );
}

#[test]
fn the_cooperative_matrix_kernel_compiles_to_spirv() {
    // No adapter here runs it (lavapipe has no cooperative matrices), so this is its compile check: naga
    // validates it with the capabilities a device with the feature grants and writes SPIR-V as wgpu's Vulkan
    // backend does (naga's writer panics on some pointer expressions in cooperative loads and stores).
    for name in beitlab::gpu::shaders::COOP_SHADERS {
        let source = beitlab::gpu::shaders::source(name).unwrap();
        let (module, info) =
            refl::parse_and_validate(name, source).unwrap_or_else(|e| panic!("{e}"));
        let options = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        let words = naga::back::spv::write_vec(&module, &info, &options, None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(words.len() > 100, "{name}: {} words", words.len());
    }
}
