//! Launcher for `shaders/pixel_loss.wgsl`: per-pixel softmax cross-entropy with an ignored label (dense
//! prediction). Shapes: logits, dlogits (B, K, H, W); labels (B, H, W) u32; stats (B·H·W, 3) =
//! (scale · loss, scale · correct, counted).

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `PixelLossParams` in pixel_loss.wgsl.
    PixelLossParams in "pixel_loss" as "PixelLossParams" {
        batch: u32, classes: u32, pixels: u32, ignore: u32, scale: f32, flags: u32, _pad0: u32, _pad1: u32,
    }
);

/// The label of pixels that count towards nothing (ADE20K's "other" after its reduce-zero-label shift).
pub const IGNORE: u32 = u32::MAX;

/// The launch and its parameter uniform (rewrite `scale` each step with [`set_scale`] as the number of counted
/// pixels changes).
pub struct PixelLoss {
    pub dispatches: Vec<Dispatch>,
    pub uniform: GpuSlice,
    pub params: PixelLossParams,
}

/// Per-pixel cross-entropy of `logits (B, K, H, W)` against `labels (B, H, W)`; `dlogits` written (or added to,
/// `accumulate`) when given. `scale` multiplies the loss, the accuracy and the gradient (1 / counted pixels for
/// means).
#[allow(clippy::too_many_arguments)]
pub fn pixel_cross_entropy(
    ctx: &GpuContext,
    stats: &GpuSlice,
    dlogits: Option<&GpuSlice>,
    logits: &GpuSlice,
    labels: &GpuSlice,
    batch: u32,
    classes: u32,
    pixels: u32,
    scale: f32,
    accumulate: bool,
) -> Result<PixelLoss, GpuError> {
    const K: &str = "pixel_loss::pixel_cross_entropy";
    let n = batch as u64 * pixels as u64;
    let nk = n * classes as u64;
    need(K, "logits", logits, nk)?;
    need(K, "labels", labels, n)?;
    need(K, "stats", stats, 3 * n)?;
    if let Some(d) = dlogits {
        need(K, "dlogits", d, nk)?;
    }
    fits_u32(K, nk.max(3 * n))?;
    if classes == 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "no classes".into(),
        });
    }
    let params = PixelLossParams {
        batch,
        classes,
        pixels,
        ignore: IGNORE,
        scale,
        flags: accumulate as u32 | (dlogits.is_some() as u32) << 1,
        ..Default::default()
    };
    let uniform = GpuSlice::uniform(ctx, "PixelLossParams", &params);
    let dispatches = if n == 0 {
        Vec::new()
    } else {
        vec![launch(
            ctx,
            "pixel_loss",
            "pixel_cross_entropy",
            &[dlogits.unwrap_or(stats), stats, logits, labels, &uniform],
            grid_for(n, ELEMENT_WG),
        )?]
    };
    Ok(PixelLoss {
        dispatches,
        uniform,
        params,
    })
}

/// Set the scale of a built loss for the next submit (a queue write, no new buffers).
pub fn set_scale(ctx: &GpuContext, loss: &PixelLoss, scale: f32) {
    let p = PixelLossParams {
        scale,
        ..loss.params
    };
    ctx.queue
        .write_buffer(&loss.uniform.buffer, 0, bytemuck::bytes_of(&p));
}
