//! Launchers for `shaders/groupnorm.wgsl`: group normalisation of feature maps (B, C, H, W) with a per-channel
//! affine (the segmentation head's norm). Shapes: x, y, dy, dx (B, C, H, W); γ, β, dγ, dβ (C); mean, rstd (B·G).

use super::{fits_u32, gpu_params, launch, need};
use crate::gpu::{workgroup_grid, Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `GroupNormParams` in groupnorm.wgsl.
    GroupNormParams in "groupnorm" as "GroupNormParams" {
        batch: u32, channels: u32, pixels: u32, groups: u32, eps: f32, flags: u32, _pad0: u32, _pad1: u32,
    }
);

/// The maps normalised: (batch, channels, pixels = H·W) in `groups` groups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupNormShape {
    pub batch: u32,
    pub channels: u32,
    pub pixels: u32,
    pub groups: u32,
    pub eps: f32,
}

impl GroupNormShape {
    pub fn len(&self) -> u64 {
        self.batch as u64 * self.channels as u64 * self.pixels as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn params(&self, accumulate: bool) -> GroupNormParams {
        GroupNormParams {
            batch: self.batch,
            channels: self.channels,
            pixels: self.pixels,
            groups: self.groups,
            eps: self.eps,
            flags: accumulate as u32,
            ..Default::default()
        }
    }
    fn check(&self, k: &str) -> Result<(), GpuError> {
        if self.groups == 0 || !self.channels.is_multiple_of(self.groups) {
            return Err(GpuError::BadLaunch {
                kernel: k.into(),
                message: format!(
                    "{} channels do not split into {} groups",
                    self.channels, self.groups
                ),
            });
        }
        fits_u32(k, self.len())?;
        Ok(())
    }
}

/// `y = group_norm(x) · γ + β`, saving mean and rstd per (image, group).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_forward(
    ctx: &GpuContext,
    y: &GpuSlice,
    mean: &GpuSlice,
    rstd: &GpuSlice,
    x: &GpuSlice,
    gamma: &GpuSlice,
    beta: &GpuSlice,
    s: GroupNormShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "groupnorm::group_norm_forward";
    s.check(K)?;
    let bg = s.batch as u64 * s.groups as u64;
    for (n, b, len) in [
        ("y", y, s.len()),
        ("x", x, s.len()),
        ("mean", mean, bg),
        ("rstd", rstd, bg),
    ] {
        need(K, n, b, len)?;
    }
    need(K, "gamma", gamma, s.channels as u64)?;
    need(K, "beta", beta, s.channels as u64)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(ctx, "GroupNormParams", &s.params(false));
    Ok(vec![launch(
        ctx,
        "groupnorm",
        "group_norm_forward",
        &[y, mean, rstd, x, gamma, beta, x, x, x, &u],
        workgroup_grid(bg),
    )?])
}

/// `dx (=|+=)`, and `dγ`, `dβ (=|+=)` of [`group_norm_forward`] from `dy` and the saved statistics.
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dgamma: &GpuSlice,
    dbeta: &GpuSlice,
    dy: &GpuSlice,
    x: &GpuSlice,
    gamma: &GpuSlice,
    mean: &GpuSlice,
    rstd: &GpuSlice,
    s: GroupNormShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "groupnorm::group_norm_backward";
    s.check(K)?;
    let bg = s.batch as u64 * s.groups as u64;
    for (n, b, len) in [
        ("dx", dx, s.len()),
        ("dy", dy, s.len()),
        ("x", x, s.len()),
        ("mean", mean, bg),
        ("rstd", rstd, bg),
    ] {
        need(K, n, b, len)?;
    }
    for (n, b) in [("dgamma", dgamma), ("dbeta", dbeta), ("gamma", gamma)] {
        need(K, n, b, s.channels as u64)?;
    }
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(ctx, "GroupNormParams", &s.params(accumulate));
    Ok(vec![
        launch(
            ctx,
            "groupnorm",
            "group_norm_backward",
            &[dx, dx, dx, x, gamma, gamma, dy, mean, rstd, &u],
            workgroup_grid(bg),
        )?,
        launch(
            ctx,
            "groupnorm",
            "group_norm_affine_grad",
            &[dgamma, dbeta, dbeta, x, gamma, gamma, dy, mean, rstd, &u],
            workgroup_grid(s.channels as u64),
        )?,
    ])
}
