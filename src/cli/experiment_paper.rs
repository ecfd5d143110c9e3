//! `beitlab experiment paper`: the paper's comparisons in miniature, over seeds. Per seed, three pretrainings
//! (BEiT: visual tokens under blockwise masks; pixel regression under the same masks; visual tokens under random
//! masks, with BEiT's tokenizer) and a random initialisation; each encoder is scored by fine-tuning (top-1) and by
//! a linear probe on its last block. Mean ± standard deviation per arm, each comparison against the seed spread,
//! a k-nearest-neighbour baseline on pixels; OUT/results.md and OUT/results.png.

use std::path::Path;

use super::experiment::{
    finetune_arm, knn_line, mean_std, pretrain_arm, setup, verdict, ExperimentArgs, Setup,
};
use crate::data::dataset::Dataset;
use crate::gpu::GpuContext;
use crate::model::BeitModel;
use crate::train::finetune::{classification_config, from_pretrained};
use crate::train::linprobe::{extract_features, train_linear};

/// An encoder of the comparison: its name, folder under the seed's, and pretraining (masking, target), or
/// none for the random initialisation.
struct Encoder {
    name: &'static str,
    folder: &'static str,
    pretraining: Option<(&'static str, &'static str)>,
}

const ENCODERS: [Encoder; 4] = [
    Encoder {
        name: "BEiT (visual tokens, blockwise masks)",
        folder: "beit",
        pretraining: Some(("blockwise", "tokens")),
    },
    Encoder {
        name: "pixel regression (blockwise masks)",
        folder: "pixels",
        pretraining: Some(("blockwise", "pixels")),
    },
    Encoder {
        name: "random masks (visual tokens)",
        folder: "random-masks",
        pretraining: Some(("random", "tokens")),
    },
    Encoder {
        name: "no pretraining (random init)",
        folder: "scratch",
        pretraining: None,
    },
];

/// The comparisons reported, as (encoder, encoder) indices into [`ENCODERS`]: what each row isolates.
const COMPARISONS: [(&str, usize, usize); 3] = [
    ("BEiT pretraining vs none", 0, 3),
    ("visual tokens vs pixel regression", 0, 1),
    ("blockwise vs random masking", 0, 2),
];

/// One seed's scores per encoder: (fine-tune top-1, linear-probe top-1), and its fine-tuning curves.
struct SeedScores {
    finetune: [f64; 4],
    probe: [f64; 4],
    curves: Vec<super::experiment::Arm>,
}

/// Run `beitlab experiment paper`.
pub fn run(args: &ExperimentArgs) -> Result<(), String> {
    let Setup {
        base,
        train_set,
        eval_set,
        ctx,
    } = setup(args)?;
    let t0 = std::time::Instant::now();
    let probe_set = probe_subset(&train_set, args.probe_images, args.seed);
    let mut seeds = Vec::new();
    for s in args.seed..args.seed + args.seeds as u64 {
        let dir = if args.seeds == 1 {
            args.out.clone()
        } else {
            args.out.join(format!("seed-{s}"))
        };
        println!("== seed {s} ({} of {}) ==", s - args.seed + 1, args.seeds);
        seeds.push(run_seed(
            args, s, &dir, &ctx, &train_set, &probe_set, &eval_set,
        )?);
    }
    let knn =
        crate::train::knn::knn_top1(&train_set, &eval_set, base.image_size, base.num_channels, 5);
    let md = report(
        args, &seeds, knn, &train_set, &eval_set, &probe_set, &ctx, t0,
    );
    write_plot(&args.out, &seeds, knn, args.seed)?;
    crate::tensorfile::write_atomic(&args.out.join("results.md"), md.as_bytes())
        .map_err(|e| e.to_string())?;
    println!("\n{md}");
    Ok(())
}

/// The linear probe's training images: all, or a seeded draw of `count` of them (labels kept).
fn probe_subset(train: &Dataset, count: Option<u32>, seed: u64) -> Dataset {
    let n = train.len();
    let Some(count) = count.map(|c| c as usize).filter(|&c| c < n) else {
        return train.clone();
    };
    let mut rng = crate::rng::Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let mut picked = order[..count].to_vec();
    picked.sort_unstable();
    Dataset {
        images: picked.iter().map(|&i| train.images[i].clone()).collect(),
        labels: train
            .labels
            .as_ref()
            .map(|l| picked.iter().map(|&i| l[i]).collect()),
        class_names: train.class_names.clone(),
        source: format!("{count} images drawn from {}", train.source),
        ..Default::default()
    }
}

/// Linear-probe top-1 of `model`'s last block: features of the probe and evaluation images, a softmax-regression
/// head fitted on the first (50 epochs, lr 1e-2), scored on the second.
fn probe(
    ctx: &GpuContext,
    model: &BeitModel,
    probe_set: &Dataset,
    eval_set: &Dataset,
    seed: u64,
) -> Result<f64, String> {
    let (Some(ytr), Some(yev)) = (&probe_set.labels, &eval_set.labels) else {
        return Err("the linear probe needs labelled training and evaluation images".into());
    };
    let layer = model.cfg.num_hidden_layers;
    let ftr = extract_features(ctx, model, probe_set, layer, 64).map_err(|e| e.to_string())?;
    let fev = extract_features(ctx, model, eval_set, layer, 64).map_err(|e| e.to_string())?;
    let classes = probe_set
        .class_names
        .len()
        .max(1 + ytr.iter().copied().max().unwrap_or(0) as usize);
    let head = train_linear(&ftr, ytr, classes, 50, 1e-2, seed);
    Ok(head.accuracy(&fev, yev))
}

/// The four encoders of one seed in `dir`, each fine-tuned and probed.
fn run_seed(
    args: &ExperimentArgs,
    seed: u64,
    dir: &Path,
    ctx: &GpuContext,
    train_set: &Dataset,
    probe_set: &Dataset,
    eval_set: &Dataset,
) -> Result<SeedScores, String> {
    let beit_tokenizer = dir.join(ENCODERS[0].folder).join("tokenizer");
    let mut out = SeedScores {
        finetune: [0.0; 4],
        probe: [0.0; 4],
        curves: Vec::new(),
    };
    let mut mim_config = None;
    for (i, enc) in ENCODERS.iter().enumerate() {
        let pre_dir = dir.join(enc.folder);
        // The pretrained encoder (the random-mask arm reuses BEiT's tokenizer, so only the masks differ), or a
        // random one shaped like BEiT's.
        let encoder = match enc.pretraining {
            Some((masking, target)) => {
                let tokenizer = (i > 0 && target == "tokens").then(|| beit_tokenizer.clone());
                let secs = pretrain_arm(args, seed, &pre_dir, masking, target, tokenizer)?;
                println!("{}: pretrained in {secs:.0} s", enc.name);
                let model = BeitModel::load(ctx, &pre_dir.join("checkpoint"), None)
                    .map_err(|e| e.to_string())?;
                mim_config.get_or_insert_with(|| model.cfg.clone());
                model
            }
            None => {
                let cfg = mim_config
                    .clone()
                    .ok_or("the random encoder is shaped like a pretrained one")?;
                BeitModel::new_random(ctx, &cfg, seed).map_err(|e| e.to_string())?
            }
        };
        let top1 = probe(ctx, &encoder, probe_set, eval_set, seed)?;
        println!("{}: linear probe top-1 {:.2}%", enc.name, 100.0 * top1);
        out.probe[i] = top1;
        let cfg = classification_config(&encoder.cfg, &train_set.class_names, 0.1);
        let classifier = if enc.pretraining.is_some() {
            from_pretrained(ctx, &encoder, &cfg, seed)
        } else {
            BeitModel::new_random(ctx, &cfg, seed)
        }
        .map_err(|e| e.to_string())?;
        let arm = finetune_arm(
            args,
            seed,
            ctx,
            enc.name,
            &classifier,
            &dir.join(format!("finetune-{}", enc.folder)),
            train_set,
            eval_set,
        )?;
        out.finetune[i] = arm.top1;
        out.curves.push(arm);
    }
    Ok(out)
}

/// results.md: the settings, the per-encoder table, the comparisons with their verdicts and the baseline.
#[allow(clippy::too_many_arguments)]
fn report(
    args: &ExperimentArgs,
    seeds: &[SeedScores],
    knn: Option<f64>,
    train_set: &Dataset,
    eval_set: &Dataset,
    probe_set: &Dataset,
    ctx: &GpuContext,
    t0: std::time::Instant,
) -> String {
    let n = args.seeds;
    let pct = |v: f64| 100.0 * v;
    let stats = |pick: fn(&SeedScores) -> [f64; 4], i: usize| -> (f64, f64, Vec<f64>) {
        let v: Vec<f64> = seeds.iter().map(|s| pick(s)[i]).collect();
        let (m, sd) = mean_std(&v);
        (m, sd, v)
    };
    let each = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:.2}", pct(*x)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut md = format!(
        "# The paper's comparisons in miniature ({} preset, {})\n\n\
         Pretraining: {} steps of {} images at a peak learning rate of {} per pretrained encoder (the visual tokenizer: {} steps, shared by the two token arms). \
         Fine-tuning: {} steps of {} images for every encoder. Linear probe: the last block's mean patch token, a softmax-regression head fitted on {} images. \
         Seeds: {}..{} ({n}); each seed draws its own tokenizer, initialisations, data order and masks. Evaluated on {} ({} images). Adapter: {}.\n\n\
         | encoder | fine-tune top-1, mean ± std | per seed | linear probe top-1, mean ± std | per seed |\n|---|---|---|---|---|\n",
        args.preset,
        train_set.source,
        args.pretrain_steps,
        args.batch,
        args.pretrain_lr,
        args.tokenizer_steps.unwrap_or(args.pretrain_steps),
        args.finetune_steps,
        args.batch,
        probe_set.len(),
        args.seed,
        args.seed + n as u64 - 1,
        eval_set.source,
        eval_set.len(),
        ctx.describe(),
    );
    for (i, enc) in ENCODERS.iter().enumerate() {
        let (fm, fs, fv) = stats(|s| s.finetune, i);
        let (pm, ps, pv) = stats(|s| s.probe, i);
        md.push_str(&format!(
            "| {} | {:.2}% ± {:.2} | {} | {:.2}% ± {:.2} | {} |\n",
            enc.name,
            pct(fm),
            pct(fs),
            each(&fv),
            pct(pm),
            pct(ps),
            each(&pv)
        ));
    }
    if let Some(k) = knn {
        md.push_str(&format!(
            "| 5-nearest-neighbour on pixels (no training) | {:.2}% | | | |\n",
            pct(k)
        ));
    }
    md.push_str("\n| comparison | fine-tune: difference (seed spreads added) | verdict | linear probe: difference (spreads) | verdict |\n|---|---|---|---|---|\n");
    for (what, a, b) in COMPARISONS {
        let mut cells = Vec::new();
        for pick in [
            (|s: &SeedScores| s.finetune) as fn(&SeedScores) -> [f64; 4],
            |s| s.probe,
        ] {
            let ((am, asd, _), (bm, bsd, _)) = (stats(pick, a), stats(pick, b));
            let (diff, spread) = (am - bm, asd + bsd);
            cells.push(format!(
                "{:+.2} points ({:.2}) | {}",
                pct(diff),
                pct(spread),
                verdict(diff, spread, n as usize)
            ));
        }
        md.push_str(&format!("| {what} | {} | {} |\n", cells[0], cells[1]));
    }
    md.push_str(&format!(
        "\nTotal time: {:.0} s. Command: `beitlab experiment paper --data {} --preset {} --pretrain-steps {}{} --pretrain-lr {} --finetune-steps {} --batch {}{} --seed {} --seeds {n} --out {}`\n\n![top-1 per seed](results.png)\n",
        t0.elapsed().as_secs_f64(),
        args.data.data,
        args.preset,
        args.pretrain_steps,
        args.tokenizer_steps
            .map(|t| format!(" --tokenizer-steps {t}"))
            .unwrap_or_default(),
        args.pretrain_lr,
        args.finetune_steps,
        args.batch,
        args.probe_images
            .map(|p| format!(" --probe-images {p}"))
            .unwrap_or_default(),
        args.seed,
        args.out.display()
    ));
    md
}

/// results.png: fine-tune and linear-probe top-1 of every encoder per seed (with the k-NN line), and the first
/// seed's fine-tuning loss curves.
fn write_plot(
    out: &Path,
    seeds: &[SeedScores],
    knn: Option<f64>,
    first_seed: u64,
) -> Result<(), String> {
    use crate::train::plot::{smooth, write_png, Panel, Series};
    let colors = [[30, 90, 200], [200, 80, 30], [40, 150, 60], [120, 120, 120]];
    let per_seed = |pick: fn(&SeedScores) -> [f64; 4]| -> Vec<Series> {
        let mut series: Vec<Series> = ENCODERS
            .iter()
            .enumerate()
            .map(|(i, enc)| {
                let pts = seeds
                    .iter()
                    .enumerate()
                    .map(|(s, r)| ((first_seed + s as u64) as f64, 100.0 * pick(r)[i]))
                    .collect();
                (enc.name, pts, colors[i])
            })
            .collect();
        if let Some(k) = knn {
            series.push(knn_line(k, first_seed, seeds.len(), [0, 0, 0]));
        }
        series
    };
    let curves: Vec<Series> = seeds[0]
        .curves
        .iter()
        .zip(colors)
        .map(|(arm, color)| {
            let pts: Vec<(f64, f64)> = arm.curve.iter().map(|p| (p.0, p.1)).collect();
            (arm.name, smooth(&pts, (pts.len() / 50).max(1)), color)
        })
        .collect();
    write_png(
        &out.join("results.png"),
        &[
            Panel {
                title: "fine-tune top-1 % per seed",
                x_axis: "seed",
                series: per_seed(|s| s.finetune),
            },
            Panel {
                title: "linear probe top-1 % per seed",
                x_axis: "seed",
                series: per_seed(|s| s.probe),
            },
            Panel {
                title: "fine-tuning loss (first seed)",
                x_axis: "step",
                series: curves,
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_keeps_its_legends_clear_of_the_lines() {
        let arm = |name, drop: f64| super::super::experiment::Arm {
            name,
            top1: 0.5,
            loss: 1.0,
            curve: (1..=100)
                .map(|s| (s as f64, 2.3 - drop * s as f64 / 100.0, 0.5))
                .collect(),
        };
        let seeds: Vec<SeedScores> = (0..3)
            .map(|s| SeedScores {
                finetune: [0.55 + 0.01 * s as f64, 0.49, 0.53, 0.33],
                probe: [0.50, 0.47, 0.50, 0.34],
                curves: ENCODERS
                    .iter()
                    .enumerate()
                    .map(|(i, e)| arm(e.name, 0.2 * (4 - i) as f64))
                    .collect(),
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("beitlab-paper-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_plot(&dir, &seeds, Some(0.842), 5).unwrap();
        let img = image::open(dir.join("results.png")).unwrap().to_rgb8();
        // Five legend entries (four encoders and k-NN) wrap onto two rows in the two per-seed panels.
        assert_eq!(img.height(), 2 * (240 + 2 * 14) + 240 + 2 * 14);
        // The k-NN line is the top of the first panel: it must run below the legend band, not through it.
        let black_rows: Vec<u32> = (0..img.height())
            .filter(|&y| (300..800).all(|x| img.get_pixel(x, y).0 == [0, 0, 0]))
            .collect();
        assert!(
            black_rows.first().is_some_and(|&y| y >= 30 + 2 * 14),
            "k-NN line at rows {black_rows:?}"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
