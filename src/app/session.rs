//! A training session in the app: the data, the networks (tokenizer, BEiT for masked image modeling, the
//! fine-tuned classifier, the segmentation model), the phase that is running, and the curves. `tick` is called once per frame and never
//! waits on the GPU: it collects what came back, then submits steps until the frame's time budget is spent or
//! enough steps are in flight.

use std::collections::VecDeque;

use super::curves::{Curves, Panel};
use super::phases::{
    FinetunePhase, PhaseEvent, PhaseKind, PhasePlan, PretrainPhase, TokenizerPhase,
};
use super::seg_preview::SegPreview;
use super::segment_phase::SegmentPhase;
use super::settings::Settings;
use super::time::{Duration, Instant};
use crate::data::dataset::{Dataset, Split};
use crate::data::segmentation::SegDataset;
use crate::gpu::{GpuContext, Requirements};
use crate::model::{BeitConfig, BeitModel, ModelError};
use crate::rng::Rng;
use crate::tokenizer::{Tokenizer, TokenizerConfig, VisualTokenizer};
use crate::train::finetune::{classification_config, from_pretrained};
use crate::train::segment::{segmentation_config, SegScores};

/// Side of the built-in segmentation canvases the app trains on (three 28-pixel items each), resized to the
/// model's input.
pub const SEGMENT_CANVAS: u32 = 56;

/// The phase running now.
pub enum Active {
    Tokenizer(Box<TokenizerPhase>),
    Pretrain(Box<PretrainPhase>),
    Finetune(Box<FinetunePhase>),
    Segment(Box<SegmentPhase>),
}

impl Active {
    pub fn kind(&self) -> PhaseKind {
        match self {
            Self::Tokenizer(_) => PhaseKind::Tokenizer,
            Self::Pretrain(_) => PhaseKind::Pretrain,
            Self::Finetune(_) => PhaseKind::Finetune,
            Self::Segment(_) => PhaseKind::Segment,
        }
    }

    pub fn core(&self) -> &super::phases::PhaseCore {
        match self {
            Self::Tokenizer(p) => &p.core,
            Self::Pretrain(p) => &p.core,
            Self::Finetune(p) => &p.core,
            Self::Segment(p) => &p.core,
        }
    }
}

/// Throughput over the last few seconds of reported steps.
#[derive(Default)]
struct Speed {
    marks: VecDeque<(Instant, u32)>,
}

impl Speed {
    fn mark(&mut self, images: u32) {
        let now = Instant::now();
        self.marks.push_back((now, images));
        while self.marks.len() > 2 && now.duration_since(self.marks[0].0) > Duration::from_secs(3) {
            self.marks.pop_front();
        }
    }

    fn images_per_second(&self) -> Option<f64> {
        let (first, last) = (self.marks.front()?, self.marks.back()?);
        let dt = last.0.duration_since(first.0).as_secs_f64();
        let images: u32 = self.marks.iter().skip(1).map(|m| m.1).sum();
        (dt > 0.05).then(|| images as f64 / dt)
    }
}

pub struct Session {
    pub ctx: GpuContext,
    pub settings: Settings,
    /// Where the data came from ("builtin" or a folder), to reload it with another channel count.
    pub data_source: String,
    pub train: Dataset,
    pub val: Dataset,
    /// The tokenizer the app trains (patch) or an imported, frozen DALL-E tokenizer.
    pub tokenizer: VisualTokenizer,
    pub mim: BeitModel,
    /// The latest fine-tuned classifier.
    pub finetuned: Option<BeitModel>,
    pub active: Option<Active>,
    /// Phases that follow the active one.
    pub plan: VecDeque<PhaseKind>,
    pub running: bool,
    single_step: bool,
    pub curves: Curves,
    /// The last error, shown in the app until dismissed; training state is kept.
    pub error: Option<String>,
    /// Steps done in each phase (for display), and which phases have finished since the last reset.
    pub done: [u32; 4],
    pub finished: [bool; 4],
    /// Bumped whenever the tokenizer's or the BEiT model's weights change.
    pub tokenizer_version: u64,
    pub mim_version: u64,
    /// Most training steps in flight: 2 on a GPU, 1 on a CPU adapter (so drawing is never stuck behind two).
    pub max_in_flight: u32,
    /// Frames per training submit: 1 on a GPU; 2 on a CPU adapter, where a step takes longer than a frame, so
    /// every other frame draws without waiting behind a step.
    pub frames_per_submit: u32,
    frames_since_submit: u32,
    rng: Rng,
    speed: Speed,
    /// Fine-tune from scratch after the pretrained fine-tune (the comparison), and: the next fine-tune is it.
    scratch_next: bool,
    scratch_pending: bool,
    /// The built-in segmentation canvases (made when the segment phase first runs) and their channels.
    pub seg_data: Option<(u32, SegDataset, SegDataset)>,
    /// The latest segmentation model (kept after its phase), the view's prediction from it, and its latest
    /// validation scores (step, scores).
    pub segmenter: Option<BeitModel>,
    pub seg_preview: Option<SegPreview>,
    pub seg_scores: Option<(u32, SegScores)>,
    /// Bumped whenever the segmentation model's weights change.
    pub seg_version: u64,
    /// A run kept for comparison (the Compare view), with its curves under "kept: ..." names.
    pub kept: Option<super::compare::KeptRun>,
}

/// The adapter limits a preset and batch need, checked against what the device was created with.
pub fn check_limits(ctx: &GpuContext, cfg: &BeitConfig, batch: u32) -> Result<(), String> {
    let req = Requirements::kernels()
        .with_buffer_bytes(cfg.largest_buffer_bytes(batch, cfg.patches()))
        .with_hint("choose the micro preset or a smaller batch");
    req.limits_for(&ctx.adapter_info.name, &ctx.limits)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The BEiT config of a preset whose vocabulary is the tokenizer's codebook.
pub fn mim_config(preset: &str) -> Result<BeitConfig, ModelError> {
    let mut cfg = BeitConfig::preset(preset)?;
    cfg.vocab_size = TokenizerConfig::preset_codebook_size(preset);
    Ok(cfg)
}

impl Session {
    /// A session on `train` / `val` with fresh networks for `settings.preset`.
    pub fn new(
        ctx: GpuContext,
        settings: Settings,
        data_source: String,
        train: Dataset,
        val: Dataset,
    ) -> Result<Self, String> {
        let cfg = mim_config(&settings.preset).map_err(|e| e.to_string())?;
        check_limits(&ctx, &cfg, settings.batch)?;
        let tk_cfg = TokenizerConfig::for_model(&cfg, cfg.vocab_size);
        let tokenizer = VisualTokenizer::Patch(
            Tokenizer::new_random(&ctx, &tk_cfg, settings.seed).map_err(|e| e.to_string())?,
        );
        let mim = BeitModel::new_random(&ctx, &cfg, settings.seed).map_err(|e| e.to_string())?;
        let cpu = ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
        Ok(Self {
            rng: Rng::new(settings.seed),
            ctx,
            settings,
            data_source,
            train,
            val,
            tokenizer,
            mim,
            finetuned: None,
            active: None,
            plan: VecDeque::new(),
            running: false,
            single_step: false,
            curves: Curves::default(),
            error: None,
            done: [0; 4],
            finished: [false; 4],
            tokenizer_version: 0,
            mim_version: 0,
            max_in_flight: if cpu { 1 } else { 2 },
            frames_per_submit: if cpu { 2 } else { 1 },
            frames_since_submit: 0,
            speed: Speed::default(),
            scratch_next: false,
            scratch_pending: false,
            seg_data: None,
            segmenter: None,
            seg_preview: None,
            seg_scores: None,
            seg_version: 0,
            kept: None,
        })
    }

    /// Fresh networks for the current settings (a new preset takes effect here); curves are kept.
    pub fn reset(&mut self) -> Result<(), String> {
        let mut cfg = mim_config(&self.settings.preset).map_err(|e| e.to_string())?;
        // An imported DALL-E tokenizer stays (it is frozen); the model is made to fit it.
        if let VisualTokenizer::Dalle(t) = &self.tokenizer {
            cfg.vocab_size = t.vocab_size();
            cfg.num_channels = t.image_channels();
        }
        check_limits(&self.ctx, &cfg, self.settings.batch)?;
        if cfg.num_channels != self.mim.cfg.num_channels {
            self.reload_data(cfg.num_channels, cfg.image_size)?;
        }
        if !self.tokenizer.is_dalle() {
            let tk_cfg = TokenizerConfig::for_model(&cfg, cfg.vocab_size);
            self.tokenizer = VisualTokenizer::Patch(
                Tokenizer::new_random(&self.ctx, &tk_cfg, self.settings.seed)
                    .map_err(|e| e.to_string())?,
            );
        }
        self.mim = BeitModel::new_random(&self.ctx, &cfg, self.settings.seed)
            .map_err(|e| e.to_string())?;
        self.finetuned = None;
        self.active = None;
        self.plan.clear();
        self.running = false;
        self.done = [0; 4];
        self.finished = [false; 4];
        self.segmenter = None;
        self.seg_preview = None;
        self.seg_scores = None;
        self.tokenizer_version += 1;
        self.mim_version += 1;
        // Fresh networks start fresh curves; a kept run's stay for comparison.
        let kept = super::compare::KEPT;
        self.curves.series.retain(|(_, n), _| n.starts_with(kept));
        Ok(())
    }

    /// The current data source decoded again for a model of `channels` and `image_size`.
    fn reload_data(&mut self, channels: u32, image_size: u32) -> Result<(), String> {
        let decode = crate::data::dataset::Decode::for_model(channels, image_size);
        (self.train, self.val) =
            Dataset::open_train_val(&self.data_source, None, decode).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Use a new dataset (already split); the networks are kept.
    pub fn set_data(&mut self, source: String, train: Dataset, val: Dataset) {
        self.stop();
        self.data_source = source;
        self.train = train;
        self.val = val;
    }

    /// The whole pipeline from fresh networks (or continue it when paused).
    pub fn start(&mut self) {
        if self.active.is_some() {
            self.running = true;
            return;
        }
        if self.finished.iter().any(|&f| f) || self.done.iter().any(|&d| d > 0) {
            if let Err(e) = self.reset() {
                self.error = Some(e);
                return;
            }
        }
        // A DALL-E tokenizer is frozen: the pipeline starts at pretraining.
        let dalle = self.tokenizer.is_dalle();
        self.plan = PhaseKind::PIPELINE
            .into_iter()
            .filter(|&k| !(dalle && k == PhaseKind::Tokenizer))
            .collect();
        self.scratch_next = self.settings.compare_scratch;
        self.begin_next();
    }

    /// Run one phase alone, continuing from the current weights.
    pub fn run_phase(&mut self, kind: PhaseKind) {
        self.active = None;
        self.plan = [kind].into_iter().collect();
        self.scratch_next = kind == PhaseKind::Finetune && self.settings.compare_scratch;
        self.begin_next();
    }

    /// Keep the pretrained model (with copies of its tokenizer and its pretraining curves) for comparison, and
    /// make the live model fresh again (the same initialisation) on the same tokenizer, so that the next
    /// pretraining differs from the kept one only in what the settings changed. Replaces an earlier kept run.
    pub fn keep_for_comparison(&mut self) -> Result<String, String> {
        let pretrain = PhaseKind::Pretrain.index();
        if self.active.is_some() {
            return Err(
                "stop the running phase first: a model is kept between runs, not during one".into(),
            );
        }
        if self.done[pretrain] == 0 {
            return Err("pretrain first: there is no pretrained model to keep yet".into());
        }
        let label = super::compare::describe(&self.settings, self.done[pretrain]);
        let kept =
            super::compare::KeptRun::copy_of(&self.ctx, label.clone(), &self.tokenizer, &self.mim)
                .map_err(|e| e.to_string())?;
        let prefix = super::compare::KEPT;
        self.curves
            .series
            .retain(|(_, n), _| !n.starts_with(prefix));
        let renamed: Vec<_> = self
            .curves
            .series
            .iter()
            .filter(|((_, n), _)| n.starts_with("pretrain"))
            .map(|((p, n), v)| ((*p, format!("{prefix}{n}")), v.clone()))
            .collect();
        self.curves.clear_prefix("pretrain");
        self.curves.series.extend(renamed);
        self.mim = BeitModel::new_random(&self.ctx, &self.mim.cfg, self.settings.seed)
            .map_err(|e| e.to_string())?;
        self.mim_version += 1;
        self.done[pretrain] = 0;
        self.finished[pretrain] = false;
        self.kept = Some(kept);
        Ok(format!(
            "kept the model pretrained with {label}; the live model starts fresh on the same tokenizer: change a setting and run Pretrain"
        ))
    }

    pub fn pause(&mut self) {
        self.running = false;
    }

    /// Run exactly one more step of the active phase (starting the pipeline if nothing is active).
    pub fn step_once(&mut self) {
        if self.active.is_none() {
            self.start();
            self.running = false;
        }
        self.single_step = true;
    }

    /// Stop and drop the active phase (its weights stay as they are).
    pub fn stop(&mut self) {
        self.active = None;
        self.plan.clear();
        self.running = false;
    }

    fn begin_next(&mut self) {
        let Some(kind) = self.plan.pop_front() else {
            self.running = false;
            return;
        };
        match self.build_phase(kind) {
            Ok(p) => {
                self.active = Some(p);
                self.running = true;
            }
            Err(e) => {
                self.error = Some(format!("the {} phase could not start: {e}", kind.name()));
                self.active = None;
                self.running = false;
            }
        }
    }

    fn build_phase(&mut self, kind: PhaseKind) -> Result<Active, String> {
        let s = &self.settings;
        let (batch, steps, seed) = (s.batch, s.steps_of(kind), s.seed);
        let ctx = &self.ctx;
        let plan = PhasePlan {
            batch,
            total: steps,
            seed,
            mixed: s.precision.resolve(ctx).mixed,
        };
        let e = |e: ModelError| e.to_string();
        self.done[kind.index()] = 0;
        Ok(match kind {
            PhaseKind::Tokenizer => {
                let VisualTokenizer::Patch(tk) = &self.tokenizer else {
                    return Err("the DALL-E tokenizer is frozen (it is the paper's, imported): pretrain with it directly".into());
                };
                self.curves.clear_prefix("tokenizer");
                Active::Tokenizer(Box::new(
                    TokenizerPhase::new(ctx, tk, batch, steps).map_err(e)?,
                ))
            }
            PhaseKind::Pretrain => {
                self.curves.clear_prefix("pretrain");
                Active::Pretrain(Box::new(
                    PretrainPhase::new(ctx, &self.mim, &self.tokenizer, plan).map_err(e)?,
                ))
            }
            PhaseKind::Finetune => {
                let names = self.train.class_names.clone();
                if self.train.labels.is_none() || names.is_empty() {
                    return Err(format!(
                        "{} has no labels; fine-tuning needs one sub-folder per class",
                        self.train.source
                    ));
                }
                let cfg = classification_config(&self.mim.cfg, &names, 0.1);
                let scratch = std::mem::take(&mut self.scratch_pending);
                let (model, name) = if scratch {
                    (
                        BeitModel::new_random(ctx, &cfg, seed).map_err(e)?,
                        "scratch",
                    )
                } else {
                    (
                        from_pretrained(ctx, &self.mim, &cfg, seed).map_err(e)?,
                        "pretrained",
                    )
                };
                self.curves.clear_prefix(&format!("fine-tune ({name})"));
                Active::Finetune(Box::new(
                    FinetunePhase::new(ctx, model, name, &self.val, plan).map_err(e)?,
                ))
            }
            PhaseKind::Segment => {
                let channels = self.mim.cfg.num_channels;
                if self.seg_data.as_ref().is_none_or(|d| d.0 != channels) {
                    let open = |split| SegDataset::builtin(split, channels, SEGMENT_CANVAS);
                    let (train, val) = (open(Split::Train), open(Split::Val));
                    self.seg_data = Some((
                        channels,
                        train.map_err(|e| e.to_string())?,
                        val.map_err(|e| e.to_string())?,
                    ));
                }
                let Some((_, train, val)) = &self.seg_data else {
                    return Err("the segmentation canvases are missing".into());
                };
                let cfg = segmentation_config(
                    &self.mim.cfg,
                    &train.class_names,
                    crate::model::SegmentationHead::Linear,
                    0.1,
                );
                let model = from_pretrained(ctx, &self.mim, &cfg, seed).map_err(e)?;
                self.seg_preview = Some(SegPreview::new(ctx, &model).map_err(e)?);
                self.seg_scores = None;
                self.curves.clear_prefix("segment");
                Active::Segment(Box::new(
                    SegmentPhase::new(ctx, model, val, batch, steps, seed).map_err(e)?,
                ))
            }
        })
    }

    /// One frame's work: collect results, then submit steps for at most `budget`.
    pub fn tick(&mut self, budget: Duration) {
        let t0 = Instant::now();
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        let polled = match active {
            Active::Tokenizer(p) => p.poll(&self.ctx, &mut events),
            Active::Pretrain(p) => p.poll(&self.ctx, &mut events),
            Active::Finetune(p) => p.poll(&self.ctx, &mut events),
            Active::Segment(p) => p.poll(&self.ctx, &mut events),
        };
        let kind = active.kind();
        let images = active.core().images_per_step();
        self.record(kind, &events, images);
        if let Err(msg) = polled {
            self.error = Some(format!("{} phase: {msg}", kind.name()));
            self.running = false;
            self.single_step = false;
            self.bump(kind);
            return;
        }
        self.frames_since_submit = self.frames_since_submit.saturating_add(1);
        let paced = self.frames_since_submit >= self.frames_per_submit || self.single_step;
        let want = (self.running && paced) || self.single_step;
        // A step that takes longer than a frame must not have another queued behind it: each frame's drawing
        // waits for what is ahead of it on the GPU's queue.
        let step_ms = self.step_milliseconds().unwrap_or(0.0);
        let in_flight_cap = if step_ms > 16.0 {
            1
        } else {
            self.max_in_flight
        };
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let submitted = (|| -> Result<(), ModelError> {
            match active {
                Active::Finetune(p) => {
                    p.submit_validation(&self.ctx)?;
                }
                Active::Segment(p) => {
                    p.submit_validation(&self.ctx)?;
                }
                _ => {}
            }
            while want
                && active.core().submitted < active.core().total
                && active.core().in_flight() < in_flight_cap
            {
                match active {
                    Active::Tokenizer(p) => {
                        p.submit(&self.ctx, &self.train, &mut self.rng, &self.settings)
                    }
                    Active::Pretrain(p) => {
                        p.submit(&self.ctx, &self.train, &mut self.rng, &self.settings)?
                    }
                    Active::Finetune(p) => {
                        p.submit(&self.ctx, &self.train, &mut self.rng, &self.settings)?
                    }
                    Active::Segment(p) => {
                        let Some((_, train, _)) = &self.seg_data else {
                            break;
                        };
                        p.submit(&self.ctx, train, &mut self.rng, &self.settings)?
                    }
                }
                self.frames_since_submit = 0;
                if self.single_step {
                    self.single_step = false;
                    break;
                }
                if t0.elapsed() >= budget {
                    break;
                }
            }
            Ok(())
        })();
        if let Err(e) = submitted.and(self.ctx.take_error().map_err(ModelError::Gpu)) {
            self.error = Some(format!("{} phase: {e}", kind.name()));
            self.running = false;
            return;
        }
        let finished = match active {
            Active::Finetune(p) => p.core.finished() && !p.validation_pending(),
            Active::Segment(p) => p.core.finished() && !p.validation_pending(),
            other => other.core().finished(),
        };
        if finished {
            self.finish_active();
        }
    }

    fn bump(&mut self, kind: PhaseKind) {
        match kind {
            PhaseKind::Tokenizer => self.tokenizer_version += 1,
            PhaseKind::Pretrain => self.mim_version += 1,
            PhaseKind::Finetune => {}
            PhaseKind::Segment => self.seg_version += 1,
        }
    }

    fn record(&mut self, kind: PhaseKind, events: &[PhaseEvent], images: u32) {
        let ft_name = match &self.active {
            Some(Active::Finetune(p)) => p.name,
            _ => "",
        };
        for ev in events {
            match *ev {
                PhaseEvent::Step(m) => {
                    self.done[kind.index()] = self.done[kind.index()].max(m.step);
                    self.speed.mark(images);
                    let x = m.step as f64;
                    // Curve names per phase: (loss, where the second metric goes and its name, the phase).
                    // The tokenizer's second metric is its commitment loss, the others' an accuracy.
                    let (loss, second, name) = match kind {
                        PhaseKind::Tokenizer => (
                            "tokenizer reconstruction (MSE)".to_string(),
                            (Panel::Loss, "tokenizer commitment".to_string()),
                            "tokenizer".to_string(),
                        ),
                        PhaseKind::Pretrain => (
                            "pretrain MIM loss".to_string(),
                            (Panel::Accuracy, "pretrain MIM accuracy".to_string()),
                            "pretrain".to_string(),
                        ),
                        PhaseKind::Segment => (
                            "segment loss".to_string(),
                            (Panel::Accuracy, "segment pixel accuracy".to_string()),
                            "segment".to_string(),
                        ),
                        PhaseKind::Finetune => {
                            let n = format!("fine-tune ({ft_name})");
                            (
                                format!("{n} loss"),
                                (Panel::Accuracy, format!("{n} train")),
                                n,
                            )
                        }
                    };
                    let c = &mut self.curves;
                    c.push(Panel::Loss, &loss, x, m.loss as f64);
                    c.push(second.0, &second.1, x, m.accuracy as f64);
                    c.push(Panel::LearningRate, &name, x, m.lr as f64);
                    c.push(Panel::GradNorm, &name, x, m.grad_norm as f64);
                    if let Some(ips) = self.speed.images_per_second() {
                        self.curves.push(Panel::Throughput, &name, x, ips);
                    }
                }
                PhaseEvent::Validation { step, accuracy } => {
                    let n = format!("fine-tune ({ft_name}) validation");
                    self.curves
                        .push(Panel::Accuracy, &n, step as f64, accuracy as f64);
                }
                PhaseEvent::Segmentation { step, ref scores } => {
                    self.curves.push(
                        Panel::Accuracy,
                        "segment validation mIoU",
                        step as f64,
                        scores.miou,
                    );
                    self.seg_scores = Some((step, scores.clone()));
                }
            }
        }
        if events.iter().any(|e| matches!(e, PhaseEvent::Step(_))) {
            self.bump(kind);
        }
    }

    fn finish_active(&mut self) {
        let Some(active) = self.active.take() else {
            return;
        };
        let kind = active.kind();
        self.finished[kind.index()] = true;
        if let Active::Segment(p) = active {
            self.segmenter = Some(p.model);
        } else if let Active::Finetune(p) = active {
            let scratch_follows = p.name == "pretrained" && self.scratch_next;
            // The pretrained model's classifier is the one kept; a scratch run is only for comparison.
            if p.name == "pretrained" {
                self.finetuned = Some(p.model);
            }
            if scratch_follows {
                self.scratch_pending = true;
                self.plan.push_front(PhaseKind::Finetune);
            }
        }
        if self.plan.is_empty() {
            self.running = false;
        } else if self.running {
            self.begin_next();
        }
    }

    /// Images per second over the last few seconds.
    pub fn images_per_second(&self) -> Option<f64> {
        self.speed.images_per_second()
    }

    /// Wall time per training step at the current speed, in milliseconds.
    pub fn step_milliseconds(&self) -> Option<f64> {
        let per = self.active.as_ref()?.core().images_per_step() as f64;
        Some(1e3 * per / self.images_per_second()?.max(1e-9))
    }

    /// (step reported, total) of the active phase.
    pub fn progress(&self) -> Option<(PhaseKind, u32, u32)> {
        let a = self.active.as_ref()?;
        Some((a.kind(), a.core().reported, a.core().total))
    }

    /// Seconds left in the active phase at the current speed.
    pub fn eta_seconds(&self) -> Option<f64> {
        let a = self.active.as_ref()?;
        let ips = self.images_per_second()?;
        let left = a.core().total.saturating_sub(a.core().reported) as f64;
        Some(left * a.core().images_per_step() as f64 / ips.max(1e-9))
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// Save the three networks as folders under `dir`: `tokenizer/`, `pretrained/` (HF BeitForMaskedImageModeling)
    /// and `finetuned/` (HF BeitForImageClassification) when one exists.
    pub fn save(&self, dir: &std::path::Path) -> Result<(), String> {
        let e = |e: ModelError| e.to_string();
        self.tokenizer
            .save(&self.ctx, &dir.join("tokenizer"))
            .map_err(e)?;
        self.mim
            .save(&self.ctx, &dir.join("pretrained"))
            .map_err(e)?;
        if let Some(m) = &self.finetuned {
            m.save(&self.ctx, &dir.join("finetuned")).map_err(e)?;
        }
        Ok(())
    }

    /// Start reading the tokenizer, the pretrained BEiT and the fine-tuned classifier (when one exists) back as
    /// one file; poll the returned export each frame.
    pub fn start_export(&self) -> super::export::Export {
        let mut models = vec![("pretrained", &self.mim)];
        if let Some(m) = &self.finetuned {
            models.push(("finetuned", m));
        }
        super::export::Export::start(&self.ctx, &self.tokenizer, models)
    }

    /// Load checkpoint files chosen together (a one-file checkpoint, or the files of HuggingFace-style folders);
    /// nothing is replaced unless everything loads and fits together.
    pub fn load_files(&mut self, files: &[(String, Vec<u8>)]) -> Result<String, String> {
        let e = |e: ModelError| e.to_string();
        let host = super::bundle::parse_files(files).map_err(e)?;
        let tokenizer = match &host.tokenizer {
            Some((cfg, tensors)) => Some(
                VisualTokenizer::from_tensors(&self.ctx, cfg, tensors, "the tokenizer")
                    .map_err(e)?,
            ),
            None => None,
        };
        let models = host
            .models
            .into_iter()
            .map(|ck| BeitModel::from_checkpoint(&self.ctx, ck, None, "the checkpoint"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        self.install(tokenizer, models, &names.join(", "))
    }

    #[cfg(not(target_arch = "wasm32"))]
    /// Load what `path` holds: a one-file checkpoint, a tokenizer folder, a BEiT folder (masked image modeling or
    /// classification), or a folder with such folders inside (`tokenizer/`, `pretrained/` or `checkpoint/`,
    /// `finetuned/`). Nothing is replaced unless everything found loads and fits together.
    pub fn load(&mut self, path: &std::path::Path) -> Result<String, String> {
        if path.is_file() {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("{} could not be read: {e}", path.display()))?;
            return self.load_files(&[(path.display().to_string(), bytes)]);
        }
        let dir = path;
        let e = |e: ModelError| e.to_string();
        use std::path::Path;
        let has = |d: &Path, f: &str| d.join(f).is_file();
        let tk_dir = [dir.to_path_buf(), dir.join("tokenizer")]
            .into_iter()
            .find(|d| has(d, "tokenizer_config.json") || has(d, "dalle_config.json"));
        let beit_dirs: Vec<_> = [
            dir,
            &dir.join("pretrained"),
            &dir.join("checkpoint"),
            &dir.join("finetuned"),
        ]
        .into_iter()
        .filter(|d| has(d, "config.json"))
        .map(Path::to_path_buf)
        .collect();
        if tk_dir.is_none() && beit_dirs.is_empty() {
            return Err(format!(
                "{} holds no tokenizer (tokenizer_config.json or dalle_config.json) or BEiT folder (config.json)",
                dir.display()
            ));
        }
        let tokenizer = match &tk_dir {
            Some(d) => Some(VisualTokenizer::load(&self.ctx, d).map_err(e)?),
            None => None,
        };
        let models = beit_dirs
            .iter()
            .map(|d| BeitModel::load(&self.ctx, d, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        self.install(tokenizer, models, &dir.display().to_string())
    }

    /// Replace the networks by those loaded, if they fit together; `source` names them in the message.
    fn install(
        &mut self,
        tokenizer: Option<VisualTokenizer>,
        models: Vec<BeitModel>,
        source: &str,
    ) -> Result<String, String> {
        let (mut mim, mut cls) = (None, None);
        for m in models {
            match m.cfg.architecture() {
                crate::model::Architecture::MaskedImageModeling => mim = Some(m),
                crate::model::Architecture::ImageClassification => cls = Some(m),
                crate::model::Architecture::SemanticSegmentation => {
                    return Err(format!(
                        "{source} holds a segmentation model; the app opens pretrained and classification models (use `beitlab segment` and `beitlab eval` for segmentation)"
                    ))
                }
            }
        }
        let tk = tokenizer.as_ref().unwrap_or(&self.tokenizer);
        if let Some(m) = &mim {
            if m.cfg.predicts_pixels() {
                return Err(
                    "this app trains on visual tokens; the checkpoint regresses pixels".into(),
                );
            }
            tk.check_model(&m.cfg).map_err(|e| {
                format!("the BEiT model does not fit the tokenizer: {e}; load both from one folder")
            })?;
        }
        // A tokenizer loaded alone that the current model does not fit (a DALL-E one: 8192 codes, RGB) gets a
        // fresh model of the current preset made to fit it.
        let mut fitted = None;
        if let (Some(t), None) = (&tokenizer, &mim) {
            if t.check_model(&self.mim.cfg).is_err() {
                let mut cfg = self.mim.cfg.clone();
                cfg.vocab_size = t.codebook_size();
                cfg.num_channels = t.view(cfg.grid()).channels;
                t.check_model(&cfg).map_err(|e| e.to_string())?;
                check_limits(&self.ctx, &cfg, self.settings.batch)?;
                fitted = Some(
                    BeitModel::new_random(&self.ctx, &cfg, self.settings.seed)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        let made_to_fit = fitted.is_some();
        let mim = mim.or(fitted);
        self.stop();
        let mut what = Vec::new();
        let (channels, image_size) = mim
            .as_ref()
            .map_or((self.mim.cfg.num_channels, self.mim.cfg.image_size), |m| {
                (m.cfg.num_channels, m.cfg.image_size)
            });
        if channels != self.mim.cfg.num_channels {
            self.reload_data(channels, image_size)?;
        }
        if let Some(t) = tokenizer {
            what.push(if t.is_dalle() {
                "DALL-E tokenizer"
            } else {
                "tokenizer"
            });
            self.tokenizer = t;
            self.tokenizer_version += 1;
        }
        if let Some(m) = mim {
            what.push(if made_to_fit {
                "a fresh BEiT model made to fit it"
            } else {
                "pretrained BEiT"
            });
            self.mim = m;
            self.mim_version += 1;
        }
        if let Some(m) = cls {
            self.finetuned = Some(m);
            what.push("fine-tuned classifier");
        }
        Ok(format!("loaded {} from {source}", what.join(", ")))
    }
}
