//! Validation passes of a training phase without waiting: a pass is queued after a step, its fixed batches are
//! submitted one per frame (each a forward whose result buffer is copied into a readback ring), and the results
//! come back a frame or more later tagged with the step and batch they belong to. The phases sum them.

use crate::gpu::{Dispatch, GpuContext, GpuSlice, ReadbackRing, ReadbackTicket};
use crate::model::ModelError;

pub struct ValidationPasses {
    ring: ReadbackRing,
    /// (ticket, step, batch index) of batches in flight.
    pending: Vec<(ReadbackTicket, u32, usize)>,
    /// Passes still to submit: (step, next batch).
    queue: Vec<(u32, usize)>,
    /// Batches per pass.
    batches: usize,
}

impl ValidationPasses {
    /// Passes of `batches` batches whose results are at most `result_bytes` each.
    pub fn new(ctx: &GpuContext, batches: usize, result_bytes: u64) -> Self {
        Self {
            ring: ReadbackRing::new(ctx, 4, result_bytes),
            pending: Vec::new(),
            queue: Vec::new(),
            batches,
        }
    }

    pub fn batches(&self) -> usize {
        self.batches
    }

    /// After training step `step` of `total`: queue a pass every tenth of the run and after the last step.
    pub fn after_step(&mut self, step: u32, total: u32) {
        let every = (total / 10).max(1);
        if step.is_multiple_of(every) || step == total {
            self.queue.push((step, 0));
        }
    }

    /// Submit at most one batch of the oldest queued pass: `write(batch)` fills the inputs, then `work` runs and
    /// `result` is copied back. Returns whether a batch went out.
    pub fn submit(
        &mut self,
        ctx: &GpuContext,
        write: impl FnOnce(usize) -> Result<(), ModelError>,
        work: &[Dispatch],
        result: &GpuSlice,
    ) -> Result<bool, ModelError> {
        let Some(&(step, next)) = self.queue.first() else {
            return Ok(false);
        };
        write(next)?;
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("validation"),
            });
        Dispatch::record_all(&mut enc, "validation", work);
        let Some(ticket) = self.ring.record(&mut enc, result) else {
            return Ok(false);
        };
        ctx.queue.submit([enc.finish()]);
        self.ring.after_submit();
        self.pending.push((ticket, step, next));
        if next + 1 == self.batches {
            self.queue.remove(0);
        } else {
            self.queue[0].1 += 1;
        }
        Ok(true)
    }

    /// Passes not yet fully come back.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || !self.pending.is_empty()
    }

    /// The results that came back: (step, batch index, bytes).
    pub fn collect(&mut self, ctx: &GpuContext) -> Vec<(u32, usize, Vec<u8>)> {
        let mut out = Vec::new();
        for (ticket, bytes) in self.ring.collect(ctx) {
            if let Some(pos) = self.pending.iter().position(|(t, ..)| *t == ticket) {
                let (_, step, batch) = self.pending.remove(pos);
                out.push((step, batch, bytes));
            }
        }
        out
    }
}
