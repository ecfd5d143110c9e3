//! The device-creation path: a too-small adapter and a missing adapter give one clear sentence each.

use beitlab::gpu::{ErrorPolicy, GpuContext, GpuError, Requirements, ADAPTER_ENV};

#[test]
fn too_small_adapter_names_the_limit_and_both_values() {
    let mut req = Requirements::kernels().with_buffer_bytes(1 << 30);
    req.hint = "use a smaller preset or batch".into();
    let offered = wgpu::Limits {
        max_storage_buffer_binding_size: 128 << 20,
        max_buffer_size: 2 << 30,
        ..Default::default()
    };
    let err = req.limits_for("Tiny GPU", &offered).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GpuError::LimitTooSmall { .. }), "{msg}");
    assert_eq!(
        msg,
        "GPU adapter \"Tiny GPU\" offers max_storage_buffer_binding_size = 134217728 but beitlab needs 1073741824; use a smaller preset or batch"
    );
}

#[test]
fn requested_limits_are_webgpu_defaults_raised_only_where_needed() {
    let offered = wgpu::Limits {
        max_storage_buffer_binding_size: 2 << 30,
        max_buffer_size: 4 << 30,
        ..wgpu::Limits::default()
    };
    let got = Requirements::kernels()
        .with_buffer_bytes(300 << 20)
        .limits_for("Big GPU", &offered)
        .unwrap();
    assert_eq!(got.max_storage_buffer_binding_size, 300 << 20);
    assert_eq!(got.max_buffer_size, 300 << 20);
    assert_eq!(
        got.max_storage_buffers_per_shader_stage,
        wgpu::Limits::default().max_storage_buffers_per_shader_stage
    );
}

#[test]
fn unknown_adapter_name_is_a_clear_error() {
    // This test binary has no other device users, so setting the variable here is safe.
    unsafe { std::env::set_var(ADAPTER_ENV, "no-such-adapter-xyz") };
    let err = GpuContext::new_headless_blocking(&Requirements::kernels(), ErrorPolicy::Record)
        .err()
        .expect("no adapter matches");
    unsafe { std::env::remove_var(ADAPTER_ENV) };
    let msg = err.to_string();
    assert!(
        msg.contains("no-such-adapter-xyz") && msg.contains("adapters present"),
        "{msg}"
    );
}

#[test]
fn shader_errors_are_typed_and_name_the_file() {
    let err =
        beitlab::gpu::pipelines_reflection::parse_and_validate("broken", "fn main( {").unwrap_err();
    assert!(
        err.to_string().starts_with("shader broken.wgsl is invalid"),
        "{err}"
    );
}
