//! Metrics of a training step as they come back through the readback ring, a step or two late.

use crate::gpu::{GpuContext, ReadbackRing, ReadbackTicket};

/// One step's numbers, as they come back from the GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    pub step: u32,
    pub loss: f32,
    pub accuracy: f32,
    pub grad_norm: f32,
    pub lr: f32,
    /// Examples the loss counted (masked patches, or images).
    pub masked: u32,
    /// Mixed precision: the loss scale this step's backward used (1 in f32).
    pub loss_scale: f32,
    /// Mixed precision: the scaled gradients overflowed, so AdamW left the weights alone this step.
    pub skipped: bool,
}

/// In-flight metrics: per step (stats ticket, grad ticket, step, masked count, lr), and values that came back
/// before their partner (the two copies of a step can finish mapping at different polls).
#[derive(Default)]
pub struct Pending {
    steps: Vec<(ReadbackTicket, ReadbackTicket, u32, u32, f32)>,
    arrived: Vec<(ReadbackTicket, Vec<f32>)>,
}

impl Pending {
    /// A submitted step whose stats and squared gradient norm come back under these tickets.
    pub fn push(
        &mut self,
        stats: ReadbackTicket,
        grads: ReadbackTicket,
        step: u32,
        masked: u32,
        lr: f32,
    ) {
        self.steps.push((stats, grads, step, masked, lr));
    }

    /// Steps not reported yet.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Report every step whose two readbacks have arrived, oldest first; the first non-finite value is returned as a
/// failure. A value whose partner has not arrived yet is kept for a later call.
///
/// With a loss scale (`scaled`; the gradient readback is the scaler's state, see `cpu::precision`) the gradient
/// norm is unscaled, and overflowed gradients are a skipped step, not a failure, unless the scale was already
/// below 1 (the gradients overflow f16 unscaled) or the loss itself is not finite.
pub fn drain(
    ctx: &GpuContext,
    ring: &mut ReadbackRing,
    pending: &mut Pending,
    report: &mut impl FnMut(StepMetrics),
    values_per_example: f32,
    scaled: bool,
) -> Option<String> {
    use crate::cpu::precision::state;
    for (ticket, bytes) in ring.collect(ctx) {
        pending
            .arrived
            .push((ticket, bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)));
    }
    let Pending { steps, arrived } = pending;
    let take = |arrived: &mut Vec<(ReadbackTicket, Vec<f32>)>, t: ReadbackTicket| {
        let i = arrived.iter().position(|(x, _)| *x == t)?;
        Some(arrived.swap_remove(i).1)
    };
    let mut failure = None;
    steps.retain(|&(ts, tg, step, masked, lr)| {
        let both = arrived.iter().any(|(x, _)| *x == ts) && arrived.iter().any(|(x, _)| *x == tg);
        if !both {
            return true;
        }
        let (Some(s), Some(g)) = (take(arrived, ts), take(arrived, tg)) else {
            return true;
        };
        let mm = masked.max(1) as f32;
        let (loss_scale, skipped) = match (scaled, g.get(state::USED_SCALE), g.get(state::SKIPPED)) {
            (true, Some(&used), Some(&skip)) => (used, skip != 0.0),
            _ => (1.0, false),
        };
        let met = StepMetrics {
            step,
            loss: s[0] / (mm * values_per_example),
            accuracy: s[1] / mm,
            grad_norm: g[0].sqrt() / loss_scale,
            lr,
            masked,
            loss_scale,
            skipped,
        };
        if !met.loss.is_finite() && scaled {
            failure.get_or_insert(format!(
                "the loss became {} at step {step} in mixed precision (an activation passed f16's range); --precision f32 avoids it",
                met.loss
            ));
        } else if skipped && loss_scale < 1.0 {
            failure.get_or_insert(format!(
                "the gradients overflow f16 even at loss scale {loss_scale} (step {step}); --precision f32 avoids it"
            ));
        } else if !met.loss.is_finite() || (!skipped && !met.grad_norm.is_finite()) {
            failure.get_or_insert(format!(
                "the loss or gradient became {} / {} at step {step}",
                met.loss, met.grad_norm
            ));
        }
        report(met);
        false
    });
    failure
}
