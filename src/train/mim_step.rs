//! The GPU side of one masked-image-modeling training step, built once and shared by `beitlab pretrain` and the
//! app: the ViT's graph with room for a fixed number of masked rows, the tokenizer's graph whose tokens of the
//! masked patches become the labels on the GPU, and the runner that records forward, backward, clip and AdamW.

use super::runner::StepRunner;
use crate::gpu::{GpuContext, GpuSlice};
use crate::model::{BeitGraph, BeitModel, GraphOptions, MimRows, ModelError};
use crate::ops::vq;
use crate::tokenizer::{Tokenizer, TokenizerGraph};

/// The GPU side of a masked-image-modeling step, built once: the ViT's graph with room for `cap` masked rows and,
/// for visual-token targets, the tokenizer's graph whose tokens of the masked patches become the labels on the
/// GPU. Shared by `beitlab pretrain` and the app.
pub struct MimStep {
    pub graph: BeitGraph,
    /// `None` for pixel targets (the graph gathers them from the patches).
    tokenizer: Option<TokenizerGraph>,
    /// Indices of the masked patches in the batch (cap) u32, padded with 0.
    positions: GpuSlice,
    cap: u32,
    seed: u64,
}

impl MimStep {
    /// The step's graphs and its runner (tokens -> labels -> forward -> backward -> clip + AdamW with
    /// `weight_decay` on matrices).
    pub fn new(
        ctx: &GpuContext,
        model: &BeitModel,
        tokenizer: Option<&Tokenizer>,
        batch: u32,
        cap: u32,
        seed: u64,
        weight_decay: f32,
    ) -> Result<(Self, StepRunner), ModelError> {
        let cfg = &model.cfg;
        let graph = BeitGraph::new(
            ctx,
            cfg,
            &model.table,
            &model.params,
            GraphOptions {
                batch,
                mim_rows: MimRows::Masked(cap),
                drop_path_seed: Some(seed),
                label_smoothing: 0.0,
            },
        )?;
        let tokenizer = tokenizer
            .map(|t| TokenizerGraph::new(ctx, t, batch))
            .transpose()?;
        let positions = GpuSlice::new(ctx, "masked positions", cap as u64);
        let mut before = Vec::new();
        if let Some(tg) = &tokenizer {
            before.extend(tg.encode.iter().cloned());
            before.extend(vq::gather_u32(
                ctx,
                &graph.labels,
                &tg.tokens,
                &positions,
                cap,
            )?);
        }
        let groups = model
            .table
            .optimizer_groups(weight_decay, 1.0, cfg.num_hidden_layers);
        let runner = StepRunner::new(ctx, model, &graph, before, &groups, "pretrain step")?;
        Ok((
            Self {
                graph,
                tokenizer,
                positions,
                cap,
                seed,
            },
            runner,
        ))
    }

    /// Write step `step`'s batch: pixels (B, C, S, S) normalised and mask (B·N, 1 = masked). Returns the number
    /// of masked patches (at most `cap`).
    pub fn write(
        &self,
        ctx: &GpuContext,
        pixels: &[f32],
        mask: &[u8],
        step: u32,
    ) -> Result<u32, ModelError> {
        let mut positions: Vec<u32> = (0..mask.len() as u32)
            .filter(|&i| mask[i as usize] != 0)
            .collect();
        let masked = positions.len() as u32;
        if masked > self.cap {
            return Err(ModelError::Input(format!(
                "{masked} masked patches in the batch but room for {}",
                self.cap
            )));
        }
        positions.resize(self.cap as usize, 0);
        self.graph.write_batch(ctx, pixels, Some(mask), None)?;
        if let Some(tg) = &self.tokenizer {
            tg.pixels.write(ctx, pixels);
            self.graph.use_device_labels(ctx, masked)?;
        }
        self.positions.write(ctx, &positions);
        self.graph.set_drop_path_step(ctx, self.seed, step);
        Ok(masked)
    }
}
