//! `beitlab info`: every adapter with its backend, limits and features, and the one beitlab would use.

use crate::gpu::{self, ADAPTER_ENV};

/// Print every adapter, then the one chosen.
pub fn info() -> Result<(), String> {
    let adapters = gpu::list_adapters();
    if adapters.is_empty() {
        return Err(gpu::GpuError::NoAdapter {
            detail: String::new(),
        }
        .to_string());
    }
    let wanted = std::env::var(ADAPTER_ENV).ok();
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let l = a.limits();
        println!("adapter {i}: {}", info.name);
        println!(
            "  backend {:?}, device type {:?}, vendor 0x{:04x}, device 0x{:04x}",
            info.backend, info.device_type, info.vendor, info.device
        );
        println!("  driver {} ({})", info.driver, info.driver_info);
        println!("  limits:");
        println!(
            "    max_buffer_size                       {}",
            l.max_buffer_size
        );
        println!(
            "    max_storage_buffer_binding_size       {}",
            l.max_storage_buffer_binding_size
        );
        println!(
            "    max_storage_buffers_per_shader_stage  {}",
            l.max_storage_buffers_per_shader_stage
        );
        println!(
            "    max_compute_workgroup_storage_size    {}",
            l.max_compute_workgroup_storage_size
        );
        println!(
            "    max_compute_invocations_per_workgroup {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "    max_compute_workgroups_per_dimension  {}",
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "    min_storage_buffer_offset_alignment   {}",
            l.min_storage_buffer_offset_alignment
        );
        println!(
            "    max_bind_groups                       {}",
            l.max_bind_groups
        );
        println!("  features: {:?}", a.features());
    }
    match gpu::GpuContext::new_headless_blocking(
        &gpu::Requirements::kernels(),
        gpu::ErrorPolicy::Record,
    ) {
        Ok(ctx) => println!(
            "beitlab uses: {}{}",
            ctx.describe(),
            wanted
                .map(|w| format!(" ({ADAPTER_ENV}={w})"))
                .unwrap_or_default()
        ),
        Err(e) => return Err(e.to_string()),
    }
    Ok(())
}
