//! The DALL-E tokenizer's passes for one batch size and token grid: encode (mapped pixels -> logits -> tokens)
//! and decode (tokens -> statistics -> pixels). Images go through in chunks small enough that every activation
//! fits one storage binding; the chunks share their scratch buffers (dispatches run in order in one pass).
//!
//! Shapes: pixels (B, C, S, S) mapped as 0.8x + 0.1; logits (chunk, V, g, g); tokens (B, g, g) u32; decoder
//! statistics (chunk, 2C, S, S); decoded pixels (B, C, S, S) = scale · unmap(sigmoid(means)) + shift.

use super::arch::{BlockShape, Half, NetShape};
use super::model::{DalleNet, DalleTokenizer, LOGIT_LAPLACE_EPS};
use crate::gpu::{Dispatch, GpuContext, GpuSlice};
use crate::model::ModelError;
use crate::ops::conv::{self, ConvEpilogue, ConvShape};
use crate::ops::spatial::{self, ImageShape};

/// How decoded pixels in [0, 1] are written: `scale · p + shift` (2, −1 for BEiT's normalisation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelOut {
    pub scale: f32,
    pub shift: f32,
}

impl PixelOut {
    /// Pixels in [0, 1].
    pub const UNIT: Self = Self {
        scale: 1.0,
        shift: 0.0,
    };
    /// Pixels normalised as (p − mean) / std.
    pub fn normalised(mean: f32, std: f32) -> Self {
        Self {
            scale: 1.0 / std,
            shift: -mean / std,
        }
    }
}

/// Encode and decode passes of a DALL-E tokenizer for `batch` images with a `grid` x `grid` token grid.
pub struct DalleGraph {
    pub batch: u32,
    pub grid: u32,
    /// Image side, grid · 2^(groups − 1).
    pub side: u32,
    /// Images per chunk (the whole batch when it fits one binding).
    pub chunk: u32,
    /// Input (B, C, S, S), mapped pixels.
    pub pixels: GpuSlice,
    /// Encoder logits of the last chunk (chunk, V, g, g): the whole batch's when `chunk == batch`.
    pub logits: GpuSlice,
    /// Tokens (B, g, g) u32: written by `encode`, read by `decode`.
    pub tokens: GpuSlice,
    /// Decoder statistics of the last chunk (chunk, 2C, S, S), when there is a decoder.
    pub stats: Option<GpuSlice>,
    /// Decoded pixels (B, C, S, S), when there is a decoder.
    pub recon_pixels: Option<GpuSlice>,
    pub encode: Vec<Dispatch>,
    pub decode: Vec<Dispatch>,
}

/// Scratch buffers one chunk runs in: two for block inputs/outputs, two for bottlenecks.
struct Scratch {
    wide: [GpuSlice; 2],
    hidden: [GpuSlice; 2],
}

impl Scratch {
    fn new(ctx: &GpuContext, net: &NetShape, grid: u32, chunk: u32) -> Self {
        let (w, h) = net.scratch_per_image(grid);
        let b = |label: &str, per: u64| GpuSlice::new(ctx, label, (per * chunk as u64).max(1));
        Self {
            wide: [b("dall-e activations a", w), b("dall-e activations b", w)],
            hidden: [b("dall-e bottleneck a", h), b("dall-e bottleneck b", h)],
        }
    }
}

/// Largest per-image element count of any buffer a pass binds.
fn per_image_elements(net: &NetShape, grid: u32) -> u64 {
    let (w, h) = net.scratch_per_image(grid);
    let side = (grid * net.downsampling()) as u64;
    let logits = net.vocab_size as u64 * grid as u64 * grid as u64;
    w.max(h)
        .max(logits)
        .max(net.image_channels as u64 * side * side)
}

/// Images per chunk: as many as fit `max_binding` bytes, a count that keeps every chunk's offset in the pixel
/// buffers on the storage alignment (always true for sides that are multiples of 8: C·S²·4 bytes is a multiple of
/// 256). Tokens are addressed through an offset parameter instead.
fn chunk_size(
    batch: u32,
    per_image: u64,
    max_binding: u64,
    aligned: impl Fn(u32) -> bool,
) -> Result<u32, ModelError> {
    let fit = (max_binding / (4 * per_image.max(1))).min(batch as u64) as u32;
    if fit >= batch && aligned(batch) {
        return Ok(batch);
    }
    (1..=fit).rev().find(|&c| aligned(c)).ok_or_else(|| {
        ModelError::Config(format!(
            "one image needs {} in a single buffer but this device binds at most {}; use a smaller image size",
            super::model::byte_size(4 * per_image),
            super::model::byte_size(max_binding)
        ))
    })
}

/// One residual block from `x` into `out` (which may be `x` itself when the width stays).
#[allow(clippy::too_many_arguments)]
fn block(
    ctx: &GpuContext,
    net: &DalleNet,
    name: &str,
    b: &BlockShape,
    x: &GpuSlice,
    out: &GpuSlice,
    s: &Scratch,
    batch: u32,
    side: u32,
) -> Result<Vec<Dispatch>, ModelError> {
    let w = |t: &str| net.weights.get(&format!("{name}.{t}"));
    let ks = net.shape.half.block_kernels();
    let relu = ConvEpilogue {
        relu_input: true,
        ..Default::default()
    };
    let sh = |ci: u32, co: u32, k: u32| ConvShape::same(batch, ci, co, (side, side), k);
    let mut d = Vec::new();
    if b.has_id_conv() {
        d.extend(conv::conv2d(
            ctx,
            out,
            x,
            &w("id_path.w")?,
            Some(&w("id_path.b")?),
            sh(b.n_in, b.n_out, 1),
            ConvEpilogue::default(),
        )?);
    }
    let [h1, h2] = &s.hidden;
    d.extend(conv::conv2d(
        ctx,
        h1,
        x,
        &w("res_path.conv_1.w")?,
        Some(&w("res_path.conv_1.b")?),
        sh(b.n_in, b.hidden, ks[0]),
        relu,
    )?);
    d.extend(conv::conv2d(
        ctx,
        h2,
        h1,
        &w("res_path.conv_2.w")?,
        Some(&w("res_path.conv_2.b")?),
        sh(b.hidden, b.hidden, ks[1]),
        relu,
    )?);
    d.extend(conv::conv2d(
        ctx,
        h1,
        h2,
        &w("res_path.conv_3.w")?,
        Some(&w("res_path.conv_3.b")?),
        sh(b.hidden, b.hidden, ks[2]),
        relu,
    )?);
    // out = id_path(x) + gain · conv_4(relu(·)): the identity needs no copy when out is x.
    let residual = ConvEpilogue {
        scale: net.shape.post_gain(),
        accumulate: true,
        relu_input: true,
    };
    d.extend(conv::conv2d(
        ctx,
        out,
        h1,
        &w("res_path.conv_4.w")?,
        Some(&w("res_path.conv_4.b")?),
        sh(b.hidden, b.n_out, ks[3]),
        residual,
    )?);
    Ok(d)
}

/// The groups of `net` on `s.wide[cur]` at side `side`, pooling (encoder) or upsampling (decoder) between them.
/// Returns the index of the buffer holding the result and its side.
fn groups(
    ctx: &GpuContext,
    net: &DalleNet,
    s: &Scratch,
    mut cur: usize,
    mut side: u32,
    batch: u32,
    d: &mut Vec<Dispatch>,
) -> Result<(usize, u32), ModelError> {
    let n = net.shape.groups.len();
    for (gi, group) in net.shape.groups.iter().enumerate() {
        for (bi, b) in group.iter().enumerate() {
            let name = format!("blocks.group_{}.block_{}", gi + 1, bi + 1);
            let next = if b.has_id_conv() { 1 - cur } else { cur };
            d.extend(block(
                ctx,
                net,
                &name,
                b,
                &s.wide[cur],
                &s.wide[next],
                s,
                batch,
                side,
            )?);
            cur = next;
        }
        if gi + 1 < n {
            let width = group[group.len() - 1].n_out;
            let img = ImageShape {
                batch,
                channels: width,
                height: side,
                width: side,
            };
            match net.shape.half {
                Half::Encoder => {
                    d.extend(spatial::max_pool2(
                        ctx,
                        &s.wide[1 - cur],
                        &s.wide[cur],
                        img,
                    )?);
                    side /= 2;
                }
                Half::Decoder => {
                    d.extend(spatial::upsample_nearest2(
                        ctx,
                        &s.wide[1 - cur],
                        &s.wide[cur],
                        img,
                    )?);
                    side *= 2;
                }
            }
            cur = 1 - cur;
        }
    }
    Ok((cur, side))
}

fn fits_u32(v: u64) -> Result<u32, ModelError> {
    u32::try_from(v)
        .map_err(|_| ModelError::Config(format!("{v} tokens exceed the 32-bit index range")))
}

impl DalleGraph {
    /// Passes for `batch` images and a `grid` x `grid` token grid; decoded pixels written as `pixel_out`.
    pub fn new(
        ctx: &GpuContext,
        tk: &DalleTokenizer,
        batch: u32,
        grid: u32,
        pixel_out: PixelOut,
    ) -> Result<Self, ModelError> {
        Self::with_chunk_limit(ctx, tk, batch, grid, pixel_out, u32::MAX)
    }

    /// [`DalleGraph::new`] with at most `max_chunk` images per chunk (fewer, smaller buffers).
    pub fn with_chunk_limit(
        ctx: &GpuContext,
        tk: &DalleTokenizer,
        batch: u32,
        grid: u32,
        pixel_out: PixelOut,
        max_chunk: u32,
    ) -> Result<Self, ModelError> {
        let enc = &tk.encoder;
        let side = tk.input_size(grid);
        let c = tk.image_channels();
        let v = tk.vocab_size();
        if batch == 0 || grid == 0 {
            return Err(ModelError::Config(
                "a DALL-E pass needs at least one image and one token".into(),
            ));
        }
        let max = ctx.limits.max_storage_buffer_binding_size;
        let align = ctx.storage_alignment();
        let img_elems = c as u64 * side as u64 * side as u64;
        let tok_elems = grid as u64 * grid as u64;
        let mut per_image = per_image_elements(&enc.shape, grid);
        if let Some(d) = &tk.decoder {
            per_image = per_image.max(per_image_elements(&d.shape, grid));
        }
        let chunk = chunk_size(batch, per_image, max, |n| {
            (n as u64 * img_elems * 4).is_multiple_of(align) && n <= max_chunk
        })?;
        let pixels = GpuSlice::new(ctx, "dall-e pixels", batch as u64 * img_elems);
        let tokens = GpuSlice::new(ctx, "dall-e tokens", batch as u64 * tok_elems);
        let logits = GpuSlice::new(ctx, "dall-e logits", chunk as u64 * v as u64 * tok_elems);
        let es = Scratch::new(ctx, &enc.shape, grid, chunk);
        let mut encode = Vec::new();
        let ds = tk
            .decoder
            .as_ref()
            .map(|d| Scratch::new(ctx, &d.shape, grid, chunk));
        let stats = tk.decoder.as_ref().map(|_| {
            GpuSlice::new(
                ctx,
                "dall-e decoder statistics",
                chunk as u64 * 2 * img_elems,
            )
        });
        let recon_pixels = tk
            .decoder
            .as_ref()
            .map(|_| GpuSlice::new(ctx, "dall-e decoded pixels", batch as u64 * img_elems));
        let mut decode = Vec::new();
        let mut start = 0u32;
        while start < batch {
            let n = chunk.min(batch - start);
            let px = pixels.sub(start as u64 * img_elems, n as u64 * img_elems);
            let tok_at = fits_u32(start as u64 * tok_elems)?;
            // Encoder: input conv -> groups -> ReLU + 1x1 conv -> argmax.
            let w = |t: &str| enc.weights.get(t);
            encode.extend(conv::conv2d(
                ctx,
                &es.wide[0],
                &px,
                &w("blocks.input.w")?,
                Some(&w("blocks.input.b")?),
                ConvShape::same(
                    n,
                    c,
                    enc.shape.input_width,
                    (side, side),
                    enc.shape.input_kernel,
                ),
                ConvEpilogue::default(),
            )?);
            let (cur, s) = groups(ctx, enc, &es, 0, side, n, &mut encode)?;
            debug_assert_eq!(s, grid);
            encode.extend(conv::conv2d(
                ctx,
                &logits,
                &es.wide[cur],
                &w("blocks.output.conv.w")?,
                Some(&w("blocks.output.conv.b")?),
                ConvShape::same(n, enc.shape.last_width(), v, (grid, grid), 1),
                ConvEpilogue {
                    relu_input: true,
                    ..Default::default()
                },
            )?);
            let lg = ImageShape {
                batch: n,
                channels: v,
                height: grid,
                width: grid,
            };
            encode.extend(spatial::argmax_channels(ctx, &tokens, tok_at, &logits, lg)?);
            // Decoder: token conv -> groups -> ReLU + 1x1 conv -> sigmoid, unmap.
            if let (Some(dec), Some(ds), Some(st), Some(rp)) =
                (&tk.decoder, &ds, &stats, &recon_pixels)
            {
                let w = |t: &str| dec.weights.get(t);
                decode.extend(conv::token_conv(
                    ctx,
                    &ds.wide[0],
                    &tokens,
                    tok_at,
                    &w("blocks.input.w")?,
                    Some(&w("blocks.input.b")?),
                    n,
                    v,
                    dec.shape.input_width,
                    (grid, grid),
                )?);
                let (cur, s) = groups(ctx, dec, ds, 0, grid, n, &mut decode)?;
                debug_assert_eq!(s, side);
                decode.extend(conv::conv2d(
                    ctx,
                    st,
                    &ds.wide[cur],
                    &w("blocks.output.conv.w")?,
                    Some(&w("blocks.output.conv.b")?),
                    ConvShape::same(n, dec.shape.last_width(), 2 * c, (side, side), 1),
                    ConvEpilogue {
                        relu_input: true,
                        ..Default::default()
                    },
                )?);
                let img = ImageShape {
                    batch: n,
                    channels: c,
                    height: side,
                    width: side,
                };
                decode.extend(spatial::sigmoid_unmap(
                    ctx,
                    &rp.sub(start as u64 * img_elems, n as u64 * img_elems),
                    st,
                    img,
                    2 * c,
                    LOGIT_LAPLACE_EPS,
                    pixel_out.scale,
                    pixel_out.shift,
                )?);
            }
            start += n;
        }
        Ok(Self {
            batch,
            grid,
            side,
            chunk,
            pixels,
            logits,
            tokens,
            stats,
            recon_pixels,
            encode,
            decode,
        })
    }
}
