//! Launchers for `shaders/conv.wgsl`: stride-1 2D convolution with zero padding as an implicit matrix product,
//! its input, weight and bias gradients, and the 1x1 convolution of a one-hot token image. Shapes:
//! x (B, Ci, H, W), w (Co, Ci, k, k), bias (Co), out (B, Co, H + 2·pad − k + 1, W + 2·pad − k + 1);
//! tokens (B, H, W) u32.

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{workgroup_grid, Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `ConvParams` in conv.wgsl.
    ConvParams in "conv" as "ConvParams" {
        batch: u32, in_channels: u32, out_channels: u32, in_h: u32, in_w: u32, out_h: u32, out_w: u32,
        kernel: u32, pad: u32, flags: u32, scale: f32, aux: u32,
    }
);

/// Output and input tile side of `conv2d` (64 x 64 outputs per workgroup).
const CONV_TILE: u64 = 64;

/// How a convolution and its gradients run: as implicit products in workgroup-memory tiles (GPUs), or as
/// columns of the image times the packed weights on the adapter's gemm (`ops::conv_columns`; software
/// adapters), with at most `budget` column elements per chunk of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernel {
    Tiled,
    Columns { budget: u64 },
}

impl ConvKernel {
    /// `Columns` on CPU adapters (lavapipe, SwiftShader), `Tiled` elsewhere.
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if ctx.adapter_info.device_type == wgpu::DeviceType::Cpu {
            Self::Columns {
                budget: super::conv_columns::COLUMN_BUDGET,
            }
        } else {
            Self::Tiled
        }
    }
}

/// The geometry of one stride-1 convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: u32,
    pub in_channels: u32,
    pub out_channels: u32,
    pub height: u32,
    pub width: u32,
    /// Kernel side k.
    pub kernel: u32,
    /// Zeros added on every side.
    pub pad: u32,
}

impl ConvShape {
    /// A "same" convolution (odd `kernel`, pad (k − 1) / 2: the output has the input's sides).
    pub fn same(
        batch: u32,
        in_channels: u32,
        out_channels: u32,
        side: (u32, u32),
        kernel: u32,
    ) -> Self {
        Self {
            batch,
            in_channels,
            out_channels,
            height: side.0,
            width: side.1,
            kernel,
            pad: kernel.saturating_sub(1) / 2,
        }
    }
    /// Output (height, width); zero where the kernel is larger than the padded image.
    pub fn out_size(&self) -> (u32, u32) {
        let side =
            |s: u32| (s as u64 + 2 * self.pad as u64 + 1).saturating_sub(self.kernel as u64) as u32;
        (side(self.height), side(self.width))
    }
    pub fn input_len(&self) -> u64 {
        self.batch as u64 * self.in_channels as u64 * self.height as u64 * self.width as u64
    }
    /// The convolution whose output is this one's input gradient: over dy (Co channels of Ho x Wo), Ci out,
    /// padding k − 1 − pad (with the weights transposed and flipped). Needs pad < kernel.
    pub fn input_grad_shape(&self) -> Self {
        let (oh, ow) = self.out_size();
        Self {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            height: oh,
            width: ow,
            kernel: self.kernel,
            pad: self.kernel - 1 - self.pad,
        }
    }
    pub fn output_len(&self) -> u64 {
        let (h, w) = self.out_size();
        self.batch as u64 * self.out_channels as u64 * h as u64 * w as u64
    }
    pub fn weight_len(&self) -> u64 {
        self.out_channels as u64 * self.in_channels as u64 * self.kernel as u64 * self.kernel as u64
    }
}

/// How `conv2d` combines its result with what `out` holds and reads its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvEpilogue {
    /// out = scale · (conv + bias) (+ out).
    pub scale: f32,
    /// Add into `out` instead of overwriting it (a residual sum).
    pub accumulate: bool,
    /// Apply ReLU to the input as it is read (a ReLU before the convolution, never stored).
    pub relu_input: bool,
}

impl Default for ConvEpilogue {
    fn default() -> Self {
        Self {
            scale: 1.0,
            accumulate: false,
            relu_input: false,
        }
    }
}

fn params(s: &ConvShape, bias: bool, e: ConvEpilogue) -> ConvParams {
    let (out_h, out_w) = s.out_size();
    ConvParams {
        batch: s.batch,
        in_channels: s.in_channels,
        out_channels: s.out_channels,
        in_h: s.height,
        in_w: s.width,
        out_h,
        out_w,
        kernel: s.kernel,
        pad: s.pad,
        flags: bias as u32 | (e.accumulate as u32) << 1 | (e.relu_input as u32) << 2,
        scale: e.scale,
        aux: 0,
    }
}

/// `out (=|+=) scale · (conv(act(x), w) + bias)`.
pub fn conv2d(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    shape: ConvShape,
    epilogue: ConvEpilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    conv2d_with(
        ctx,
        ConvKernel::for_adapter(ctx),
        out,
        x,
        w,
        bias,
        shape,
        epilogue,
    )
}

/// [`conv2d`] with the kernel chosen by the caller (tests run both on any adapter).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_with(
    ctx: &GpuContext,
    kernel: ConvKernel,
    out: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    shape: ConvShape,
    epilogue: ConvEpilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv2d";
    if shape.kernel == 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "a convolution needs a kernel side of at least 1".into(),
        });
    }
    need(K, "x", x, shape.input_len())?;
    need(K, "w", w, shape.weight_len())?;
    need(K, "out", out, shape.output_len())?;
    if let Some(b) = bias {
        need(K, "bias", b, shape.out_channels as u64)?;
    }
    fits_u32(K, shape.input_len().max(shape.output_len()))?;
    fits_u32(K, shape.weight_len())?;
    let (oh, ow) = shape.out_size();
    let pixels = shape.batch as u64 * oh as u64 * ow as u64;
    if pixels == 0 || shape.out_channels == 0 {
        return Ok(Vec::new());
    }
    if let ConvKernel::Columns { budget } = kernel {
        return super::conv_columns::conv2d(
            ctx,
            out,
            x,
            w,
            bias,
            shape,
            epilogue.scale,
            epilogue.accumulate,
            epilogue.relu_input,
            budget,
        );
    }
    let u = GpuSlice::uniform(ctx, "ConvParams", &params(&shape, bias.is_some(), epilogue));
    // Binding 5 (tokens) is unused here; binding 6 (saved) is read only by the input gradient.
    let args = [out, x, w, bias.unwrap_or(w), &u, w, x];
    launch_tiled(ctx, &args, pixels, shape.out_channels)
}

/// One launch of the tiled `conv2d` over `pixels` output pixels and `channels` output channels.
fn launch_tiled(
    ctx: &GpuContext,
    args: &[&GpuSlice],
    pixels: u64,
    channels: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    let mut grid = workgroup_grid(pixels.div_ceil(CONV_TILE));
    grid[2] = fits_u32("conv::conv2d", (channels as u64).div_ceil(CONV_TILE))?;
    Ok(vec![launch(ctx, "conv", "conv2d", args, grid)?])
}

/// `out (B, Co, H, W) = w[:, tokens] + bias`: the 1x1 convolution of the one-hot image of `tokens (B, H, W)`
/// (starting `token_offset` elements into `tokens`) over a vocabulary of `vocab` (w is (Co, vocab, 1, 1)).
#[allow(clippy::too_many_arguments)]
pub fn token_conv(
    ctx: &GpuContext,
    out: &GpuSlice,
    tokens: &GpuSlice,
    token_offset: u32,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    batch: u32,
    vocab: u32,
    out_channels: u32,
    side: (u32, u32),
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::token_conv";
    let pixels = batch as u64 * side.0 as u64 * side.1 as u64;
    let n = pixels * out_channels as u64;
    need(K, "tokens", tokens, token_offset as u64 + pixels)?;
    need(K, "w", w, out_channels as u64 * vocab as u64)?;
    need(K, "out", out, n)?;
    if let Some(b) = bias {
        need(K, "bias", b, out_channels as u64)?;
    }
    fits_u32(K, n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    if vocab == 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "an empty vocabulary".into(),
        });
    }
    let shape = ConvShape {
        batch,
        in_channels: vocab,
        out_channels,
        height: side.0,
        width: side.1,
        kernel: 1,
        pad: 0,
    };
    let p = ConvParams {
        aux: token_offset,
        ..params(&shape, bias.is_some(), ConvEpilogue::default())
    };
    let u = GpuSlice::uniform(ctx, "ConvParams", &p);
    Ok(vec![launch(
        ctx,
        "conv",
        "token_conv",
        &[out, w, w, bias.unwrap_or(w), &u, tokens],
        grid_for(n, ELEMENT_WG),
    )?])
}

/// `dx (=|+=) dL/dx` of [`conv2d`] with `shape` and scale 1, from `dy (B, Co, Ho, Wo)`: the same kernel reading the
/// weights transposed and flipped, over `dy` padded by k − 1 − pad. With `relu_of` (the forward's input, when the
/// forward applied ReLU on read), zero where it was not positive.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    w: &GpuSlice,
    relu_of: Option<&GpuSlice>,
    shape: ConvShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    conv2d_input_grad_with(
        ctx,
        ConvKernel::for_adapter(ctx),
        dx,
        dy,
        w,
        relu_of,
        shape,
        accumulate,
    )
}

/// [`conv2d_input_grad`] with the kernel chosen by the caller.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad_with(
    ctx: &GpuContext,
    kernel: ConvKernel,
    dx: &GpuSlice,
    dy: &GpuSlice,
    w: &GpuSlice,
    relu_of: Option<&GpuSlice>,
    shape: ConvShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv2d_input_grad";
    if shape.kernel == 0 || shape.pad >= shape.kernel {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "the input gradient needs padding below the kernel side (pad {}, kernel {})",
                shape.pad, shape.kernel
            ),
        });
    }
    need(K, "dy", dy, shape.output_len())?;
    need(K, "dx", dx, shape.input_len())?;
    need(K, "w", w, shape.weight_len())?;
    if let Some(x) = relu_of {
        need(K, "relu_of", x, shape.input_len())?;
    }
    fits_u32(K, shape.input_len().max(shape.output_len()))?;
    let back = shape.input_grad_shape();
    debug_assert_eq!(back.out_size(), (shape.height, shape.width));
    let pixels = shape.batch as u64 * shape.height as u64 * shape.width as u64;
    if pixels == 0 || shape.in_channels == 0 {
        return Ok(Vec::new());
    }
    if let ConvKernel::Columns { budget } = kernel {
        return super::conv_columns::conv2d_input_grad(
            ctx, dx, dy, w, relu_of, shape, accumulate, budget,
        );
    }
    let mut p = params(
        &back,
        false,
        ConvEpilogue {
            accumulate,
            ..Default::default()
        },
    );
    p.flags |= 8 | (relu_of.is_some() as u32) << 4;
    let u = GpuSlice::uniform(ctx, "ConvParams", &p);
    let saved = relu_of.unwrap_or(dy);
    let args = [dx, dy, w, w, &u, w, saved];
    launch_tiled(ctx, &args, pixels, back.out_channels)
}

/// Pixels per split of the weight gradient's reduction: enough splits to fill a GPU, each long enough to amortise
/// its tile loads; at most 1024 splits and at most 65535 workgroups along z with `channel_tiles` tiles each.
fn pixels_per_split(pixels: u64, channel_tiles: u64) -> u64 {
    let max_splits = (65535 / channel_tiles.max(1)).clamp(1, 1024);
    pixels.div_ceil(max_splits).max(4096).min(pixels.max(1))
}

/// `dw (Co, Ci, k, k) (=|+=) dL/dw` of [`conv2d`] (scale 1) from its input `x` and `dy`; the input read as the
/// forward read it (`relu_input`). Split-K: partial products over chunks of pixels into a scratch buffer, then
/// their sum (two dispatches).
pub fn conv2d_weight_grad(
    ctx: &GpuContext,
    dw: &GpuSlice,
    x: &GpuSlice,
    dy: &GpuSlice,
    shape: ConvShape,
    relu_input: bool,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    conv2d_weight_grad_with(
        ctx,
        ConvKernel::for_adapter(ctx),
        dw,
        x,
        dy,
        shape,
        relu_input,
        accumulate,
    )
}

/// [`conv2d_weight_grad`] with the kernel chosen by the caller.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad_with(
    ctx: &GpuContext,
    kernel: ConvKernel,
    dw: &GpuSlice,
    x: &GpuSlice,
    dy: &GpuSlice,
    shape: ConvShape,
    relu_input: bool,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv2d_weight_grad";
    need(K, "x", x, shape.input_len())?;
    need(K, "dy", dy, shape.output_len())?;
    need(K, "dw", dw, shape.weight_len())?;
    fits_u32(K, shape.input_len().max(shape.output_len()))?;
    let kdim = shape.in_channels as u64 * shape.kernel as u64 * shape.kernel as u64;
    let (oh, ow) = shape.out_size();
    let pixels = shape.batch as u64 * oh as u64 * ow as u64;
    if kdim == 0 || shape.out_channels == 0 {
        return Ok(Vec::new());
    }
    if pixels == 0 {
        return if accumulate {
            Ok(Vec::new())
        } else {
            Ok(super::elementwise::fill(
                ctx,
                dw,
                fits_u32(K, shape.weight_len())?,
                0.0,
            )?)
        };
    }
    if let ConvKernel::Columns { budget } = kernel {
        return super::conv_columns::conv2d_weight_grad(
            ctx, dw, x, dy, shape, relu_input, accumulate, budget,
        );
    }
    let channel_tiles = (shape.out_channels as u64).div_ceil(CONV_TILE);
    if channel_tiles > 65535 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "{} output channels is too many for one launch",
                shape.out_channels
            ),
        });
    }
    let chunk = pixels_per_split(pixels, channel_tiles);
    let splits = pixels.div_ceil(chunk);
    let partials = GpuSlice::new(
        ctx,
        "conv weight-gradient partials",
        splits * shape.weight_len(),
    );
    let mut p = params(
        &shape,
        false,
        ConvEpilogue {
            relu_input,
            ..Default::default()
        },
    );
    p.aux = fits_u32(K, chunk)?;
    let u = GpuSlice::uniform(ctx, "ConvParams", &p);
    let mut grid = workgroup_grid(kdim.div_ceil(CONV_TILE));
    grid[2] = fits_u32(K, channel_tiles * splits)?;
    let mut d = vec![launch(
        ctx,
        "conv",
        "conv2d_weight_grad",
        &[&partials, x, x, x, &u, x, dy],
        grid,
    )?];
    d.extend(super::reduce::col_sum(
        ctx,
        dw,
        &partials,
        fits_u32(K, splits)?,
        fits_u32(K, shape.weight_len())?,
        accumulate,
    )?);
    Ok(d)
}

/// `dbias (Co) (=|+=) Σ dy` over images and pixels: row sums of dy viewed as (B·Co, Ho·Wo), then column sums
/// of those viewed as (B, Co) (two reductions that split their work, never one thread over every pixel).
pub fn conv2d_bias_grad(
    ctx: &GpuContext,
    dbias: &GpuSlice,
    dy: &GpuSlice,
    shape: ConvShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv2d_bias_grad";
    need(K, "dy", dy, shape.output_len())?;
    need(K, "dbias", dbias, shape.out_channels as u64)?;
    fits_u32(K, shape.output_len())?;
    if shape.out_channels == 0 {
        return Ok(Vec::new());
    }
    let (oh, ow) = shape.out_size();
    let planes = shape.batch as u64 * shape.out_channels as u64;
    let per_plane = GpuSlice::new(ctx, "conv bias-gradient plane sums", planes.max(1));
    let mut d = super::reduce::row_sum(
        ctx,
        &per_plane,
        dy,
        fits_u32(K, planes)?,
        oh * ow,
        1.0,
        false,
    )?;
    d.extend(super::reduce::col_sum(
        ctx,
        dbias,
        &per_plane,
        shape.batch,
        shape.out_channels,
        accumulate,
    )?);
    Ok(d)
}

/// The geometry of a 2x2, stride-2 transposed convolution: x (B, Ci, H, W) -> out (B, Co, 2H, 2W), w (Ci, Co, 2, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransposeShape {
    pub batch: u32,
    pub in_channels: u32,
    pub out_channels: u32,
    pub height: u32,
    pub width: u32,
}

impl TransposeShape {
    pub fn input_len(&self) -> u64 {
        self.batch as u64 * self.in_channels as u64 * self.height as u64 * self.width as u64
    }
    pub fn output_len(&self) -> u64 {
        4 * self.batch as u64 * self.out_channels as u64 * self.height as u64 * self.width as u64
    }
    pub fn weight_len(&self) -> u64 {
        4 * self.in_channels as u64 * self.out_channels as u64
    }
    fn params(&self, bias: bool, e: ConvEpilogue, aux: u32) -> ConvParams {
        ConvParams {
            batch: self.batch,
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            in_h: self.height,
            in_w: self.width,
            out_h: 2 * self.height,
            out_w: 2 * self.width,
            kernel: 2,
            pad: 0,
            flags: bias as u32 | (e.accumulate as u32) << 1,
            scale: e.scale,
            aux,
        }
    }
    /// The output as a convolution's output shape (for the bias gradient's reductions).
    fn as_output(&self) -> ConvShape {
        ConvShape {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.out_channels,
            height: 2 * self.height,
            width: 2 * self.width,
            kernel: 1,
            pad: 0,
        }
    }
}

fn transpose_checks(
    k: &str,
    s: &TransposeShape,
    x: (&str, &GpuSlice, u64),
    y: (&str, &GpuSlice, u64),
    w: &GpuSlice,
) -> Result<(), GpuError> {
    need(k, x.0, x.1, x.2)?;
    need(k, y.0, y.1, y.2)?;
    need(k, "w", w, s.weight_len())?;
    fits_u32(k, s.output_len().max(s.weight_len()))?;
    Ok(())
}

/// `out (B, Co, 2H, 2W) (=|+=) scale · (conv_transpose_2x2_stride2(x, w) + bias)`.
pub fn conv_transpose2(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    s: TransposeShape,
    e: ConvEpilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv_transpose2";
    transpose_checks(
        K,
        &s,
        ("x", x, s.input_len()),
        ("out", out, s.output_len()),
        w,
    )?;
    if let Some(b) = bias {
        need(K, "bias", b, s.out_channels as u64)?;
    }
    if s.output_len() == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(ctx, "ConvParams", &s.params(bias.is_some(), e, 0));
    Ok(vec![launch(
        ctx,
        "conv",
        "conv_transpose2",
        &[out, x, w, bias.unwrap_or(w), &u, w, x],
        grid_for(s.output_len(), ELEMENT_WG),
    )?])
}

/// `dx (B, Ci, H, W) (=|+=)` the input gradient of [`conv_transpose2`] from `dy (B, Co, 2H, 2W)`.
pub fn conv_transpose2_input_grad(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    w: &GpuSlice,
    s: TransposeShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv_transpose2_input_grad";
    transpose_checks(
        K,
        &s,
        ("dx", dx, s.input_len()),
        ("dy", dy, s.output_len()),
        w,
    )?;
    if s.input_len() == 0 {
        return Ok(Vec::new());
    }
    let e = ConvEpilogue {
        accumulate,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "ConvParams", &s.params(false, e, 0));
    Ok(vec![launch(
        ctx,
        "conv",
        "conv_transpose2_input_grad",
        &[dx, dy, w, w, &u, w, dy],
        grid_for(s.input_len(), ELEMENT_WG),
    )?])
}

/// `dw (Ci, Co, 2, 2) (=|+=)` and `dbias (Co) (=|+=)` of [`conv_transpose2`] from its input `x` and `dy`: the
/// weight gradient as partial sums over chunks of input pixels then their sum, the bias gradient as reductions.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2_param_grads(
    ctx: &GpuContext,
    dw: &GpuSlice,
    dbias: Option<&GpuSlice>,
    x: &GpuSlice,
    dy: &GpuSlice,
    s: TransposeShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv::conv_transpose2_weight_grad";
    transpose_checks(
        K,
        &s,
        ("x", x, s.input_len()),
        ("dy", dy, s.output_len()),
        dw,
    )?;
    let pixels = s.batch as u64 * s.height as u64 * s.width as u64;
    let mut d = Vec::new();
    if s.weight_len() > 0 {
        if pixels == 0 {
            if !accumulate {
                d.extend(super::elementwise::fill(
                    ctx,
                    dw,
                    fits_u32(K, s.weight_len())?,
                    0.0,
                )?);
            }
        } else {
            let chunk = pixels.div_ceil(256).max(1024).min(pixels);
            let splits = pixels.div_ceil(chunk);
            let partials = GpuSlice::new(
                ctx,
                "transposed-conv weight-gradient partials",
                splits * s.weight_len(),
            );
            let u = GpuSlice::uniform(
                ctx,
                "ConvParams",
                &s.params(false, ConvEpilogue::default(), fits_u32(K, chunk)?),
            );
            d.push(launch(
                ctx,
                "conv",
                "conv_transpose2_weight_grad",
                &[&partials, x, x, x, &u, x, dy],
                grid_for(splits * s.weight_len(), ELEMENT_WG),
            )?);
            d.extend(super::reduce::col_sum(
                ctx,
                dw,
                &partials,
                fits_u32(K, splits)?,
                fits_u32(K, s.weight_len())?,
                accumulate,
            )?);
        }
    }
    if let Some(db) = dbias {
        d.extend(conv2d_bias_grad(ctx, db, dy, s.as_output(), accumulate)?);
    }
    Ok(d)
}
