//! `beitlab bench dalle`: the DALL-E encoder (and decoder) timed on the GPU at a given view size, with the public
//! weights' architecture (random weights, N(0, 1/fan_in)) or a tokenizer folder's: images/s, ms per batch and
//! achieved GFLOP/s (of the convolutions' multiply-adds).

use std::collections::BTreeMap;

use super::arch::{BlockShape, Half, NetShape};
use super::graph::{DalleGraph, PixelOut};
use super::model::{DalleNet, DalleTokenizer};
use crate::gpu::{Dispatch, GpuContext};
use crate::model::ModelError;
use crate::rng::Rng;
use crate::tensorfile::HostTensor;

/// The architecture of OpenAI's published encoder or decoder: 4 groups of 2 blocks, widths 256..2048, 8192
/// codes, RGB (the decoder's input convolution has 128 channels).
pub fn public_shape(half: Half) -> NetShape {
    let n_hid = 256u32;
    let block = |n_in: u32, n_out: u32| BlockShape {
        n_in,
        hidden: n_out / 4,
        n_out,
    };
    let groups = match half {
        Half::Encoder => (0..4)
            .map(|g| {
                let w = n_hid << g;
                let first_in = if g == 0 { n_hid } else { n_hid << (g - 1) };
                vec![block(first_in, w), block(w, w)]
            })
            .collect(),
        Half::Decoder => (0..4)
            .map(|g| {
                let w = (8 * n_hid) >> g;
                let first_in = if g == 0 { 128 } else { (8 * n_hid) >> (g - 1) };
                vec![block(first_in, w), block(w, w)]
            })
            .collect(),
    };
    NetShape {
        half,
        image_channels: 3,
        vocab_size: 8192,
        input_kernel: if half == Half::Encoder { 7 } else { 1 },
        input_width: if half == Half::Encoder { n_hid } else { 128 },
        groups,
    }
}

/// Random weights for `shape`: N(0, 1/fan_in) (the package's initialisation), biases zero.
pub fn random_tensors(shape: &NetShape, seed: u64) -> BTreeMap<String, HostTensor> {
    let mut rng = Rng::new(seed);
    shape
        .tensor_specs()
        .into_iter()
        .map(|(name, dims)| {
            let n: usize = dims.iter().product();
            let v = if dims.len() == 4 {
                let std = 1.0 / ((dims[1] * dims[2] * dims[3]) as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            } else {
                vec![0.0; n]
            };
            (name, HostTensor::f32(dims, v))
        })
        .collect()
}

/// Multiply-adds x 2 of one image through `shape` at token grid `grid` (the token convolution of the decoder
/// counted as its 1x1 convolution of a one-hot image: a gather, so 0).
pub fn flops_per_image(shape: &NetShape, grid: u32) -> f64 {
    let down = shape.downsampling();
    let conv = |co: u32, ci: u32, k: u32, side: u32| {
        2.0 * (co as f64) * (ci as f64) * (k * k) as f64 * (side as f64).powi(2)
    };
    let ks = shape.half.block_kernels();
    let mut f = 0.0;
    let image = grid * down;
    if shape.half == Half::Encoder {
        f += conv(
            shape.input_width,
            shape.image_channels,
            shape.input_kernel,
            image,
        );
    }
    for (gi, group) in shape.groups.iter().enumerate() {
        let side = match shape.half {
            Half::Encoder => image >> gi,
            Half::Decoder => grid << gi,
        };
        for b in group {
            if b.has_id_conv() {
                f += conv(b.n_out, b.n_in, 1, side);
            }
            f += conv(b.hidden, b.n_in, ks[0], side)
                + conv(b.hidden, b.hidden, ks[1], side)
                + conv(b.hidden, b.hidden, ks[2], side)
                + conv(b.n_out, b.hidden, ks[3], side);
        }
    }
    f + match shape.half {
        Half::Encoder => conv(shape.vocab_size, shape.last_width(), 1, grid),
        Half::Decoder => conv(2 * shape.image_channels, shape.last_width(), 1, image),
    }
}

/// One measured pass.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DalleBenchRow {
    pub pass: &'static str,
    pub image_size: u32,
    pub batch: u32,
    pub ms_per_batch: f64,
    pub images_per_s: f64,
    pub gflops: f64,
}

/// Time `tk`'s encoder (and decoder when it has one) on `batch` images of side `image_size`, `steps` times
/// each after one untimed run (pipelines are built in it).
pub fn bench(
    ctx: &GpuContext,
    tk: &DalleTokenizer,
    image_size: u32,
    batch: u32,
    steps: u32,
) -> Result<Vec<DalleBenchRow>, ModelError> {
    let down = tk.encoder.shape.downsampling();
    if image_size == 0 || !image_size.is_multiple_of(down) {
        return Err(ModelError::Config(format!(
            "--image-size {image_size} is not a positive multiple of {down}, the encoder's downsampling"
        )));
    }
    let grid = image_size / down;
    let g = DalleGraph::new(ctx, tk, batch, grid, PixelOut::UNIT)?;
    let mut rng = Rng::new(1);
    let px: Vec<f32> = (0..g.pixels.len)
        .map(|_| 0.1 + 0.8 * rng.uniform() as f32)
        .collect();
    g.pixels.write(ctx, &px);
    let mut rows = Vec::new();
    let passes: Vec<(&'static str, &Vec<Dispatch>, Option<&DalleNet>)> = vec![
        ("encode", &g.encode, Some(&tk.encoder)),
        ("decode", &g.decode, tk.decoder.as_ref()),
    ];
    for (name, work, net) in passes {
        let Some(net) = net else { continue };
        Dispatch::submit(ctx, name, work)?;
        ctx.wait()?;
        let t0 = std::time::Instant::now();
        for _ in 0..steps.max(1) {
            Dispatch::submit(ctx, name, work)?;
        }
        ctx.wait()?;
        let s = t0.elapsed().as_secs_f64() / steps.max(1) as f64;
        rows.push(DalleBenchRow {
            pass: name,
            image_size,
            batch,
            ms_per_batch: 1e3 * s,
            images_per_s: batch as f64 / s,
            gflops: flops_per_image(&net.shape, grid) * batch as f64 / s / 1e9,
        });
    }
    Ok(rows)
}

/// A tokenizer with the public architecture and random weights (no download needed to time it).
pub fn public_random(ctx: &GpuContext, with_decoder: bool) -> Result<DalleTokenizer, ModelError> {
    let enc = DalleNet::from_tensors(
        ctx,
        &random_tensors(&public_shape(Half::Encoder), 1),
        Half::Encoder,
        "random encoder",
    )?;
    let dec = if with_decoder {
        Some(DalleNet::from_tensors(
            ctx,
            &random_tensors(&public_shape(Half::Decoder), 2),
            Half::Decoder,
            "random decoder",
        )?)
    } else {
        None
    };
    DalleTokenizer::new(enc, dec)
}
