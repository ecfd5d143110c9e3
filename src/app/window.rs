//! The native window: eframe on wgpu (Vulkan, Metal or DX12; never GL, which has no compute), a device created
//! with the limits the app's presets need, and the training sharing that device. Options for scripted runs:
//! start training at once, quit after a while and write a report of frame times and progress.

use std::sync::Arc;

use super::shell::{Shell, WindowOptions};

/// Open the window and run until it is closed.
pub fn run(opts: WindowOptions) -> Result<(), String> {
    let mut native = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title("beitlab: BEiT, live")
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.instance_descriptor.backends =
        wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    setup.native_adapter_selector = Some(Arc::new(|adapters, _surface| {
        crate::gpu::choose_adapter(adapters).map_err(|e| e.to_string())
    }));
    setup.device_descriptor = Arc::new(super::shell::device_descriptor);
    native.wgpu_options.wgpu_setup = egui_wgpu::WgpuSetup::CreateNew(setup);
    eframe::run_native(
        "beitlab",
        native,
        Box::new(move |cc| Ok(Box::new(Shell::new(cc, opts)))),
    )
    .map_err(|e| format!("the window could not open: {e}"))
}
