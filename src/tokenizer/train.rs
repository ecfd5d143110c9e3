//! Training and evaluating the tokenizer: batches are augmented on the CPU while the GPU runs the previous step
//! (one submit per step, losses read back a step or more later through the readback ring); validation reports
//! PSNR (in [0, 1] pixel units), codebook usage and perplexity.

use super::batches::{augmentation, make_batch, optimizer_groups};
use super::config::TokenizerConfig;
use super::graph::{Tokenizer, TokenizerGraph};
use crate::data::augment::Augment;
use crate::data::dataset::Dataset;
use crate::gpu::{Dispatch, FlatBuffer, GpuContext, GpuSlice, ReadbackRing};
use crate::model::ModelError;
use crate::ops::adamw::{adamw_step, AdamWPlan, AdamWStep};
use crate::ops::reduce;
use crate::rng::Rng;

/// Settings of one training run.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub steps: u32,
    pub batch: u32,
    pub lr: f32,
    pub seed: u64,
    /// Random resized crop scale range (BEiT: 0.08..1); flips on or off.
    pub crop_scale: (f64, f64),
    pub flip: bool,
}

impl TrainOptions {
    /// Refuse settings that cannot train, naming the setting.
    pub fn validate(&self) -> Result<(), ModelError> {
        use crate::train::checks;
        checks::all(&[
            checks::count("steps", self.steps),
            checks::count("batch", self.batch),
            checks::learning_rate("lr", self.lr),
            checks::fraction_in("the smallest crop scale", self.crop_scale.0, 1e-3, 1.0),
        ])
    }
}

/// Validation metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenizerMetrics {
    /// 10·log10(1 / MSE) with pixels in [0, 1], over the whole set.
    pub psnr: f64,
    /// Codes used at least once / codebook size.
    pub usage: f64,
    /// exp(entropy) of the code frequencies.
    pub perplexity: f64,
}

/// One progress report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    pub step: u32,
    pub reconstruction: f32,
    pub commitment: f32,
}

fn augment_for(cfg: &TokenizerConfig, opts: &TrainOptions) -> Augment {
    augmentation(cfg, opts.crop_scale, opts.flip)
}

/// Train `tk` on `data`; `report` is called with losses as they come back (a step or two late).
#[cfg(not(target_arch = "wasm32"))]
pub fn train(
    ctx: &GpuContext,
    tk: &Tokenizer,
    data: &Dataset,
    opts: &TrainOptions,
    mut report: impl FnMut(StepReport),
) -> Result<(), ModelError> {
    opts.validate()?;
    if data.is_empty() {
        return Err(ModelError::Input("the training set is empty".into()));
    }
    let graph = TokenizerGraph::new(ctx, tk, opts.batch)?;
    let layout = tk.params.layout.clone();
    let groups = optimizer_groups(&layout);
    let plan = AdamWPlan::new(ctx, &layout, &groups)?;
    let (m, v) = (
        FlatBuffer::new(ctx, "tokenizer adam m", layout.clone()),
        FlatBuffer::new(ctx, "tokenizer adam v", layout.clone()),
    );
    let sumsq = GpuSlice::new(ctx, "tokenizer grad sumsq", 1);
    let mut work = graph.train_step.clone();
    work.extend(reduce::sum_squares(
        ctx,
        &sumsq,
        0,
        &graph.grads.whole,
        layout.total as u32,
    )?);
    work.extend(adamw_step(
        ctx,
        &tk.params.whole,
        &m.whole,
        &v.whole,
        &graph.grads.whole,
        &sumsq,
        &plan,
    )?);
    let aug = augment_for(&tk.cfg, opts);
    let mut rng = Rng::new(opts.seed);
    let mut ring = ReadbackRing::new(ctx, 4, 8);
    let mut pending: Vec<(crate::gpu::ReadbackTicket, u32)> = Vec::new();
    let mut next = make_batch(data, &aug, opts.batch, &mut rng);
    let mut last_submit: Option<wgpu::SubmissionIndex> = None;
    for step in 1..=opts.steps {
        graph.pixels.write(ctx, &next);
        graph.set_step(ctx, step);
        // Cosine decay after a short warm-up.
        let warm = (opts.steps / 20).max(1);
        let lr = if step <= warm {
            opts.lr * step as f32 / warm as f32
        } else {
            opts.lr
                * (0.5
                    * (1.0
                        + (std::f32::consts::PI * (step - warm) as f32
                            / (opts.steps - warm).max(1) as f32)
                            .cos()))
                .max(0.02)
        };
        plan.set_step(
            ctx,
            &AdamWStep {
                lr,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                step,
                max_grad_norm: Some(1.0),
            },
        );
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tokenizer step"),
            });
        Dispatch::record_all(&mut enc, "tokenizer step", &work);
        pending.push((ring.record_always(&mut enc, &graph.stats), step));
        let idx = ctx.queue.submit([enc.finish()]);
        ring.after_submit();
        // The next batch is prepared while the GPU runs this step; at most two steps are in flight.
        next = make_batch(data, &aug, opts.batch, &mut rng);
        if let Some(prev) = last_submit.replace(idx) {
            ctx.device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                })
                .map_err(|e| ModelError::Gpu(crate::gpu::GpuError::Device(e.to_string())))?;
        }
        for (ticket, bytes) in ring.collect(ctx) {
            if let Some(pos) = pending.iter().position(|(t, _)| *t == ticket) {
                let (_, s) = pending.remove(pos);
                let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
                if !vals[0].is_finite() || !vals[1].is_finite() {
                    return Err(ModelError::Input(format!(
                        "the tokenizer's loss became {} at step {s}; lower the learning rate",
                        vals[0]
                    )));
                }
                report(StepReport {
                    step: s,
                    reconstruction: vals[0],
                    commitment: vals[1],
                });
            }
        }
        ctx.take_error()?;
    }
    ctx.wait()?;
    for (ticket, bytes) in ring.collect(ctx) {
        if let Some(pos) = pending.iter().position(|(t, _)| *t == ticket) {
            let (_, s) = pending.remove(pos);
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
            report(StepReport {
                step: s,
                reconstruction: vals[0],
                commitment: vals[1],
            });
        }
    }
    Ok(())
}

/// Encode every image of `data` (evaluation view); returns tokens (images x N).
#[cfg(not(target_arch = "wasm32"))]
pub fn encode_dataset(
    ctx: &GpuContext,
    tk: &Tokenizer,
    data: &Dataset,
    batch: u32,
) -> Result<Vec<u32>, ModelError> {
    Ok(run_dataset(ctx, tk, data, batch, false)?.0)
}

/// Encode and decode every image; returns tokens and the metrics.
#[cfg(not(target_arch = "wasm32"))]
pub fn evaluate(
    ctx: &GpuContext,
    tk: &Tokenizer,
    data: &Dataset,
    batch: u32,
) -> Result<TokenizerMetrics, ModelError> {
    Ok(run_dataset(ctx, tk, data, batch, true)?.1)
}

#[cfg(not(target_arch = "wasm32"))]
fn run_dataset(
    ctx: &GpuContext,
    tk: &Tokenizer,
    data: &Dataset,
    batch: u32,
    decode: bool,
) -> Result<(Vec<u32>, TokenizerMetrics), ModelError> {
    let cfg = &tk.cfg;
    let graph = TokenizerGraph::new(ctx, tk, batch)?;
    let aug = augment_for(
        cfg,
        &TrainOptions {
            steps: 0,
            batch,
            lr: 0.0,
            seed: 0,
            crop_scale: (1.0, 1.0),
            flip: false,
        },
    );
    let n = cfg.tokens() as usize;
    let per_image = (cfg.num_channels * cfg.image_size * cfg.image_size) as usize;
    let mut tokens = Vec::with_capacity(data.len() * n);
    let (mut se, mut count) = (0.0f64, 0u64);
    for start in (0..data.len()).step_by(batch as usize) {
        let end = (start + batch as usize).min(data.len());
        let px = aug.eval_batch(&data.images[start..end], batch as usize);
        graph.pixels.write(ctx, &px);
        let mut work = graph.encode.clone();
        if decode {
            work.extend(graph.decode.iter().cloned());
        }
        Dispatch::submit(ctx, "tokenizer eval", &work)?;
        let t = ctx.read_u32(&graph.tokens)?;
        tokens.extend_from_slice(&t[..(end - start) * n]);
        if decode {
            let rec = ctx.read_f32(&graph.recon_pixels)?;
            // Back to [0, 1] pixels, clamped as an image would be.
            for i in 0..(end - start) * per_image {
                let a = (px[i] * cfg.std + cfg.mean) as f64;
                let b = ((rec[i] * cfg.std + cfg.mean) as f64).clamp(0.0, 1.0);
                se += (a - b) * (a - b);
            }
            count += ((end - start) * per_image) as u64;
        }
    }
    let mut freq = vec![0u64; cfg.codebook_size as usize];
    for &t in &tokens {
        freq[t as usize] += 1;
    }
    let total = tokens.len().max(1) as f64;
    let used = freq.iter().filter(|&&f| f > 0).count();
    let entropy: f64 = freq
        .iter()
        .filter(|&&f| f > 0)
        .map(|&f| -(f as f64 / total) * (f as f64 / total).ln())
        .sum();
    let mse = se / count.max(1) as f64;
    Ok((
        tokens,
        TokenizerMetrics {
            psnr: if decode {
                10.0 * (1.0 / mse.max(1e-12)).log10()
            } else {
                f64::NAN
            },
            usage: used as f64 / cfg.codebook_size as f64,
            perplexity: entropy.exp(),
        },
    ))
}
