//! `beitlab finetune`: classification fine-tuning from a pretrained run or model folder, or from scratch, on
//! the built-in data or your own labelled images; validation top-1 at the end; exact resume.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::common::{
    add_mixed_fields, bar, device, metrics_log, model_folder, model_requirements, read_settings,
    resolve_precision, run_folder, skipped_note, steps_for_epochs, write_settings, TrainValData,
};
use crate::data::augment::Augment;
use crate::data::dataset::Decode;
use crate::model::{BeitConfig, BeitModel};
use crate::train::finetune::{
    classification_config, evaluate, finetune, from_pretrained, FinetuneOptions,
};
use crate::train::precision::Precision;
use crate::train::run_dir::{RunDir, RunMode};

/// Fine-tune for classification from a pretrained run or model folder (--init), or from scratch; reports
/// validation top-1 accuracy. Writes OUT/checkpoint and OUT/metrics.jsonl.
#[derive(Args, Debug, Clone)]
pub struct FinetuneArgs {
    /// A pretraining run folder (its checkpoint/) or a model folder.
    #[arg(long, conflicts_with_all = ["scratch", "resume"])]
    pub init: Option<PathBuf>,
    /// Start from a fresh initialisation of --preset instead.
    #[arg(long)]
    pub scratch: bool,
    #[arg(long, default_value = "micro")]
    pub preset: String,
    #[command(flatten)]
    pub data: TrainValData,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 500)]
    pub steps: u32,
    /// Train for this many passes over the training set instead of --steps.
    #[arg(value_parser = crate::train::checks::parse::epochs, long)]
    pub epochs: Option<f64>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 32)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::learning_rate, long, default_value_t = 3e-3)]
    pub lr: f32,
    #[arg(value_parser = crate::train::checks::parse::unit_fraction_f32, long, default_value_t = 0.65)]
    pub layer_decay: f32,
    #[arg(value_parser = crate::train::checks::parse::unit_fraction_f32, long, default_value_t = 0.1)]
    pub label_smoothing: f32,
    #[arg(long, default_value_t = 0.1)]
    pub drop_path: f64,
    /// Smallest crop scale of the random resized crop.
    #[arg(value_parser = crate::train::checks::parse::unit_fraction, long, default_value_t = 0.8)]
    pub min_crop: f64,
    /// No horizontal flips (for digits and text).
    #[arg(long)]
    pub no_flip: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
    /// Save a checkpoint every this many steps (0: at the end only; a resumed run keeps its own unless given).
    #[arg(long)]
    pub checkpoint_every: Option<u32>,
    /// Continue the fine-tuning run saved in DIR (settings from its finetune.json) up to --steps.
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

/// The settings of a fine-tuning run, kept in its folder (`finetune.json`) so `--resume` continues it unchanged.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct FinetuneSettings {
    init: Option<PathBuf>,
    scratch: bool,
    preset: String,
    data: String,
    #[serde(default)]
    val_data: Option<String>,
    batch: u32,
    lr: f32,
    layer_decay: f32,
    label_smoothing: f32,
    drop_path: f64,
    min_crop: f64,
    flip: bool,
    seed: u64,
    #[serde(default)]
    checkpoint_every: u32,
    #[serde(default = "f32_name")]
    precision: String,
}

fn f32_name() -> String {
    "f32".into()
}

impl FinetuneSettings {
    fn of(a: &FinetuneArgs) -> Self {
        Self {
            init: a.init.clone(),
            scratch: a.scratch,
            preset: a.preset.clone(),
            data: a.data.data.clone(),
            val_data: a.data.val_data.clone(),
            batch: a.batch,
            lr: a.lr,
            layer_decay: a.layer_decay,
            label_smoothing: a.label_smoothing,
            drop_path: a.drop_path,
            min_crop: a.min_crop,
            flip: !a.no_flip,
            seed: a.seed,
            checkpoint_every: a.checkpoint_every.unwrap_or(0),
            precision: a.precision.name().into(),
        }
    }
    fn read(dir: &Path) -> Result<Self, String> {
        read_settings(dir, "finetune.json", "fine-tuning")
    }
    fn write(&self, dir: &Path) -> Result<(), String> {
        write_settings(dir, "finetune.json", self)
    }
}

/// Run `beitlab finetune`.
pub fn run(args: &FinetuneArgs) -> Result<(), String> {
    let out = run_folder(&args.out, &args.resume)?;
    let resume = args.resume.is_some();
    let run_dir = RunDir::acquire(&out, RunMode::of(resume, args.overwrite))?;
    let mut settings = if resume {
        FinetuneSettings::read(&out)?
    } else {
        FinetuneSettings::of(args)
    };
    if let Some(every) = args.checkpoint_every {
        settings.checkpoint_every = every;
    }
    let base_cfg = match &settings.init {
        Some(dir) => {
            crate::model::checkpoint::read_folder(&model_folder(dir))
                .map_err(|e| e.to_string())?
                .config
        }
        None if settings.scratch => {
            BeitConfig::preset(&settings.preset).map_err(|e| e.to_string())?
        }
        None => return Err("give --init DIR (a pretrained run or model) or --scratch".into()),
    };
    let data = TrainValData {
        data: settings.data.clone(),
        val_data: settings.val_data.clone(),
    };
    let (train_set, val_set) = data.load(Decode::for_model(
        base_cfg.num_channels,
        base_cfg.image_size,
    ))?;
    super::common::require_classes(&train_set, "fine-tuning needs")?;
    let names = train_set.class_names.clone();
    let batch = settings.batch;
    let steps = args
        .epochs
        .map_or(args.steps, |e| steps_for_epochs(e, train_set.len(), batch));
    let cfg = classification_config(&base_cfg, &names, settings.drop_path);
    let ctx = device(&model_requirements(&cfg, batch))?;
    let precision = resolve_precision(Precision::parse(&settings.precision)?, &ctx);
    let mixed = precision.mixed.is_some();
    let model = match &settings.init {
        _ if resume => {
            BeitModel::load(&ctx, &out.join("checkpoint"), None).map_err(|e| e.to_string())?
        }
        Some(dir) => {
            let pre = BeitModel::load(&ctx, &model_folder(dir), None).map_err(|e| e.to_string())?;
            from_pretrained(&ctx, &pre, &cfg, settings.seed).map_err(|e| e.to_string())?
        }
        None => BeitModel::new_random(&ctx, &cfg, settings.seed).map_err(|e| e.to_string())?,
    };
    let mut augment = Augment::beit(cfg.image_size, cfg.num_channels);
    augment.scale = (settings.min_crop, 1.0);
    augment.flip = settings.flip;
    let opts = FinetuneOptions {
        steps,
        batch,
        lr: settings.lr,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        layer_decay: settings.layer_decay,
        label_smoothing: settings.label_smoothing,
        clip: None,
        seed: settings.seed,
        augment,
        out: Some(out.join("checkpoint")),
        checkpoint_every: settings.checkpoint_every,
        resume: resume.then(|| out.join("checkpoint")),
        stop_after: None,
        mixed: precision.mixed,
    };
    opts.validate().map_err(|e| e.to_string())?;
    // Everything is checked: a replaced run's files go now, before the first write.
    run_dir.clear_for_new_run()?;
    settings.write(&out)?;
    let (_, mut log) = metrics_log(&out, resume)?;
    println!(
        "fine-tuning {} ({} parameters) for {steps} steps of {batch} images, {} classes, {}, on {}",
        settings
            .init
            .as_ref()
            .map_or("from scratch".to_string(), |d| format!(
                "from {}",
                d.display()
            )),
        model.table.trainable_count(),
        names.len(),
        precision.ran().name(),
        ctx.describe()
    );
    let t0 = std::time::Instant::now();
    let every = (steps / 20).max(1);
    finetune(&ctx, &model, &train_set, &opts, |m| {
        let ips = (m.step * batch) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let mut line = serde_json::json!({"step": m.step, "loss": m.loss, "accuracy": m.accuracy, "grad_norm": m.grad_norm, "lr": m.lr, "images_per_s": ips});
        add_mixed_fields(&mut line, &m, mixed);
        let _ = writeln!(log, "{line}");
        if m.step % every == 0 || m.step == steps {
            if args.json {
                println!("{line}");
            } else {
                let eta = (steps - m.step) as f64 * batch as f64 / ips.max(1e-9);
                println!("finetune {} {:>6}/{steps}  loss {:.4}  train accuracy {:>5.1}%  grad norm {:.3}  lr {:.2e}  {:.0} img/s  ETA {:.0} s{}", bar(m.step, steps), m.step, m.loss, 100.0 * m.accuracy, m.grad_norm, m.lr, ips, eta, skipped_note(&m));
            }
        }
    })
    .map_err(|e| e.to_string())?;
    let (top1, _) = evaluate(&ctx, &model, &val_set, batch).map_err(|e| e.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"top1": top1, "images": val_set.len(), "data": val_set.source})
        );
    }
    let plot = crate::train::plot::plot_run(&out, "fine-tuning")?;
    println!("curves: {}", plot.display());
    println!(
        "fine-tuned {steps} steps in {:.0} s; top-1 accuracy on {} ({} images): {:.2}%; saved {}",
        t0.elapsed().as_secs_f64(),
        val_set.source,
        val_set.len(),
        100.0 * top1,
        out.join("checkpoint").display()
    );
    Ok(())
}
