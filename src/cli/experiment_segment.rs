//! `beitlab experiment segment-pretrained-vs-scratch`: the paper's segmentation claim in miniature: tokenizer ->
//! BEiT pretraining on the images -> segmentation fine-tuning, against the same segmentation fine-tuning from a
//! random initialisation, scored by mIoU on the validation part. Writes OUT/results.md.

use std::path::Path;

use super::common::device;
use super::experiment::{mean_std, verdict, ExperimentArgs};
use super::pretrain::PretrainArgs;
use super::segment::{load_seg_data, parse_head, starting_model};
use crate::data::augment::Augment;
use crate::train::run_dir::{RunDir, RunMode};
use crate::train::segment::{
    evaluate_segmentation, segment, segmentation_config, SegScores, SegmentOptions,
};

/// Run the experiment: for each seed, pretrain on the segmentation set's images (built-in: the built-in
/// classification images the canvases are made of), then fine-tune both arms for the same steps.
pub fn run(args: &ExperimentArgs) -> Result<(), String> {
    let out = &args.out;
    let run_dir = RunDir::acquire(out, RunMode::of(false, args.overwrite))?;
    let head = parse_head(&args.head)?;
    let base = super::segment::sized_preset(&args.preset, None, None)?;
    let size = args.image_size.unwrap_or(2 * base.image_size);
    // `builtin` names the built-in segmentation set here; pretraining sees the images it is made of.
    let data = match args.data.data.as_str() {
        "builtin" | "builtin-seg" => "builtin-seg",
        other => other,
    };
    let (train_set, val_set) =
        load_seg_data(data, args.data.val_data.as_deref(), base.num_channels, size)?;
    let pretrain_data = if data == "builtin-seg" {
        "builtin".to_string()
    } else {
        Path::new(data)
            .join("images")
            .join("training")
            .display()
            .to_string()
    };
    let mut sized = base.clone();
    sized.image_size = size;
    let ctx = device(&super::common::model_requirements(
        &segmentation_config(&sized, &train_set.class_names, head, 0.1),
        args.batch,
    ))?;
    run_dir.clear_for_new_run()?;
    let t0 = std::time::Instant::now();
    let mut rows: Vec<[SegScores; 2]> = Vec::new();
    for seed in args.seed..args.seed + args.seeds as u64 {
        let dir = if args.seeds == 1 {
            out.clone()
        } else {
            out.join(format!("seed-{seed}"))
        };
        let pre_dir = dir.join("pretrain");
        super::pretrain::run(&PretrainArgs {
            data: pretrain_data.clone(),
            preset: args.preset.clone(),
            tokenizer: None,
            init: None,
            tokenizer_steps: args.tokenizer_steps,
            steps: args.pretrain_steps,
            epochs: None,
            batch: args.batch,
            lr: 1.5e-3,
            seed,
            masking: args.masking.clone(),
            mask_ratio: None,
            record: None,
            record_every: None,
            target: args.target.clone(),
            checkpoint_every: None,
            json: false,
            resume: None,
            out: Some(pre_dir.clone()),
            overwrite: false,
            precision: crate::train::precision::Precision::F32,
        })?;
        let mut pair = Vec::new();
        for (arm, init) in [("segment", Some(pre_dir.as_path())), ("scratch", None)] {
            let model = starting_model(
                &ctx,
                init,
                &args.preset,
                Some(size),
                None,
                &train_set.class_names,
                head,
                0.1,
                seed,
            )?;
            let mut augment = Augment::beit(size, model.cfg.num_channels);
            augment.scale = (0.5, 1.0);
            let opts = SegmentOptions {
                steps: args.finetune_steps,
                batch: args.batch,
                lr: 2e-3,
                warmup: (args.finetune_steps / 10).max(1),
                weight_decay: 0.05,
                layer_decay: 0.65,
                seed,
                augment,
                out: Some(dir.join(arm).join("checkpoint")),
                checkpoint_every: 0,
                resume: None,
            };
            let t = std::time::Instant::now();
            segment(&ctx, &model, &train_set, &opts, |_| {}).map_err(|e| e.to_string())?;
            let s = evaluate_segmentation(&ctx, &model, &val_set, args.batch)
                .map_err(|e| e.to_string())?;
            println!(
                "{}: {} steps in {:.0} s, mIoU {:.2}%, pixel accuracy {:.2}%",
                if init.is_some() {
                    "BEiT pretrained"
                } else {
                    "from scratch"
                },
                args.finetune_steps,
                t.elapsed().as_secs_f64(),
                100.0 * s.miou,
                100.0 * s.pixel_accuracy
            );
            pair.push(s);
        }
        let scratch = pair.pop().ok_or("no scratch result")?;
        let pre = pair.pop().ok_or("no pretrained result")?;
        rows.push([pre, scratch]);
    }
    let names = segmentation_config(&sized, &train_set.class_names, head, 0.1).class_names();
    let md = report(
        args,
        &rows,
        &names,
        &val_set.source,
        val_set.len(),
        size,
        &ctx.describe(),
        t0.elapsed().as_secs_f64(),
    );
    crate::tensorfile::write_atomic(&out.join("results.md"), md.as_bytes())
        .map_err(|e| e.to_string())?;
    println!("\n{md}");
    Ok(())
}

/// results.md: mIoU and pixel accuracy per arm (mean ± std over seeds), per-class IoU of the first seed.
#[allow(clippy::too_many_arguments)]
fn report(
    args: &ExperimentArgs,
    rows: &[[SegScores; 2]],
    names: &[String],
    source: &str,
    images: usize,
    size: u32,
    adapter: &str,
    seconds: f64,
) -> String {
    let arms = ["BEiT pretrained", "from scratch"];
    let mut md = format!(
        "# Segmentation: BEiT pretraining vs training from scratch ({} preset at {size} px, {} head)\n\n\
         Pretraining: {} steps of {} images, {} masking. Segmentation fine-tuning: {} steps of {} images for both rows. \
         Seeds: {}..{}. Evaluated on {source} ({images} images). Adapter: {adapter}.\n\n\
         | model | mIoU, mean ± std | pixel accuracy | per seed mIoU |\n|---|---|---|---|\n",
        args.preset,
        args.head,
        args.pretrain_steps,
        args.batch,
        args.masking,
        args.finetune_steps,
        args.batch,
        args.seed,
        args.seed + args.seeds as u64 - 1,
    );
    for (i, arm) in arms.iter().enumerate() {
        let miou: Vec<f64> = rows.iter().map(|r| r[i].miou).collect();
        let acc: Vec<f64> = rows.iter().map(|r| r[i].pixel_accuracy).collect();
        let ((m, sd), (a, _)) = (mean_std(&miou), mean_std(&acc));
        let each: Vec<String> = miou.iter().map(|x| format!("{:.2}", 100.0 * x)).collect();
        md.push_str(&format!(
            "| {arm} | {:.2}% ± {:.2} | {:.2}% | {} |\n",
            100.0 * m,
            100.0 * sd,
            100.0 * a,
            each.join(", ")
        ));
    }
    let stats: Vec<(f64, f64)> = (0..2)
        .map(|i| mean_std(&rows.iter().map(|r| r[i].miou).collect::<Vec<_>>()))
        .collect();
    let (diff, spread) = (stats[0].0 - stats[1].0, stats[0].1 + stats[1].1);
    md.push_str(&format!(
        "\nPretrained minus scratch: {:+.2} mIoU points; the two seed spreads (one standard deviation each) add up to {:.2}: {}.\n",
        100.0 * diff,
        100.0 * spread,
        verdict(diff, spread, rows.len())
    ));
    md.push_str("\nPer-class IoU (first seed):\n\n| class | BEiT pretrained | from scratch |\n|---|---|---|\n");
    let cell = |v: Option<f64>| v.map_or("absent".to_string(), |x| format!("{:.2}%", 100.0 * x));
    for (c, name) in names.iter().enumerate() {
        md.push_str(&format!(
            "| {name} | {} | {} |\n",
            cell(rows[0][0].iou.get(c).copied().flatten()),
            cell(rows[0][1].iou.get(c).copied().flatten())
        ));
    }
    md.push_str(&format!(
        "\nTotal time: {seconds:.0} s. Command: `beitlab experiment segment-pretrained-vs-scratch --data {} --preset {} --head {} --image-size {size} --pretrain-steps {} --finetune-steps {} --batch {} --seed {} --seeds {} --out {}`\n",
        match args.data.data.as_str() {
            "builtin" => "builtin-seg",
            other => other,
        },
        args.preset,
        args.head,
        args.pretrain_steps,
        args.finetune_steps,
        args.batch,
        args.seed,
        args.seeds,
        args.out.display()
    ));
    md
}
