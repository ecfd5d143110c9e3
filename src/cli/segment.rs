//! `beitlab segment`: semantic segmentation fine-tuning from a pretrained run or model folder, or from scratch, on
//! the built-in segmentation set or an ADE20K-layout folder, with a linear or pyramid head; pixel accuracy and
//! mIoU on the validation part at the end; exact resume.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::common::{
    bar, device, metrics_log, model_folder, read_settings, run_folder, write_settings,
};
use crate::data::augment::Augment;
use crate::data::dataset::{Decode, Split};
use crate::data::segmentation::SegDataset;
use crate::gpu::GpuContext;
use crate::model::{BeitConfig, BeitModel, SegmentationHead};
use crate::train::run_dir::{RunDir, RunMode};
use crate::train::segment::{
    evaluate_segmentation, segment, segmentation_config, SegScores, SegmentOptions,
};

/// Side of the built-in segmentation set's canvases (three 28-pixel items each).
pub const BUILTIN_CANVAS: u32 = 56;

/// Fine-tune for semantic segmentation from a pretrained run or model folder (--init), or from scratch; reports
/// pixel accuracy and mIoU on the validation part. Writes OUT/checkpoint and OUT/metrics.jsonl.
#[derive(Args, Debug, Clone)]
pub struct SegmentArgs {
    /// A pretraining run folder (its checkpoint/) or a model folder.
    #[arg(long, conflicts_with_all = ["scratch", "resume"])]
    pub init: Option<PathBuf>,
    /// Start from a fresh initialisation of --preset instead.
    #[arg(long)]
    pub scratch: bool,
    #[arg(long, default_value = "micro")]
    pub preset: String,
    /// `builtin-seg` (Fashion-MNIST items on 56-pixel canvases, 11 classes with background) or an ADE20K-layout
    /// folder (images/{training,validation}, annotations/{training,validation}, optional classes.txt).
    #[arg(long, default_value = "builtin-seg")]
    pub data: String,
    /// Score on the validation part of this set (`builtin-seg` or an ADE20K-layout folder) instead of --data's.
    #[arg(long)]
    pub val_data: Option<String>,
    /// `linear` (a classifier per patch, upsampled) or `pyramid` (four blocks' features as a 4-scale pyramid).
    #[arg(long, default_value = "linear")]
    pub head: String,
    /// Model input side (default: the preset's or the pretrained model's; position tables are interpolated).
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Patch side (with --scratch; a pretrained model keeps its own).
    #[arg(long)]
    pub patch_size: Option<u32>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 500)]
    pub steps: u32,
    /// Train for this many passes over the training set instead of --steps.
    #[arg(value_parser = crate::train::checks::parse::epochs, long)]
    pub epochs: Option<f64>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 16)]
    pub batch: u32,
    #[arg(value_parser = crate::train::checks::parse::learning_rate, long, default_value_t = 2e-3)]
    pub lr: f32,
    #[arg(value_parser = crate::train::checks::parse::unit_fraction_f32, long, default_value_t = 0.65)]
    pub layer_decay: f32,
    #[arg(long, default_value_t = 0.1)]
    pub drop_path: f64,
    /// Smallest crop scale of the random resized crop (image and labels together).
    #[arg(value_parser = crate::train::checks::parse::unit_fraction, long, default_value_t = 0.5)]
    pub min_crop: f64,
    /// No horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
    /// Save a checkpoint every this many steps (0: at the end only; a resumed run keeps its own unless given).
    #[arg(long)]
    pub checkpoint_every: Option<u32>,
    /// Continue the segmentation run saved in DIR (settings from its segment.json) up to --steps.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Run folder (defaults to the --resume folder).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Replace the run already in --out (without it a new run into a run folder is refused).
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
}

/// The settings of a segmentation run, kept in its folder (`segment.json`) so `--resume` continues it unchanged.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct SegmentSettings {
    init: Option<PathBuf>,
    scratch: bool,
    preset: String,
    data: String,
    #[serde(default)]
    val_data: Option<String>,
    head: String,
    image_size: Option<u32>,
    patch_size: Option<u32>,
    batch: u32,
    lr: f32,
    layer_decay: f32,
    drop_path: f64,
    min_crop: f64,
    flip: bool,
    seed: u64,
    checkpoint_every: u32,
}

impl SegmentSettings {
    fn of(a: &SegmentArgs) -> Self {
        Self {
            init: a.init.clone(),
            scratch: a.scratch,
            preset: a.preset.clone(),
            data: a.data.clone(),
            val_data: a.val_data.clone(),
            head: a.head.clone(),
            image_size: a.image_size,
            patch_size: a.patch_size,
            batch: a.batch,
            lr: a.lr,
            layer_decay: a.layer_decay,
            drop_path: a.drop_path,
            min_crop: a.min_crop,
            flip: !a.no_flip,
            seed: a.seed,
            checkpoint_every: a.checkpoint_every.unwrap_or(0),
        }
    }
}

/// The training part of `spec` and the validation part of `val_spec` (default: `spec`'s), for a model of
/// `channels` at `size` pixels (skipped pairs on stderr).
pub fn load_seg_data(
    spec: &str,
    val_spec: Option<&str>,
    channels: u32,
    size: u32,
) -> Result<(SegDataset, SegDataset), String> {
    let decode = Decode::for_model(channels, size);
    let open = |spec, split| {
        SegDataset::open(spec, split, decode, BUILTIN_CANVAS).map_err(|e| e.to_string())
    };
    let (train, val) = (
        open(spec, Split::Train)?,
        open(val_spec.unwrap_or(spec), Split::Val)?,
    );
    for set in [&train, &val] {
        if let Some(s) = set.skipped_summary() {
            eprintln!("note: {}: {s}", set.source);
        }
    }
    if train.is_empty() {
        return Err(format!(
            "{} has no training image with a label map",
            train.source
        ));
    }
    println!(
        "data: {} training and {} validation images with label maps, {} classes ({}; validation: {})",
        train.len(),
        val.len(),
        train.classes(),
        train.source,
        val.source
    );
    Ok((train, val))
}

/// The model a run starts from: the pretrained backbone (`init`, at `image_size`) under a fresh head, or a fresh
/// model of `preset` with `image_size` / `patch_size` changed.
#[allow(clippy::too_many_arguments)]
pub fn starting_model(
    ctx: &GpuContext,
    init: Option<&Path>,
    preset: &str,
    image_size: Option<u32>,
    patch_size: Option<u32>,
    classes: &[String],
    head: SegmentationHead,
    drop_path: f64,
    seed: u64,
) -> Result<BeitModel, String> {
    let (base, pre) = match init {
        Some(dir) => {
            let folder = model_folder(dir);
            let ck = crate::model::checkpoint::read_folder(&folder).map_err(|e| e.to_string())?;
            if let Some(p) = patch_size.filter(|&p| p != ck.config.patch_size) {
                return Err(format!(
                    "--patch-size {p} differs from the pretrained model's {}; a pretrained model keeps its patches",
                    ck.config.patch_size
                ));
            }
            let pre = BeitModel::load(ctx, &folder, image_size).map_err(|e| e.to_string())?;
            (pre.cfg.clone(), Some(pre))
        }
        None => (sized_preset(preset, image_size, patch_size)?, None),
    };
    let cfg = segmentation_config(&base, classes, head, drop_path);
    match pre {
        Some(pre) => crate::train::finetune::from_pretrained(ctx, &pre, &cfg, seed),
        None => BeitModel::new_random(ctx, &cfg, seed),
    }
    .map_err(|e| e.to_string())
}

/// A preset at another image and patch size (checked).
pub fn sized_preset(
    preset: &str,
    image_size: Option<u32>,
    patch_size: Option<u32>,
) -> Result<BeitConfig, String> {
    let mut cfg = BeitConfig::preset(preset).map_err(|e| e.to_string())?;
    cfg.image_size = image_size.unwrap_or(cfg.image_size);
    cfg.patch_size = patch_size.unwrap_or(cfg.patch_size);
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// The head named on the command line.
pub fn parse_head(name: &str) -> Result<SegmentationHead, String> {
    SegmentationHead::parse(name).ok_or_else(|| {
        format!("--head \"{name}\" is not a segmentation head; use linear or pyramid")
    })
}

/// One line per class: IoU as a bar, or "absent".
pub fn print_scores(scores: &SegScores, names: &[String], source: &str, images: usize) {
    println!(
        "on {source} ({images} images, {} labelled pixels): pixel accuracy {:.2}%, mIoU {:.2}%",
        scores.pixels,
        100.0 * scores.pixel_accuracy,
        100.0 * scores.miou
    );
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    for (name, iou) in names.iter().zip(&scores.iou) {
        match iou {
            Some(v) => println!(
                "  {name:>width$}  IoU {:>6.2}%  {}",
                100.0 * v,
                "#".repeat((v * 40.0).round() as usize)
            ),
            None => println!("  {name:>width$}  absent from labels and predictions"),
        }
    }
}

/// `--json` form of scores: pixel_accuracy, miou, iou by class name (null when absent).
pub fn scores_json(
    scores: &SegScores,
    names: &[String],
    source: &str,
    images: usize,
) -> serde_json::Value {
    let iou: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&scores.iou)
        .map(|(n, v)| (n.clone(), serde_json::json!(v)))
        .collect();
    serde_json::json!({"pixel_accuracy": scores.pixel_accuracy, "miou": scores.miou, "iou": iou, "pixels": scores.pixels, "images": images, "data": source})
}

/// Run `beitlab segment`.
pub fn run(args: &SegmentArgs) -> Result<(), String> {
    let out = run_folder(&args.out, &args.resume)?;
    let resume = args.resume.is_some();
    let run_dir = RunDir::acquire(&out, RunMode::of(resume, args.overwrite))?;
    let mut settings: SegmentSettings = if resume {
        read_settings(&out, "segment.json", "segmentation")?
    } else {
        SegmentSettings::of(args)
    };
    if let Some(every) = args.checkpoint_every {
        settings.checkpoint_every = every;
    }
    if settings.init.is_none() && !settings.scratch {
        return Err("give --init DIR (a pretrained run or model) or --scratch".into());
    }
    let head = parse_head(&settings.head)?;
    // The encoder's config at the run's input size: its channels and size decide how the data is decoded.
    let base_cfg = match &settings.init {
        Some(dir) => {
            let mut c = crate::model::checkpoint::read_folder(&model_folder(dir))
                .map_err(|e| e.to_string())?
                .config;
            c.image_size = settings.image_size.unwrap_or(c.image_size);
            c
        }
        None => sized_preset(&settings.preset, settings.image_size, settings.patch_size)?,
    };
    let (train_set, val_set) = load_seg_data(
        &settings.data,
        settings.val_data.as_deref(),
        base_cfg.num_channels,
        base_cfg.image_size,
    )?;
    let names = train_set.class_names.clone();
    let batch = settings.batch;
    let steps = args.epochs.map_or(args.steps, |e| {
        super::common::steps_for_epochs(e, train_set.len(), batch)
    });
    let req_cfg = segmentation_config(&base_cfg, &names, head, settings.drop_path);
    req_cfg.validate().map_err(|e| e.to_string())?;
    let ctx = device(&super::common::model_requirements(&req_cfg, batch))?;
    let model = if resume {
        BeitModel::load(&ctx, &out.join("checkpoint"), None).map_err(|e| e.to_string())?
    } else {
        starting_model(
            &ctx,
            settings.init.as_deref(),
            &settings.preset,
            settings.image_size,
            settings.patch_size,
            &names,
            head,
            settings.drop_path,
            settings.seed,
        )?
    };
    let mut augment = Augment::beit(model.cfg.image_size, model.cfg.num_channels);
    augment.scale = (settings.min_crop, 1.0);
    augment.flip = settings.flip;
    let opts = SegmentOptions {
        steps,
        batch,
        lr: settings.lr,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        layer_decay: settings.layer_decay,
        seed: settings.seed,
        augment,
        out: Some(out.join("checkpoint")),
        checkpoint_every: settings.checkpoint_every,
        resume: resume.then(|| out.join("checkpoint")),
    };
    opts.validate().map_err(|e| e.to_string())?;
    run_dir.clear_for_new_run()?;
    write_settings(&out, "segment.json", &settings)?;
    let (_, mut log) = metrics_log(&out, resume)?;
    println!(
        "segmentation fine-tuning {} with the {} head ({} parameters, {} px, patch {}) for {steps} steps of {batch} images, {} classes, on {}",
        settings.init.as_ref().map_or("from scratch".to_string(), |d| format!("from {}", d.display())),
        head.name(),
        model.table.trainable_count(),
        model.cfg.image_size,
        model.cfg.patch_size,
        names.len(),
        ctx.describe()
    );
    let t0 = std::time::Instant::now();
    let every = (steps / 20).max(1);
    segment(&ctx, &model, &train_set, &opts, |m| {
        let ips = (m.step * batch) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let line = serde_json::json!({"step": m.step, "loss": m.loss, "accuracy": m.accuracy, "grad_norm": m.grad_norm, "lr": m.lr, "images_per_s": ips});
        let _ = writeln!(log, "{line}");
        if m.step % every == 0 || m.step == steps {
            if args.json {
                println!("{line}");
            } else {
                println!("segment {} {:>6}/{steps}  loss {:.4}  pixel accuracy {:>5.1}%  grad norm {:.3}  lr {:.2e}  {:.1} img/s", bar(m.step, steps), m.step, m.loss, 100.0 * m.accuracy, m.grad_norm, m.lr, ips);
            }
        }
    })
    .map_err(|e| e.to_string())?;
    let scores = evaluate_segmentation(&ctx, &model, &val_set, batch).map_err(|e| e.to_string())?;
    let model_names = model.cfg.class_names();
    if args.json {
        println!(
            "{}",
            scores_json(&scores, &model_names, &val_set.source, val_set.len())
        );
    }
    let plot = crate::train::plot::plot_run(&out, "segmentation fine-tuning")?;
    println!("curves: {}", plot.display());
    println!(
        "fine-tuned {steps} steps in {:.0} s; saved {}",
        t0.elapsed().as_secs_f64(),
        out.join("checkpoint").display()
    );
    print_scores(&scores, &model_names, &val_set.source, val_set.len());
    Ok(())
}
