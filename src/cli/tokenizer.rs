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
    /// Encode every image of a dataset (evaluation view, file-name order) to tokens: `tokens` i64 (images, H, W)
    /// (+ `labels`). Works with either kind of tokenizer.
    Encode(TokenizerEncodeArgs),
    /// Make a tokenizer folder from DALL-E's discrete VAE weights (safetensors with the `dall-e` package's
    /// names, from tools/dalle_to_safetensors.py); every hyper-parameter is read from the tensors.
    ImportDalle(TokenizerImportArgs),
}

/// `tokenizer import-dalle`: see [`TokenizerCommand::ImportDalle`].
#[derive(Args, Debug)]
pub struct TokenizerImportArgs {
    /// The encoder's weights (`blocks.input.w`, ..., `blocks.output.conv.w`).
    #[arg(long)]
    pub encoder: PathBuf,
    /// The decoder's weights, to see tokens as pixels (reconstructions, predictions, the codebook).
    #[arg(long)]
    pub decoder: Option<PathBuf>,
    /// The tokenizer folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the tokenizer already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Token grid side whose image side is reported (14: the 112-pixel view of a 224-pixel BEiT/16).
    #[arg(long, default_value_t = 14, value_parser = crate::train::checks::parse::count)]
    pub grid: u32,
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
    /// Side of the view a DALL-E tokenizer reads (a multiple of 8; tokens per side = side / 8). Patch
    /// tokenizers read their own fixed size.
    #[arg(long, default_value_t = 112, value_parser = crate::train::checks::parse::count)]
    pub image_size: u32,
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
        TokenizerCommand::ImportDalle(a) => import_dalle(a),
    }
}

fn import_dalle(args: &TokenizerImportArgs) -> Result<(), String> {
    use crate::tokenizer::dalle::{DalleGraph, DalleNet, DalleTokenizer, Half, PixelOut};
    let run_dir = RunDir::acquire(
        &args.out,
        RunMode::New {
            overwrite: args.overwrite,
        },
    )?;
    let read = |p: &PathBuf| crate::tensorfile::read(p).map_err(|e| e.to_string());
    let enc_t = read(&args.encoder)?;
    let dec_t = args.decoder.as_ref().map(read).transpose()?;
    let weight_bytes = [Some(&enc_t), dec_t.as_ref()]
        .into_iter()
        .flatten()
        .map(|t| t.values().map(|x| 4 * (x.len() as u64 + 64)).sum::<u64>())
        .max()
        .unwrap_or(0);
    let ctx = device(&crate::tokenizer::dalle::model::requirements(weight_bytes))?;
    let e = |e: crate::model::ModelError| e.to_string();
    let encoder = DalleNet::from_tensors(
        &ctx,
        &enc_t,
        Half::Encoder,
        &args.encoder.display().to_string(),
    )
    .map_err(e)?;
    let decoder = match (&dec_t, &args.decoder) {
        (Some(t), Some(p)) => Some(
            DalleNet::from_tensors(&ctx, t, Half::Decoder, &p.display().to_string()).map_err(e)?,
        ),
        _ => None,
    };
    let tk = DalleTokenizer::new(encoder, decoder).map_err(e)?;
    // One image through both passes proves the weights run here before anything is written.
    let g = DalleGraph::new(&ctx, &tk, 1, args.grid, PixelOut::UNIT).map_err(e)?;
    let mut work = g.encode.clone();
    work.extend(g.decode.iter().cloned());
    crate::gpu::Dispatch::submit(&ctx, "import check", &work).map_err(|e| e.to_string())?;
    ctx.wait().map_err(|e| e.to_string())?;
    run_dir.clear_for_new_run()?;
    tk.save_folder(&args.out, &enc_t, dec_t.as_ref())
        .map_err(e)?;
    println!("{}", tk.encoder.shape.describe());
    if let Some(d) = &tk.decoder {
        println!("{}", d.shape.describe());
    }
    println!(
        "wrote DALL-E tokenizer {}: {} codes, a {g}x{g} token grid reads {s}x{s}-pixel views (pixels mapped as 0.8x + 0.1); use it with --tokenizer {}",
        args.out.display(),
        tk.vocab_size(),
        args.out.display(),
        g = args.grid,
        s = tk.input_size(args.grid),
    );
    Ok(())
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
    if crate::tokenizer::dalle::DalleTokenizer::is_folder(&args.tokenizer) {
        return encode_dalle(&ctx, args);
    }
    let tk = Tokenizer::load(&ctx, &args.tokenizer).map_err(|e| e.to_string())?;
    let ds = encode_data(args, tk.cfg.num_channels, tk.cfg.image_size)?;
    let toks = encode_dataset(&ctx, &tk, &ds, 64).map_err(|e| e.to_string())?;
    write_tokens(args, &ds, &toks, tk.cfg.grid())
}

/// The dataset named by `encode --data` (`builtin` means its training split), decoded for `channels`, `size`.
fn encode_data(args: &TokenizerEncodeArgs, channels: u32, size: u32) -> Result<Dataset, String> {
    let spec = if args.data == "builtin" {
        "builtin:train"
    } else {
        args.data.as_str()
    };
    let ds = Dataset::open(spec, Decode::for_model(channels, size)).map_err(|e| e.to_string())?;
    if let Some(s) = ds.skipped_summary() {
        eprintln!("note: {}: {s}", ds.source);
    }
    Ok(ds)
}

/// Write `tokens` i64 (images, grid, grid) (+ `labels` i64 (images)) to `args.output`.
fn write_tokens(
    args: &TokenizerEncodeArgs,
    ds: &Dataset,
    toks: &[u32],
    grid: u32,
) -> Result<(), String> {
    let mut t = std::collections::BTreeMap::new();
    let g = grid as usize;
    t.insert(
        "tokens".to_string(),
        crate::tensorfile::HostTensor::i64(
            vec![ds.len(), g, g],
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
        "wrote tokens of {} images ({g}x{g} per image) to {}",
        ds.len(),
        args.output.display()
    );
    Ok(())
}

/// `tokenizer encode` with a DALL-E tokenizer: evaluation views at `--image-size`, pixels mapped as 0.8x + 0.1,
/// encoded on the GPU a batch at a time.
fn encode_dalle(ctx: &crate::gpu::GpuContext, args: &TokenizerEncodeArgs) -> Result<(), String> {
    use crate::tokenizer::dalle::{DalleGraph, DalleTokenizer, PixelOut};
    use crate::tokenizer::VisualTokenizer;
    let tk = DalleTokenizer::load(ctx, &args.tokenizer).map_err(|e| e.to_string())?;
    let down = tk.encoder.shape.downsampling();
    if !args.image_size.is_multiple_of(down) {
        return Err(format!(
            "--image-size {} is not a multiple of {down}, the DALL-E encoder's downsampling",
            args.image_size
        ));
    }
    let grid = args.image_size / down;
    let ds = encode_data(args, tk.image_channels(), args.image_size)?;
    let view = VisualTokenizer::Dalle(tk.clone()).view(grid);
    let aug = view.augment(&crate::data::augment::Augment::beit(
        view.size,
        view.channels,
    ));
    let batch = 64u32.min(ds.len().max(1) as u32);
    let g = DalleGraph::new(ctx, &tk, batch, grid, PixelOut::UNIT).map_err(|e| e.to_string())?;
    let mut toks = Vec::with_capacity(ds.len() * (grid * grid) as usize);
    for start in (0..ds.len()).step_by(batch as usize) {
        let end = (start + batch as usize).min(ds.len());
        g.pixels
            .write(ctx, &aug.eval_batch(&ds.images[start..end], batch as usize));
        crate::gpu::Dispatch::submit(ctx, "dall-e encode", &g.encode).map_err(|e| e.to_string())?;
        let t = ctx.read_u32(&g.tokens).map_err(|e| e.to_string())?;
        toks.extend_from_slice(&t[..(end - start) * (grid * grid) as usize]);
    }
    write_tokens(args, &ds, &toks, grid)
}
