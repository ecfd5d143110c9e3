//! The app's training phases (tokenizer, BEiT pretraining, fine-tuning; segmentation in `segment_phase.rs`), each
//! run one step at a time
//! without ever waiting on the GPU: a step is one submit, metrics come back through the runner's readback ring,
//! and a two-slot snapshot of the weights and AdamW moments lets a phase return to its last good state after a
//! non-finite loss.

use super::settings::{MaskMode, Settings};
use super::validation::ValidationPasses;
use crate::data::augment::Augment;
use crate::data::dataset::Dataset;
use crate::data::masking::{random_mask, BlockMasking};
use crate::gpu::{GpuContext, GpuSlice};
use crate::model::{BeitGraph, BeitModel, GraphOptions, MimRows, ModelError};
use crate::ops::precision::ProductInputs;
use crate::rng::Rng;
use crate::tokenizer::batches as tktrain;
use crate::tokenizer::{Tokenizer, TokenizerGraph, VisualTokenizer};
use crate::train::metrics::StepMetrics;
use crate::train::mim_step::MimStep;
use crate::train::runner::StepRunner;
use crate::train::schedule::warmup_cosine;

/// Which phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PhaseKind {
    Tokenizer,
    Pretrain,
    Finetune,
    /// Fine-tuning the pretrained encoder for semantic segmentation (run on its own, after the pipeline).
    Segment,
}

impl PhaseKind {
    pub const ALL: [PhaseKind; 4] = [
        Self::Tokenizer,
        Self::Pretrain,
        Self::Finetune,
        Self::Segment,
    ];
    /// What Start runs, in order.
    pub const PIPELINE: [PhaseKind; 3] = [Self::Tokenizer, Self::Pretrain, Self::Finetune];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tokenizer => "tokenizer",
            Self::Pretrain => "pretrain",
            Self::Finetune => "fine-tune",
            Self::Segment => "segment",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The phase called `name` (its name, any case), for `--run` and the page's `?run=`.
    pub fn from_name(name: &str) -> Result<Self, String> {
        let wanted = name.trim().to_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| {
                format!(
                    "there is no phase \"{name}\"; the phases are {}",
                    Self::ALL.map(Self::name).join(", ")
                )
            })
    }
}

/// Copies of every buffer a phase trains (weights, moments, codebook state), in two slots: `candidate` is taken
/// after a step and becomes `good` once that step's metrics come back finite.
struct Snapshots {
    sources: Vec<GpuSlice>,
    slots: [Vec<GpuSlice>; 2],
    good: Option<(usize, u32)>,
    candidate: Option<(usize, u32)>,
}

impl Snapshots {
    fn new(ctx: &GpuContext, sources: Vec<GpuSlice>) -> Self {
        let copy = |tag: &str| {
            sources
                .iter()
                .map(|s| GpuSlice::new(ctx, tag, s.len))
                .collect::<Vec<_>>()
        };
        Self {
            slots: [copy("snapshot a"), copy("snapshot b")],
            sources,
            good: None,
            candidate: None,
        }
    }

    fn copy_all(enc: &mut wgpu::CommandEncoder, from: &[GpuSlice], to: &[GpuSlice]) {
        for (f, t) in from.iter().zip(to) {
            enc.copy_buffer_to_buffer(&f.buffer, f.offset, &t.buffer, t.offset, f.size_bytes());
        }
    }

    /// Whether a candidate may be taken (the last one has been confirmed or there is none).
    fn wants(&self) -> bool {
        self.candidate.is_none()
    }

    /// Record a candidate of the state after `step` into that step's encoder, after its work.
    fn take(&mut self, enc: &mut wgpu::CommandEncoder, step: u32) {
        let slot = match self.good {
            Some((g, _)) => 1 - g,
            None => 0,
        };
        Self::copy_all(enc, &self.sources, &self.slots[slot]);
        self.candidate = Some((slot, step));
    }

    /// A step's metrics came back finite.
    fn confirm(&mut self, step: u32) {
        if let Some((slot, s)) = self.candidate {
            if step >= s {
                self.good = Some((slot, s));
                self.candidate = None;
            }
        }
    }

    /// Put the last good state back; returns its step.
    fn restore(&mut self, ctx: &GpuContext) -> Option<u32> {
        self.candidate = None;
        let (slot, step) = self.good?;
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("restore snapshot"),
            });
        Self::copy_all(&mut enc, &self.slots[slot], &self.sources);
        ctx.queue.submit([enc.finish()]);
        Some(step)
    }
}

/// What a phase reports back each frame.
#[derive(Clone, Debug, PartialEq)]
pub enum PhaseEvent {
    /// A training step's metrics (tokenizer: loss = reconstruction MSE, accuracy = commitment loss).
    Step(StepMetrics),
    /// Validation accuracy of the fine-tuned model after `step`.
    Validation { step: u32, accuracy: f32 },
    /// Validation scores of the segmentation model after `step`.
    Segmentation {
        step: u32,
        scores: crate::train::segment::SegScores,
    },
}

/// What every phase shares: the runner, its progress, and the snapshots.
pub struct PhaseCore {
    pub(super) runner: StepRunner,
    snapshots: Snapshots,
    /// Last step submitted, and the last whose metrics came back.
    pub submitted: u32,
    pub reported: u32,
    pub total: u32,
    images_per_step: u32,
}

impl PhaseCore {
    pub(super) fn new(
        ctx: &GpuContext,
        runner: StepRunner,
        mut extra: Vec<GpuSlice>,
        params: &GpuSlice,
        total: u32,
        images_per_step: u32,
    ) -> Self {
        let mut sources = vec![
            params.clone(),
            runner.m.whole.clone(),
            runner.v.whole.clone(),
        ];
        sources.append(&mut extra);
        Self {
            snapshots: Snapshots::new(ctx, sources),
            runner,
            submitted: 0,
            reported: 0,
            total,
            images_per_step,
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.runner.in_flight()
    }

    pub fn images_per_step(&self) -> u32 {
        self.images_per_step
    }

    /// Every step submitted and reported.
    pub fn finished(&self) -> bool {
        self.reported >= self.total && self.in_flight() == 0
    }

    pub(super) fn submit(&mut self, lr: f32, clip: Option<f32>, counted: u32) {
        self.submitted += 1;
        let step = self.submitted;
        let snapshot = (step.is_multiple_of(25) || step == self.total) && self.snapshots.wants();
        let snapshots = &mut self.snapshots;
        // The snapshot's copies ride in the step's own submit, after its AdamW update.
        self.runner.submit_with(step, lr, clip, counted, |enc| {
            if snapshot {
                snapshots.take(enc, step);
            }
        });
    }

    /// Collect metrics; on a non-finite value, return to the last good state and say so.
    pub(super) fn poll(
        &mut self,
        ctx: &GpuContext,
        events: &mut Vec<PhaseEvent>,
    ) -> Result<(), String> {
        let mut got = Vec::new();
        let result = self.runner.poll(&mut |m| got.push(m));
        for m in got {
            if m.loss.is_finite() && m.grad_norm.is_finite() {
                self.snapshots.confirm(m.step);
                self.reported = self.reported.max(m.step);
                events.push(PhaseEvent::Step(m));
            }
        }
        if let Err(e) = result {
            let back = self.snapshots.restore(ctx);
            self.submitted = back.unwrap_or(0);
            self.reported = self.submitted;
            return Err(match back {
                Some(s) => format!("{e}. The weights are back at step {s}; lower the learning rate and continue."),
                None => format!("{e}. No earlier good state exists; reset the phase and lower the learning rate."),
            });
        }
        Ok(())
    }
}

/// Learning rate at `step` of `total`: linear warm-up over the first tenth, cosine down to 1% of `peak`.
pub(super) fn schedule(step: u32, total: u32, peak: f32) -> f32 {
    warmup_cosine(step, total, (total / 10).max(1), peak, peak * 0.01)
}

fn pick(data: &Dataset, rng: &mut Rng) -> usize {
    ((rng.uniform() * data.len() as f64) as usize).min(data.len().saturating_sub(1))
}

/// Training the visual tokenizer (reconstruction + commitment, EMA codebook with restarts).
pub struct TokenizerPhase {
    pub core: PhaseCore,
    graph: TokenizerGraph,
    aug: Augment,
}

impl TokenizerPhase {
    pub fn new(
        ctx: &GpuContext,
        tk: &Tokenizer,
        batch: u32,
        total: u32,
    ) -> Result<Self, ModelError> {
        let graph = TokenizerGraph::new(ctx, tk, batch)?;
        let groups = tktrain::optimizer_groups(&tk.params.layout);
        let runner = StepRunner::from_parts(
            ctx,
            &tk.params,
            &graph.grads,
            &graph.stats,
            graph.train_step.clone(),
            &groups,
            "tokenizer step",
            1.0,
            None,
        )?;
        let extra = vec![
            tk.codebook.clone(),
            tk.ema_sum.clone(),
            tk.ema_count.clone(),
        ];
        Ok(Self {
            core: PhaseCore::new(ctx, runner, extra, &tk.params.whole, total, batch),
            aug: tktrain::augmentation(&tk.cfg, (0.08, 1.0), true),
            graph,
        })
    }

    pub fn submit(&mut self, ctx: &GpuContext, data: &Dataset, rng: &mut Rng, s: &Settings) {
        let pixels = tktrain::make_batch(data, &self.aug, self.graph.batch, rng);
        self.graph.pixels.write(ctx, &pixels);
        let step = self.core.submitted + 1;
        self.graph.set_step(ctx, step);
        let lr = schedule(step, self.core.total, s.lr[PhaseKind::Tokenizer.index()]);
        self.core.submit(lr, Some(1.0), 1);
    }

    pub fn poll(&mut self, ctx: &GpuContext, events: &mut Vec<PhaseEvent>) -> Result<(), String> {
        self.core.poll(ctx, events)
    }
}

/// The masks of one pretraining batch under the current settings (mask ratio and mode may change between steps).
pub fn make_mask(grid: u32, s: &Settings, rng: &mut Rng) -> Vec<u8> {
    let n = grid * grid;
    let k = s.masked_patches(n);
    match s.masking {
        MaskMode::Blockwise => {
            let mut g = BlockMasking::scaled(grid);
            g.num_masking_patches = k;
            g.max_num_patches = k;
            g.min_num_patches = g.min_num_patches.min(k.max(1));
            g.generate(rng)
        }
        MaskMode::Random => random_mask(n, k, rng),
    }
}

/// BEiT masked image modeling: tokenizer tokens as targets, blockwise (or random) masks.
/// How a pretraining or fine-tuning phase steps: images per step, steps in all, its seed, and its products'
/// inputs (`None` for f32).
#[derive(Clone, Copy, Debug)]
pub struct PhasePlan {
    pub batch: u32,
    pub total: u32,
    pub seed: u64,
    pub mixed: Option<ProductInputs>,
}

pub struct PretrainPhase {
    pub core: PhaseCore,
    step: MimStep,
    aug: Augment,
    /// The tokenizer's own view of the same crops (DALL-E), when it reads one.
    tokenizer_aug: Option<Augment>,
    batch: u32,
    grid: u32,
}

impl PretrainPhase {
    pub fn new(
        ctx: &GpuContext,
        model: &BeitModel,
        tk: &VisualTokenizer,
        plan: PhasePlan,
    ) -> Result<Self, ModelError> {
        let PhasePlan {
            batch,
            total,
            seed,
            mixed,
        } = plan;
        let cfg = &model.cfg;
        // Room for every patch to be masked, so the mask ratio can change between steps.
        let cap = batch * cfg.patches();
        let (step, runner) = MimStep::new(ctx, model, Some(tk), batch, cap, seed, 0.05, mixed)?;
        let aug = Augment::beit(cfg.image_size, cfg.num_channels);
        Ok(Self {
            core: PhaseCore::new(ctx, runner, Vec::new(), &model.params.whole, total, batch),
            tokenizer_aug: step.tokenizer_augment(&aug),
            step,
            aug,
            batch,
            grid: cfg.grid(),
        })
    }

    pub fn submit(
        &mut self,
        ctx: &GpuContext,
        data: &Dataset,
        rng: &mut Rng,
        s: &Settings,
    ) -> Result<(), ModelError> {
        let mut pixels = Vec::new();
        let mut own_view = Vec::new();
        let mut mask = Vec::new();
        for _ in 0..self.batch {
            let i = pick(data, rng);
            match &self.tokenizer_aug {
                Some(t) => self
                    .aug
                    .apply_pair(&data.images[i], rng, &mut pixels, t, &mut own_view),
                None => self.aug.apply(&data.images[i], rng, &mut pixels),
            }
            mask.extend(make_mask(self.grid, s, rng));
        }
        let step = self.core.submitted + 1;
        let own = self.tokenizer_aug.as_ref().map(|_| &own_view[..]);
        let masked = self.step.write(ctx, &pixels, own, &mask, step)?;
        let lr = schedule(step, self.core.total, s.lr[PhaseKind::Pretrain.index()]);
        self.core.submit(lr, Some(3.0), masked);
        Ok(())
    }

    pub fn poll(&mut self, ctx: &GpuContext, events: &mut Vec<PhaseEvent>) -> Result<(), String> {
        self.core.poll(ctx, events)
    }
}

/// Fine-tuning a classification model, with a validation pass every tenth of the run.
pub struct FinetunePhase {
    pub core: PhaseCore,
    pub model: BeitModel,
    /// "pretrained" or "scratch".
    pub name: &'static str,
    graph: BeitGraph,
    eval: BeitGraph,
    validation: ValidationPasses,
    /// Per step being validated: (Σ correct, batches back).
    eval_sums: Vec<(u32, f32, u32)>,
    /// Validation batches: (pixels, labels), evaluation views.
    val_batches: Vec<(Vec<f32>, Vec<u32>)>,
    aug: Augment,
    batch: u32,
    seed: u64,
}

impl FinetunePhase {
    pub fn new(
        ctx: &GpuContext,
        model: BeitModel,
        name: &'static str,
        val: &Dataset,
        plan: PhasePlan,
    ) -> Result<Self, ModelError> {
        let PhasePlan {
            batch,
            total,
            seed,
            mixed,
        } = plan;
        let cfg = model.cfg.clone();
        let labels = val
            .labels
            .as_ref()
            .ok_or_else(|| ModelError::Input(format!("{} has no labels", val.source)))?;
        let opts = |drop: Option<u64>, smoothing| GraphOptions {
            batch,
            mim_rows: MimRows::All,
            drop_path_seed: drop,
            label_smoothing: smoothing,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: drop.and(mixed),
        };
        let graph = BeitGraph::new(
            ctx,
            &cfg,
            &model.table,
            &model.params,
            opts(Some(seed), 0.1),
        )?;
        let eval = BeitGraph::new(ctx, &cfg, &model.table, &model.params, opts(None, 0.0))?;
        let groups = model
            .table
            .optimizer_groups(0.05, 0.65, cfg.num_hidden_layers);
        let runner = StepRunner::new(ctx, &model, &graph, Vec::new(), &groups, "finetune step")?;
        let eval_aug = Augment::beit(cfg.image_size, cfg.num_channels);
        // Up to 8 batches of the validation set, fixed for the whole run.
        let count = (val.len() / batch as usize).clamp(1, 8) * batch as usize;
        let val_batches: Vec<(Vec<f32>, Vec<u32>)> = (0..count)
            .step_by(batch as usize)
            .map(|start| {
                let idx: Vec<usize> = (start..start + batch as usize)
                    .map(|i| i % val.len())
                    .collect();
                let imgs: Vec<_> = idx.iter().map(|&i| val.images[i].clone()).collect();
                let px = eval_aug.eval_batch(&imgs, batch as usize);
                (px, idx.iter().map(|&i| labels[i]).collect())
            })
            .collect();
        let mut aug = Augment::beit(cfg.image_size, cfg.num_channels);
        aug.scale = (0.8, 1.0);
        Ok(Self {
            core: PhaseCore::new(ctx, runner, Vec::new(), &model.params.whole, total, batch),
            model,
            name,
            graph,
            eval,
            validation: ValidationPasses::new(ctx, val_batches.len(), 8),
            eval_sums: Vec::new(),
            val_batches,
            aug,
            batch,
            seed,
        })
    }

    pub fn submit(
        &mut self,
        ctx: &GpuContext,
        data: &Dataset,
        rng: &mut Rng,
        s: &Settings,
    ) -> Result<(), ModelError> {
        let labels = data
            .labels
            .as_ref()
            .ok_or_else(|| ModelError::Input(format!("{} has no labels", data.source)))?;
        let mut px = Vec::new();
        let mut lab = Vec::with_capacity(self.batch as usize);
        for _ in 0..self.batch {
            let i = pick(data, rng);
            self.aug.apply(&data.images[i], rng, &mut px);
            lab.push(labels[i]);
        }
        self.graph.write_batch(ctx, &px, None, Some(&lab))?;
        let step = self.core.submitted + 1;
        self.graph.set_drop_path_step(ctx, self.seed, step);
        let lr = schedule(step, self.core.total, s.lr[PhaseKind::Finetune.index()]);
        self.core.submit(lr, None, self.batch);
        self.validation.after_step(step, self.core.total);
        Ok(())
    }

    /// Submit at most one validation batch (a forward pass; its stats come back through the ring).
    pub fn submit_validation(&mut self, ctx: &GpuContext) -> Result<bool, ModelError> {
        let (eval, batches) = (&self.eval, &self.val_batches);
        let write = |b: usize| eval.write_batch(ctx, &batches[b].0, None, Some(&batches[b].1));
        self.validation
            .submit(ctx, write, &self.eval.forward, &self.eval.stats)
    }

    /// Validation passes not yet reported.
    pub fn validation_pending(&self) -> bool {
        self.validation.busy()
    }

    pub fn poll(&mut self, ctx: &GpuContext, events: &mut Vec<PhaseEvent>) -> Result<(), String> {
        for (step, _, bytes) in self.validation.collect(ctx) {
            let stats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            let entry = match self.eval_sums.iter_mut().find(|e| e.0 == step) {
                Some(e) => e,
                None => {
                    self.eval_sums.push((step, 0.0, 0));
                    self.eval_sums.last_mut().expect("just pushed")
                }
            };
            entry.1 += stats[1];
            entry.2 += 1;
            if entry.2 as usize == self.val_batches.len() {
                let accuracy = entry.1 / (entry.2 * self.batch) as f32;
                events.push(PhaseEvent::Validation { step, accuracy });
                self.eval_sums.retain(|e| e.0 != step);
            }
        }
        self.core.poll(ctx, events)
    }
}
