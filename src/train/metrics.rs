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

/// In-flight metrics: (stats ticket, grad ticket, step, masked count, lr).
pub type Pending = Vec<(ReadbackTicket, ReadbackTicket, u32, u32, f32)>;

/// Report every step whose two readbacks have arrived; the first non-finite value is returned as a failure.
pub fn drain(
    ctx: &GpuContext,
    ring: &mut ReadbackRing,
    pending: &mut Pending,
    report: &mut impl FnMut(StepMetrics),
    values_per_example: f32,
) -> Option<String> {
    let done = ring.collect(ctx);
    let value = |t: ReadbackTicket| {
        done.iter()
            .find(|(x, _)| *x == t)
            .map(|(_, b)| bytemuck::pod_collect_to_vec::<u8, f32>(b))
    };
    let mut failure = None;
    pending.retain(|&(ts, tg, step, masked, lr)| match (value(ts), value(tg)) {
        (Some(s), Some(g)) => {
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
        }
        _ => true,
    });
    failure
}
