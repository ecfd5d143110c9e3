//! Stride-1 convolutions as matrix products (`ConvKernel::Columns`, software adapters): the image's columns
//! (`shaders/conv_columns.wgsl`) times the packed weights on the adapter's gemm, in chunks of the batch that
//! keep the columns within [`COLUMN_BUDGET`] elements. Shapes as `ops::conv`'s:
//! x (B, Ci, H, W), w (Co, Ci, k, k), out (B, Co, Ho, Wo); columns (images, Ci·k·k (+1), pixels).
//!
//! - forward: out_b (Co, P) (=|+=) scale · Wb (Co, Ci·k·k + 1) · cols_b, the bias as the packed weights' last
//!   column against a row of ones (so the scale covers it, as `conv2d` defines);
//! - input gradient: the forward of dy (Co channels, padding k − 1 − pad) with the weights transposed and
//!   flipped, then the ReLU mask of the forward's input where it applied one;
//! - weight gradient: dW (Co, Ci·k·k) (=|+=) Σ_b dy_b (Co, P) · cols_bᵀ, per chunk one product (batched into
//!   partial sums, then their column sum, where a chunk holds several images).
//!
//! On llvmpipe (2 cores) the pyramid segmentation head's 3 x 3 convolutions ran at 1.3-1.9 GFLOP/s as direct
//! kernels (`conv2d_direct`, one thread per 4 x 4 outputs) and the products at tens of GFLOP/s.

use super::conv::ConvShape;
use super::matmul::{self, GemmShape, MatView};
use super::{fits_u32, gpu_params, grid_for, launch, need, reduce, vec4_view, ELEMENT_WG};
use crate::gpu::{ConvScratch, Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `ColumnParams` in conv_columns.wgsl.
    ColumnParams in "conv_columns" as "ColumnParams" {
        in_channels: u32, in_h: u32, in_w: u32, out_w: u32, kernel: u32, pad: u32, flags: u32,
        b0: u32, images: u32, p0: u32, pixels: u32, _pad: u32,
    }
);

/// Column elements per chunk by default: 8M (32 MiB).
pub const COLUMN_BUDGET: u64 = 8 << 20;

/// Part of a batch whose columns are built and multiplied at once: output pixels p0..p0 + pixels of the images
/// b0..b0 + images (whole images, or a run of one image's pixels when one image's columns pass the budget).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub b0: u32,
    pub images: u32,
    pub p0: u32,
    pub pixels: u32,
}

/// Output pixels per chunk at most: a product's columns are at most 65535 tiles of 64 (or 72).
pub const MAX_CHUNK_PIXELS: u32 = 1 << 20;

/// Output pixels per chunk at most in a weight gradient, whose product sums over them in f32 (the tiled kernel
/// splits its sums every 4096 pixels or more).
pub const MAX_SUMMED_PIXELS: u32 = 1 << 16;

/// The chunks of `batch` images of `image_pixels` output pixels with `rows` column rows each, at most `budget`
/// column elements per chunk (runs of pixels in multiples of 4 where an image alone passes it, or passes
/// `max_pixels`).
pub fn chunks(
    batch: u32,
    image_pixels: u32,
    rows: u32,
    budget: u64,
    max_pixels: u32,
) -> Vec<Chunk> {
    let per_image = rows.max(1) as u64 * image_pixels as u64;
    let mut out = Vec::new();
    if per_image <= budget && image_pixels <= max_pixels {
        let step = (budget / per_image.max(1)).clamp(1, batch.max(1) as u64) as u32;
        let mut b0 = 0;
        while b0 < batch {
            let images = step.min(batch - b0);
            out.push(Chunk {
                b0,
                images,
                p0: 0,
                pixels: image_pixels,
            });
            b0 += images;
        }
    } else {
        let run = ((budget / rows.max(1) as u64).min(max_pixels as u64) as u32 & !3).max(4);
        for b0 in 0..batch {
            let mut p0 = 0;
            while p0 < image_pixels {
                let pixels = run.min(image_pixels - p0);
                out.push(Chunk {
                    b0,
                    images: 1,
                    p0,
                    pixels,
                });
                p0 += pixels;
            }
        }
    }
    out
}

/// Column elements of the largest of `parts` with `rows` rows.
fn largest(parts: &[Chunk], rows: u32) -> u64 {
    parts
        .iter()
        .map(|c| c.images as u64 * rows as u64 * c.pixels as u64)
        .max()
        .unwrap_or(0)
}

/// `out_b (channels, pixels) (=|+=) alpha · wp · columns_b` for every image of the convolution `s` (out laid
/// out (B, channels, P)): `w` packed into the operands scratch (with `bias` as its last column, or
/// `transposed`), then per chunk of at most `budget` column elements the columns of act(x) beside it and one
/// batched product.
#[allow(clippy::too_many_arguments)]
fn packed_times_columns(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: ConvShape,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    transposed: bool,
    alpha: f32,
    accumulate: bool,
    relu: bool,
    budget: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    let (oh, ow) = s.out_size();
    let image_pixels = oh * ow;
    let channels = s.out_channels;
    let ones = bias.is_some();
    let rows = s.in_channels * s.kernel * s.kernel + ones as u32;
    let wp_len = channels as u64 * rows as u64;
    let parts = chunks(s.batch, image_pixels, rows, budget, MAX_CHUNK_PIXELS);
    let wp_room = aligned(ctx, wp_len);
    let most = largest(&parts, rows).max(1);
    let scratch = ctx.conv_scratch(ConvScratch::Operands, wp_room + most);
    let (wp, cols) = (scratch.sub(0, wp_len.max(1)), scratch.sub(wp_room, most));
    // The forward's w is (Co, Ci, k, k); transposed, it is the forward's of which `s` is the input gradient.
    let (w_out, w_in) = if transposed {
        (s.in_channels, channels)
    } else {
        (channels, s.in_channels)
    };
    let mut d = vec![pack_weights(
        ctx, &wp, w, bias, w_out, w_in, s.kernel, transposed,
    )?];
    for c in parts {
        d.push(image_to_columns(ctx, &cols, x, s, relu, ones, c)?);
        d.extend(matmul::gemm(
            ctx,
            out,
            MatView {
                off: fits_u32(
                    "conv_columns::packed_times_columns",
                    c.b0 as u64 * channels as u64 * image_pixels as u64,
                )? + c.p0,
                rs: image_pixels,
                cs: 1,
                bo: channels * image_pixels,
                bi: 0,
            },
            &wp,
            MatView {
                off: 0,
                rs: rows,
                cs: 1,
                bo: 0,
                bi: 0,
            },
            &cols,
            MatView {
                off: 0,
                rs: c.pixels,
                cs: 1,
                bo: rows * c.pixels,
                bi: 0,
            },
            None,
            GemmShape {
                batch: c.images,
                alpha,
                accumulate,
                ..GemmShape::new(channels, c.pixels, rows)
            },
        )?);
    }
    Ok(d)
}

/// Elements rounded up to the storage-offset alignment, so that the next part of the scratch can be bound.
fn aligned(ctx: &GpuContext, elems: u64) -> u64 {
    let a = (ctx.storage_alignment() / 4).max(4);
    elems.div_ceil(a) * a
}

/// `cols (images, rows, pixels)` of `chunk`: act(x) under each tap of the convolution `s` (0 outside the image),
/// act = ReLU with `relu`, and with `ones` a last row of ones. Quads where the chunk's pixels allow.
pub fn image_to_columns(
    ctx: &GpuContext,
    cols: &GpuSlice,
    x: &GpuSlice,
    s: ConvShape,
    relu: bool,
    ones: bool,
    chunk: Chunk,
) -> Result<Dispatch, GpuError> {
    const K: &str = "conv_columns::image_to_columns";
    let (oh, ow) = s.out_size();
    let rows = s.in_channels as u64 * s.kernel as u64 * s.kernel as u64 + ones as u64;
    let n = chunk.images as u64 * rows * chunk.pixels as u64;
    need(K, "x", x, s.input_len())?;
    need(K, "cols", cols, n)?;
    fits_u32(K, s.input_len().max(n))?;
    if chunk.b0 as u64 + chunk.images as u64 > s.batch as u64
        || chunk.p0 as u64 + chunk.pixels as u64 > oh as u64 * ow as u64
    {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("{chunk:?} lies outside the batch of {s:?}"),
        });
    }
    let p = ColumnParams {
        in_channels: s.in_channels,
        in_h: s.height,
        in_w: s.width,
        out_w: ow,
        kernel: s.kernel,
        pad: s.pad,
        flags: relu as u32 | (ones as u32) << 1,
        b0: chunk.b0,
        images: chunk.images,
        p0: chunk.p0,
        pixels: chunk.pixels,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "ColumnParams", &p);
    let quads = chunk.pixels.is_multiple_of(4);
    let entry = if quads {
        "image_to_columns4"
    } else {
        "image_to_columns"
    };
    let threads = if quads {
        chunk.pixels / 4
    } else {
        chunk.pixels
    };
    // x: runs of pixels, y: column rows, z: images (see the kernel).
    let grid = [
        (threads as u64).div_ceil(ELEMENT_WG) as u32,
        fits_u32(K, rows)?,
        chunk.images,
    ];
    if grid.iter().any(|&g| g > crate::gpu::MAX_WORKGROUPS_PER_DIM) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "{rows} column rows or {} images is more than one launch takes; use a smaller chunk",
                chunk.images
            ),
        });
    }
    if grid.contains(&0) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "an empty chunk".into(),
        });
    }
    launch(
        ctx,
        "conv_columns",
        entry,
        &[cols, &vec4_view(ctx, cols), x, x, &u],
        grid,
    )
}

/// The weights as a product's left operand: `wp (Co, Ci·k·k (+1))` with `bias` as the last column, or with
/// `transposed` (the input gradient) `wp (Ci, Co·k·k)` = w transposed per tap and flipped.
#[allow(clippy::too_many_arguments)]
pub fn pack_weights(
    ctx: &GpuContext,
    wp: &GpuSlice,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    out_channels: u32,
    in_channels: u32,
    kernel: u32,
    transposed: bool,
) -> Result<Dispatch, GpuError> {
    const K: &str = "conv_columns::pack_weights";
    let taps = out_channels as u64 * in_channels as u64 * kernel as u64 * kernel as u64;
    let n = taps
        + if transposed {
            0
        } else {
            out_channels as u64 * bias.is_some() as u64
        };
    need(K, "w", w, taps)?;
    need(K, "wp", wp, n)?;
    if let Some(b) = bias {
        need(K, "bias", b, out_channels as u64)?;
    }
    if transposed && bias.is_some() {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "transposed weights take no bias".into(),
        });
    }
    fits_u32(K, n)?;
    let p = ColumnParams {
        kernel,
        flags: (bias.is_some() as u32) << 1 | (transposed as u32) << 2,
        b0: out_channels,
        images: in_channels,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "ColumnParams", &p);
    launch(
        ctx,
        "conv_columns",
        "pack_weights",
        &[wp, &vec4_view(ctx, wp), w, bias.unwrap_or(w), &u],
        grid_for(n, ELEMENT_WG),
    )
}

/// `dx[i] (=|+=) g[i]` where `saved[i] > 0` (else 0), i < n: the gradient through a ReLU applied on read.
pub fn relu_mask(
    ctx: &GpuContext,
    dx: &GpuSlice,
    g: &GpuSlice,
    saved: &GpuSlice,
    n: u64,
    accumulate: bool,
) -> Result<Dispatch, GpuError> {
    const K: &str = "conv_columns::relu_mask";
    need(K, "dx", dx, n)?;
    need(K, "g", g, n)?;
    need(K, "saved", saved, n)?;
    let p = ColumnParams {
        flags: (accumulate as u32) << 3,
        b0: fits_u32(K, n)?,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "ColumnParams", &p);
    launch(
        ctx,
        "conv_columns",
        "relu_mask",
        &[dx, &vec4_view(ctx, dx), g, saved, &u],
        grid_for(n, ELEMENT_WG),
    )
}

/// `out (=|+=) scale · (conv(act(x), w) + bias)` of `s` on products, columns at most `budget` elements a chunk.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    bias: Option<&GpuSlice>,
    s: ConvShape,
    scale: f32,
    accumulate: bool,
    relu_input: bool,
    budget: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    packed_times_columns(
        ctx, out, x, s, w, bias, false, scale, accumulate, relu_input, budget,
    )
}

/// `dx (=|+=) dL/dx` of the forward `s` (scale 1) on products: the forward of dy with the weights transposed
/// and flipped; with `relu_of`, through a scratch copy masked where the forward's input was not positive.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    w: &GpuSlice,
    relu_of: Option<&GpuSlice>,
    s: ConvShape,
    accumulate: bool,
    budget: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    let masked = relu_of.map_or(0, |_| s.input_len());
    let unmasked = ctx.conv_scratch(ConvScratch::Results, masked.max(1));
    let target = if relu_of.is_some() { &unmasked } else { dx };
    let mut d = packed_times_columns(
        ctx,
        target,
        dy,
        s.input_grad_shape(),
        w,
        None,
        true,
        1.0,
        accumulate && relu_of.is_none(),
        false,
        budget,
    )?;
    if let Some(saved) = relu_of {
        d.push(relu_mask(ctx, dx, &unmasked, saved, masked, accumulate)?);
    }
    Ok(d)
}

/// `dw (Co, Ci, k, k) (=|+=) dL/dw` of the forward `s` (scale 1) on products, the input read as the forward
/// read it (`relu_input`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad(
    ctx: &GpuContext,
    dw: &GpuSlice,
    x: &GpuSlice,
    dy: &GpuSlice,
    s: ConvShape,
    relu_input: bool,
    accumulate: bool,
    budget: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "conv_columns::conv2d_weight_grad";
    let (oh, ow) = s.out_size();
    let image_pixels = oh * ow;
    let taps = s.in_channels * s.kernel * s.kernel;
    let w_len = s.weight_len();
    let parts = chunks(s.batch, image_pixels, taps, budget, MAX_SUMMED_PIXELS);
    let most = largest(&parts, taps);
    let most_images = parts.iter().map(|c| c.images).max().unwrap_or(1) as u64;
    let partial_len = if most_images > 1 {
        most_images * w_len
    } else {
        1
    };
    let cols = ctx.conv_scratch(ConvScratch::Operands, most.max(1));
    let partials = ctx.conv_scratch(ConvScratch::Results, partial_len);
    let mut d = Vec::new();
    for (j, c) in parts.into_iter().enumerate() {
        let add = accumulate || j > 0;
        d.push(image_to_columns(ctx, &cols, x, s, relu_input, false, c)?);
        let dy_view = MatView {
            off: fits_u32(K, c.b0 as u64 * s.out_channels as u64 * image_pixels as u64)? + c.p0,
            rs: image_pixels,
            cs: 1,
            bo: s.out_channels * image_pixels,
            bi: 0,
        };
        // colsᵀ: (pixels, taps) of the chunk's (taps, pixels) per image.
        let cols_t = MatView {
            off: 0,
            rs: 1,
            cs: c.pixels,
            bo: taps * c.pixels,
            bi: 0,
        };
        let product = GemmShape {
            batch: c.images,
            ..GemmShape::new(s.out_channels, taps, c.pixels)
        };
        if c.images == 1 {
            d.extend(matmul::gemm(
                ctx,
                dw,
                MatView::row_major(s.out_channels, taps),
                dy,
                dy_view,
                &cols,
                cols_t,
                None,
                GemmShape {
                    accumulate: add,
                    ..product
                },
            )?);
        } else {
            d.extend(matmul::gemm(
                ctx,
                &partials,
                MatView::row_major(s.out_channels, taps),
                dy,
                dy_view,
                &cols,
                cols_t,
                None,
                product,
            )?);
            d.extend(reduce::col_sum(
                ctx,
                dw,
                &partials,
                c.images,
                fits_u32(K, w_len)?,
                add,
            )?);
        }
    }
    Ok(d)
}
