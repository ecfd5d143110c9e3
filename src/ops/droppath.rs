//! Launcher for `shaders/droppath.wgsl`: per-sample drop path with a counter-based RNG. Shapes: `out, x (B, S)`.

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `DropPathParams` in droppath.wgsl.
    DropPathParams in "droppath" as "DropPathParams" {
        batch: u32, per_sample: u32, keep_prob: f32, flags: u32, seed_lo: u32, seed_hi: u32, stream: u32, _pad: u32,
    }
);

impl DropPathParams {
    /// The uniform of one drop-path launch: `batch` samples of `per_sample` values, random stream `stream` of
    /// `seed`, accumulating into the output when `accumulate`.
    pub fn new(
        batch: u32,
        per_sample: u32,
        keep_prob: f32,
        seed: u64,
        stream: u32,
        accumulate: bool,
    ) -> Self {
        Self {
            batch,
            per_sample,
            keep_prob,
            flags: accumulate as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            stream,
            _pad: 0,
        }
    }
}

/// `out (=|+=) x · keep_b / keep_prob` with `keep_b` drawn from (seed, stream, b). The backward is the same
/// call on the upstream gradient with the same seed and stream.
#[allow(clippy::too_many_arguments)]
pub fn drop_path(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    batch: u32,
    per_sample: u32,
    keep_prob: f32,
    seed: u64,
    stream: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "droppath::drop_path";
    let n = batch as u64 * per_sample as u64;
    need(K, "out", out, n)?;
    need(K, "x", x, n)?;
    fits_u32(K, n)?;
    if !(keep_prob > 0.0 && keep_prob <= 1.0) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("keep probability {keep_prob} is outside (0, 1]"),
        });
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let params = DropPathParams::new(batch, per_sample, keep_prob, seed, stream, accumulate);
    let u = GpuSlice::uniform(ctx, "DropPathParams", &params);
    Ok(vec![launch(
        ctx,
        "droppath",
        "drop_path",
        &[out, x, &u],
        grid_for(n, ELEMENT_WG),
    )?])
}

/// [`drop_path`] reading its parameters from a uniform the caller owns and rewrites per step (new seed).
pub fn drop_path_with(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    params: &GpuSlice,
    p: &DropPathParams,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "droppath::drop_path";
    let n = p.batch as u64 * p.per_sample as u64;
    need(K, "out", out, n)?;
    need(K, "x", x, n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![launch(
        ctx,
        "droppath",
        "drop_path",
        &[out, x, params],
        grid_for(n, ELEMENT_WG),
    )?])
}
