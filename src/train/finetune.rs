//! Fine-tuning BEiT for classification (and evaluating it): the pretrained backbone with its shared relative
//! position bias copied into every layer (as the official code does), a mean-pooling head, AdamW with layer-wise
//! lr decay, label smoothing, drop path, warm-up + cosine. Evaluation: top-1 accuracy and a confusion matrix.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
use crate::data::dataset::Dataset;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::Dispatch;
use crate::gpu::{FlatBuffer, GpuContext};
use crate::model::checkpoint::BeitModel;
use crate::model::params::ParamTable;
use crate::model::{Architecture, BeitConfig, ModelError};
#[cfg(not(target_arch = "wasm32"))]
use crate::model::{BeitGraph, GraphOptions, MimRows};
#[cfg(not(target_arch = "wasm32"))]
use crate::rng::Rng;

/// The classification config made from a (pretraining) config: mean pooling, one relative position table per
/// layer, no mask token, `classes` labels.
pub fn classification_config(
    from: &BeitConfig,
    class_names: &[String],
    drop_path_rate: f64,
) -> BeitConfig {
    let mut cfg = from.clone();
    cfg.set_architecture(Architecture::ImageClassification);
    cfg.use_mean_pooling = true;
    cfg.use_mask_token = false;
    cfg.mim_target = None;
    cfg.use_relative_position_bias =
        from.use_relative_position_bias || from.use_shared_relative_position_bias;
    cfg.use_shared_relative_position_bias = false;
    cfg.drop_path_rate = drop_path_rate;
    cfg.num_labels = Some(class_names.len() as u32);
    cfg.id2label = class_names
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), n.clone()))
        .collect();
    cfg.label2id = class_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i as u32))
        .collect();
    cfg
}

/// A classification model initialised from a pretrained one: every backbone tensor copied, the shared
/// relative position table copied into each layer's, head freshly initialised from `seed`. The copies are
/// recorded on the GPU (nothing is read back, so this also works where the CPU cannot wait for the GPU).
pub fn from_pretrained(
    ctx: &GpuContext,
    pre: &BeitModel,
    cfg: &BeitConfig,
    seed: u64,
) -> Result<BeitModel, ModelError> {
    let table = ParamTable::new(cfg, ctx.storage_alignment());
    let params = FlatBuffer::new(ctx, "parameters", table.layout.clone());
    params.whole.write(ctx, &table.init_values(seed));
    let shared = pre
        .table
        .layout
        .find("beit.encoder.relative_position_bias.relative_position_bias_table");
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("from pretrained"),
        });
    let mut copied = 0;
    for e in &table.layout.entries {
        let src = match pre.table.layout.find(&e.name) {
            Some(s) => Some(s),
            None if e.name.ends_with(
                "attention.attention.relative_position_bias.relative_position_bias_table",
            ) =>
            {
                shared
            }
            None => None,
        };
        if let Some(s) = src.filter(|s| s.len == e.len) {
            enc.copy_buffer_to_buffer(
                &pre.params.whole.buffer,
                pre.params.whole.offset + 4 * s.offset,
                &params.whole.buffer,
                params.whole.offset + 4 * e.offset,
                4 * e.len,
            );
            copied += 1;
        }
    }
    if copied == 0 {
        return Err(ModelError::Checkpoint(
            "no tensor of the pretrained model fits the classification model".into(),
        ));
    }
    ctx.queue.submit([enc.finish()]);
    Ok(BeitModel {
        cfg: cfg.clone(),
        table,
        params,
        file_names: BTreeMap::new(),
    })
}

#[derive(Clone, Debug)]
pub struct FinetuneOptions {
    pub steps: u32,
    pub batch: u32,
    pub lr: f32,
    pub warmup: u32,
    pub weight_decay: f32,
    pub layer_decay: f32,
    pub label_smoothing: f32,
    pub clip: Option<f32>,
    pub seed: u64,
    pub augment: Augment,
    pub out: Option<PathBuf>,
    /// Save every this many steps (0: only at the end).
    pub checkpoint_every: u32,
    /// Continue a saved run (its step, data position and AdamW moments) up to `steps`.
    pub resume: Option<PathBuf>,
    /// Stop (with a checkpoint) after this step, as an interrupted run would.
    pub stop_after: Option<u32>,
    /// Mixed precision's products (see `train::precision`); `None` trains in f32.
    pub mixed: Option<crate::ops::precision::ProductInputs>,
}

impl FinetuneOptions {
    /// Refuse settings that cannot train, naming the setting.
    pub fn validate(&self) -> Result<(), ModelError> {
        super::checks::all(&[
            super::checks::count("steps", self.steps),
            super::checks::count("batch", self.batch),
            super::checks::learning_rate("lr", self.lr),
            super::checks::non_negative("weight_decay", self.weight_decay),
            super::checks::fraction_in("layer_decay", self.layer_decay as f64, 1e-6, 1.0),
            super::checks::fraction_in("label_smoothing", self.label_smoothing as f64, 0.0, 0.999),
            self.clip
                .map_or(Ok(()), |c| super::checks::learning_rate("clip", c)),
        ])
    }
}

/// Fine-tune `model` (a classification model) on labelled `data`.
#[cfg(not(target_arch = "wasm32"))]
pub fn finetune(
    ctx: &GpuContext,
    model: &BeitModel,
    data: &Dataset,
    opts: &FinetuneOptions,
    mut report: impl FnMut(StepMetrics),
) -> Result<(), ModelError> {
    opts.validate()?;
    let labels = data.labels.as_ref().ok_or_else(|| {
        ModelError::Input(format!(
            "{} has no labels; fine-tuning needs one folder per class",
            data.source
        ))
    })?;
    if data.is_empty() {
        return Err(ModelError::Input("the training set is empty".into()));
    }
    let cfg = &model.cfg;
    let graph = BeitGraph::new(
        ctx,
        cfg,
        &model.table,
        &model.params,
        GraphOptions {
            batch: opts.batch,
            mim_rows: MimRows::All,
            drop_path_seed: Some(opts.seed),
            label_smoothing: opts.label_smoothing,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: opts.mixed,
        },
    )?;
    let groups =
        model
            .table
            .optimizer_groups(opts.weight_decay, opts.layer_decay, cfg.num_hidden_layers);
    let mut runner = StepRunner::new(ctx, model, &graph, Vec::new(), &groups, "finetune step")?;
    let (first_step, mut rng) =
        start_or_resume(&mut runner, model, opts.resume.as_deref(), opts.seed)?;
    let last_step = opts.stop_after.map_or(opts.steps, |s| s.min(opts.steps));
    let make = |rng: &mut Rng| {
        let mut px = Vec::new();
        let mut lab = Vec::with_capacity(opts.batch as usize);
        for _ in 0..opts.batch {
            let i = ((rng.uniform() * data.len() as f64) as usize).min(data.len() - 1);
            opts.augment.apply(&data.images[i], rng, &mut px);
            lab.push(labels[i]);
        }
        (px, lab)
    };
    // `rng_next` draws the batch in `next`: the data position a checkpoint must remember.
    let mut rng_next = rng.state();
    let mut next = make(&mut rng);
    for step in first_step..=last_step {
        let (px, lab) = std::mem::take(&mut next);
        graph.write_batch(ctx, &px, None, Some(&lab))?;
        graph.set_drop_path_step(ctx, opts.seed, step);
        let lr = warmup_cosine(step, opts.steps, opts.warmup, opts.lr, opts.lr * 0.01);
        runner.submit(step, lr, opts.clip, opts.batch);
        rng_next = rng.state();
        if step < last_step {
            next = make(&mut rng);
        }
        runner.settle(&mut report)?;
        if let Some(out) = &opts.out {
            if opts.checkpoint_every > 0 && step % opts.checkpoint_every == 0 && step < last_step {
                runner.sync(&mut report)?;
                save_run(ctx, out, model, &runner, step, rng_next)?;
            }
        }
    }
    runner.sync(&mut report)?;
    if let Some(out) = &opts.out {
        save_run(ctx, out, model, &runner, last_step, rng_next)?;
    }
    Ok(())
}

/// Top-1 accuracy and the confusion matrix (rows: true class, columns: predicted) of a classification model.
#[cfg(not(target_arch = "wasm32"))]
pub fn evaluate(
    ctx: &GpuContext,
    model: &BeitModel,
    data: &Dataset,
    batch: u32,
) -> Result<(f64, Vec<Vec<u32>>), ModelError> {
    let labels = data.labels.as_ref().ok_or_else(|| {
        ModelError::Input(format!("{} has no labels to evaluate against", data.source))
    })?;
    let cfg = &model.cfg;
    if cfg.architecture() != Architecture::ImageClassification {
        return Err(ModelError::Config(
            "evaluation needs a classification model (fine-tune first)".into(),
        ));
    }
    let classes = cfg.labels() as usize;
    let graph = BeitGraph::new(
        ctx,
        cfg,
        &model.table,
        &model.params,
        GraphOptions {
            batch,
            mim_rows: MimRows::All,
            drop_path_seed: None,
            label_smoothing: 0.0,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: None,
        },
    )?;
    let aug = Augment::beit(cfg.image_size, cfg.num_channels);
    let mut confusion = vec![vec![0u32; classes]; classes];
    let mut correct = 0usize;
    for start in (0..data.len()).step_by(batch as usize) {
        let end = (start + batch as usize).min(data.len());
        let px = aug.eval_batch(&data.images[start..end], batch as usize);
        graph.write_batch(ctx, &px, None, None)?;
        Dispatch::submit(ctx, "evaluate", &graph.forward)?;
        let logits = ctx.read_f32(&graph.logits)?;
        for (k, i) in (start..end).enumerate() {
            let row = &logits[k * classes..(k + 1) * classes];
            let pred = (0..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best });
            let truth = labels[i] as usize;
            if truth < classes {
                confusion[truth][pred] += 1;
                correct += (truth == pred) as usize;
            }
        }
    }
    Ok((correct as f64 / data.len().max(1) as f64, confusion))
}
