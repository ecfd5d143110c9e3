//! The native window: eframe on wgpu (Vulkan, Metal or DX12; never GL, which has no compute), a device created
//! with the limits the app's presets need, and the training sharing that device. Options for scripted runs:
//! start training at once, quit after a while and write a report of frame times and progress.

use std::sync::Arc;

use super::shell::{Shell, WindowOptions};

/// The adapter the app uses: `BEITLAB_ADAPTER` picks by name; otherwise discrete, then integrated GPUs first.
fn select_adapter(adapters: &[wgpu::Adapter]) -> Result<wgpu::Adapter, String> {
    let wanted = std::env::var(crate::gpu::ADAPTER_ENV).ok();
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let mut list: Vec<&wgpu::Adapter> = adapters
        .iter()
        .filter(|a| a.get_info().backend != wgpu::Backend::Gl)
        .filter(|a| {
            wanted
                .as_ref()
                .is_none_or(|w| a.get_info().name.to_lowercase().contains(&w.to_lowercase()))
        })
        .collect();
    list.sort_by_key(|a| rank(a));
    list.first().map(|a| (*a).clone()).ok_or_else(|| match &wanted {
        Some(w) => format!("no Vulkan, Metal or DX12 adapter's name contains \"{w}\" (unset BEITLAB_ADAPTER to take any)"),
        None => "no Vulkan, Metal or DX12 adapter was found; install a GPU driver (or mesa-vulkan-drivers for the software one)".into(),
    })
}

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
    setup.native_adapter_selector = Some(Arc::new(|adapters, _surface| select_adapter(adapters)));
    setup.device_descriptor = Arc::new(super::shell::device_descriptor);
    native.wgpu_options.wgpu_setup = egui_wgpu::WgpuSetup::CreateNew(setup);
    eframe::run_native(
        "beitlab",
        native,
        Box::new(move |cc| Ok(Box::new(Shell::new(cc, opts)))),
    )
    .map_err(|e| format!("the window could not open: {e}"))
}
