//! The GPU side of one masked-image-modeling training step, built once and shared by `beitlab pretrain` and the
//! app: the ViT's graph with room for a fixed number of masked rows, the tokenizer's graph whose tokens of the
//! masked patches become the labels on the GPU, and the runner that records forward, backward, clip and AdamW.

use super::runner::StepRunner;
use crate::data::augment::Augment;
use crate::gpu::{GpuContext, GpuSlice};
use crate::model::{BeitGraph, BeitModel, GraphOptions, MimRows, ModelError};
use crate::ops::precision::ProductInputs;
use crate::ops::vq;
use crate::tokenizer::{VisualGraph, VisualTokenizer};

/// The GPU side of a masked-image-modeling step, built once: the ViT's graph with room for `cap` masked rows and,
/// for visual-token targets, the tokenizer's graph whose tokens of the masked patches become the labels on the
/// GPU. Shared by `beitlab pretrain` and the app.
pub struct MimStep {
    pub graph: BeitGraph,
    /// `None` for pixel targets (the graph gathers them from the patches).
    tokenizer: Option<VisualGraph>,
    /// The tokenizer reads its own view (DALL-E): the caller writes it next to the ViT's.
    own_view: bool,
    /// Indices of the masked patches in the batch (cap) u32, padded with 0.
    positions: GpuSlice,
    cap: u32,
    seed: u64,
}

impl MimStep {
    /// The step's graphs and its runner (tokens -> labels -> forward -> backward -> clip + AdamW with
    /// `weight_decay` on matrices), in mixed precision with `mixed`'s products.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        model: &BeitModel,
        tokenizer: Option<&VisualTokenizer>,
        batch: u32,
        cap: u32,
        seed: u64,
        weight_decay: f32,
        mixed: Option<ProductInputs>,
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
                keep_block_outputs: None,
                fused_attention: None,
                mixed,
            },
        )?;
        if let Some(t) = tokenizer {
            t.check_model(cfg)?;
        }
        let own_view = tokenizer.is_some_and(|t| t.is_dalle());
        let tokenizer = tokenizer.map(|t| t.graph(ctx, batch, cfg)).transpose()?;
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
                own_view,
                positions,
                cap,
                seed,
            },
            runner,
        ))
    }

    /// The augmentation of the tokenizer's own view (the ViT's crop and flip at its size and pixel mapping),
    /// when it reads one: the caller passes that view to [`MimStep::write`].
    pub fn tokenizer_augment(&self, vit: &Augment) -> Option<Augment> {
        match &self.tokenizer {
            Some(g) if self.own_view => Some(g.view.augment(vit)),
            _ => None,
        }
    }

    /// Write step `step`'s batch: pixels (B, C, S, S) normalised, the tokenizer's view (B, C, S', S') when
    /// [`MimStep::tokenizer_augment`] asks for one, and mask (B·N, 1 = masked). Returns the number of masked
    /// patches (at most `cap`).
    pub fn write(
        &self,
        ctx: &GpuContext,
        pixels: &[f32],
        tokenizer_pixels: Option<&[f32]>,
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
            let view = match (self.own_view, tokenizer_pixels) {
                (false, _) => pixels,
                (true, Some(v)) if v.len() as u64 == tg.pixels.len => v,
                (true, _) => {
                    return Err(ModelError::Input(
                        "the tokenizer reads its own view of the batch but none (or one of another size) was given".into(),
                    ))
                }
            };
            tg.pixels.write(ctx, view);
            self.graph.use_device_labels(ctx, masked)?;
        }
        self.positions.write(ctx, &positions);
        self.graph.set_drop_path_step(ctx, self.seed, step);
        Ok(masked)
    }
}
