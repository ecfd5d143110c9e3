//! `beitlab eval`: top-1 accuracy, per-class accuracy by name and the confusion matrix of a classification
//! model on labelled data (the built-in validation split, a class-per-folder image folder, or IDX files).

use std::path::PathBuf;

use clap::Args;

use super::common::{device, model_folder, model_requirements};
use crate::data::dataset::Dataset;
use crate::model::{BeitConfig, BeitModel};

/// Top-1 accuracy, per-class accuracy and confusion matrix of a classification model folder on labelled data.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A classification model folder, or a fine-tuning run folder (its checkpoint/).
    #[arg(long)]
    pub model: PathBuf,
    /// `builtin` (the built-in validation split), a folder with one sub-folder per class, or an IDX images file.
    #[arg(long, default_value = "builtin")]
    pub data: String,
    #[arg(long)]
    pub json: bool,
}

/// Run `beitlab eval`.
pub fn run(args: &EvalArgs) -> Result<(), String> {
    let folder = model_folder(&args.model);
    let ck = crate::model::checkpoint::read_folder(&folder).map_err(|e| e.to_string())?;
    if ck.config.architecture() == crate::model::Architecture::SemanticSegmentation {
        return run_segmentation(args, &folder, &ck.config);
    }
    let spec = if args.data == "builtin" {
        "builtin:val"
    } else {
        args.data.as_str()
    };
    let ds = Dataset::open(
        spec,
        crate::data::dataset::Decode::for_model(ck.config.num_channels, ck.config.image_size),
    )
    .map_err(|e| e.to_string())?;
    if let Some(s) = ds.skipped_summary() {
        eprintln!("note: {}: {s}", ds.source);
    }
    if ds.labels.is_none() {
        return Err(format!(
            "{} has no labels: evaluation needs one sub-folder per class (FOLDER/CLASS/IMAGE.png) or IDX images with their labels file",
            ds.source
        ));
    }
    // The data's classes are matched to the model's by name (a folder may hold some of them, in any order).
    let classes = ck.config.class_names();
    let ds = ds.with_classes_of(&classes).map_err(|e| e.to_string())?;
    let ctx = device(&model_requirements(&ck.config, 64))?;
    let model = BeitModel::load(&ctx, &folder, None).map_err(|e| e.to_string())?;
    let (top1, confusion) =
        crate::train::finetune::evaluate(&ctx, &model, &ds, 64).map_err(|e| e.to_string())?;
    // Per class: (name, images, correct), for the classes the data holds.
    let per_class: Vec<(String, u32, u32)> = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| (classes[i].clone(), row.iter().sum::<u32>(), row[i]))
        .filter(|(_, n, _)| *n > 0)
        .collect();
    if args.json {
        let accuracy: serde_json::Map<String, serde_json::Value> = per_class
            .iter()
            .map(|(name, n, ok)| (name.clone(), serde_json::json!(*ok as f64 / *n as f64)))
            .collect();
        println!(
            "{}",
            serde_json::json!({"top1": top1, "images": ds.len(), "data": ds.source, "classes": classes, "per_class_accuracy": accuracy, "confusion": confusion})
        );
        return Ok(());
    }
    println!(
        "top-1 accuracy on {} ({} images): {:.2}%",
        ds.source,
        ds.len(),
        100.0 * top1
    );
    let width = classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("per class:");
    for (name, n, ok) in &per_class {
        println!(
            "  {name:>width$}  {:>6.2}%  ({ok} of {n})",
            100.0 * *ok as f64 / *n as f64
        );
    }
    println!("confusion matrix (rows: true class, columns: predicted, in the order above):");
    for (i, row) in confusion.iter().enumerate() {
        println!(
            "  {:>width$} {}",
            classes[i],
            row.iter().map(|v| format!("{v:>5}")).collect::<String>()
        );
    }
    Ok(())
}

/// `beitlab eval` of a segmentation model: pixel accuracy, mIoU and per-class IoU on the validation part of the
/// built-in segmentation set (`builtin`, `builtin-seg`) or of an ADE20K-layout folder.
fn run_segmentation(
    args: &EvalArgs,
    folder: &std::path::Path,
    cfg: &BeitConfig,
) -> Result<(), String> {
    use super::segment::{print_scores, scores_json, BUILTIN_CANVAS};
    let spec = if args.data == "builtin" {
        "builtin-seg"
    } else {
        args.data.as_str()
    };
    let decode = crate::data::dataset::Decode::for_model(cfg.num_channels, cfg.image_size);
    let ds = crate::data::segmentation::SegDataset::open(
        spec,
        crate::data::dataset::Split::Val,
        decode,
        BUILTIN_CANVAS,
    )
    .map_err(|e| e.to_string())?;
    if let Some(s) = ds.skipped_summary() {
        eprintln!("note: {}: {s}", ds.source);
    }
    if ds.is_empty() {
        return Err(format!(
            "{} has no validation image with a label map",
            ds.source
        ));
    }
    if ds.classes() > cfg.labels() {
        return Err(format!(
            "{} has {} classes but the model predicts {}",
            ds.source,
            ds.classes(),
            cfg.labels()
        ));
    }
    let ctx = device(&model_requirements(cfg, 16))?;
    let model = BeitModel::load(&ctx, folder, None).map_err(|e| e.to_string())?;
    let scores = crate::train::segment::evaluate_segmentation(&ctx, &model, &ds, 16)
        .map_err(|e| e.to_string())?;
    let names = cfg.class_names();
    if args.json {
        println!("{}", scores_json(&scores, &names, &ds.source, ds.len()));
    } else {
        print_scores(&scores, &names, &ds.source, ds.len());
    }
    Ok(())
}
