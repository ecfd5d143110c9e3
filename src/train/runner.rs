//! The optimizer side of every training loop: AdamW plan and moments, the global-norm clip, the step's dispatch
//! list (built once), one submit per step, at most two steps in flight, and metrics collected from the readback
//! ring a step or two late (a non-finite loss or gradient becomes an error). The command line waits for the step
//! before the latest (`settle`); the app never waits: it asks `in_flight` and collects with `poll`.
//!
//! Mixed precision: the graph's loss scaler state takes the place of the gradient's sum of squares (its first
//! value), AdamW unscales and skips overflowed steps on the device, and the scale's update follows AdamW in
//! the same submit; a skipped step comes back as such in its metrics, not as an error.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

#[cfg(not(target_arch = "wasm32"))]
use super::checkpoint::TrainState;
use super::metrics::{drain, Pending, StepMetrics};
use crate::gpu::{Dispatch, FlatBuffer, FlatLayout, GpuContext, GpuSlice, ReadbackRing};
use crate::model::{BeitGraph, BeitModel, ModelError};
use crate::ops::adamw::{adamw_step, AdamWPlan, AdamWStep};
use crate::ops::precision::{self, LossScaler};
use crate::ops::reduce;

pub struct StepRunner {
    ctx: GpuContext,
    pub m: FlatBuffer,
    pub v: FlatBuffer,
    plan: AdamWPlan,
    /// Σ g² of the gradients (1 value), or the loss scaler's state (6) whose first value it is.
    sumsq: GpuSlice,
    /// Mixed precision's dynamic loss scale.
    pub scaler: Option<LossScaler>,
    stats: GpuSlice,
    work: Vec<Dispatch>,
    ring: ReadbackRing,
    pending: Pending,
    /// The latest submission and the one before it (waited for by `settle`).
    last: Option<wgpu::SubmissionIndex>,
    prev: Option<wgpu::SubmissionIndex>,
    label: &'static str,
    /// Steps submitted, and steps the GPU has finished (set from the queue's completion callback).
    submitted: u32,
    finished: Arc<AtomicU32>,
    /// The loss is a sum per example over this many values (pixel regression: a patch), reported as a mean.
    values_per_example: f32,
}

impl StepRunner {
    /// `before` runs first in each step (e.g. the tokenizer producing the MIM labels); then the graph's forward
    /// and backward, the gradient's sum of squares and AdamW with `groups` (lr multiplier, weight decay).
    pub fn new(
        ctx: &GpuContext,
        model: &BeitModel,
        graph: &BeitGraph,
        before: Vec<Dispatch>,
        groups: &[(f32, f32)],
        label: &'static str,
    ) -> Result<Self, ModelError> {
        let mut work = before;
        work.extend(graph.forward.iter().cloned());
        work.extend(graph.backward.iter().cloned());
        let values_per_example = if model.cfg.predicts_pixels()
            && model.cfg.architecture() == crate::model::Architecture::MaskedImageModeling
        {
            model.cfg.patch_dim() as f32
        } else {
            1.0
        };
        Self::from_parts(
            ctx,
            &model.params,
            &graph.grads,
            &graph.stats,
            work,
            groups,
            label,
            values_per_example,
            graph.loss_scaler.clone(),
        )
    }

    /// Any trainable network: `work` computes `grads` of `params` and writes (Σ loss, Σ second metric) into
    /// `stats`; the runner adds the gradient's sum of squares and AdamW with `groups` (one per tensor), and,
    /// with a loss `scaler` (gradients computed times its scale), the scale's update after AdamW.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        ctx: &GpuContext,
        params: &FlatBuffer,
        grads: &FlatBuffer,
        stats: &GpuSlice,
        mut work: Vec<Dispatch>,
        groups: &[(f32, f32)],
        label: &'static str,
        values_per_example: f32,
        scaler: Option<LossScaler>,
    ) -> Result<Self, ModelError> {
        let layout: FlatLayout = params.layout.clone();
        let mut plan = AdamWPlan::new(ctx, &layout, groups)?;
        plan.loss_scaled = scaler.is_some();
        let (m, v) = (
            FlatBuffer::new(ctx, "adam m", layout.clone()),
            FlatBuffer::new(ctx, "adam v", layout),
        );
        let sumsq = match &scaler {
            Some(s) => s.state.clone(),
            None => GpuSlice::new(ctx, "grad sumsq", 1),
        };
        work.extend(reduce::sum_squares(
            ctx,
            &sumsq,
            0,
            &grads.whole,
            grads.layout.total as u32,
        )?);
        work.extend(adamw_step(
            ctx,
            &params.whole,
            &m.whole,
            &v.whole,
            &grads.whole,
            &sumsq,
            &plan,
        )?);
        if let Some(s) = &scaler {
            work.extend(precision::update_loss_scale(ctx, s)?);
        }
        Ok(Self {
            ctx: ctx.clone(),
            m,
            v,
            plan,
            sumsq,
            scaler,
            stats: stats.clone(),
            work,
            ring: ReadbackRing::new(ctx, 8, 8),
            pending: Pending::default(),
            last: None,
            prev: None,
            values_per_example,
            label,
            submitted: 0,
            finished: Arc::new(AtomicU32::new(0)),
        })
    }

    /// Steps submitted that the GPU has not finished yet.
    pub fn in_flight(&self) -> u32 {
        self.submitted
            .saturating_sub(self.finished.load(Ordering::Acquire))
    }

    /// Continue from saved AdamW moments (and loss scale, when both runs had one).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn restore(&self, st: &TrainState) {
        self.m.whole.write(&self.ctx, &st.adam_m);
        self.v.whole.write(&self.ctx, &st.adam_v);
        if let (Some(s), Some(saved)) = (&self.scaler, &st.loss_scale) {
            s.restore(&self.ctx, saved);
        }
    }

    /// The loss scaler's state now (waits for the GPU): for a checkpoint of a mixed-precision run.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn loss_scale_state(
        &self,
    ) -> Result<Option<[f32; crate::cpu::precision::state::LEN]>, ModelError> {
        let Some(s) = &self.scaler else {
            return Ok(None);
        };
        let v = self.ctx.read_f32(&s.state)?;
        let mut out = [0.0; crate::cpu::precision::state::LEN];
        out.copy_from_slice(&v[..crate::cpu::precision::state::LEN]);
        Ok(Some(out))
    }

    /// Submit one step (inputs already written) counting `counted` examples in its loss.
    pub fn submit(&mut self, step: u32, lr: f32, clip: Option<f32>, counted: u32) {
        self.submit_with(step, lr, clip, counted, |_| {});
    }

    /// [`StepRunner::submit`], recording `after` into the step's own command encoder once the step's work is
    /// recorded (e.g. copies of the updated weights), so the step stays one submit.
    pub fn submit_with(
        &mut self,
        step: u32,
        lr: f32,
        clip: Option<f32>,
        counted: u32,
        after: impl FnOnce(&mut wgpu::CommandEncoder),
    ) {
        self.plan.set_step(
            &self.ctx,
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
        after(&mut enc);
        #[cfg(not(target_arch = "wasm32"))]
        self.inject_gpu_fault(step, &mut enc);
        // Every step's loss comes back (the ring grows rather than skip one): each is checked for being finite.
        let stats = self.ring.record_always(&mut enc, &self.stats);
        let grads = self.ring.record_always(&mut enc, &self.sumsq);
        self.pending.push(stats, grads, step, counted, lr);
        let idx = self.ctx.queue.submit([enc.finish()]);
        self.submitted += 1;
        let finished = self.finished.clone();
        self.ctx.queue.on_submitted_work_done(move || {
            finished.fetch_add(1, Ordering::AcqRel);
        });
        self.ring.after_submit();
        self.prev = self.last.replace(idx);
    }

    /// The GPU faults of `BEITLAB_FAULT` (tests of "a device loss or GPU error ends training with a message").
    #[cfg(not(target_arch = "wasm32"))]
    fn inject_gpu_fault(&self, step: u32, enc: &mut wgpu::CommandEncoder) {
        use super::fault::gpu_fault_at;
        if gpu_fault_at("gpu-error", step) {
            // A copy of 3 bytes: not a multiple of 4, so a validation error.
            enc.copy_buffer_to_buffer(&self.stats.buffer, 0, &self.sumsq.buffer, 0, Some(3));
        }
        if gpu_fault_at("lose-device", step) {
            self.ctx.device.destroy();
        }
    }

    /// Report whatever metrics have come back, without waiting (the app's per-frame call).
    pub fn poll(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        self.collect(report)
    }

    /// Wait for the step before the latest (so at most two are in flight) and report what has come back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn settle(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        if let Some(prev) = self.prev.take() {
            self.ctx
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                })
                .map_err(|e| ModelError::Gpu(crate::gpu::GpuError::Device(e.to_string())))?;
        }
        self.collect(report)
    }

    /// Wait for everything submitted and report it (before a checkpoint, at the end).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn sync(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        self.ctx.wait()?;
        self.collect(report)
    }

    fn collect(&mut self, report: &mut impl FnMut(StepMetrics)) -> Result<(), ModelError> {
        let failure = drain(
            &self.ctx,
            &mut self.ring,
            &mut self.pending,
            report,
            self.values_per_example,
            self.scaler.is_some(),
        );
        self.ctx.take_error().map_err(|e| {
            ModelError::Input(format!(
                "{e}; training stopped, the last checkpoint is kept"
            ))
        })?;
        match failure {
            Some(f) => Err(ModelError::Input(format!(
                "{f}; training stopped, the last checkpoint is kept"
            ))),
            None => Ok(()),
        }
    }
}
