//! Training loops on the micro preset: pretraining lowers the MIM loss, a NaN stops training with the previous
//! checkpoint intact, an interrupted save leaves the previous checkpoint loadable, fine-tuning lowers the loss,
//! and evaluation counts every image.

#[allow(dead_code)]
#[path = "kernels/common.rs"]
mod common;

use beitlab::bench::Profile;
use beitlab::data::augment::Augment;
use beitlab::data::dataset::{Dataset, Split};
use beitlab::data::masking::BlockMasking;
use beitlab::model::{BeitConfig, BeitModel};
use beitlab::tokenizer::train::{train as train_tokenizer, TrainOptions};
use beitlab::tokenizer::VisualTokenizer;
use beitlab::tokenizer::{Tokenizer, TokenizerConfig};
use beitlab::train::finetune::{
    classification_config, evaluate, finetune, from_pretrained, FinetuneOptions,
};
use beitlab::train::pretrain::{pretrain, Masking, PretrainOptions};
use common::ctx;

fn data(n: usize) -> Dataset {
    let mut d = Dataset::builtin(Split::Val, 1).unwrap();
    d.images.truncate(n);
    d.labels.as_mut().unwrap().truncate(n);
    d
}

fn micro_tokenizer(d: &Dataset) -> Tokenizer {
    let mut cfg = TokenizerConfig::preset("micro").unwrap();
    cfg.codebook_size = 64;
    cfg.hidden_size = 32;
    let tk = Tokenizer::new_random(ctx(), &cfg, 1).unwrap();
    let opts = TrainOptions {
        steps: 20,
        batch: 16,
        lr: 3e-3,
        seed: 1,
        crop_scale: (0.5, 1.0),
        flip: true,
    };
    train_tokenizer(ctx(), &tk, d, &opts, |_| {}).unwrap();
    tk
}

fn pretrain_opts(steps: u32, lr: f32, out: Option<std::path::PathBuf>) -> PretrainOptions {
    PretrainOptions {
        steps,
        batch: 8,
        lr,
        min_lr: lr * 0.1,
        warmup: 2,
        weight_decay: 0.05,
        clip: 3.0,
        seed: 3,
        masking: Masking::Blockwise(BlockMasking::scaled(4)),
        augment: Augment::beit(28, 1),
        checkpoint_every: 0,
        out,
        resume: None,
        stop_after: None,
        mixed: None,
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("beitlab-train-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&p).ok();
    p
}

#[test]
fn pretraining_lowers_the_loss_and_nan_keeps_the_last_checkpoint() {
    let d = data(64);
    let tk = VisualTokenizer::Patch(micro_tokenizer(&d));
    let mut cfg = BeitConfig::preset("micro").unwrap();
    cfg.vocab_size = 64;
    let model = BeitModel::new_random(ctx(), &cfg, 2).unwrap();
    let dir = tmp("pretrain").join("checkpoint");
    let mut losses = Vec::new();
    pretrain(
        ctx(),
        &model,
        Some(&tk),
        &d,
        &pretrain_opts(40, 3e-3, Some(dir.clone())),
        |m| {
            assert!(
                m.masked > 0 && m.masked <= 8 * 6,
                "masked count {}",
                m.masked
            );
            losses.push(m.loss)
        },
    )
    .unwrap();
    assert_eq!(losses.len(), 40);
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[35..].iter().sum::<f32>() / 5.0;
    assert!(last < first - 0.2, "MIM loss {first} -> {last}");
    let saved = BeitModel::load(ctx(), &dir, None).unwrap();
    assert_eq!(saved.flat(ctx()).unwrap(), model.flat(ctx()).unwrap());
    assert!(dir.join("training_state.safetensors").exists());

    // A diverging run stops with a clear message and leaves the previous checkpoint as it was.
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let err = pretrain(
        ctx(),
        &model,
        Some(&tk),
        &d,
        &pretrain_opts(6, 1e30, Some(dir.clone())),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("became") && err.contains("the last checkpoint is kept"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        before
    );
    BeitModel::load(ctx(), &dir, None).unwrap();

    // A save interrupted half-way (a stale temporary folder) leaves the checkpoint loadable, and the next
    // save cleans it up.
    let stale = dir.with_file_name(".checkpoint.saving");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half a file").unwrap();
    BeitModel::load(ctx(), &dir, None).unwrap();
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}

#[test]
fn fine_tuning_lowers_the_loss_and_evaluation_counts_every_image() {
    let d = data(128);
    let pre_cfg = BeitConfig::preset("micro").unwrap();
    let pre = BeitModel::new_random(ctx(), &pre_cfg, 4).unwrap();
    let cfg = classification_config(&pre_cfg, &d.class_names, 0.1);
    let model = from_pretrained(ctx(), &pre, &cfg, 5).unwrap();
    // The shared table went into every layer.
    let flat = model.flat(ctx()).unwrap();
    let t0 = model.table.layout.find("beit.encoder.layer.0.attention.attention.relative_position_bias.relative_position_bias_table").unwrap();
    assert!(
        t0.len > 0
            && flat[t0.offset as usize..(t0.offset + t0.len) as usize]
                .iter()
                .all(|&v| v == 0.0)
    );
    let opts = FinetuneOptions {
        steps: 40,
        batch: 16,
        lr: 3e-3,
        warmup: 4,
        weight_decay: 0.05,
        layer_decay: 0.65,
        label_smoothing: 0.1,
        clip: None,
        seed: 6,
        augment: Augment::beit(28, 1),
        out: None,
        checkpoint_every: 0,
        resume: None,
        stop_after: None,
        mixed: None,
    };
    let mut losses = Vec::new();
    finetune(ctx(), &model, &d, &opts, |m| losses.push(m.loss)).unwrap();
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[35..].iter().sum::<f32>() / 5.0;
    assert!(last < first, "classification loss {first} -> {last}");
    let (top1, confusion) = evaluate(ctx(), &model, &d, 32).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<u32>() as usize, d.len());
    assert!((0.0..=1.0).contains(&top1));
    // Unlabelled data is refused clearly.
    let mut unlabelled = d.clone();
    unlabelled.labels = None;
    let e = finetune(ctx(), &model, &unlabelled, &opts, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no labels"), "{e}");
}

#[test]
fn resuming_a_run_equals_the_uninterrupted_run() {
    let d = data(64);
    let tk = VisualTokenizer::Patch(micro_tokenizer(&d));
    let mut cfg = BeitConfig::preset("micro").unwrap();
    cfg.vocab_size = 64;
    cfg.drop_path_rate = 0.2;
    // Uninterrupted: 8 steps.
    let a = BeitModel::new_random(ctx(), &cfg, 7).unwrap();
    pretrain(
        ctx(),
        &a,
        Some(&tk),
        &d,
        &pretrain_opts(8, 2e-3, None),
        |_| {},
    )
    .unwrap();
    // Interrupted after 4 steps (checkpoint), then resumed from the folder by a new process's worth of state.
    let dir = tmp("resume").join("checkpoint");
    let b = BeitModel::new_random(ctx(), &cfg, 7).unwrap();
    let first = PretrainOptions {
        stop_after: Some(4),
        ..pretrain_opts(8, 2e-3, Some(dir.clone()))
    };
    pretrain(ctx(), &b, Some(&tk), &d, &first, |_| {}).unwrap();
    let resumed = BeitModel::load(ctx(), &dir, None).unwrap();
    let mut steps = Vec::new();
    let second = PretrainOptions {
        resume: Some(dir.clone()),
        ..pretrain_opts(8, 2e-3, Some(dir.clone()))
    };
    pretrain(ctx(), &resumed, Some(&tk), &d, &second, |m| {
        steps.push(m.step)
    })
    .unwrap();
    assert_eq!(steps, vec![5, 6, 7, 8]);
    assert_eq!(
        resumed.flat(ctx()).unwrap(),
        a.flat(ctx()).unwrap(),
        "resumed weights equal the uninterrupted run's"
    );
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}

#[test]
fn resuming_a_mixed_precision_run_equals_the_uninterrupted_run() {
    // The loss scale and its count of good steps travel with the checkpoint: the resumed run scales, skips
    // and bias-corrects exactly as the uninterrupted one.
    let d = data(64);
    let tk = VisualTokenizer::Patch(micro_tokenizer(&d));
    let mut cfg = BeitConfig::preset("micro").unwrap();
    cfg.vocab_size = 64;
    let mixed = Some(beitlab::ops::precision::ProductInputs::F16Emulated);
    let a = BeitModel::new_random(ctx(), &cfg, 8).unwrap();
    let mut uninterrupted = Vec::new();
    let whole = PretrainOptions {
        mixed,
        ..pretrain_opts(6, 2e-3, None)
    };
    pretrain(ctx(), &a, Some(&tk), &d, &whole, |m| {
        uninterrupted.push((m.step, m.loss, m.loss_scale, m.skipped))
    })
    .unwrap();
    assert!(
        uninterrupted.iter().all(|s| s.2 > 0.0 && !s.3),
        "{uninterrupted:?}"
    );
    let dir = tmp("resume-mixed").join("checkpoint");
    let b = BeitModel::new_random(ctx(), &cfg, 8).unwrap();
    let first = PretrainOptions {
        stop_after: Some(3),
        mixed,
        ..pretrain_opts(6, 2e-3, Some(dir.clone()))
    };
    pretrain(ctx(), &b, Some(&tk), &d, &first, |_| {}).unwrap();
    let resumed = BeitModel::load(ctx(), &dir, None).unwrap();
    let mut later = Vec::new();
    let second = PretrainOptions {
        resume: Some(dir.clone()),
        mixed,
        ..pretrain_opts(6, 2e-3, Some(dir.clone()))
    };
    pretrain(ctx(), &resumed, Some(&tk), &d, &second, |m| {
        later.push((m.step, m.loss, m.loss_scale, m.skipped))
    })
    .unwrap();
    assert_eq!(later, uninterrupted[3..].to_vec());
    assert_eq!(
        resumed.flat(ctx()).unwrap(),
        a.flat(ctx()).unwrap(),
        "resumed weights equal the uninterrupted run's"
    );
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}

#[test]
fn bench_train_reports_its_numbers() {
    let cfg = BeitConfig::preset("micro").unwrap();
    let r =
        beitlab::bench::bench_train(ctx(), &cfg, "micro", 2, 1, Profile::ByKernel, None).unwrap();
    assert!(r.images_per_s > 0.0 && r.step_ms_median > 0.0);
    assert_eq!(r.precision, "f32");
    // The profile accounts for every launch of the step, and names the matrix products among them.
    let launches: usize = r.profile.iter().map(|k| k.launches).sum();
    assert_eq!(launches, r.dispatches_per_step);
    assert!(r.dispatches_per_step > 20, "{}", r.dispatches_per_step);
    assert!(
        r.profile.iter().any(|k| k.kernel.starts_with("matmul::")),
        "{:?}",
        r.profile
    );
    assert!(
        r.profile.windows(2).all(|w| w[0].ms >= w[1].ms),
        "slowest first"
    );
    // Per kernel and grid (`--profile-grids`): the same launches, each entry naming its grid, more entries.
    let g = beitlab::bench::bench_train(ctx(), &cfg, "micro", 2, 1, Profile::ByKernelAndGrid, None)
        .unwrap();
    let launches: usize = g.profile.iter().map(|k| k.launches).sum();
    assert_eq!(launches, g.dispatches_per_step);
    assert!(
        g.profile.iter().all(|k| k.kernel.contains(" [")),
        "{:?}",
        g.profile
    );
    assert!(g.profile.len() > r.profile.len());
    assert!(r.gpu_buffer_mib > 0.0 && r.gflop_per_step > 0.0);
    // Forward FLOPs of the tiny preset per image, by hand: 12 layers of (qkv, scores + context, projection, MLP)
    // plus patch embedding and a 26-token MIM head.
    let tiny = BeitConfig::preset("tiny").unwrap();
    let (t, c, i) = (65.0, 192.0, 768.0);
    let layer = 2.0 * t * c * 3.0 * c + 4.0 * t * t * c + 2.0 * t * c * c + 4.0 * t * c * i;
    let want = 2.0 * 64.0 * 48.0 * c + 12.0 * layer + 2.0 * 26.0 * c * 8192.0;
    assert!((beitlab::bench::forward_flops(&tiny, 26.0) - want).abs() < 1.0);
}

#[test]
fn linear_probe_features_and_head() {
    use beitlab::train::linprobe::{extract_features, train_linear};
    // The head learns linearly separable data.
    let mut rng = beitlab::rng::Rng::new(1);
    let (n, dim) = (600usize, 5usize);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = (i % 3) as u32;
        for d in 0..dim {
            x.push(rng.normal() as f32 * 0.3 + if d == c as usize { 3.0 } else { 0.0 } + 10.0);
        }
        y.push(c);
    }
    let head = train_linear(&x, &y, 3, 20, 1e-2, 2);
    assert!(head.accuracy(&x, &y) > 0.98);
    // Features: one pooled vector of C values per image, the same whatever the batch size (up to f32 rounding:
    // the matrix-product kernel is chosen by shape, so another batch can sum in another order).
    let d = data(10);
    let cfg = BeitConfig::preset("micro").unwrap();
    let model = BeitModel::new_random(ctx(), &cfg, 3).unwrap();
    let a = extract_features(ctx(), &model, &d, 2, 4).unwrap();
    let b = extract_features(ctx(), &model, &d, 2, 10).unwrap();
    assert_eq!(a.len(), 10 * cfg.hidden_size as usize);
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-6,
        "features differ by {worst} between batch sizes"
    );
    assert!(extract_features(ctx(), &model, &d, 3, 4)
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
}

#[test]
fn an_image_folder_with_broken_files_trains_and_reports_them() {
    let dir = tmp("brokenfolder");
    for (class, shade) in [("dark", 40u8), ("light", 200u8)] {
        let c = dir.join(class);
        std::fs::create_dir_all(&c).unwrap();
        for i in 0..6u8 {
            let img = image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([shade.wrapping_add(((x + y) as u8) ^ i)])
            });
            img.save(c.join(format!("{i}.png"))).unwrap();
        }
        std::fs::write(c.join("broken.png"), b"\x89PNG but not really").unwrap();
        std::fs::write(c.join("empty.jpg"), b"").unwrap();
    }
    let ds = Dataset::folder(&dir, 1, false).unwrap();
    assert_eq!((ds.len(), ds.skipped.len()), (12, 4));
    assert!(ds
        .skipped_summary()
        .unwrap()
        .contains("skipped 4 unreadable files"));
    let tk = VisualTokenizer::Patch(micro_tokenizer(&ds));
    let mut cfg = BeitConfig::preset("micro").unwrap();
    cfg.vocab_size = 64;
    let model = BeitModel::new_random(ctx(), &cfg, 9).unwrap();
    let mut steps = 0;
    pretrain(
        ctx(),
        &model,
        Some(&tk),
        &ds,
        &pretrain_opts(4, 1e-3, None),
        |m| {
            assert!(m.loss.is_finite());
            steps += 1
        },
    )
    .unwrap();
    assert_eq!(steps, 4);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn curves_are_written_as_a_png() {
    use beitlab::train::plot::{smooth, write_png, Panel};
    let path = std::env::temp_dir().join(format!("beitlab-plot-{}.png", std::process::id()));
    let pts: Vec<(f64, f64)> = (1..=100).map(|s| (s as f64, 1.0 / s as f64)).collect();
    assert_eq!(smooth(&pts, 1), pts);
    assert!((smooth(&[(1.0, 1.0), (2.0, 3.0)], 2)[1].1 - 2.0).abs() < 1e-12);
    write_png(
        &path,
        &[
            Panel {
                title: "loss",
                x_axis: "step",
                series: vec![("run", pts.clone(), [200, 0, 0])],
            },
            Panel {
                title: "empty",
                x_axis: "step",
                series: vec![],
            },
        ],
    )
    .unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    // One legend row under the first title, none under the empty panel's.
    assert_eq!((img.width(), img.height()), (900, 254 + 240));
    assert!(
        img.pixels().any(|p| p.0 == [200, 0, 0]),
        "the curve is drawn"
    );
    std::fs::remove_file(path).ok();
}

#[test]
fn pixel_regression_pretraining_lowers_its_loss_and_fine_tunes() {
    // The paper's ablation: the MIM head regresses the normalised pixels of masked patches; no tokenizer.
    let d = data(64);
    let mut cfg = BeitConfig::preset("micro").unwrap();
    cfg.mim_target = Some("pixels".into());
    let model = BeitModel::new_random(ctx(), &cfg, 2).unwrap();
    assert!(
        model.table.layout.find("pixel_head.weight").is_some()
            && model.table.layout.find("lm_head.weight").is_none()
    );
    let mut losses = Vec::new();
    pretrain(
        ctx(),
        &model,
        None,
        &d,
        &pretrain_opts(30, 3e-3, None),
        |m| losses.push(m.loss),
    )
    .unwrap();
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[25..].iter().sum::<f32>() / 5.0;
    assert!(
        first < 4.0 && last < 0.9 * first,
        "pixel MSE per value {first} -> {last}"
    );
    let cls = classification_config(&cfg, &d.class_names, 0.0);
    assert!(cls.mim_target.is_none());
    let ft = from_pretrained(ctx(), &model, &cls, 1).unwrap();
    assert!(ft.table.layout.find("pixel_head.weight").is_none());
    // Tokens as the target without a tokenizer is refused.
    let tok_cfg = BeitConfig::preset("micro").unwrap();
    let tok_model = BeitModel::new_random(ctx(), &tok_cfg, 2).unwrap();
    let e = pretrain(
        ctx(),
        &tok_model,
        None,
        &d,
        &pretrain_opts(1, 1e-3, None),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs a tokenizer"), "{e}");
}

#[test]
fn resuming_fine_tuning_equals_the_uninterrupted_run() {
    let d = data(64);
    let pre_cfg = BeitConfig::preset("micro").unwrap();
    let cfg = classification_config(&pre_cfg, &d.class_names, 0.2);
    let opts = |out: Option<std::path::PathBuf>| FinetuneOptions {
        steps: 6,
        batch: 8,
        lr: 3e-3,
        warmup: 2,
        weight_decay: 0.05,
        layer_decay: 0.65,
        label_smoothing: 0.1,
        clip: Some(1.0),
        seed: 4,
        augment: Augment::beit(28, 1),
        out,
        checkpoint_every: 0,
        resume: None,
        stop_after: None,
        mixed: None,
    };
    let a = BeitModel::new_random(ctx(), &cfg, 1).unwrap();
    finetune(ctx(), &a, &d, &opts(None), |_| {}).unwrap();
    let dir = tmp("ftresume").join("checkpoint");
    let b = BeitModel::new_random(ctx(), &cfg, 1).unwrap();
    finetune(
        ctx(),
        &b,
        &d,
        &FinetuneOptions {
            stop_after: Some(3),
            ..opts(Some(dir.clone()))
        },
        |_| {},
    )
    .unwrap();
    let resumed = BeitModel::load(ctx(), &dir, None).unwrap();
    let mut steps = Vec::new();
    finetune(
        ctx(),
        &resumed,
        &d,
        &FinetuneOptions {
            resume: Some(dir.clone()),
            ..opts(Some(dir.clone()))
        },
        |m| steps.push(m.step),
    )
    .unwrap();
    assert_eq!(steps, vec![4, 5, 6]);
    assert_eq!(resumed.flat(ctx()).unwrap(), a.flat(ctx()).unwrap());
    std::fs::remove_dir_all(dir.parent().unwrap()).ok();
}
