//! `beitlab pretrain`: BEiT masked image modeling on a dataset, with a visual tokenizer's tokens (or the
//! normalised pixels) of masked patches as targets; checkpoints, metrics and exact resume.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::common::{
    add_mixed_fields, bar, device, load_train_val, metrics_log, model_folder, model_requirements,
    read_settings, resolve_precision, run_folder, skipped_note, steps_for_epochs, write_settings,
    TrainValData,
};
use super::tokenizer::{train_tokenizer, TokenizerTrainArgs};
use crate::data::augment::Augment;
use crate::data::dataset::Decode;
use crate::data::masking::BlockMasking;
use crate::model::{BeitConfig, BeitModel};
use crate::tokenizer::dalle::{DalleConfig, DalleTokenizer};
use crate::tokenizer::VisualTokenizer;
use crate::train::precision::Precision;
use crate::train::pretrain::{pretrain, Masking, PretrainOptions};
use crate::train::record::MimRecorder;
use crate::train::run_dir::{RunDir, RunMode};

/// BEiT masked image modeling on a dataset, with a trained tokenizer's tokens as targets (a tokenizer is
/// trained first into OUT/tokenizer when none is given). Writes OUT/checkpoint (a HuggingFace folder plus
/// training_state.safetensors, replaced whole at each save) and OUT/metrics.jsonl.
#[derive(Args, Debug, Clone)]
pub struct PretrainArgs {
    /// `builtin`, a folder of images (labels are not needed), or an IDX images file. With your own data every
    /// 10th image of each class is held out (fine-tuning validates on the same ones).
    #[arg(long, default_value = "builtin")]
    pub data: String,
    #[arg(long, default_value = "micro")]
    pub preset: String,
    /// A tokenizer folder: from `beitlab tokenizer train` (matching the preset's patch grid) or from
    /// `beitlab tokenizer import-dalle` (the paper's DALL-E tokenizer, reading its own view of each crop at 8
    /// pixels per token).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Continue pretraining this masked-image-modeling model (a HuggingFace BEiT MIM folder such as
    /// microsoft/beit-base-patch16-224-pt22k, or a beitlab run) instead of random weights; its configuration
    /// replaces --preset. Needs --tokenizer (the tokens it was trained on).
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Steps of the tokenizer trained first when no --tokenizer is given (default: as many as --steps).
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub tokenizer_steps: Option<u32>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 500)]
    pub steps: u32,
    /// Train for this many passes over the training set instead of --steps.
    #[arg(value_parser = crate::train::checks::parse::epochs, long)]
    pub epochs: Option<f64>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 32)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::learning_rate, long, default_value_t = 1.5e-3)]
    pub lr: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// blockwise (BEiT) or random (the paper's ablation).
    #[arg(long, default_value = "blockwise")]
    pub masking: String,
    /// Fraction of each image's patches that are masked (default: 0.4, as BEiT's 75 of 196).
    #[arg(long, value_parser = crate::train::checks::parse::open_fraction)]
    pub mask_ratio: Option<f64>,
    /// What the MIM head learns: visual tokens (BEiT) or the normalised pixels of masked patches (the paper's ablation).
    #[arg(long, default_value = "tokens")]
    pub target: String,
    /// Save a checkpoint every this many steps (0: at the end only; a resumed run keeps its own unless given).
    #[arg(long)]
    pub checkpoint_every: Option<u32>,
    /// Record the masked image modeling view over training as an animated GIF (six validation images with fixed
    /// masks: image, masked input, tokenizer reconstruction, BEiT's prediction; right patches green, wrong red).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Steps between recorded frames (default: about 30 frames over the run).
    #[arg(long, value_parser = crate::train::checks::parse::count)]
    pub record_every: Option<u32>,
    /// One JSON object per logged step on stdout.
    #[arg(long)]
    pub json: bool,
    /// Continue the run saved in DIR (its checkpoint/, tokenizer/ and data position) up to --steps;
    /// the result equals the uninterrupted run's.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Run folder (defaults to the --resume folder).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Replace the run already in --out (without it a new run into a run folder is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// f32, or mixed: f16-input products with a dynamic loss scale (needs f16 cooperative-matrix kernels;
    /// without them the run is f32 and says so).
    #[arg(long, value_parser = Precision::parse, default_value = "f32")]
    pub precision: Precision,
}

/// The settings of a pretraining run, kept in its folder (`run.json`) so `--resume` continues it unchanged.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunSettings {
    data: String,
    preset: String,
    batch: u32,
    lr: f32,
    seed: u64,
    masking: String,
    #[serde(default)]
    mask_ratio: Option<f64>,
    #[serde(default = "tokens_target")]
    target: String,
    #[serde(default)]
    checkpoint_every: u32,
    #[serde(default)]
    init: Option<PathBuf>,
    #[serde(default = "f32_name")]
    precision: String,
}

fn f32_name() -> String {
    "f32".into()
}

fn tokens_target() -> String {
    "tokens".into()
}

impl RunSettings {
    fn of(args: &PretrainArgs) -> Self {
        Self {
            data: args.data.clone(),
            preset: args.preset.clone(),
            batch: args.batch,
            lr: args.lr,
            seed: args.seed,
            masking: args.masking.clone(),
            mask_ratio: args.mask_ratio,
            target: args.target.clone(),
            checkpoint_every: args.checkpoint_every.unwrap_or(0),
            init: args.init.clone(),
            precision: args.precision.name().into(),
        }
    }
    fn read(dir: &Path) -> Result<Self, String> {
        read_settings(dir, "run.json", "pretraining")
    }
    fn write(&self, dir: &Path) -> Result<(), String> {
        write_settings(dir, "run.json", self)
    }
    /// These settings applied to `args` (a resumed run keeps its own; only --steps may change).
    fn apply(self, args: &PretrainArgs) -> Result<PretrainArgs, String> {
        Ok(PretrainArgs {
            data: self.data,
            preset: self.preset,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            masking: self.masking,
            mask_ratio: self.mask_ratio,
            target: self.target,
            checkpoint_every: args.checkpoint_every.or(Some(self.checkpoint_every)),
            init: self.init,
            precision: Precision::parse(&self.precision)?,
            ..args.clone()
        })
    }
}

/// Run `beitlab pretrain`.
pub fn run(args: &PretrainArgs) -> Result<(), String> {
    let out = run_folder(&args.out, &args.resume)?;
    let resume = args.resume.is_some();
    let run_dir = RunDir::acquire(&out, RunMode::of(resume, args.overwrite))?;
    let args = if resume {
        RunSettings::read(&out)?.apply(args)?
    } else {
        args.clone()
    };
    // The tokenizer folder given, or the run's own copy when resuming.
    let tokenizer_dir = args
        .tokenizer
        .clone()
        .or_else(|| resume.then(|| out.join("tokenizer")));
    let cfg = match &args.init {
        Some(dir) => {
            let c = crate::model::checkpoint::read_folder(&model_folder(dir))
                .map_err(|e| e.to_string())?
                .config;
            if c.architecture() != crate::model::config::Architecture::MaskedImageModeling {
                return Err(format!(
                    "--init {} is an image classifier; continuing pretraining needs a masked-image-modeling model",
                    dir.display()
                ));
            }
            if tokenizer_dir.is_none() && args.target == "tokens" {
                return Err("--init needs --tokenizer DIR, the tokenizer whose tokens the model predicts (for HuggingFace's pt22k checkpoints: a DALL-E tokenizer from `beitlab tokenizer import-dalle`)".into());
            }
            c
        }
        None => {
            let mut c = BeitConfig::preset(&args.preset).map_err(|e| e.to_string())?;
            // A DALL-E tokenizer fixes the images' channels and the vocabulary.
            if let Some(d) = tokenizer_dir
                .as_ref()
                .filter(|d| DalleTokenizer::is_folder(d))
            {
                let dc = DalleConfig::read(d).map_err(|e| e.to_string())?;
                c.num_channels = dc.encoder.image_channels;
                c.vocab_size = dc.encoder.vocab_size;
            }
            c
        }
    };
    let pixels = match args.target.as_str() {
        "tokens" => false,
        "pixels" => true,
        other => return Err(format!("unknown target \"{other}\"; use tokens or pixels")),
    };
    if pixels && args.record.is_some() {
        return Err("--record shows visual tokens; it needs --target tokens".into());
    }
    let grid = cfg.grid();
    let mut block = BlockMasking::scaled(grid);
    if let Some(r) = args.mask_ratio {
        let k = ((r * cfg.patches() as f64).round() as u32).max(1);
        block = BlockMasking::new(grid, grid, k, block.min_num_patches.min(k), 0.3, None);
    }
    crate::train::checks::masked_patches("--mask-ratio", block.num_masking_patches, cfg.patches())?;
    let masking = match args.masking.as_str() {
        "blockwise" => Masking::Blockwise(block),
        "random" => Masking::Random(block.num_masking_patches),
        other => {
            return Err(format!(
                "unknown masking \"{other}\"; use blockwise or random"
            ))
        }
    };
    // Pretraining sees the training part only: the images fine-tuning validates on stay unseen.
    let (train_set, val_set) = load_train_val(
        &args.data,
        None,
        Decode::for_model(cfg.num_channels, cfg.image_size),
    )?;
    let steps = args.epochs.map_or(args.steps, |e| {
        steps_for_epochs(e, train_set.len(), args.batch)
    });
    let ctx = device(&model_requirements(&cfg, args.batch))?;
    let precision = resolve_precision(args.precision, &ctx);
    let mixed = precision.mixed.is_some();
    // Everything is checked: a replaced run's files go now, before the first write.
    run_dir.clear_for_new_run()?;
    let tok_dir = match &args.tokenizer {
        _ if pixels => PathBuf::new(),
        Some(d) => d.clone(),
        None if resume => out.join("tokenizer"),
        None => {
            let d = out.join("tokenizer");
            let tk_steps = args.tokenizer_steps.unwrap_or(steps);
            println!(
                "no --tokenizer given: training one first ({tk_steps} steps) into {}",
                d.display()
            );
            train_tokenizer(
                &TokenizerTrainArgs {
                    data: TrainValData {
                        data: args.data.clone(),
                        val_data: None,
                    },
                    preset: args.preset.clone(),
                    steps: tk_steps,
                    batch: 64,
                    lr: 2e-3,
                    codebook_size: None,
                    seed: args.seed,
                    min_crop: 0.08,
                    no_flip: false,
                    out: d.clone(),
                    overwrite: false,
                },
                &train_set,
                &val_set,
                Some(" (--tokenizer-steps N changes the count; --tokenizer DIR reuses a trained one)"),
            )?;
            d
        }
    };
    let tk = if pixels {
        None
    } else {
        Some(VisualTokenizer::load(&ctx, &tok_dir).map_err(|e| e.to_string())?)
    };
    let mut cfg = cfg;
    match &tk {
        Some(tk) if args.init.is_none() => cfg.vocab_size = tk.codebook_size(),
        Some(_) => {}
        None => cfg.mim_target = Some("pixels".into()),
    }
    if let Some(tk) = &tk {
        tk.check_model(&cfg).map_err(|e| e.to_string())?;
    }
    // The run folder keeps its own copy of the tokenizer, so --resume needs nothing else.
    let own = out.join("tokenizer");
    if !pixels && tok_dir != own {
        std::fs::create_dir_all(&own).map_err(|e| format!("{}: {e}", own.display()))?;
        for f in VisualTokenizer::files_in(&tok_dir) {
            std::fs::copy(tok_dir.join(f), own.join(f))
                .map_err(|e| format!("{}: {e}", own.join(f).display()))?;
        }
    }
    let model = match &args.init {
        _ if resume => {
            BeitModel::load(&ctx, &out.join("checkpoint"), None).map_err(|e| e.to_string())?
        }
        Some(dir) => BeitModel::load(&ctx, &model_folder(dir), None).map_err(|e| e.to_string())?,
        None => BeitModel::new_random(&ctx, &cfg, args.seed).map_err(|e| e.to_string())?,
    };
    let cfg = model.cfg.clone();
    let batch = args.batch;
    let opts = PretrainOptions {
        steps,
        batch,
        lr: args.lr,
        min_lr: args.lr * 0.01,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        clip: 3.0,
        seed: args.seed,
        masking,
        augment: Augment::beit(cfg.image_size, cfg.num_channels),
        checkpoint_every: args.checkpoint_every.unwrap_or(0),
        out: Some(out.join("checkpoint")),
        resume: resume.then(|| out.join("checkpoint")),
        stop_after: None,
        mixed: precision.mixed,
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    RunSettings::of(&args).write(&out)?;
    let (log_path, mut log) = metrics_log(&out, resume)?;
    println!(
        "pretraining {} ({} parameters) for {steps} steps of {batch} images, {} masking, {}, on {}",
        args.init
            .as_ref()
            .map_or(args.preset.clone(), |d| d.display().to_string()),
        model.table.trainable_count(),
        args.masking,
        precision.ran().name(),
        ctx.describe()
    );
    let mut recorder = match (&args.record, &tk) {
        (None, _) => None,
        (Some(_), None) => {
            return Err("--record shows visual tokens; it needs --target tokens".into());
        }
        (Some(path), Some(tk)) => {
            let mut r = MimRecorder::new(path, &model, &val_set, args.seed)?;
            r.capture(&ctx, tk, &model, &val_set, 0, 0.0)
                .map_err(|e| e.to_string())?;
            Some(r)
        }
    };
    let record_every = args.record_every.unwrap_or((steps / 30).max(1));
    let mut record_error = None;
    let t0 = std::time::Instant::now();
    let every = (steps / 20).max(1);
    let mut last_line = None;
    pretrain(&ctx, &model, tk.as_ref(), &train_set, &opts, |m| {
        if let (Some(r), Some(tk)) = (recorder.as_mut(), tk.as_ref()) {
            if (m.step % record_every == 0 || m.step == steps) && record_error.is_none() {
                record_error = r
                    .capture(&ctx, tk, &model, &val_set, m.step, m.accuracy)
                    .err();
            }
        }
        let el = t0.elapsed().as_secs_f64();
        let ips = (m.step * batch) as f64 / el.max(1e-9);
        let mut line = serde_json::json!({"step": m.step, "loss": m.loss, "accuracy": m.accuracy, "grad_norm": m.grad_norm, "lr": m.lr, "masked": m.masked, "images_per_s": ips});
        add_mixed_fields(&mut line, &m, mixed);
        let _ = writeln!(log, "{line}");
        if m.step % every == 0 || m.step == steps {
            if args.json {
                println!("{line}");
            } else {
                let eta = (steps - m.step) as f64 * batch as f64 / ips.max(1e-9);
                println!("pretrain {} {:>6}/{steps}  loss {:.4}  MIM accuracy {:>5.1}%  grad norm {:.3}  lr {:.2e}  {:.0} img/s  ETA {:.0} s{}", bar(m.step, steps), m.step, m.loss, 100.0 * m.accuracy, m.grad_norm, m.lr, ips, eta, skipped_note(&m));
            }
        }
        last_line = Some(m);
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = record_error {
        return Err(format!("recording the MIM view failed: {e}"));
    }
    if let Some(r) = recorder {
        let frames = r.frames();
        let path = r.finish()?;
        println!(
            "recorded {frames} frames of the MIM view: {}",
            path.display()
        );
    }
    let plot = crate::train::plot::plot_run(&out, "pretraining")?;
    println!("curves: {}", plot.display());
    if let Some(m) = last_line {
        println!("pretrained {steps} steps in {:.0} s: final loss {:.4}, MIM accuracy {:.1}%; saved {} (metrics in {})", t0.elapsed().as_secs_f64(), m.loss, 100.0 * m.accuracy, out.join("checkpoint").display(), log_path.display());
    }
    Ok(())
}
