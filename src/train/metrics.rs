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
pub fn drain(
    ctx: &GpuContext,
    ring: &mut ReadbackRing,
    pending: &mut Pending,
    report: &mut impl FnMut(StepMetrics),
    values_per_example: f32,
) -> Option<String> {
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
        let met = StepMetrics {
            step,
            loss: s[0] / (mm * values_per_example),
            accuracy: s[1] / mm,
            grad_norm: g[0].sqrt(),
            lr,
            masked,
        };
        if !met.loss.is_finite() || !met.grad_norm.is_finite() {
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
