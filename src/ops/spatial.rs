//! Launchers for `shaders/spatial.wgsl`: 2x2 max-pooling, 2x nearest upsampling, argmax over channels and the
//! DALL-E decoder's sigmoid-unmap of pixel means and bilinear resizing, on images (B, C, H, W).

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `SpatialParams` in spatial.wgsl.
    SpatialParams in "spatial" as "SpatialParams" {
        batch: u32, channels: u32, height: u32, width: u32, in_channels: u32, eps: f32, scale: f32, shift: f32,
        token_offset: u32, out_h: u32, out_w: u32, flags: u32,
    }
);

/// An image batch (B, C, H, W).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageShape {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
}

impl ImageShape {
    pub fn len(&self) -> u64 {
        self.batch as u64 * self.channels as u64 * self.height as u64 * self.width as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn run(
    ctx: &GpuContext,
    entry: &str,
    out: &GpuSlice,
    x: &GpuSlice,
    tokens: &GpuSlice,
    params: SpatialParams,
    items: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    run_with(ctx, entry, &[out, x, tokens, x], params, items)
}

/// [`run`] with every binding given: out, x, tokens, aux.
fn run_with(
    ctx: &GpuContext,
    entry: &str,
    args: &[&GpuSlice; 4],
    params: SpatialParams,
    items: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    fits_u32(entry, items)?;
    if items == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(ctx, "SpatialParams", &params);
    let [out, x, tokens, aux] = *args;
    Ok(vec![launch(
        ctx,
        "spatial",
        entry,
        &[out, x, &u, tokens, aux],
        grid_for(items, ELEMENT_WG),
    )?])
}

fn plain(s: ImageShape) -> SpatialParams {
    SpatialParams {
        batch: s.batch,
        channels: s.channels,
        height: s.height,
        width: s.width,
        in_channels: s.channels,
        eps: 0.0,
        scale: 1.0,
        shift: 0.0,
        ..Default::default()
    }
}

/// `out (B, C, H/2, W/2)` = max of each 2x2 block of `x (B, C, H, W)`.
pub fn max_pool2(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: ImageShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::max_pool2";
    let n = ImageShape {
        height: s.height / 2,
        width: s.width / 2,
        ..s
    }
    .len();
    need(K, "x", x, s.len())?;
    need(K, "out", out, n)?;
    fits_u32(K, s.len())?;
    run(ctx, "max_pool2", out, x, x, plain(s), n)
}

/// `out (B, C, 2H, 2W)` = `x (B, C, H, W)` repeated 2x2 (nearest).
pub fn upsample_nearest2(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: ImageShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::upsample_nearest2";
    let n = 4 * s.len();
    need(K, "x", x, s.len())?;
    need(K, "out", out, n)?;
    run(ctx, "upsample_nearest2", out, x, x, plain(s), n)
}

/// `tokens (B, H, W)` u32, from element `token_offset` on, = argmax over the channels of `x (B, C, H, W)`
/// (lowest channel on ties).
pub fn argmax_channels(
    ctx: &GpuContext,
    tokens: &GpuSlice,
    token_offset: u32,
    x: &GpuSlice,
    s: ImageShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::argmax_channels";
    if s.channels == 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "no channels to choose from".into(),
        });
    }
    let n = s.batch as u64 * s.height as u64 * s.width as u64;
    need(K, "x", x, s.len())?;
    need(K, "tokens", tokens, token_offset as u64 + n)?;
    fits_u32(K, s.len())?;
    let p = SpatialParams {
        token_offset,
        ..plain(s)
    };
    run(ctx, "argmax_channels", x, x, tokens, p, n)
}

/// `out (B, C, H, W) = scale · clamp((sigmoid(x) − eps) / (1 − 2·eps), 0, 1) + shift` on the first C channels of
/// `x (B, in_channels, H, W)`: the DALL-E decoder's pixels (its `unmap_pixels` of the sigmoid of the means),
/// `scale`/`shift` map them to a model's normalisation.
#[allow(clippy::too_many_arguments)]
pub fn sigmoid_unmap(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: ImageShape,
    in_channels: u32,
    eps: f32,
    scale: f32,
    shift: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::sigmoid_unmap";
    if in_channels < s.channels || !(0.0..0.5).contains(&eps) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "{} channels read from an input of {in_channels} with eps {eps}",
                s.channels
            ),
        });
    }
    let input = ImageShape {
        channels: in_channels,
        ..s
    };
    need(K, "x", x, input.len())?;
    need(K, "out", out, s.len())?;
    fits_u32(K, input.len())?;
    let p = SpatialParams {
        in_channels,
        eps,
        scale,
        shift,
        ..plain(s)
    };
    run(ctx, "sigmoid_unmap", out, x, x, p, s.len())
}

/// Resizing computes source coordinates in 32-bit integers: sides up to 32768.
fn check_resize_sides(kernel: &str, s: ImageShape, out_side: (u32, u32)) -> Result<(), GpuError> {
    if [s.height, s.width, out_side.0, out_side.1]
        .iter()
        .any(|&v| v > 32768)
    {
        return Err(GpuError::BadLaunch {
            kernel: kernel.into(),
            message: "image sides above 32768 are not supported".into(),
        });
    }
    Ok(())
}

/// `out (B, C, out_h, out_w)` = `x (B, C, H, W)` resized bilinearly (PyTorch's interpolate, align_corners =
/// False, no antialiasing).
pub fn resize_bilinear(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: ImageShape,
    out_side: (u32, u32),
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::resize_bilinear";
    let o = ImageShape {
        height: out_side.0,
        width: out_side.1,
        ..s
    };
    check_resize_sides(K, s, out_side)?;
    if s.is_empty() && !o.is_empty() {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "cannot resize an empty image to a non-empty one".into(),
        });
    }
    need(K, "x", x, s.len())?;
    need(K, "out", out, o.len())?;
    fits_u32(K, s.len().max(o.len()))?;
    let p = SpatialParams {
        out_h: out_side.0,
        out_w: out_side.1,
        ..plain(s)
    };
    run(ctx, "resize_bilinear", out, x, x, p, o.len())
}

/// `dx (B, C, H, W) (=|+=)` the adjoint of [`resize_bilinear`] from `s` to `out_side` applied to
/// `dy (B, C, out_h, out_w)`: every output pixel's gradient shared among the four input pixels it read.
pub fn resize_bilinear_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    s: ImageShape,
    out_side: (u32, u32),
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::resize_bilinear_backward";
    let o = ImageShape {
        height: out_side.0,
        width: out_side.1,
        ..s
    };
    check_resize_sides(K, s, out_side)?;
    need(K, "dy", dy, o.len())?;
    need(K, "dx", dx, s.len())?;
    fits_u32(K, s.len().max(o.len()))?;
    if o.is_empty() {
        return if accumulate || s.is_empty() {
            Ok(Vec::new())
        } else {
            Ok(super::elementwise::fill(
                ctx,
                dx,
                fits_u32(K, s.len())?,
                0.0,
            )?)
        };
    }
    let p = SpatialParams {
        out_h: out_side.0,
        out_w: out_side.1,
        flags: accumulate as u32,
        ..plain(s)
    };
    run(ctx, "resize_bilinear_backward", dx, dy, dy, p, s.len())
}

/// `dx (B, C, H, W) (=|+=)` the gradient of [`max_pool2`] from `dy (B, C, H/2, W/2)`: each block's gradient to
/// its first maximum of `x` (the forward's input), 0 elsewhere and on the rows and columns pooling dropped.
pub fn max_pool2_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    x: &GpuSlice,
    s: ImageShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::max_pool2_backward";
    let pooled = ImageShape {
        height: s.height / 2,
        width: s.width / 2,
        ..s
    };
    need(K, "x", x, s.len())?;
    need(K, "dx", dx, s.len())?;
    need(K, "dy", dy, pooled.len())?;
    if pooled.is_empty() {
        // Nothing was pooled: no gradient reaches the input.
        return if accumulate || s.is_empty() {
            Ok(Vec::new())
        } else {
            Ok(super::elementwise::fill(
                ctx,
                dx,
                fits_u32(K, s.len())?,
                0.0,
            )?)
        };
    }
    let p = SpatialParams {
        flags: accumulate as u32,
        ..plain(s)
    };
    run_with(ctx, "max_pool2_backward", &[dx, x, x, dy], p, s.len())
}

/// `dx (B, C, H, W) (=|+=)` the gradient of [`upsample_nearest2`]: the sum of each 2x2 block of
/// `dy (B, C, 2H, 2W)`.
pub fn upsample_nearest2_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    s: ImageShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "spatial::upsample_nearest2_backward";
    need(K, "dy", dy, 4 * s.len())?;
    need(K, "dx", dx, s.len())?;
    let p = SpatialParams {
        flags: accumulate as u32,
        ..plain(s)
    };
    run(ctx, "upsample_nearest2_backward", dx, dy, dy, p, s.len())
}
