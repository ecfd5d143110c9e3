//! `beitlab experiment pretrain-vs-scratch`: the paper's claim in miniature: tokenizer -> BEiT pretraining ->
//! fine-tuning, against the same fine-tuning from a random initialisation, on the built-in data or your own.

use std::path::PathBuf;

use clap::Args;

use super::common::{device, model_requirements, TrainValData};
use super::pretrain::PretrainArgs;
use crate::data::augment::Augment;
use crate::data::dataset::Decode;
use crate::model::BeitModel;
use crate::train::finetune::{
    classification_config, evaluate, finetune, from_pretrained, FinetuneOptions,
};
use crate::train::run_dir::{RunDir, RunMode};

/// The paper's claim in miniature: tokenizer -> pretrain -> fine-tune, against the same fine-tuning from
/// scratch. On the built-in data both are evaluated on the official Fashion-MNIST test split when installed
/// (apt-get install dataset-fashion-mnist), on the validation split otherwise; on your own labelled data, on its
/// validation part (--val-data, or every 10th image of each class). Writes OUT/results.md.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// Only `pretrain-vs-scratch` exists.
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
    /// blockwise (BEiT) or random masking (the paper's ablation).
    #[arg(long, default_value = "blockwise")]
    pub masking: String,
    /// What the MIM head learns: visual tokens (BEiT) or the normalised pixels of masked patches (the paper's ablation).
    #[arg(long, default_value = "tokens")]
    pub target: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
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
        ref out,
        ..
    } = *args;
    if which != "pretrain-vs-scratch" {
        return Err(format!(
            "unknown experiment \"{which}\"; the one there is: pretrain-vs-scratch"
        ));
    }
    let run_dir = RunDir::acquire(
        out,
        RunMode::New {
            overwrite: args.overwrite,
        },
    )?;
    // The settings are checked by clap; the data and device by the pretraining below, which writes first.
    run_dir.clear_for_new_run()?;
    let t0 = std::time::Instant::now();
    let pre_dir = out.join("pretrain");
    super::pretrain::run(&PretrainArgs {
        data: args.data.data.clone(),
        preset: preset.clone(),
        tokenizer: None,
        tokenizer_steps: args.tokenizer_steps,
        steps: pretrain_steps,
        epochs: None,
        batch,
        lr: 1.5e-3,
        seed,
        masking: masking.clone(),
        mask_ratio: None,
        target: target.clone(),
        checkpoint_every: None,
        json: false,
        resume: None,
        out: Some(pre_dir.clone()),
        overwrite: false,
    })?;
    let pre_secs = t0.elapsed().as_secs_f64();
    let ck = crate::model::checkpoint::read_folder(&pre_dir.join("checkpoint"))
        .map_err(|e| e.to_string())?;
    let (train_set, val_set) = args.data.load(Decode::for_model(
        ck.config.num_channels,
        ck.config.image_size,
    ))?;
    super::common::require_classes(&train_set, "the experiment fine-tunes on")?;
    let eval_set = if args.data.data == "builtin" && args.data.val_data.is_none() {
        builtin_eval_set(ck.config.num_channels)?
    } else {
        val_set
    };
    let cfg = classification_config(&ck.config, &train_set.class_names, 0.1);
    let ctx = device(&model_requirements(&cfg, batch))?;
    let pre =
        BeitModel::load(&ctx, &pre_dir.join("checkpoint"), None).map_err(|e| e.to_string())?;
    let mut augment = Augment::beit(cfg.image_size, cfg.num_channels);
    augment.scale = (0.8, 1.0);
    let opts = |dir: &str| FinetuneOptions {
        steps: finetune_steps,
        batch,
        lr: 3e-3,
        warmup: (finetune_steps / 10).max(1),
        weight_decay: 0.05,
        layer_decay: 0.65,
        label_smoothing: 0.1,
        clip: None,
        seed,
        augment: augment.clone(),
        out: Some(out.join(dir).join("checkpoint")),
        checkpoint_every: 0,
        resume: None,
        stop_after: None,
    };
    let mut rows = Vec::new();
    // (model, [(step, loss, accuracy)])
    type Curve<'a> = (&'a str, Vec<(f64, f64, f64)>);
    let mut curves: Vec<Curve> = Vec::new();
    for (name, model) in [
        (
            "BEiT pretrained",
            from_pretrained(&ctx, &pre, &cfg, seed).map_err(|e| e.to_string())?,
        ),
        (
            "from scratch",
            BeitModel::new_random(&ctx, &cfg, seed).map_err(|e| e.to_string())?,
        ),
    ] {
        let dir = if name == "from scratch" {
            "scratch"
        } else {
            "finetune"
        };
        let t = std::time::Instant::now();
        let mut last = None;
        let mut curve = Vec::new();
        finetune(&ctx, &model, &train_set, &opts(dir), |m| {
            curve.push((m.step as f64, m.loss as f64, m.accuracy as f64));
            last = Some(m)
        })
        .map_err(|e| e.to_string())?;
        curves.push((name, curve));
        let (top1, _) = evaluate(&ctx, &model, &eval_set, 64).map_err(|e| e.to_string())?;
        println!(
            "{name}: fine-tuned {finetune_steps} steps in {:.0} s, top-1 {:.2}% on {}",
            t.elapsed().as_secs_f64(),
            100.0 * top1,
            eval_set.source
        );
        rows.push((name, top1, last.map_or(f32::NAN, |m| m.loss)));
    }
    let mut md = format!(
        "# BEiT pretraining vs training from scratch ({preset} preset, {})\n\n\
         Pretraining: {pretrain_steps} steps of {batch} images, {masking} masking, {target} as the target ({pre_secs:.0} s, tokenizer training included when there is one). \
         Fine-tuning: {finetune_steps} steps of {batch} images for both rows. Evaluated on {} ({} images). Adapter: {}.\n\n\
         | model | top-1 | final training loss |\n|---|---|---|\n",
        train_set.source,
        eval_set.source,
        eval_set.len(),
        ctx.describe()
    );
    for (name, top1, loss) in &rows {
        md.push_str(&format!("| {name} | {:.2}% | {loss:.4} |\n", 100.0 * top1));
    }
    md.push_str(&format!("\nTotal time: {:.0} s. Command: `beitlab experiment pretrain-vs-scratch --data {}{} --preset {preset} --pretrain-steps {pretrain_steps}{} --finetune-steps {finetune_steps} --batch {batch} --masking {masking} --target {target} --seed {seed} --out {}`\n", t0.elapsed().as_secs_f64(), args.data.data, args.data.val_data.as_ref().map(|v| format!(" --val-data {v}")).unwrap_or_default(), args.tokenizer_steps.map(|n| format!(" --tokenizer-steps {n}")).unwrap_or_default(), out.display()));
    {
        use crate::train::plot::{smooth, write_png};
        let colors = [[30, 90, 200], [200, 80, 30]];
        let series = |pick: fn(&(f64, f64, f64)) -> f64| -> Vec<crate::train::plot::Series<'_>> {
            curves
                .iter()
                .zip(colors)
                .map(|((name, c), color)| {
                    let pts: Vec<(f64, f64)> = c.iter().map(|p| (p.0, pick(p))).collect();
                    (*name, smooth(&pts, (pts.len() / 50).max(1)), color)
                })
                .collect()
        };
        write_png(
            &out.join("results.png"),
            &[
                ("fine-tuning loss", series(|p| p.1)),
                ("fine-tuning train accuracy", series(|p| p.2)),
            ],
        )?;
    }
    md.push_str("\n![fine-tuning curves](results.png)\n");
    crate::tensorfile::write_atomic(&out.join("results.md"), md.as_bytes())
        .map_err(|e| e.to_string())?;
    println!("\n{md}");
    Ok(())
}
