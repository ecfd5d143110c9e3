//! Launchers for `shaders/patches.wgsl`: `img (B, C, H, W) <-> patches (B, N, C·p·p)` in Conv2d weight order.

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `PatchParams` in patches.wgsl.
    PatchParams in "patches" as "PatchParams" {
        batch: u32, channels: u32, height: u32, width: u32, patch_size: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
);

/// Image geometry shared by both directions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchShape {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub patch: u32,
}

impl PatchShape {
    pub fn elements(&self) -> u64 {
        self.batch as u64 * self.channels as u64 * self.height as u64 * self.width as u64
    }

    pub fn patches_per_image(&self) -> u32 {
        (self.height / self.patch) * (self.width / self.patch)
    }
}

fn run(
    ctx: &GpuContext,
    entry: &str,
    out: &GpuSlice,
    src: &GpuSlice,
    s: PatchShape,
) -> Result<Vec<Dispatch>, GpuError> {
    let kernel = format!("patches::{entry}");
    if s.patch == 0 || !s.height.is_multiple_of(s.patch) || !s.width.is_multiple_of(s.patch) {
        return Err(GpuError::BadLaunch {
            kernel,
            message: format!(
                "image {}x{} is not divisible into {}-pixel patches",
                s.height, s.width, s.patch
            ),
        });
    }
    need(&kernel, "out", out, s.elements())?;
    need(&kernel, "src", src, s.elements())?;
    fits_u32(&kernel, s.elements())?;
    if s.elements() == 0 {
        return Ok(Vec::new());
    }
    let params = PatchParams {
        batch: s.batch,
        channels: s.channels,
        height: s.height,
        width: s.width,
        patch_size: s.patch,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "PatchParams", &params);
    Ok(vec![launch(
        ctx,
        "patches",
        entry,
        &[out, src, &u],
        grid_for(s.elements(), ELEMENT_WG),
    )?])
}

/// `patches (B, N, C·p·p) = patchify(img (B, C, H, W))`.
pub fn patchify(
    ctx: &GpuContext,
    patches: &GpuSlice,
    img: &GpuSlice,
    shape: PatchShape,
) -> Result<Vec<Dispatch>, GpuError> {
    run(ctx, "patchify", patches, img, shape)
}

/// `img (B, C, H, W) = unpatchify(patches (B, N, C·p·p))`.
pub fn unpatchify(
    ctx: &GpuContext,
    img: &GpuSlice,
    patches: &GpuSlice,
    shape: PatchShape,
) -> Result<Vec<Dispatch>, GpuError> {
    run(ctx, "unpatchify", img, patches, shape)
}

/// `ctx (B·N, 5·P)`: each patch of `patches (B·N, P)` followed by its neighbours above, below, left and right
/// (zeros past the border).
pub fn patch_context(
    ctx: &GpuContext,
    out: &GpuSlice,
    patches: &GpuSlice,
    s: PatchShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "patches::patch_context";
    if s.patch == 0 || !s.height.is_multiple_of(s.patch) || !s.width.is_multiple_of(s.patch) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "image {}x{} is not divisible into {}-pixel patches",
                s.height, s.width, s.patch
            ),
        });
    }
    let n = 5 * s.elements();
    need(K, "out", out, n)?;
    need(K, "patches", patches, s.elements())?;
    fits_u32(K, n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let params = PatchParams {
        batch: s.batch,
        channels: s.channels,
        height: s.height,
        width: s.width,
        patch_size: s.patch,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "PatchParams", &params);
    Ok(vec![launch(
        ctx,
        "patches",
        "patch_context",
        &[out, patches, &u],
        grid_for(n, ELEMENT_WG),
    )?])
}
