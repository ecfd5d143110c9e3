//! The optimizer side of every training loop: AdamW plan and moments, the global-norm clip, the step's dispatch
//! list (built once), one submit per step, at most two steps in flight, and metrics collected from the readback
//! ring a step or two late (a non-finite loss or gradient becomes an error).

use super::checkpoint::TrainState;
use super::metrics::{drain, Pending, StepMetrics};
use crate::gpu::{Dispatch, FlatBuffer, GpuContext, GpuError, GpuSlice, ReadbackRing};
use crate::model::{BeitGraph, BeitModel, ModelError};
use crate::ops::adamw::{adamw_step, AdamWPlan, AdamWStep};
use crate::ops::reduce;

pub struct StepRunner<'a> {
    ctx: &'a GpuContext,
    pub m: FlatBuffer,
    pub v: FlatBuffer,
    plan: AdamWPlan,
    sumsq: GpuSlice,
    stats: GpuSlice,
    work: Vec<Dispatch>,
    ring: ReadbackRing,
    pending: Pending,
    /// The latest submission and the one before it (waited for by `settle`).
    last: Option<wgpu::SubmissionIndex>,
    prev: Option<wgpu::SubmissionIndex>,
    label: &'static str,
    /// The loss is a sum per example over this many values (pixel regression: a patch), reported as a mean.
    values_per_example: f32,
}

impl<'a> StepRunner<'a> {
    /// `before` runs first in each step (e.g. the tokenizer producing the MIM labels); then the graph's forward
    /// and backward, the gradient's sum of squares and AdamW with `groups` (lr multiplier, weight decay).
    pub fn new(
        ctx: &'a GpuContext,
        model: &BeitModel,
        graph: &BeitGraph,
        before: Vec<Dispatch>,
        groups: &[(f32, f32)],
        label: &'static str,
    ) -> Result<Self, ModelError> {
        let layout = model.table.layout.clone();
        let plan = AdamWPlan::new(ctx, &layout, groups)?;
        let (m, v) = (
            FlatBuffer::new(ctx, "adam m", layout.clone()),
            FlatBuffer::new(ctx, "adam v", layout),
        );
        let sumsq = GpuSlice::new(ctx, "grad sumsq", 1);
        let mut work = before;
        work.extend(graph.forward.iter().cloned());
        work.extend(graph.backward.iter().cloned());
        work.extend(reduce::sum_squares(
            ctx,
            &sumsq,
            0,
            &graph.grads.whole,
            graph.grads.layout.total as u32,
        )?);
        work.extend(adamw_step(
            ctx,
            &model.params.whole,
            &m.whole,
            &v.whole,
            &graph.grads.whole,
            &sumsq,
            &plan,
        )?);
        Ok(Self {
            ctx,
            m,
            v,
            plan,
            sumsq,
            stats: graph.stats.clone(),
            work,
            ring: ReadbackRing::new(ctx, 8, 8),
            pending: Vec::new(),
            last: None,
            prev: None,
            values_per_example: if model.cfg.predicts_pixels()
                && model.cfg.architecture() == crate::model::Architecture::MaskedImageModeling
            {
                model.cfg.patch_dim() as f32
            } else {
                1.0
            },
            label,
        })
    }

    /// Continue from saved AdamW moments.
    pub fn restore(&self, st: &TrainState) {
        self.m.whole.write(self.ctx, &st.adam_m);
        self.v.whole.write(self.ctx, &st.adam_v);
    }

    /// Submit one step (inputs already written) counting `counted` examples in its loss.
    pub fn submit(&mut self, step: u32, lr: f32, clip: Option<f32>, counted: u32) {
        self.plan.set_step(
            self.ctx,
            &AdamWStep {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                step,
                max_grad_norm: clip,
            },
        );
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(self.label),
            });
        Dispatch::record_all(&mut enc, self.label, &self.work);
        if let (Some(a), Some(b)) = (
            self.ring.record(&mut enc, &self.stats),
            self.ring.record(&mut enc, &self.sumsq),
        ) {
            self.pending.push((a, b, step, counted, lr));
        }
        let idx = self.ctx.queue.submit([enc.finish()]);
        self.ring.after_submit();
        self.prev = self.last.replace(idx);
    }

    /// Wait for the step before the latest (so at most two are in flight) and report what has come back.
    pub fn settle(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        if let Some(prev) = self.prev.take() {
            self.ctx
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                })
                .map_err(|e| ModelError::Gpu(GpuError::Device(e.to_string())))?;
        }
        self.collect(report)
    }

    /// Wait for everything submitted and report it (before a checkpoint, at the end).
    pub fn sync(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        self.ctx.wait()?;
        self.collect(report)
    }

    fn collect(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        let failure = drain(
            self.ctx,
            &mut self.ring,
            &mut self.pending,
            report,
            self.values_per_example,
        );
        self.ctx.take_error()?;
        match failure {
            Some(f) => Err(ModelError::Input(format!(
                "{f}; training stopped, the last checkpoint is kept"
            ))),
            None => Ok(()),
        }
    }
}
