//! `beitlab linprobe`: the encoder frozen, a softmax-regression head on one block's pooled patch tokens.

use std::path::PathBuf;

use clap::Args;

use crate::data::dataset::Decode;

use super::common::{device, model_folder, model_requirements, TrainValData};
use crate::train::linprobe::{extract_features, train_linear};

/// Linear probe: the encoder frozen, a softmax-regression head on the average-pooled patch tokens of one block
/// (BEiT-base's best is block 9 of 12); reports validation top-1.
#[derive(Args, Debug)]
pub struct LinprobeArgs {
    /// A pretraining run folder (its checkpoint/) or a model folder.
    #[arg(long)]
    pub init: PathBuf,
    #[command(flatten)]
    pub data: TrainValData,
    /// Block whose output is pooled (1..=L; default: the last).
    #[arg(long)]
    pub layer: Option<u32>,
    #[arg(value_parser = crate::train::checks::parse::count, long, default_value_t = 50)]
    pub epochs: u32,
    #[arg(value_parser = crate::train::checks::parse::learning_rate, long, default_value_t = 1e-2)]
    pub lr: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

/// Run `beitlab linprobe`.
pub fn run(args: &LinprobeArgs) -> Result<(), String> {
    let folder = model_folder(&args.init);
    let ck = crate::model::checkpoint::read_folder(&folder).map_err(|e| e.to_string())?;
    let (train_set, val_set) = args.data.load(Decode::for_model(
        ck.config.num_channels,
        ck.config.image_size,
    ))?;
    super::common::require_classes(&train_set, "a linear probe needs")?;
    let (ytr, yva) = match (&train_set.labels, &val_set.labels) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => {
            return Err(format!(
                "{} has no labels: a linear probe needs one sub-folder per class (FOLDER/CLASS/IMAGE.png) or IDX images with their labels file",
                train_set.source
            ))
        }
    };
    let ctx = device(&model_requirements(&ck.config, 64))?;
    let model = crate::model::BeitModel::load(&ctx, &folder, None).map_err(|e| e.to_string())?;
    let layer = args.layer.unwrap_or(model.cfg.num_hidden_layers);
    if layer == 0 || layer > model.cfg.num_hidden_layers {
        return Err(format!(
            "--layer {layer} is outside 1..={} (the model's blocks)",
            model.cfg.num_hidden_layers
        ));
    }
    let t0 = std::time::Instant::now();
    let ftr = extract_features(&ctx, &model, &train_set, layer, 64).map_err(|e| e.to_string())?;
    let fva = extract_features(&ctx, &model, &val_set, layer, 64).map_err(|e| e.to_string())?;
    let classes = train_set
        .class_names
        .len()
        .max(1 + *ytr.iter().max().unwrap_or(&0) as usize);
    let head = train_linear(&ftr, &ytr, classes, args.epochs, args.lr, args.seed);
    let (train_acc, val_acc) = (head.accuracy(&ftr, &ytr), head.accuracy(&fva, &yva));
    if args.json {
        println!(
            "{}",
            serde_json::json!({"layer": layer, "train_top1": train_acc, "top1": val_acc, "images": val_set.len()})
        );
    } else {
        println!("linear probe on block {layer} of {}: train top-1 {:.2}%, validation top-1 {:.2}% ({} images, {:.0} s)", folder.display(), 100.0 * train_acc, 100.0 * val_acc, val_set.len(), t0.elapsed().as_secs_f64());
    }
    Ok(())
}
