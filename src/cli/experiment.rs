//! `beitlab experiment pretrain-vs-scratch`: the paper's claim in miniature: tokenizer -> BEiT pretraining ->
//! fine-tuning, against the same fine-tuning from a random initialisation, on the built-in data or your own.

use std::path::PathBuf;

use clap::Args;

use super::common::{device, model_requirements, TrainValData};
use super::pretrain::PretrainArgs;
use crate::data::augment::Augment;
use crate::data::dataset::Decode;
use crate::model::{BeitConfig, BeitModel};
use crate::train::finetune::{
    classification_config, evaluate, finetune, from_pretrained, FinetuneOptions,
};
use crate::train::run_dir::{RunDir, RunMode};

/// The paper's claims in miniature, over seeds: `pretrain-vs-scratch` (tokenizer -> pretrain -> fine-tune, against
/// the same fine-tuning from scratch), `paper` (also pixel regression and random masking as pretraining, every
/// encoder scored by fine-tuning and by a linear probe) or `segment-pretrained-vs-scratch`. On the built-in data
/// models are evaluated on the official Fashion-MNIST test split when installed (apt-get install
/// dataset-fashion-mnist), on the validation split otherwise; on your own labelled data, on its validation part
/// (--val-data, or every 10th image of each class). Writes OUT/results.md and OUT/results.png.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// `pretrain-vs-scratch` (classification, top-1), `paper` (the paper's comparisons: BEiT against pixel
    /// regression, random masking and no pretraining, each by fine-tuning and by a linear probe) or
    /// `segment-pretrained-vs-scratch` (segmentation, mIoU on the built-in segmentation set or an ADE20K-layout
    /// --data folder).
    pub which: String,
    #[command(flatten)]
    pub data: TrainValData,
    #[arg(long, default_value = "micro")]
    pub preset: String,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 1000)]
    pub pretrain_steps: u32,
    /// Steps of the tokenizer trained first (default: as many as --pretrain-steps).
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub tokenizer_steps: Option<u32>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 600)]
    pub finetune_steps: u32,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 32)]
    pub batch: u32,
    /// Peak learning rate of pretraining (the mini preset learns fastest near 3e-3).
    #[arg(value_parser = crate::train::checks::parse::learning_rate, long, default_value_t = 1.5e-3)]
    pub pretrain_lr: f32,
    /// `paper`: training images the linear probe fits its head on (a seeded draw; default: all).
    #[arg(value_parser = crate::train::checks::parse::count, long)]
    pub probe_images: Option<u32>,
    /// blockwise (BEiT) or random masking (the paper's ablation).
    #[arg(long, default_value = "blockwise")]
    pub masking: String,
    /// What the MIM head learns: visual tokens (BEiT) or the normalised pixels of masked patches (the paper's ablation).
    #[arg(long, default_value = "tokens")]
    pub target: String,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run the whole experiment for this many seeds (--seed, --seed + 1, ...) and report mean ± standard
    /// deviation per arm, so a difference can be told from run-to-run noise.
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 1)]
    pub seeds: u32,
    /// Segmentation: the head, `linear` or `pyramid`.
    #[arg(long, default_value = "linear")]
    pub head: String,
    /// Segmentation: the model's input side (default: twice the preset's; position tables are interpolated).
    #[arg(long)]
    pub image_size: Option<u32>,
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the experiment already in --out (without it, a folder holding one is refused).
    #[arg(long)]
    pub overwrite: bool,
}

/// The evaluation set of the experiment: the official test split when installed, the validation split otherwise.
fn builtin_eval_set(channels: u32) -> Result<crate::data::dataset::Dataset, String> {
    let sys = std::path::Path::new("/usr/share/datasets/fashion-mnist");
    if sys.is_dir() {
        if let Ok(mut d) = crate::data::dataset::Dataset::folder(sys, channels, true) {
            d.class_names = crate::data::dataset::FASHION_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect();
            d.source = format!("the official Fashion-MNIST test split ({})", sys.display());
            return Ok(d);
        }
    }
    let mut d = crate::data::dataset::Dataset::builtin(crate::data::dataset::Split::Val, channels)
        .map_err(|e| e.to_string())?;
    d.source = "the built-in validation split (the official test split is not installed)".into();
    Ok(d)
}

/// What every classification experiment checks and loads once, before anything trains: the preset, the
/// labelled training set, the evaluation set and the device.
pub(super) struct Setup {
    pub base: BeitConfig,
    pub train_set: crate::data::dataset::Dataset,
    pub eval_set: crate::data::dataset::Dataset,
    pub ctx: crate::gpu::GpuContext,
}

/// Take the experiment folder, load and check the data and open the device (the settings are clap's); the
/// folder is cleared only when all of it succeeded.
pub(super) fn setup(args: &ExperimentArgs) -> Result<Setup, String> {
    let run_dir = RunDir::acquire(&args.out, RunMode::of(false, args.overwrite))?;
    let base = BeitConfig::preset(&args.preset).map_err(|e| e.to_string())?;
    let (train_set, val_set) = args
        .data
        .load(Decode::for_model(base.num_channels, base.image_size))?;
    super::common::require_classes(&train_set, "the experiment fine-tunes on")?;
    let eval_set = if args.data.data == "builtin" && args.data.val_data.is_none() {
        builtin_eval_set(base.num_channels)?
    } else {
        val_set
    };
    let ctx = device(&model_requirements(
        &classification_config(&base, &train_set.class_names, 0.1),
        args.batch,
    ))?;
    run_dir.clear_for_new_run()?;
    Ok(Setup {
        base,
        train_set,
        eval_set,
        ctx,
    })
}

/// One arm of one seed: its top-1, final training loss and fine-tuning curve (step, loss, accuracy).
pub(super) struct Arm {
    pub name: &'static str,
    pub top1: f64,
    pub loss: f32,
    pub curve: Vec<(f64, f64, f64)>,
}

/// One seed's results.
struct SeedResult {
    arms: Vec<Arm>,
    pretrain_seconds: f64,
}

/// Whether a difference of means `diff` exceeds `spread` (the two arms' standard deviations added), as the
/// experiments' reports word it.
pub(super) fn verdict(diff: f64, spread: f64, seeds: usize) -> &'static str {
    if seeds < 2 {
        "one seed cannot tell (use --seeds 3 or more)"
    } else if diff.abs() > spread {
        "exceeds the seed spread"
    } else {
        "within the seed spread"
    }
}

/// Mean and sample standard deviation (0 for one value).
pub(super) fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Run `beitlab experiment`.
pub fn run(args: &ExperimentArgs) -> Result<(), String> {
    let ExperimentArgs {
        ref which,
        ref preset,
        pretrain_steps,
        finetune_steps,
        batch,
        ref masking,
        ref target,
        seed,
        seeds,
        ref out,
        ..
    } = *args;
    match which.as_str() {
        "segment-pretrained-vs-scratch" => return super::experiment_segment::run(args),
        "paper" => return super::experiment_paper::run(args),
        "pretrain-vs-scratch" => {}
        _ => {
            return Err(format!(
                "unknown experiment \"{which}\"; there are: pretrain-vs-scratch, paper, segment-pretrained-vs-scratch"
            ))
        }
    }
    let Setup {
        base,
        train_set,
        eval_set,
        ctx,
    } = setup(args)?;
    let t0 = std::time::Instant::now();
    let mut results = Vec::new();
    for s in seed..seed + seeds as u64 {
        // One seed keeps the plain layout (OUT/pretrain, OUT/finetune, OUT/scratch); several get OUT/seed-S/.
        let dir = if seeds == 1 {
            out.clone()
        } else {
            out.join(format!("seed-{s}"))
        };
        if seeds > 1 {
            println!("== seed {s} ({} of {seeds}) ==", s - seed + 1);
        }
        results.push(run_seed(args, s, &dir, &ctx, &train_set, &eval_set)?);
    }
    let (eval_name, eval_len, train_source, adapter) = (
        &eval_set.source,
        eval_set.len(),
        &train_set.source,
        ctx.describe(),
    );

    // The k-nearest-neighbour baseline on the same evaluation images, at the model's input size.
    let tk = std::time::Instant::now();
    let knn =
        crate::train::knn::knn_top1(&train_set, &eval_set, base.image_size, base.num_channels, 5);
    if let Some(k) = knn {
        println!(
            "5-nearest-neighbour baseline on pixels: top-1 {:.2}% ({:.0} s)",
            100.0 * k,
            tk.elapsed().as_secs_f64()
        );
    }

    let names: Vec<&str> = results[0].arms.iter().map(|a| a.name).collect();
    let per_arm = |i: usize| -> Vec<f64> { results.iter().map(|r| r.arms[i].top1).collect() };
    let pre_secs = results.iter().map(|r| r.pretrain_seconds).sum::<f64>() / results.len() as f64;
    let mut md = format!(
        "# BEiT pretraining vs training from scratch ({preset} preset, {train_source})\n\n\
         Pretraining: {pretrain_steps} steps of {batch} images, {masking} masking, {target} as the target ({pre_secs:.0} s per seed, tokenizer training included when there is one). \
         Fine-tuning: {finetune_steps} steps of {batch} images for both rows. Seeds: {seed}..{} ({seeds}); each seed draws its own tokenizer, initialisation, data order and masks. \
         Evaluated on {eval_name} ({eval_len} images). Adapter: {adapter}.\n\n\
         | model | top-1, mean ± std over {seeds} seed{} | per seed | final training loss (mean) |\n|---|---|---|---|\n",
        seed + seeds as u64 - 1,
        if seeds == 1 { "" } else { "s" },
    );
    let mut stats = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let v = per_arm(i);
        let (m, sd) = mean_std(&v);
        stats.push((m, sd));
        let loss =
            results.iter().map(|r| r.arms[i].loss as f64).sum::<f64>() / results.len() as f64;
        let each: Vec<String> = v.iter().map(|x| format!("{:.2}", 100.0 * x)).collect();
        md.push_str(&format!(
            "| {name} | {:.2}% ± {:.2} | {} | {loss:.4} |\n",
            100.0 * m,
            100.0 * sd,
            each.join(", ")
        ));
    }
    if let Some(k) = knn {
        md.push_str(&format!(
            "| 5-nearest-neighbour on pixels (no training) | {:.2}% | | |\n",
            100.0 * k
        ));
    }
    let diff = stats[0].0 - stats[1].0;
    let spread = stats[0].1 + stats[1].1;
    md.push_str(&format!(
        "\nPretrained minus scratch: {:+.2} points; the two seed spreads (one standard deviation each) add up to {:.2}: {}.\n",
        100.0 * diff,
        100.0 * spread,
        verdict(diff, spread, seeds as usize)
    ));
    md.push_str(&format!("\nTotal time: {:.0} s. Command: `beitlab experiment pretrain-vs-scratch --data {}{} --preset {preset} --pretrain-steps {pretrain_steps}{} --finetune-steps {finetune_steps} --batch {batch} --masking {masking} --target {target} --seed {seed} --seeds {seeds} --out {}`\n", t0.elapsed().as_secs_f64(), args.data.data, args.data.val_data.as_ref().map(|v| format!(" --val-data {v}")).unwrap_or_default(), args.tokenizer_steps.map(|n| format!(" --tokenizer-steps {n}")).unwrap_or_default(), out.display()));
    write_plots(out, &results, &names, knn, seed)?;
    md.push_str("\n![top-1 per seed and fine-tuning curves](results.png)\n");
    crate::tensorfile::write_atomic(&out.join("results.md"), md.as_bytes())
        .map_err(|e| e.to_string())?;
    println!("\n{md}");
    Ok(())
}

/// results.png: top-1 of each arm per seed (and the k-NN line), and the first seed's fine-tuning curves.
fn write_plots(
    out: &std::path::Path,
    results: &[SeedResult],
    names: &[&str],
    knn: Option<f64>,
    first_seed: u64,
) -> Result<(), String> {
    use crate::train::plot::{smooth, write_png, Panel, Series};
    let colors = [[30, 90, 200], [200, 80, 30], [40, 150, 60]];
    let mut per_seed: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let pts = results
                .iter()
                .enumerate()
                .map(|(s, r)| ((first_seed + s as u64) as f64, 100.0 * r.arms[i].top1))
                .collect();
            (*name, pts, colors[i % 3])
        })
        .collect();
    if let Some(k) = knn {
        per_seed.push(knn_line(k, first_seed, results.len(), colors[2]));
    }
    let first = &results[0];
    let curve = |pick: fn(&(f64, f64, f64)) -> f64| -> Vec<Series> {
        first
            .arms
            .iter()
            .zip(colors)
            .map(|(arm, color)| {
                let pts: Vec<(f64, f64)> = arm.curve.iter().map(|p| (p.0, pick(p))).collect();
                (arm.name, smooth(&pts, (pts.len() / 50).max(1)), color)
            })
            .collect()
    };
    write_png(
        &out.join("results.png"),
        &[
            Panel {
                title: "top-1 % per seed",
                x_axis: "seed",
                series: per_seed,
            },
            Panel {
                title: "fine-tuning loss (first seed)",
                x_axis: "step",
                series: curve(|p| p.1),
            },
            Panel {
                title: "fine-tuning train accuracy (first seed)",
                x_axis: "step",
                series: curve(|p| p.2),
            },
        ],
    )
}

/// The k-NN baseline (a fraction) as a flat line in percent across a per-seed panel whose seeds are
/// `first_seed`..`first_seed + seeds - 1` (at least one seed wide, so that one seed still draws a line).
pub(super) fn knn_line(
    knn: f64,
    first_seed: u64,
    seeds: usize,
    color: [u8; 3],
) -> crate::train::plot::Series<'static> {
    let (first, last) = (
        first_seed as f64,
        (first_seed + seeds.max(2) as u64 - 1) as f64,
    );
    (
        "k-NN on pixels",
        vec![(first, 100.0 * knn), (last, 100.0 * knn)],
        color,
    )
}

/// Pretrain one arm into `dir` (`masking`, `target`; a tokenizer is trained first unless `tokenizer` names one)
/// and return its seconds.
pub(super) fn pretrain_arm(
    args: &ExperimentArgs,
    seed: u64,
    dir: &std::path::Path,
    masking: &str,
    target: &str,
    tokenizer: Option<PathBuf>,
) -> Result<f64, String> {
    let t0 = std::time::Instant::now();
    super::pretrain::run(&PretrainArgs {
        data: args.data.data.clone(),
        preset: args.preset.clone(),
        tokenizer,
        init: None,
        tokenizer_steps: args.tokenizer_steps,
        steps: args.pretrain_steps,
        epochs: None,
        batch: args.batch,
        lr: args.pretrain_lr,
        seed,
        masking: masking.to_string(),
        mask_ratio: None,
        record: None,
        record_every: None,
        target: target.to_string(),
        checkpoint_every: None,
        json: false,
        resume: None,
        out: Some(dir.to_path_buf()),
        overwrite: false,
        precision: crate::train::precision::Precision::F32,
    })?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Fine-tune `model` (already shaped as the classifier) for `--finetune-steps` into `dir/checkpoint` and score it
/// on the evaluation set.
#[allow(clippy::too_many_arguments)]
pub(super) fn finetune_arm(
    args: &ExperimentArgs,
    seed: u64,
    ctx: &crate::gpu::GpuContext,
    name: &'static str,
    model: &BeitModel,
    dir: &std::path::Path,
    train_set: &crate::data::dataset::Dataset,
    eval_set: &crate::data::dataset::Dataset,
) -> Result<Arm, String> {
    let steps = args.finetune_steps;
    let mut augment = Augment::beit(model.cfg.image_size, model.cfg.num_channels);
    augment.scale = (0.8, 1.0);
    let opts = FinetuneOptions {
        steps,
        batch: args.batch,
        lr: 3e-3,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        layer_decay: 0.65,
        label_smoothing: 0.1,
        clip: None,
        seed,
        augment,
        out: Some(dir.join("checkpoint")),
        checkpoint_every: 0,
        resume: None,
        stop_after: None,
        mixed: None,
    };
    let t = std::time::Instant::now();
    let mut last = None;
    let mut curve = Vec::new();
    finetune(ctx, model, train_set, &opts, |m| {
        curve.push((m.step as f64, m.loss as f64, m.accuracy as f64));
        last = Some(m)
    })
    .map_err(|e| e.to_string())?;
    let (top1, _) = evaluate(ctx, model, eval_set, 64).map_err(|e| e.to_string())?;
    println!(
        "{name}: fine-tuned {steps} steps in {:.0} s, top-1 {:.2}% on {}",
        t.elapsed().as_secs_f64(),
        100.0 * top1,
        eval_set.source
    );
    Ok(Arm {
        name,
        top1,
        loss: last.map_or(f32::NAN, |m| m.loss),
        curve,
    })
}

/// Tokenizer -> pretraining -> fine-tuning and the same fine-tuning from scratch, for one seed, in `dir`.
fn run_seed(
    args: &ExperimentArgs,
    seed: u64,
    dir: &std::path::Path,
    ctx: &crate::gpu::GpuContext,
    train_set: &crate::data::dataset::Dataset,
    eval_set: &crate::data::dataset::Dataset,
) -> Result<SeedResult, String> {
    let pre_dir = dir.join("pretrain");
    let pretrain_seconds = pretrain_arm(args, seed, &pre_dir, &args.masking, &args.target, None)?;
    let ck = crate::model::checkpoint::read_folder(&pre_dir.join("checkpoint"))
        .map_err(|e| e.to_string())?;
    let cfg = classification_config(&ck.config, &train_set.class_names, 0.1);
    let pre = BeitModel::load(ctx, &pre_dir.join("checkpoint"), None).map_err(|e| e.to_string())?;
    let arms = vec![
        finetune_arm(
            args,
            seed,
            ctx,
            "BEiT pretrained",
            &from_pretrained(ctx, &pre, &cfg, seed).map_err(|e| e.to_string())?,
            &dir.join("finetune"),
            train_set,
            eval_set,
        )?,
        finetune_arm(
            args,
            seed,
            ctx,
            "from scratch",
            &BeitModel::new_random(ctx, &cfg, seed).map_err(|e| e.to_string())?,
            &dir.join("scratch"),
            train_set,
            eval_set,
        )?,
    ];
    Ok(SeedResult {
        arms,
        pretrain_seconds,
    })
}
