//! The egui app: train BEiT and watch it learn. A session (data, networks, the running phase) is stepped a
//! frame's budget at a time on eframe's own wgpu device; an inspector computes what the views show from the live
//! weights; each view is a small module with a one-line explanation for a learner.
//!
//! `BeitApp::frame` is the whole per-frame work (used by eframe and by the headless UI tests).

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod bundle;
pub mod compare;
pub mod curves;
pub mod export;
pub mod files;
pub mod gpu_paint;
pub mod inspect;
pub mod lesson;
pub mod mim_gif;
pub mod phases;
pub mod picture;
pub mod recording;
pub mod seg_preview;
pub mod segment_phase;
pub mod session;
pub mod settings;
pub mod shell;
pub mod snapshot;
pub mod textures;
pub mod time;
pub mod validation;
mod views;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod web_files;
#[cfg(not(target_arch = "wasm32"))]
pub mod window;

use inspect::Inspector;
use session::Session;
use settings::Settings;
use time::{Duration, Instant};

use crate::data::dataset::Dataset;
use crate::gpu::GpuContext;
use crate::rng::Rng;

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Mim,
    Tokens,
    Codebook,
    Attention,
    Paint,
    Curves,
    Status,
    Files,
    Segment,
    Compare,
}

impl View {
    pub const ALL: [View; 10] = [
        Self::Mim,
        Self::Tokens,
        Self::Codebook,
        Self::Attention,
        Self::Paint,
        Self::Segment,
        Self::Compare,
        Self::Curves,
        Self::Status,
        Self::Files,
    ];

    /// The view's short name, for `--view NAME` and the page's `?view=NAME`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::Mim => "mim",
            Self::Tokens => "tokens",
            Self::Codebook => "codebook",
            Self::Attention => "attention",
            Self::Paint => "paint",
            Self::Curves => "curves",
            Self::Status => "status",
            Self::Files => "data",
            Self::Segment => "segment",
            Self::Compare => "compare",
        }
    }

    /// "mim, tokens, codebook, attention, paint, segment, compare, curves, status, data".
    pub fn short_names() -> String {
        Self::ALL.map(Self::short_name).join(", ")
    }

    /// The view called `name` (its short name, any case); an unknown name is an error that lists them.
    pub fn from_name(name: &str) -> Result<Self, String> {
        let wanted = name.trim().to_lowercase();
        Self::ALL
            .into_iter()
            .find(|v| v.short_name() == wanted)
            .ok_or_else(|| {
                format!(
                    "there is no view \"{name}\"; the views are {}",
                    Self::short_names()
                )
            })
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Mim => "Masked image modeling",
            Self::Tokens => "Visual tokens",
            Self::Codebook => "Codebook",
            Self::Attention => "Attention",
            Self::Paint => "Paint a mask",
            Self::Curves => "Curves",
            Self::Status => "Status",
            Self::Files => "Data & checkpoints",
            Self::Segment => "Segmentation",
            Self::Compare => "Compare runs",
        }
    }
}

/// Frame times over the last second or so.
#[derive(Default, Debug, Clone)]
pub struct FrameStats {
    last: Option<Instant>,
    /// Recent frame intervals in milliseconds.
    pub recent: std::collections::VecDeque<f64>,
    /// Every interval while training ran (for the app's report).
    pub training: Vec<f64>,
}

impl FrameStats {
    fn mark(&mut self, training: bool) {
        let now = Instant::now();
        if let Some(last) = self.last {
            let ms = now.duration_since(last).as_secs_f64() * 1e3;
            self.recent.push_back(ms);
            if self.recent.len() > 120 {
                self.recent.pop_front();
            }
            if training {
                self.training.push(ms);
            }
        }
        self.last = Some(now);
    }

    /// (mean, largest) of the recent frame intervals, in milliseconds.
    pub fn summary(&self) -> Option<(f64, f64)> {
        if self.recent.is_empty() {
            return None;
        }
        let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        Some((mean, self.recent.iter().copied().fold(0.0, f64::max)))
    }
}

/// What the views remember between frames.
#[derive(Debug, Clone)]
pub struct ViewState {
    /// Sample shown by the single-image views.
    pub sample: usize,
    pub layer: usize,
    /// `None`: mean over heads.
    pub head: Option<usize>,
    /// Query token of the attention map: 0 = CLS, 1 + i = patch i.
    pub query: usize,
    /// Screen rectangle of the last big image drawn (attention and paint views), for tests and hit-testing.
    pub image_rect: Option<egui::Rect>,
    /// Text fields of the data and checkpoint view.
    pub data_path: String,
    pub checkpoint_path: String,
    /// Screen rectangles of the data view's buttons by label, for tests that click them.
    pub button_rects: Vec<(&'static str, egui::Rect)>,
    /// Folder browser: the folder listed, when open.
    pub browsing: Option<std::path::PathBuf>,
    pub browse_target: BrowseTarget,
    /// The lesson's masking-frequency map and what it was drawn for: (grid, mode, mask ratio bits).
    pub masking_frequency: Option<((u32, settings::MaskMode, u32), Vec<f32>)>,
    /// Page of the codebook view (codes most used first, `views::codebook::PAGE` per page).
    pub codebook_page: usize,
    /// Validation canvas shown by the segmentation view, or an image dropped on it (name, image) and a counter
    /// that tells dropped images apart.
    pub seg_canvas: usize,
    pub seg_custom: Option<(String, crate::data::dataset::Image)>,
    pub seg_custom_generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrowseTarget {
    Data,
    Checkpoint,
}

pub struct BeitApp {
    pub session: Option<Session>,
    pub inspector: Inspector,
    /// The kept run's predictions on the same samples and masks (the Compare view), and the sample generation
    /// they were copied at.
    pub compare: Inspector,
    compare_samples: u64,
    pub view: View,
    pub views: ViewState,
    pub frames: FrameStats,
    pub textures: textures::Textures,
    /// A message that is not an error (e.g. "saved to ...").
    pub notice: Option<String>,
    /// Why there is no session (no adapter, adapter too small), shown instead of the views.
    pub fatal: Option<String>,
    /// Heat maps are painted on the GPU when the app runs on eframe's wgpu renderer.
    pub gpu_paint: bool,
    /// Training's share of each frame.
    pub budget: Duration,
    rng: Rng,
    /// A dataset loading on a worker thread: (source, receiver).
    #[cfg(not(target_arch = "wasm32"))]
    pub loading: Option<(
        String,
        std::sync::mpsc::Receiver<Result<Dataset, crate::data::dataset::DataError>>,
    )>,
    /// Files dropped on the page, read asynchronously, and a set of them being decoded (browser).
    #[cfg(target_arch = "wasm32")]
    pub dropped: web_files::DropQueue,
    /// A set of dropped or picked images being decoded: (source, loader).
    #[cfg(target_arch = "wasm32")]
    web_loader: Option<(String, crate::data::dataset::FolderLoader)>,
    /// A one-file checkpoint being read back, and where it goes.
    pub export: Option<(export::Export, files::SaveTarget)>,
    /// A screenshot of the view asked for ("Save view as PNG").
    pub snapshot: Option<snapshot::PendingSnapshot>,
    /// Where the current view's panel was drawn last frame (points).
    pub view_panel: egui::Rect,
    /// "Record GIF" in progress.
    pub recording: Option<recording::Recording>,
    /// The guided lesson, when open.
    pub lesson: Option<lesson::Lesson>,
}

impl BeitApp {
    /// The app on `ctx` with the built-in data and the settings suited to the adapter.
    pub fn new(ctx: GpuContext, gpu_paint: bool) -> Self {
        let cpu = ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
        Self::with_settings(ctx, Settings::for_adapter(cpu), gpu_paint)
    }

    pub fn with_settings(ctx: GpuContext, settings: Settings, gpu_paint: bool) -> Self {
        let cpu = ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
        let channels = session::mim_config(&settings.preset).map_or(1, |c| c.num_channels);
        let made = Dataset::open_train_val("builtin", None, channels)
            .map_err(|e| e.to_string())
            .and_then(|(t, v)| Session::new(ctx, settings, "builtin".into(), t, v));
        let (session, fatal) = match made {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let mut app = Self::assemble(session, fatal, cpu, gpu_paint);
        app.reshuffle();
        app
    }

    /// An app without a session (the window shows why).
    pub fn empty() -> Self {
        Self::assemble(None, None, true, false)
    }

    fn assemble(
        session: Option<Session>,
        fatal: Option<String>,
        cpu: bool,
        gpu_paint: bool,
    ) -> Self {
        Self {
            session,
            inspector: Inspector::new(Duration::from_millis(if cpu { 1500 } else { 400 })),
            compare: Inspector::new(Duration::from_millis(400)),
            compare_samples: u64::MAX,
            view: View::Mim,
            views: ViewState {
                sample: 0,
                layer: 0,
                head: None,
                query: 0,
                image_rect: None,
                data_path: String::new(),
                checkpoint_path: "beitlab-checkpoint".into(),
                browsing: None,
                button_rects: Vec::new(),
                browse_target: BrowseTarget::Data,
                masking_frequency: None,
                codebook_page: 0,
                seg_canvas: 0,
                seg_custom: None,
                seg_custom_generation: 0,
            },
            frames: FrameStats::default(),
            textures: textures::Textures::default(),
            notice: None,
            fatal,
            gpu_paint,
            budget: Duration::from_millis(if cpu { 12 } else { 8 }),
            rng: Rng::new(7),
            #[cfg(not(target_arch = "wasm32"))]
            loading: None,
            #[cfg(target_arch = "wasm32")]
            dropped: web_files::DropQueue::default(),
            #[cfg(target_arch = "wasm32")]
            web_loader: None,
            export: None,
            snapshot: None,
            view_panel: egui::Rect::NOTHING,
            recording: None,
            lesson: None,
        }
    }

    /// New sample images and masks for the views.
    pub fn reshuffle(&mut self) {
        let Some(s) = &self.session else {
            return;
        };
        let grid = s.mim.cfg.grid();
        let settings = s.settings.clone();
        self.inspector
            .reshuffle(&s.mim, &s.val, &mut self.rng, &mut |rng| {
                phases::make_mask(grid, &settings, rng)
            });
        self.views.sample = self.views.sample.min(inspect::SAMPLES - 1);
    }

    /// Everything but drawing: train for this frame's budget, refresh the inspector, take dropped files.
    pub fn tick(&mut self, ctx: &egui::Context) {
        let training = self.session.as_ref().is_some_and(|s| s.running);
        self.frames.mark(training);
        self.take_dropped(ctx);
        self.poll_export(ctx);
        self.poll_snapshot(ctx);
        #[cfg(not(target_arch = "wasm32"))]
        self.poll_loading();
        let Some(s) = self.session.as_mut() else {
            return;
        };
        s.tick(self.budget);
        // Samples follow the model's image size and channels (a loaded checkpoint may change them).
        if self.inspector.samples.first().is_some_and(|x| {
            x.pixels.len()
                != (s.mim.cfg.num_channels * s.mim.cfg.image_size * s.mim.cfg.image_size) as usize
                || x.mask.len() != s.mim.cfg.patches() as usize
        }) {
            self.reshuffle();
        }
        let Some(s) = self.session.as_mut() else {
            return;
        };
        self.inspector.want_atlas = matches!(self.view, View::Codebook | View::Tokens);
        if let Err(e) = self.inspector.tick(
            &s.ctx,
            &s.tokenizer,
            &s.mim,
            (s.tokenizer_version, s.mim_version),
            &s.val,
        ) {
            s.error = Some(format!("the views could not be computed: {e}"));
        }
        // The kept run sees the live run's samples and masks; its weights never change, so it refreshes only
        // when they do.
        if let (View::Compare, Some(k)) = (self.view, s.kept.as_ref()) {
            if self.compare_samples != self.inspector.sample_generation
                || self.compare.samples.iter().map(|x| &x.mask).ne(self
                    .inspector
                    .samples
                    .iter()
                    .map(|x| &x.mask))
            {
                self.compare.samples = self.inspector.samples.clone();
                self.compare.sample_generation += 1;
                self.compare.dirty = true;
                self.compare_samples = self.inspector.sample_generation;
            }
            let same_input = k.mim.cfg.image_size == s.mim.cfg.image_size
                && k.mim.cfg.patch_size == s.mim.cfg.patch_size
                && k.mim.cfg.num_channels == s.mim.cfg.num_channels;
            if same_input {
                if let Err(e) = self
                    .compare
                    .tick(&s.ctx, &k.tokenizer, &k.mim, (0, 0), &s.val)
                {
                    s.error = Some(format!(
                        "the kept run's predictions could not be computed: {e}"
                    ));
                }
            }
        }
        let comparing = self.view == View::Compare && s.kept.is_some() && self.compare.dirty;
        let busy = s.running || s.active.is_some() || self.inspector.dirty || comparing;
        self.record_frame();
        #[cfg(not(target_arch = "wasm32"))]
        let busy = busy || self.loading.is_some();
        if busy {
            ctx.request_repaint();
        } else {
            // Readbacks of the inspector may still be on their way.
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// Open the lesson at `chapter` (0-based) and its view.
    pub fn open_lesson(&mut self, chapter: usize) {
        let l = lesson::Lesson {
            chapter: chapter.min(lesson::CHAPTERS.len() - 1),
        };
        self.view = l.current().view;
        self.lesson = Some(l);
    }

    /// One whole frame inside `ui` (eframe's root or a test harness).
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.tick(&ctx);
        views::show(self, ui);
    }
}
