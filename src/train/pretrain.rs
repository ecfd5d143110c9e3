//! BEiT masked image modeling: the frozen tokenizer turns each augmented view into visual tokens on the GPU, the
//! ViT sees the same view with blockwise-masked patches and learns to predict the tokens of the masked ones.
//! AdamW (β 0.9 / 0.999, weight decay 0.05 on matrices only), warm-up + cosine, global-norm clip 3.0, drop path.

use std::path::PathBuf;

use super::checkpoint::{save_run, start_or_resume};
use super::checks;
use super::metrics::StepMetrics;
use super::mim_step::MimStep;
use super::schedule::warmup_cosine;
use crate::data::augment::Augment;
use crate::data::dataset::Dataset;
use crate::data::masking::{random_mask, BlockMasking};
use crate::gpu::GpuContext;
use crate::model::{BeitModel, ModelError};
use crate::rng::Rng;
use crate::tokenizer::VisualTokenizer;

/// Masking of the pretraining views.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Masking {
    Blockwise(BlockMasking),
    /// Uniform random masking of this many patches (the paper's ablation).
    Random(u32),
}

#[derive(Clone, Debug)]
pub struct PretrainOptions {
    pub steps: u32,
    pub batch: u32,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup: u32,
    pub weight_decay: f32,
    pub clip: f32,
    pub seed: u64,
    pub masking: Masking,
    pub augment: Augment,
    /// Save every this many steps (0: only at the end).
    pub checkpoint_every: u32,
    pub out: Option<PathBuf>,
    /// Continue a saved run (its step, data position and AdamW moments) up to `steps`.
    pub resume: Option<PathBuf>,
    /// Stop (with a checkpoint) after this step, as an interrupted run would.
    pub stop_after: Option<u32>,
    /// Mixed precision's products (see `train::precision`); `None` trains in f32.
    pub mixed: Option<crate::ops::precision::ProductInputs>,
}

impl PretrainOptions {
    /// Refuse settings that cannot train (`n`: patches per image), naming the setting.
    pub fn validate(&self, n: u32) -> Result<(), ModelError> {
        let masked = match self.masking {
            Masking::Blockwise(g) => g.num_masking_patches,
            Masking::Random(k) => k,
        };
        checks::all(&[
            checks::count("steps", self.steps),
            checks::count("batch", self.batch),
            checks::learning_rate("lr", self.lr),
            checks::non_negative("min_lr", self.min_lr),
            checks::non_negative("weight_decay", self.weight_decay),
            checks::learning_rate("clip", self.clip),
            checks::masked_patches("the masking", masked, n),
        ])
    }
}

#[derive(Default)]
struct Batch {
    pixels: Vec<f32>,
    /// The tokenizer's own view of the same crops (empty when it reads the ViT's).
    tokenizer_pixels: Vec<f32>,
    mask: Vec<u8>,
}

fn make_batch(
    data: &Dataset,
    opts: &PretrainOptions,
    second: Option<&Augment>,
    n: u32,
    rng: &mut Rng,
) -> Batch {
    let mut pixels = Vec::new();
    let mut tokenizer_pixels = Vec::new();
    let mut mask = Vec::with_capacity((opts.batch * n) as usize);
    for _ in 0..opts.batch {
        let i = ((rng.uniform() * data.len() as f64) as usize).min(data.len() - 1);
        match second {
            Some(aug) => opts.augment.apply_pair(
                &data.images[i],
                rng,
                &mut pixels,
                aug,
                &mut tokenizer_pixels,
            ),
            None => opts.augment.apply(&data.images[i], rng, &mut pixels),
        }
        mask.extend(match opts.masking {
            Masking::Blockwise(g) => g.generate(rng),
            Masking::Random(k) => random_mask(n, k, rng),
        });
    }
    Batch {
        pixels,
        tokenizer_pixels,
        mask,
    }
}

/// Pretrain `model` on `data` with `tokenizer`'s tokens as targets. `report` receives metrics as they arrive.
pub fn pretrain(
    ctx: &GpuContext,
    model: &BeitModel,
    tokenizer: Option<&VisualTokenizer>,
    data: &Dataset,
    opts: &PretrainOptions,
    mut report: impl FnMut(StepMetrics),
) -> Result<(), ModelError> {
    let cfg = &model.cfg;
    opts.validate(cfg.patches())?;
    let tokenizer = match (tokenizer, cfg.predicts_pixels()) {
        (_, true) => None,
        (Some(t), false) => Some(t),
        (None, false) => {
            return Err(ModelError::Input(
                "pretraining on visual tokens needs a tokenizer".into(),
            ))
        }
    };
    if data.is_empty() {
        return Err(ModelError::Input("the training set is empty".into()));
    }
    let n = cfg.patches();
    let per_image_cap = match opts.masking {
        Masking::Blockwise(g) => g.num_masking_patches,
        Masking::Random(k) => k,
    };
    let cap = opts.batch * per_image_cap.max(1);
    let (mim_step, mut runner) = MimStep::new(
        ctx,
        model,
        tokenizer,
        opts.batch,
        cap,
        opts.seed,
        opts.weight_decay,
        opts.mixed,
    )?;
    let (first_step, mut rng) =
        start_or_resume(&mut runner, model, opts.resume.as_deref(), opts.seed)?;
    let last_step = opts.stop_after.map_or(opts.steps, |s| s.min(opts.steps));
    // `rng_next` is the generator state that draws the batch in `next`: what a checkpoint must remember.
    let mut rng_next = rng.state();
    let second = mim_step.tokenizer_augment(&opts.augment);
    let mut next = make_batch(data, opts, second.as_ref(), n, &mut rng);
    for step in first_step..=last_step {
        let batch = std::mem::take(&mut next);
        let own_view = (!batch.tokenizer_pixels.is_empty()).then_some(&batch.tokenizer_pixels[..]);
        let masked = mim_step.write(ctx, &batch.pixels, own_view, &batch.mask, step)?;
        let lr = warmup_cosine(step, opts.steps, opts.warmup, opts.lr, opts.min_lr);
        runner.submit(step, lr, Some(opts.clip), masked);
        // The next batch is prepared while the GPU runs this step.
        rng_next = rng.state();
        if step < last_step {
            next = make_batch(data, opts, second.as_ref(), n, &mut rng);
        }
        runner.settle(&mut report)?;
        if let Some(out) = &opts.out {
            if opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0 && step < last_step {
                // Only a checkpoint whose every step came back finite replaces the previous one.
                runner.sync(&mut report)?;
                save_run(ctx, out, model, &runner, step, rng_next)?;
            }
        }
    }
    runner.sync(&mut report)?;
    if let Some(out) = &opts.out {
        save_run(ctx, out, model, &runner, last_step, rng_next)?;
    }
    Ok(())
}
