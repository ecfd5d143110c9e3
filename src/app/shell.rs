//! The eframe side shared by the native window and the web page: the device the app asks eframe for, and the
//! `eframe::App` that wraps [`BeitApp`] on eframe's wgpu render state (start at once, open on a view, quit after a
//! while with a report). In the browser, progress lines go to the console, where tests read them.

use super::settings::Settings;
use super::time::Instant;
use super::{BeitApp, View};
use crate::gpu::{ErrorPolicy, GpuContext};

/// How the app is opened.
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    /// Preset to open with (default: mini on a CPU adapter, tiny14 on a GPU).
    pub preset: Option<String>,
    /// Images per training step.
    pub batch: Option<u32>,
    /// Press Start as soon as the app is up.
    pub start: bool,
    /// Close the window after this many seconds (native).
    pub quit_after: Option<f64>,
    /// Write frame times and progress as JSON here when the window closes (native).
    pub report: Option<std::path::PathBuf>,
    /// Open on this view.
    pub view: Option<View>,
    /// Save the view as a PNG after this many seconds (native; as the "Save view as PNG" button does).
    pub save_view_after: Option<f64>,
    /// Open the guided lesson at this chapter (1-based).
    pub lesson: Option<usize>,
    /// Run this phase alone as soon as the app is up (as its "run alone" button does).
    pub run: Option<super::phases::PhaseKind>,
}

/// Largest single buffer any preset of the app needs at its default batch.
fn needed_buffer_bytes() -> u64 {
    [("mini", 16), ("micro", 32), ("tiny", 64), ("tiny14", 16)]
        .into_iter()
        .filter_map(|(p, b)| {
            super::session::mim_config(p)
                .ok()
                .map(|c| c.largest_buffer_bytes(b, c.patches()))
        })
        .max()
        .unwrap_or(0)
}

/// The device eframe creates for the app: WebGPU's defaults, raised towards what the presets need but never past
/// what the adapter offers (the session then says which preset fits), with the optional features it offers.
pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    let offered = adapter.limits();
    let need = needed_buffer_bytes();
    let mut limits = wgpu::Limits::default().using_resolution(offered.clone());
    limits.max_storage_buffer_binding_size = need
        .max(limits.max_storage_buffer_binding_size)
        .min(offered.max_storage_buffer_binding_size);
    limits.max_buffer_size = need
        .max(limits.max_buffer_size)
        .min(offered.max_buffer_size);
    limits.max_texture_dimension_2d = 8192.min(offered.max_texture_dimension_2d);
    limits.min_storage_buffer_offset_alignment = offered.min_storage_buffer_offset_alignment;
    limits.min_uniform_buffer_offset_alignment = offered.min_uniform_buffer_offset_alignment;
    crate::gpu::raise_optional_limits(
        &mut limits,
        &offered,
        crate::gpu::optional_features(adapter),
    );
    wgpu::DeviceDescriptor {
        label: Some("beitlab app device"),
        required_features: crate::gpu::optional_features(adapter),
        required_limits: limits,
        experimental_features: crate::gpu::experimental_features(crate::gpu::optional_features(
            adapter,
        )),
        ..Default::default()
    }
}

pub struct Shell {
    pub app: BeitApp,
    opened: Instant,
    opts: WindowOptions,
    started: bool,
    /// Progress last written to the console (web): (phase steps done, seconds since opening).
    logged: ([u32; 4], f64),
    logged_query: Option<usize>,
    /// Whether the adapter line went to the console (web).
    logged_adapter: bool,
    /// Lesson chapter last written to the console (web).
    logged_lesson: Option<usize>,
    /// The segmentation prediction (image, model version) and validation step last reported.
    logged_segment: (Option<(u64, u64)>, Option<u32>),
    logged_error: Option<String>,
    logged_notice: Option<String>,
    /// Data view buttons whose position has been printed.
    logged_buttons: Vec<(&'static str, egui::Rect)>,
    /// Memory every 10 seconds (native, for the report): seconds, phase, resident MiB, GPU buffer MiB.
    memory: Vec<(f64, String, f64, f64)>,
}

impl Shell {
    pub fn new(cc: &eframe::CreationContext<'_>, opts: WindowOptions) -> Self {
        let app = match &cc.wgpu_render_state {
            Some(rs) => {
                super::gpu_paint::install(rs);
                let ctx = GpuContext::from_existing(
                    rs.device.clone(),
                    rs.queue.clone(),
                    rs.adapter.get_info(),
                    ErrorPolicy::Record,
                );
                let small = crate::gpu::is_software_adapter(&ctx.adapter_info)
                    || cfg!(target_arch = "wasm32");
                let settings = Settings::chosen(small, opts.preset.as_deref(), opts.batch);
                let mut app = BeitApp::with_settings(ctx, settings, true);
                if let Some(s) = app.session.as_mut() {
                    if crate::gpu::is_software_adapter(&s.ctx.adapter_info) {
                        s.max_in_flight = 1;
                        s.frames_per_submit = 2;
                    }
                }
                app
            }
            None => {
                let mut app = BeitApp::empty();
                app.fatal = Some(
                    "eframe started without its wgpu renderer; beitlab needs Vulkan, Metal, DX12 or WebGPU"
                        .into(),
                );
                app
            }
        };
        let mut shell = Self {
            app,
            opened: Instant::now(),
            opts,
            started: false,
            logged: ([0; 4], 0.0),
            logged_query: None,
            logged_adapter: false,
            logged_lesson: None,
            logged_error: None,
            logged_notice: None,
            logged_buttons: Vec::new(),
            logged_segment: (None, None),
            memory: Vec::new(),
        };
        if let Some(v) = shell.opts.view {
            shell.app.view = v;
        }
        if let Some(n) = shell.opts.lesson {
            shell.app.open_lesson(n.saturating_sub(1));
        }
        shell
    }

    /// Every 10 seconds: resident memory and beitlab's GPU buffers, with the phase training is in.
    #[cfg(not(target_arch = "wasm32"))]
    fn sample_memory(&mut self) {
        let t = self.opened.elapsed().as_secs_f64();
        if self.memory.last().is_some_and(|m| t - m.0 < 10.0) {
            return;
        }
        let phase = self
            .app
            .session
            .as_ref()
            .and_then(|s| s.progress())
            .map_or("idle", |(k, _, _)| k.name());
        self.memory.push((
            t,
            phase.to_string(),
            crate::soak::resident_bytes() as f64 / 1048576.0,
            crate::gpu::allocated_bytes() as f64 / 1048576.0,
        ));
    }

    /// Frame times and progress as JSON.
    pub fn report(&self) -> serde_json::Value {
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
            "memory": self.memory.iter().map(|(t, phase, rss, gpu)| serde_json::json!({
                "seconds": t, "phase": phase, "resident_mib": rss, "gpu_buffer_mib": gpu
            })).collect::<Vec<_>>(),
        })
    }

    /// One line of progress for the console, about once a second while training, and what the views were asked.
    fn progress_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let t = self.opened.elapsed().as_secs_f64();
        if let Some(s) = self.app.session.as_ref() {
            if !self.logged_adapter {
                self.logged_adapter = true;
                let info = &s.ctx.adapter_info;
                lines.push(format!(
                    "beitlab adapter: {} ({:?}, subgroups {}-{}), products on {}",
                    info.name,
                    info.device_type,
                    info.subgroup_min_size,
                    info.subgroup_max_size,
                    crate::ops::matmul::GemmKernel::for_adapter(&s.ctx).entry_point(),
                ));
            }
            if s.done != self.logged.0 && t - self.logged.1 >= 1.0 {
                let (phase, name) = match s.progress() {
                    Some((k, _, _)) => (k, k.name()),
                    None => (super::phases::PhaseKind::Finetune, "done"),
                };
                let loss = match phase {
                    super::phases::PhaseKind::Tokenizer => {
                        "tokenizer reconstruction (MSE)".to_string()
                    }
                    super::phases::PhaseKind::Pretrain => "pretrain MIM loss".to_string(),
                    super::phases::PhaseKind::Finetune => "fine-tune (pretrained) loss".to_string(),
                    super::phases::PhaseKind::Segment => "segment loss".to_string(),
                };
                let last = s.curves.last(super::curves::Panel::Loss, &loss);
                lines.push(format!(
                    "beitlab progress: {name} steps {:?} loss {} images/s {:.1} frame_ms {:.0}",
                    s.done,
                    last.map_or("none".to_string(), |l| format!("{l:.5}")),
                    s.images_per_second().unwrap_or(0.0),
                    self.app.frames.summary().map_or(0.0, |f| f.0),
                ));
                self.logged = (s.done, t);
            }
            if s.error.is_some() && s.error != self.logged_error {
                lines.push(format!(
                    "beitlab error: {}",
                    s.error.clone().unwrap_or_default()
                ));
            }
            self.logged_error = s.error.clone();
        }
        if self.app.notice.is_some() && self.app.notice != self.logged_notice {
            lines.push(format!(
                "beitlab notice: {}",
                self.app.notice.clone().unwrap_or_default()
            ));
        }
        self.logged_notice = self.app.notice.clone();
        if self.app.view == View::Files {
            for (label, r) in &self.app.views.button_rects {
                if !self.logged_buttons.contains(&(*label, *r)) {
                    lines.push(format!(
                        "beitlab files: button {label} {} {} {} {}",
                        r.min.x,
                        r.min.y,
                        r.width(),
                        r.height()
                    ));
                    self.logged_buttons.retain(|(l, _)| l != label);
                    self.logged_buttons.push((label, *r));
                }
            }
        }
        if self.app.view == View::Attention && self.logged_query != Some(self.app.views.query) {
            if let Some(r) = self.app.views.image_rect {
                lines.push(format!(
                    "beitlab attention: query {} image {} {} {} {}",
                    self.app.views.query,
                    r.min.x,
                    r.min.y,
                    r.width(),
                    r.height()
                ));
                self.logged_query = Some(self.app.views.query);
            }
        }
        let chapter = self.app.lesson.map(|l| l.chapter);
        if chapter != self.logged_lesson {
            if let Some(l) = self.app.lesson {
                lines.push(format!(
                    "beitlab lesson: chapter {} of {} ({}) on the {} view",
                    l.chapter + 1,
                    super::lesson::CHAPTERS.len(),
                    l.current().title,
                    self.app.view.short_name()
                ));
            }
            self.logged_lesson = chapter;
        }
        if let Some(s) = self.app.session.as_ref() {
            let prediction = s
                .seg_preview
                .as_ref()
                .and_then(|p| p.result.as_ref())
                .map(|r| r.key);
            if self.app.view == View::Segment
                && prediction.is_some()
                && prediction != self.logged_segment.0
            {
                if let Some((image, version)) = prediction {
                    lines.push(format!(
                        "beitlab segment: prediction for image {image} from model version {version}"
                    ));
                }
                self.logged_segment.0 = prediction;
            }
            let scored = s.seg_scores.as_ref().map(|(step, _)| *step);
            if scored.is_some() && scored != self.logged_segment.1 {
                if let Some((step, scores)) = &s.seg_scores {
                    lines.push(format!(
                        "beitlab segment: validation after step {step} mIoU {:.4} pixel accuracy {:.4}",
                        scores.miou, scores.pixel_accuracy
                    ));
                }
                self.logged_segment.1 = scored;
            }
        }
        lines
    }
}

impl eframe::App for Shell {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        if (self.opts.start || self.opts.run.is_some()) && !self.started {
            self.started = true;
            if let Some(s) = self.app.session.as_mut() {
                match self.opts.run {
                    Some(kind) => s.run_phase(kind),
                    None => s.start(),
                }
            }
        }
        self.app.frame(ui);
        #[cfg(not(target_arch = "wasm32"))]
        self.sample_memory();
        if let Some(t) = self.opts.save_view_after {
            if self.opened.elapsed().as_secs_f64() >= t {
                self.opts.save_view_after = None;
                let panel = self.app.view_panel;
                self.app.save_view_png(ui.ctx(), panel);
            }
        }
        if cfg!(target_arch = "wasm32") {
            for line in self.progress_lines() {
                log::info!("{line}");
            }
        }
        if let Some(q) = self.opts.quit_after {
            if self.opened.elapsed().as_secs_f64() >= q {
                #[cfg(not(target_arch = "wasm32"))]
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
