//! The app's segmentation phase: the pretrained encoder under a linear head, fine-tuned on the built-in
//! segmentation canvases one step at a time (one submit each, never waiting), with a validation pass every tenth
//! of the run whose per-pixel predictions (argmax on the GPU) come back through a readback ring and become
//! pixel accuracy, per-class IoU and mIoU.

use super::phases::{schedule, PhaseCore, PhaseEvent, PhaseKind};
use super::settings::Settings;
use super::validation::ValidationPasses;
use crate::data::augment::Augment;
use crate::data::segmentation::{augment_pair, eval_pair, SegDataset, IGNORE};
use crate::gpu::{Dispatch, GpuContext, GpuSlice};
use crate::model::{BeitGraph, BeitModel, ModelError};
use crate::ops::spatial::{argmax_channels, ImageShape};
use crate::rng::Rng;
use crate::train::runner::StepRunner;
use crate::train::segment::{graph_for, SegScores};

/// Validation batches scored per pass (fixed for the whole run).
const VAL_BATCHES: usize = 4;

/// Per-class (intersection, labelled, predicted) counts and (correct, scored) totals of a pass in progress.
type PassCounts = (Vec<(u64, u64, u64)>, (u64, u64), usize);

pub struct SegmentPhase {
    pub core: PhaseCore,
    pub model: BeitModel,
    graph: BeitGraph,
    eval: BeitGraph,
    /// The eval forward followed by the argmax of its logits into `predicted` (B, S, S) u32.
    eval_work: Vec<Dispatch>,
    predicted: GpuSlice,
    validation: ValidationPasses,
    /// Passes being summed, by step.
    passes: Vec<(u32, PassCounts)>,
    /// Validation batches: (pixels, labels), whole canvases resized to the model.
    val_batches: Vec<(Vec<f32>, Vec<u32>)>,
    aug: Augment,
    batch: u32,
    seed: u64,
}

impl SegmentPhase {
    pub fn new(
        ctx: &GpuContext,
        model: BeitModel,
        val: &SegDataset,
        batch: u32,
        total: u32,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let cfg = model.cfg.clone();
        let graph = graph_for(ctx, &model, batch, Some(seed))?;
        let eval = graph_for(ctx, &model, batch, None)?;
        let groups = model
            .table
            .optimizer_groups(0.05, 0.65, cfg.num_hidden_layers);
        let runner = StepRunner::new(ctx, &model, &graph, Vec::new(), &groups, "segment step")?;
        let size = cfg.image_size;
        let pixels = (size * size) as usize;
        let predicted = GpuSlice::new(ctx, "predicted classes", (batch as usize * pixels) as u64);
        let mut eval_work = eval.forward.clone();
        eval_work.extend(argmax_channels(
            ctx,
            &predicted,
            0,
            &eval.logits,
            ImageShape {
                batch,
                channels: cfg.labels(),
                height: size,
                width: size,
            },
        )?);
        let eval_aug = Augment::beit(size, cfg.num_channels);
        let count = (val.len() / batch as usize).clamp(1, VAL_BATCHES) * batch as usize;
        let val_batches: Vec<(Vec<f32>, Vec<u32>)> = (0..count)
            .step_by(batch as usize)
            .map(|start| {
                let (mut px, mut lab) = (Vec::new(), Vec::new());
                for i in start..start + batch as usize {
                    if i < val.len() {
                        eval_pair(&eval_aug, &val.images[i], &val.masks[i], &mut px, &mut lab);
                    }
                }
                px.resize(batch as usize * cfg.num_channels as usize * pixels, 0.0);
                lab.resize(batch as usize * pixels, IGNORE);
                (px, lab)
            })
            .collect();
        let mut aug = Augment::beit(size, cfg.num_channels);
        aug.scale = (0.5, 1.0);
        Ok(Self {
            core: PhaseCore::new(ctx, runner, Vec::new(), &model.params.whole, total, batch),
            model,
            graph,
            eval,
            eval_work,
            validation: ValidationPasses::new(
                ctx,
                val_batches.len(),
                4 * (batch as usize * pixels) as u64,
            ),
            predicted,
            passes: Vec::new(),
            val_batches,
            aug,
            batch,
            seed,
        })
    }

    pub fn submit(
        &mut self,
        ctx: &GpuContext,
        data: &SegDataset,
        rng: &mut Rng,
        s: &Settings,
    ) -> Result<(), ModelError> {
        if data.is_empty() {
            return Err(ModelError::Input(format!(
                "{} has no image with a label map",
                data.source
            )));
        }
        let (mut px, mut lab) = (Vec::new(), Vec::new());
        for _ in 0..self.batch {
            let i = ((rng.uniform() * data.len() as f64) as usize).min(data.len() - 1);
            augment_pair(
                &self.aug,
                &data.images[i],
                &data.masks[i],
                rng,
                &mut px,
                &mut lab,
            );
        }
        self.graph.write_batch(ctx, &px, None, Some(&lab))?;
        let step = self.core.submitted + 1;
        self.graph.set_drop_path_step(ctx, self.seed, step);
        let lr = schedule(step, self.core.total, s.lr[PhaseKind::Segment.index()]);
        // The loss is already a mean over the labelled pixels.
        self.core.submit(lr, None, 1);
        self.validation.after_step(step, self.core.total);
        Ok(())
    }

    /// Submit at most one validation batch (forward + argmax; the classes come back through the ring).
    pub fn submit_validation(&mut self, ctx: &GpuContext) -> Result<bool, ModelError> {
        let (eval, batches) = (&self.eval, &self.val_batches);
        let write = |b: usize| eval.write_batch(ctx, &batches[b].0, None, Some(&batches[b].1));
        self.validation
            .submit(ctx, write, &self.eval_work, &self.predicted)
    }

    /// Validation passes not yet reported.
    pub fn validation_pending(&self) -> bool {
        self.validation.busy()
    }

    pub fn poll(&mut self, ctx: &GpuContext, events: &mut Vec<PhaseEvent>) -> Result<(), String> {
        let classes = self.model.cfg.labels() as usize;
        for (step, batch, bytes) in self.validation.collect(ctx) {
            let predicted: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
            let i = match self.passes.iter().position(|p| p.0 == step) {
                Some(i) => i,
                None => {
                    self.passes
                        .push((step, (vec![(0, 0, 0); classes], (0, 0), 0)));
                    self.passes.len() - 1
                }
            };
            let (counts, totals, done) = &mut self.passes[i].1;
            SegScores::count(counts, totals, &predicted, &self.val_batches[batch].1);
            *done += 1;
            if *done == self.validation.batches() {
                let scores = SegScores::from_counts(counts, totals.0, totals.1);
                events.push(PhaseEvent::Segmentation { step, scores });
                self.passes.remove(i);
            }
        }
        self.core.poll(ctx, events)
    }
}
