//! `beitlab tokenizer`: train the visual tokenizer on a dataset, or encode a dataset to tokens.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::common::{bar, device, estimate_seconds, TrainValData};
use crate::data::dataset::{Dataset, Decode};
use crate::gpu;
use crate::tokenizer::train::{encode_dataset, evaluate, train, TrainOptions};
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use crate::train::run_dir::{RunDir, RunMode};

#[derive(Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a tokenizer whose token grid is the patch grid of a BEiT preset; writes a checkpoint folder.
    Train(TokenizerTrainArgs),
    /// Encode every image of a dataset (evaluation view) to tokens: `tokens` i64 (images, N) (+ `labels`).
    Encode(TokenizerEncodeArgs),
}

/// `tokenizer train`: see [`TokenizerCommand::Train`].
#[derive(Args, Debug, Clone)]
pub struct TokenizerTrainArgs {
    #[command(flatten)]
    pub data: TrainValData,
    /// BEiT preset whose image and patch size the tokens follow (micro, tiny, small, base).
    #[arg(long, default_value = "tiny")]
    pub preset: String,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 2000)]
    pub steps: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 64)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::learning_rate, long, default_value_t = 2e-3)]
    pub lr: f32,
    /// Codebook size (default: 512, 8192 for base).
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub codebook_size: Option<u32>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Smallest crop scale of the random resized crop (BEiT: 0.08).
    #[arg(value_parser = crate::train::checks::parse::unit_fraction, long, default_value_t = 0.08)]
    pub min_crop: f64,
    /// No horizontal flips (for digits and text).
    #[arg(long)]
    pub no_flip: bool,
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the tokenizer already in --out (without it, a folder holding one is refused).
    #[arg(long)]
    pub overwrite: bool,
}

/// `tokenizer encode`: see [`TokenizerCommand::Encode`].
#[derive(Args, Debug)]
pub struct TokenizerEncodeArgs {
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// `builtin` (its training split), a folder of images, or an IDX images file; images in file-name order.
    #[arg(long, default_value = "builtin")]
    pub data: String,
    #[arg(long)]
    pub output: PathBuf,
}

pub fn run(what: &TokenizerCommand) -> Result<(), String> {
    match what {
        TokenizerCommand::Train(a) => {
            let preset = TokenizerConfig::preset(&a.preset).map_err(|e| e.to_string())?;
            let run_dir = RunDir::acquire(
                &a.out,
                RunMode::New {
                    overwrite: a.overwrite,
                },
            )?;
            let (train_set, val_set) = a
                .data
                .load(Decode::for_model(preset.num_channels, preset.image_size))?;
            TrainOptions::of(a).validate().map_err(|e| e.to_string())?;
            run_dir.clear_for_new_run()?;
            train_tokenizer(a, &train_set, &val_set, None)
        }
        TokenizerCommand::Encode(a) => encode(a),
    }
}

/// Train a tokenizer on `train_set` (`args.data` already loaded), report on `val_set`, save it. `shorten`
/// (from `pretrain`) is the hint printed with the time estimate.
pub fn train_tokenizer(
    args: &TokenizerTrainArgs,
    train_set: &Dataset,
    val_set: &Dataset,
    shorten: Option<&str>,
) -> Result<(), String> {
    let mut cfg = TokenizerConfig::preset(&args.preset).map_err(|e| e.to_string())?;
    if let Some(k) = args.codebook_size {
        cfg.codebook_size = k;
    }
    let ctx = device(&gpu::Requirements::kernels())?;
    let (steps, batch) = (args.steps, args.batch);
    println!(
        "tokenizer: {}x{} grid of {}-pixel patches, {} codes, {steps} steps of {batch} images, on {}",
        cfg.grid(),
        cfg.grid(),
        cfg.patch_size,
        cfg.codebook_size,
        ctx.describe()
    );
    let tk = Tokenizer::new_random(&ctx, &cfg, args.seed).map_err(|e| e.to_string())?;
    let opts = TrainOptions::of(args);
    let t0 = std::time::Instant::now();
    let every = (steps / 20).max(1);
    let mut first = None;
    // The estimate comes after a few steps (the first one builds the pipelines).
    let estimate_at = steps.min(4);
    let mut estimated = false;
    train(&ctx, &tk, train_set, &opts, |r| {
        let el = t0.elapsed().as_secs_f64();
        let first = *first.get_or_insert(el);
        if !estimated && r.step >= estimate_at && steps > r.step {
            estimated = true;
            println!(
                "tokenizer: about {:.0} s for {steps} steps{}",
                estimate_seconds(first, el, r.step, steps),
                shorten.unwrap_or("")
            );
        }
        if r.step % every == 0 || r.step == steps {
            let ips = (r.step * batch) as f64 / el;
            let eta = (steps - r.step) as f64 * batch as f64 / ips.max(1e-9);
            println!(
                "tokenizer {} {:>6}/{steps}  reconstruction {:.5}  commitment {:.5}  {:.0} img/s  ETA {:.0} s",
                bar(r.step, steps), r.step, r.reconstruction, r.commitment, ips, eta
            );
        }
    })
    .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let m = evaluate(&ctx, &tk, val_set, batch).map_err(|e| e.to_string())?;
    tk.save(&ctx, &args.out).map_err(|e| e.to_string())?;
    println!(
        "trained {steps} steps in {secs:.0} s; validation ({} images): PSNR {:.2} dB, codebook usage {:.1}% ({} of {}), perplexity {:.1}; saved {}",
        val_set.len(),
        m.psnr,
        100.0 * m.usage,
        (m.usage * cfg.codebook_size as f64).round(),
        cfg.codebook_size,
        m.perplexity,
        args.out.display()
    );
    Ok(())
}

impl TrainOptions {
    /// The training settings of `tokenizer train`'s options.
    fn of(args: &TokenizerTrainArgs) -> Self {
        Self {
            steps: args.steps,
            batch: args.batch,
            lr: args.lr,
            seed: args.seed,
            crop_scale: (args.min_crop, 1.0),
            flip: !args.no_flip,
        }
    }
}

fn encode(args: &TokenizerEncodeArgs) -> Result<(), String> {
    let ctx = device(&gpu::Requirements::kernels())?;
    let tk = Tokenizer::load(&ctx, &args.tokenizer).map_err(|e| e.to_string())?;
    let spec = if args.data == "builtin" {
        "builtin:train"
    } else {
        args.data.as_str()
    };
    let ds = crate::data::dataset::Dataset::open(
        spec,
        Decode::for_model(tk.cfg.num_channels, tk.cfg.image_size),
    )
    .map_err(|e| e.to_string())?;
    if let Some(s) = ds.skipped_summary() {
        eprintln!("note: {}: {s}", ds.source);
    }
    let toks = encode_dataset(&ctx, &tk, &ds, 64).map_err(|e| e.to_string())?;
    let mut t = std::collections::BTreeMap::new();
    let n = tk.cfg.tokens() as usize;
    t.insert(
        "tokens".to_string(),
        crate::tensorfile::HostTensor::i64(
            vec![ds.len(), n],
            toks.iter().map(|&v| v as i64).collect(),
        ),
    );
    if let Some(l) = &ds.labels {
        t.insert(
            "labels".to_string(),
            crate::tensorfile::HostTensor::i64(
                vec![ds.len()],
                l.iter().map(|&v| v as i64).collect(),
            ),
        );
    }
    crate::tensorfile::write(&args.output, &t).map_err(|e| e.to_string())?;
    println!(
        "wrote tokens of {} images ({} per image) to {}",
        ds.len(),
        n,
        args.output.display()
    );
    Ok(())
}
