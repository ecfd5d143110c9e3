//! The native window: eframe on wgpu (Vulkan, Metal or DX12; never GL, which has no compute), a device created
//! with the limits the app's presets need, and the training sharing that device. Options for scripted runs:
//! start training at once, quit after a while and write a report of frame times and progress.

use std::path::PathBuf;
use std::sync::Arc;

use super::settings::Settings;
use super::time::Instant;
use super::BeitApp;
use crate::gpu::{ErrorPolicy, GpuContext};

/// How the window is opened.
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    /// Preset to open with (default: micro on a CPU adapter, tiny on a GPU).
    pub preset: Option<String>,
    /// Images per training step.
    pub batch: Option<u32>,
    /// Press Start as soon as the window is up.
    pub start: bool,
    /// Close the window after this many seconds.
    pub quit_after: Option<f64>,
    /// Write frame times and progress as JSON here when the window closes.
    pub report: Option<PathBuf>,
    /// Open on this view (its title, case-insensitive prefix).
    pub view: Option<String>,
}

/// Largest single buffer any preset of the app needs at its default batch.
fn needed_buffer_bytes() -> u64 {
    [("micro", 32), ("tiny", 64)]
        .into_iter()
        .filter_map(|(p, b)| {
            super::session::mim_config(p)
                .ok()
                .map(|c| c.largest_buffer_bytes(b, c.patches()))
        })
        .max()
        .unwrap_or(0)
}

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
    setup.device_descriptor = Arc::new(|adapter| {
        let offered = adapter.limits();
        let need = needed_buffer_bytes();
        let mut limits = wgpu::Limits::default().using_resolution(offered.clone());
        // As much as the presets need, or all the adapter has (the session then says which preset fits).
        limits.max_storage_buffer_binding_size = need
            .max(limits.max_storage_buffer_binding_size)
            .min(offered.max_storage_buffer_binding_size);
        limits.max_buffer_size = need
            .max(limits.max_buffer_size)
            .min(offered.max_buffer_size);
        limits.max_texture_dimension_2d = 8192.min(offered.max_texture_dimension_2d);
        limits.min_storage_buffer_offset_alignment = offered.min_storage_buffer_offset_alignment;
        limits.min_uniform_buffer_offset_alignment = offered.min_uniform_buffer_offset_alignment;
        wgpu::DeviceDescriptor {
            label: Some("beitlab app device"),
            required_limits: limits,
            ..Default::default()
        }
    });
    native.wgpu_options.wgpu_setup = egui_wgpu::WgpuSetup::CreateNew(setup);
    eframe::run_native(
        "beitlab",
        native,
        Box::new(move |cc| Ok(Box::new(Window::new(cc, opts)))),
    )
    .map_err(|e| format!("the window could not open: {e}"))
}

struct Window {
    app: BeitApp,
    opened: Instant,
    opts: WindowOptions,
    started: bool,
}

impl Window {
    fn new(cc: &eframe::CreationContext<'_>, opts: WindowOptions) -> Self {
        let app = match &cc.wgpu_render_state {
            Some(rs) => {
                super::gpu_paint::install(rs);
                let ctx = GpuContext::from_existing(
                    rs.device.clone(),
                    rs.queue.clone(),
                    rs.adapter.get_info(),
                    ErrorPolicy::Record,
                );
                let cpu = ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
                let mut settings = Settings::for_adapter(cpu);
                if let Some(p) = &opts.preset {
                    let defaults = Settings::for_adapter(p == "micro");
                    settings = Settings {
                        preset: p.clone(),
                        ..defaults
                    };
                }
                if let Some(b) = opts.batch {
                    settings.batch = b.max(1);
                }
                BeitApp::with_settings(ctx, settings, true)
            }
            None => {
                let mut app = BeitApp::empty();
                app.fatal = Some(
                    "eframe started without its wgpu renderer; beitlab needs Vulkan, Metal or DX12"
                        .into(),
                );
                app
            }
        };
        let mut w = Self {
            app,
            opened: Instant::now(),
            opts,
            started: false,
        };
        if let Some(v) = &w.opts.view {
            let v = v.to_lowercase();
            if let Some(found) = super::View::ALL
                .into_iter()
                .find(|x| x.title().to_lowercase().starts_with(&v))
            {
                w.app.view = found;
            }
        }
        w
    }

    fn report(&self) -> serde_json::Value {
        let mut ms = self.app.frames.training.clone();
        if ms.is_empty() {
            ms = self.app.frames.recent.iter().copied().collect();
        }
        ms.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let s = self.app.session.as_ref();
        serde_json::json!({
            "adapter": s.map(|s| s.ctx.describe()),
            "preset": s.map(|s| s.settings.preset.clone()),
            "seconds": self.opened.elapsed().as_secs_f64(),
            "training_frames": ms.len(),
            "frame_ms_mean": if ms.is_empty() { 0.0 } else { ms.iter().sum::<f64>() / ms.len() as f64 },
            "frame_ms_p50": pct(0.5),
            "frame_ms_p95": pct(0.95),
            "frame_ms_max": ms.last().copied().unwrap_or(0.0),
            "steps_done": s.map(|s| s.done.to_vec()),
            "images_per_s": s.and_then(|s| s.images_per_second()),
            "last_pretrain_loss": s.and_then(|s| s.curves.last(super::curves::Panel::Loss, "pretrain MIM loss")),
            "error": s.and_then(|s| s.error.clone()).or(self.app.fatal.clone()),
        })
    }
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if self.opts.start && !self.started {
            self.started = true;
            if let Some(s) = self.app.session.as_mut() {
                s.start();
            }
        }
        self.app.frame(ui);
        if let Some(q) = self.opts.quit_after {
            if self.opened.elapsed().as_secs_f64() >= q {
                if let Some(path) = &self.opts.report {
                    let text = serde_json::to_string_pretty(&self.report()).unwrap_or_default();
                    if let Err(e) = std::fs::write(path, text) {
                        eprintln!("{}: {e}", path.display());
                    }
                }
                ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
            }
            ui.ctx().request_repaint();
        }
    }
}
