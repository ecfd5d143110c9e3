//! Fine-tuning BEiT for semantic segmentation (and evaluating it): the pretrained backbone (shared relative
//! position bias copied into every layer) under a linear or pyramid dense head, AdamW with layer-wise lr decay,
//! drop path, warm-up + cosine, one random resized crop + flip per image and label map. Evaluation: pixel
//! accuracy, per-class IoU and their mean over the classes present, on whole images resized to the model.

#[cfg(not(target_arch = "wasm32"))]
use super::checkpoint::{save_run, start_or_resume};
#[cfg(not(target_arch = "wasm32"))]
use super::metrics::StepMetrics;
#[cfg(not(target_arch = "wasm32"))]
use super::runner::StepRunner;
#[cfg(not(target_arch = "wasm32"))]
use super::schedule::warmup_cosine;
use crate::data::augment::Augment;
#[cfg(not(target_arch = "wasm32"))]
use crate::data::segmentation::{augment_pair, eval_pair, SegDataset, IGNORE};
use crate::gpu::GpuContext;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::{Dispatch, GpuSlice};
use crate::model::checkpoint::BeitModel;
use crate::model::SegmentationHead;
use crate::model::{Architecture, BeitConfig, BeitGraph, GraphOptions, MimRows, ModelError};
#[cfg(not(target_arch = "wasm32"))]
use crate::ops::spatial::{argmax_channels, ImageShape};
#[cfg(not(target_arch = "wasm32"))]
use crate::rng::Rng;

/// The segmentation config made from a (pretraining or classification) config: no final norm, one relative
/// position table per layer, no mask token, `classes` labels, `head` on the features of blocks
/// (L/3, L/2, 2L/3, L) rounded (the paper's 4, 6, 8, 12 for 12 blocks).
pub fn segmentation_config(
    from: &BeitConfig,
    class_names: &[String],
    head: SegmentationHead,
    drop_path_rate: f64,
) -> BeitConfig {
    let mut cfg = super::finetune::classification_config(from, class_names, drop_path_rate);
    cfg.set_architecture(Architecture::SemanticSegmentation);
    cfg.segmentation_head = Some(head.name().to_string());
    let l = from.num_hidden_layers as f64;
    cfg.out_indices = match head {
        SegmentationHead::Pyramid => [l / 3.0, l / 2.0, 2.0 * l / 3.0, l]
            .iter()
            .map(|v| (v.round() as u32).clamp(1, from.num_hidden_layers.max(1)))
            .collect(),
        SegmentationHead::Linear => Vec::new(),
    };
    cfg
}

#[derive(Clone, Debug)]
pub struct SegmentOptions {
    pub steps: u32,
    pub batch: u32,
    pub lr: f32,
    pub warmup: u32,
    pub weight_decay: f32,
    pub layer_decay: f32,
    pub seed: u64,
    pub augment: Augment,
    pub out: Option<std::path::PathBuf>,
    /// Save every this many steps (0: only at the end).
    pub checkpoint_every: u32,
    /// Continue a saved run (its step, data position and AdamW moments) up to `steps`.
    pub resume: Option<std::path::PathBuf>,
}

impl SegmentOptions {
    /// Refuse settings that cannot train, naming the setting.
    pub fn validate(&self) -> Result<(), ModelError> {
        super::checks::all(&[
            super::checks::count("steps", self.steps),
            super::checks::count("batch", self.batch),
            super::checks::learning_rate("lr", self.lr),
            super::checks::non_negative("weight_decay", self.weight_decay),
            super::checks::fraction_in("layer_decay", self.layer_decay as f64, 1e-6, 1.0),
        ])
    }
}

pub fn graph_for(
    ctx: &GpuContext,
    model: &BeitModel,
    batch: u32,
    drop_path_seed: Option<u64>,
) -> Result<BeitGraph, ModelError> {
    if model.cfg.architecture() != Architecture::SemanticSegmentation {
        return Err(ModelError::Config(format!(
            "this is a {} model; segmentation needs one made by `beitlab segment`",
            model.cfg.architecture().hf_name()
        )));
    }
    BeitGraph::new(
        ctx,
        &model.cfg,
        &model.table,
        &model.params,
        GraphOptions {
            batch,
            mim_rows: MimRows::All,
            drop_path_seed,
            label_smoothing: 0.0,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: None,
        },
    )
}

#[cfg(not(target_arch = "wasm32"))]
/// Fine-tune `model` (a segmentation model) on `data`. Reported loss: mean per-pixel cross-entropy over the
/// labelled pixels; accuracy: pixel accuracy of the training crops.
pub fn segment(
    ctx: &GpuContext,
    model: &BeitModel,
    data: &SegDataset,
    opts: &SegmentOptions,
    mut report: impl FnMut(StepMetrics),
) -> Result<(), ModelError> {
    opts.validate()?;
    if data.is_empty() {
        return Err(ModelError::Input(format!(
            "{} has no image with a label map to train on",
            data.source
        )));
    }
    if data.classes() > model.cfg.labels() {
        return Err(ModelError::Input(format!(
            "{} has {} classes but the model predicts {}",
            data.source,
            data.classes(),
            model.cfg.labels()
        )));
    }
    let graph = graph_for(ctx, model, opts.batch, Some(opts.seed))?;
    let groups = model.table.optimizer_groups(
        opts.weight_decay,
        opts.layer_decay,
        model.cfg.num_hidden_layers,
    );
    let mut runner = StepRunner::new(ctx, model, &graph, Vec::new(), &groups, "segment step")?;
    let (first_step, mut rng) =
        start_or_resume(&mut runner, model, opts.resume.as_deref(), opts.seed)?;
    let make = |rng: &mut Rng| {
        let (mut px, mut lab) = (Vec::new(), Vec::new());
        for _ in 0..opts.batch {
            let i = ((rng.uniform() * data.len() as f64) as usize).min(data.len() - 1);
            augment_pair(
                &opts.augment,
                &data.images[i],
                &data.masks[i],
                rng,
                &mut px,
                &mut lab,
            );
        }
        (px, lab)
    };
    let mut rng_next = rng.state();
    let mut next = make(&mut rng);
    for step in first_step..=opts.steps {
        let (px, lab) = std::mem::take(&mut next);
        graph.write_batch(ctx, &px, None, Some(&lab))?;
        graph.set_drop_path_step(ctx, opts.seed, step);
        let lr = warmup_cosine(step, opts.steps, opts.warmup, opts.lr, opts.lr * 0.01);
        // The loss is already a mean over the labelled pixels: one "example" per step.
        runner.submit(step, lr, None, 1);
        rng_next = rng.state();
        if step < opts.steps {
            next = make(&mut rng);
        }
        runner.settle(&mut report)?;
        if let Some(out) = &opts.out {
            if opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0 && step < opts.steps {
                runner.sync(&mut report)?;
                save_run(ctx, out, model, &runner, step, rng_next)?;
            }
        }
    }
    runner.sync(&mut report)?;
    if let Some(out) = &opts.out {
        save_run(ctx, out, model, &runner, opts.steps, rng_next)?;
    }
    Ok(())
}

impl SegScores {
    /// Scores from per-class (intersection, labelled, predicted) pixel counts and the correct / scored totals.
    pub fn from_counts(counts: &[(u64, u64, u64)], correct: u64, scored: u64) -> Self {
        let iou: Vec<Option<f64>> = counts
            .iter()
            .map(|&(inter, lab, pred)| {
                let union = lab + pred - inter;
                (union > 0).then(|| inter as f64 / union as f64)
            })
            .collect();
        let present: Vec<f64> = iou.iter().flatten().copied().collect();
        Self {
            pixel_accuracy: correct as f64 / scored.max(1) as f64,
            miou: present.iter().sum::<f64>() / present.len().max(1) as f64,
            iou,
            pixels: scored,
        }
    }

    /// Add the pixels of one predicted map to per-class (intersection, labelled, predicted) counts and the
    /// (correct, scored) totals; ignored labels count for nothing.
    pub fn count(
        counts: &mut [(u64, u64, u64)],
        totals: &mut (u64, u64),
        predicted: &[u32],
        labels: &[u32],
    ) {
        let k = counts.len();
        for (&p, &t) in predicted.iter().zip(labels) {
            if t as usize >= k || k == 0 {
                continue;
            }
            let p = (p as usize).min(k - 1);
            totals.1 += 1;
            counts[t as usize].1 += 1;
            counts[p].2 += 1;
            if p == t as usize {
                totals.0 += 1;
                counts[p].0 += 1;
            }
        }
    }
}

/// Scores of a segmentation model on labelled images.
#[derive(Clone, Debug, PartialEq)]
pub struct SegScores {
    /// Correct pixels over labelled pixels.
    pub pixel_accuracy: f64,
    /// Mean IoU over the classes that occur in the labels or the predictions.
    pub miou: f64,
    /// Per class: intersection over union, `None` when the class is neither labelled nor predicted.
    pub iou: Vec<Option<f64>>,
    /// Labelled pixels scored.
    pub pixels: u64,
}

#[cfg(not(target_arch = "wasm32"))]
/// Run `model` on `data` (whole images resized to the model's size, labels resized nearest) and score it.
pub fn evaluate_segmentation(
    ctx: &GpuContext,
    model: &BeitModel,
    data: &SegDataset,
    batch: u32,
) -> Result<SegScores, ModelError> {
    let cfg = &model.cfg;
    let k = cfg.labels() as usize;
    let graph = graph_for(ctx, model, batch, None)?;
    let size = cfg.image_size;
    let pixels = (size * size) as usize;
    let argmax = GpuSlice::new(ctx, "predicted classes", (batch as usize * pixels) as u64);
    let shape = ImageShape {
        batch,
        channels: k as u32,
        height: size,
        width: size,
    };
    let mut work: Vec<Dispatch> = graph.forward.clone();
    work.extend(argmax_channels(ctx, &argmax, 0, &graph.logits, shape)?);
    let aug = Augment::beit(size, cfg.num_channels);
    // (intersection, labelled, predicted) per class.
    let mut counts = vec![(0u64, 0u64, 0u64); k];
    // (correct, scored) pixels.
    let mut totals = (0u64, 0u64);
    for start in (0..data.len()).step_by(batch as usize) {
        let end = (start + batch as usize).min(data.len());
        let (mut px, mut lab) = (Vec::new(), Vec::new());
        for i in start..end {
            eval_pair(&aug, &data.images[i], &data.masks[i], &mut px, &mut lab);
        }
        // A short last batch is padded with blank images whose pixels count for nothing.
        px.resize(batch as usize * cfg.num_channels as usize * pixels, 0.0);
        lab.resize(batch as usize * pixels, IGNORE);
        graph.write_batch(ctx, &px, None, Some(&lab))?;
        Dispatch::submit(ctx, "evaluate segmentation", &work)?;
        let pred = ctx.read_u32(&argmax)?;
        SegScores::count(&mut counts, &mut totals, &pred, &lab);
    }
    Ok(SegScores::from_counts(&counts, totals.0, totals.1))
}
