//! The BEiT network on the GPU for one batch size: every activation buffer, and the forward and backward
//! passes as prebuilt dispatch lists (one compute pass each, or both in one). Reads top to bottom as the model:
//! patch embedding -> mask-token substitution -> CLS -> positions -> L pre-norm blocks (attention with q / v
//! bias and relative position bias, layer scale, drop path; MLP with GELU) -> final norm as HF places it ->
//! head (masked image modeling or classification) -> cross-entropy. The backward runs in exact reverse,
//! accumulating into a gradient buffer with the parameters' layout (zeroed by its first dispatch).
//!
//! Shapes: pixels (B, Cin, H, W); mask (B, N) u32; tokens (B·T, C); qkv (B·T, 3C); probabilities (B, H, T, T);
//! MLP (B·T, I); MIM logits (R, V) with R = B·N (every patch) or M (masked patches only);
//! classification logits (B, labels).

//!
//! `new` reads top to bottom as the model; each part is built by its own file: `embed.rs` (patches to hidden
//! state 0), `block.rs` (one Transformer block, forward and backward), `head.rs` (final norm, heads, loss),
//! with `builder.rs` holding what they share (dimensions, tensors by name, the dispatch lists, residual and
//! drop-path units). A fused kernel replaces one unit of one part.

mod block;
mod builder;
mod embed;
mod head;
mod segment;

use super::config::{Architecture, BeitConfig};
use super::error::ModelError;
use super::params::ParamTable;
use crate::gpu::{Dispatch, FlatBuffer, GpuContext, GpuSlice};
use crate::ops::crossentropy::CrossEntropyParams;
use crate::ops::droppath::DropPathParams;
use crate::ops::precision::{LossScaler, ProductInputs};

/// Which patch tokens the MIM head runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MimRows {
    /// Every patch (HF's output: logits (B, N, V)); the loss still counts masked patches only.
    All,
    /// Only the `m` masked patches (the official code's way, and the cheap one for training).
    Masked(u32),
}

/// What a graph is built for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphOptions {
    pub batch: u32,
    pub mim_rows: MimRows,
    /// Drop path active (training) with this first seed (change it per step with `set_drop_path_seed`);
    /// `None` evaluates the network deterministically.
    pub drop_path_seed: Option<u64>,
    /// Label smoothing of the classification loss.
    pub label_smoothing: f32,
    /// Whether each block keeps its layer norm and GELU outputs for the backward (`Some(true)`) or computes
    /// them again there from what it keeps anyway (`Some(false)`: three more launches per block, two (B·T, C)
    /// and one (B·T, I) buffer less per block). `None`: keep them on software adapters, whose memory is the
    /// host's and whose launches are slow, recompute on GPUs.
    pub keep_block_outputs: Option<bool>,
    /// Mixed precision: the linear layers' products read f16 operands as this says, and the loss gradient is
    /// multiplied by the graph's dynamic loss scale ([`BeitGraph::loss_scaler`], divided out again by AdamW).
    /// `None`: f32 throughout. Pretraining and classification graphs only.
    pub mixed: Option<ProductInputs>,
    /// Whether the attention core runs fused (`ops::attention_fused`: each block keeps O and a log-sum-exp per
    /// row instead of its (B, H, T, T) probabilities, which the backward computes again; the graph then has no
    /// `attentions` to read) or keeps the probabilities (`Some(false)`, needed by whoever reads them).
    /// `None`: fused on native GPUs where the head fits (at most 64 dimensions) and the tuner did not measure
    /// the composed core more than 5% faster (`ops::attention_fused::tuned`), kept on software adapters
    /// (whose one-launch kernels keep them; the fused kernel's barriers are slow there) and in the browser;
    /// `BEITLAB_ATTENTION=fused|composed` overrides `None` (measuring).
    pub fused_attention: Option<bool>,
}

/// The network for one batch: inputs to fill, outputs to read, and the dispatch lists.
pub struct BeitGraph {
    pub cfg: BeitConfig,
    pub opts: GraphOptions,
    /// Inputs, written by the caller before a submit.
    pub pixels: GpuSlice,
    pub mask: GpuSlice,
    /// Row index (into logits) and target of every example the loss counts.
    pub ce_rows: GpuSlice,
    pub labels: GpuSlice,
    /// `hidden[k]`: input of block k (k = 0 embeddings), `hidden[L]` output of the last block; (B·T, C).
    pub hidden: Vec<GpuSlice>,
    /// Attention probabilities of every block, (B, H, T, T); empty where the attention runs fused.
    pub attentions: Vec<GpuSlice>,
    pub logits: GpuSlice,
    /// (Σ loss, Σ correct) over the counted examples after the forward; see [`BeitGraph::metrics`].
    pub stats: GpuSlice,
    /// Gradients, laid out like the parameters.
    pub grads: FlatBuffer,
    pub forward: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
    /// Rows of the logits matrix.
    pub logit_rows: u32,
    /// Most examples the loss can count (logit rows for MIM, the batch for classification).
    pub ce_cap: u32,
    ce_fwd_params: GpuSlice,
    ce_bwd_params: GpuSlice,
    smoothing: f32,
    counted: std::cell::Cell<u32>,
    drop_uniforms: Vec<(GpuSlice, DropPathParams)>,
    /// Patch rows the pixel-regression loss targets (masked patches, then padding), written per batch.
    pixel_target_rows: Option<GpuSlice>,
    /// The token rows the MIM head reads (every patch, or the masked ones written with each batch).
    head_rows: Option<GpuSlice>,
    /// Segmentation: the per-pixel loss (its scale set per batch).
    pixel_loss: Option<crate::ops::pixel_loss::PixelLoss>,
    /// Mixed precision: the dynamic loss scale the backward multiplies the loss gradient by.
    pub loss_scaler: Option<LossScaler>,
}

impl BeitGraph {
    /// Allocate every buffer and build both passes for `params` (laid out by `table`).
    pub fn new(
        ctx: &GpuContext,
        cfg: &BeitConfig,
        table: &ParamTable,
        params: &FlatBuffer,
        opts: GraphOptions,
    ) -> Result<Self, ModelError> {
        let mut g = builder::Builder::new(ctx, cfg, table, params, opts)?;
        let d = g.dims;
        // Inputs, written by the caller before each submit.
        let pixels = g.buf(
            "pixel_values",
            d.b as u64 * (cfg.num_channels * cfg.image_size * cfg.image_size) as u64,
        );
        let mask = g.buf("bool_masked_pos", d.b as u64 * d.n as u64);

        // ---- Forward: embeddings, blocks, head, loss.
        let emb = g.embeddings_forward(&pixels, &mask)?;
        let shared = g.block_shared();
        let mut hidden = vec![emb.x0.clone()];
        let mut acts = Vec::new();
        for li in 0..d.layers {
            let (a, x_out) = g.block_forward(&shared, li, &hidden[li as usize])?;
            hidden.push(x_out);
            acts.push(a);
        }
        if cfg.architecture() == Architecture::SemanticSegmentation {
            return Self::finish_segmentation(
                ctx,
                cfg,
                opts,
                g,
                (&emb, &shared),
                &mask,
                pixels,
                hidden,
                acts,
            );
        }
        let head = g.head_forward(&emb, &hidden[d.layers as usize])?;
        let loss = g.loss_forward(&emb, &head)?;

        // ---- Backward, in exact reverse, accumulating into gradients zeroed first.
        g.zero_gradients()?;
        if loss.cap > 0 {
            // `dx` holds d hidden[l] as the backward walks down.
            let dx = g.buf("d hidden", d.btc());
            g.loss_and_head_backward(&emb, &head, &loss, &dx)?;
            let scratch = g.block_scratch(&shared);
            for li in (0..d.layers).rev() {
                let (a, x_in) = (&acts[li as usize], &hidden[li as usize]);
                g.block_backward(&shared, &scratch, li, a, x_in, &dx)?;
            }
            g.embeddings_backward(&emb, &mask, &dx)?;
        }

        // Head rows of the MIM head: every patch, or the masked ones once the mask is known (write_batch).
        let head_rows = head.mim_rows();
        if let (Some(rows), MimRows::All) = (&head_rows, opts.mim_rows) {
            let all: Vec<u32> = (0..d.b)
                .flat_map(|bi| (0..d.n).map(move |ni| bi * d.t + 1 + ni))
                .collect();
            rows.write(ctx, &all);
        }
        Ok(Self {
            cfg: cfg.clone(),
            opts,
            pixels,
            mask,
            ce_rows: loss.ce_rows,
            labels: loss.labels,
            hidden,
            attentions: acts
                .iter()
                .filter_map(|a| a.attention.probs().cloned())
                .collect(),
            logits: head.logits,
            stats: loss.stats,
            grads: g.grads,
            forward: g.fwd,
            backward: g.bwd,
            logit_rows: head.rows,
            head_rows,
            ce_cap: loss.cap,
            ce_fwd_params: loss.fwd_params,
            ce_bwd_params: loss.bwd_params,
            smoothing: loss.smoothing,
            counted: std::cell::Cell::new(0),
            drop_uniforms: g.drop_uniforms,
            pixel_target_rows: loss.pixel_target.map(|(rows, _)| rows),
            pixel_loss: None,
            loss_scaler: g.scaler,
        })
    }

    /// The rest of a segmentation graph after the blocks' forward: the dense head and per-pixel loss, then the
    /// whole backward (the head's feature gradients joining the blocks' where the head read them).
    #[allow(clippy::too_many_arguments)]
    fn finish_segmentation(
        ctx: &GpuContext,
        cfg: &BeitConfig,
        opts: GraphOptions,
        mut g: builder::Builder<'_>,
        (emb, shared): (&embed::Embedding, &block::BlockShared),
        mask: &GpuSlice,
        pixels: GpuSlice,
        hidden: Vec<GpuSlice>,
        acts: Vec<block::BlockActs>,
    ) -> Result<Self, ModelError> {
        let d = g.dims;
        let seg = g.segment_forward(&hidden)?;
        g.zero_gradients()?;
        let dx = g.buf("d hidden", d.btc());
        let dmaps = g.segment_backward(&seg, &hidden, &dx)?;
        let scratch = g.block_scratch(shared);
        for li in (0..d.layers).rev() {
            g.segment_inject(&dx, &dmaps, li + 1)?;
            let (a, x_in) = (&acts[li as usize], &hidden[li as usize]);
            g.block_backward(shared, &scratch, li, a, x_in, &dx)?;
        }
        g.embeddings_backward(emb, mask, &dx)?;
        let unused = |label| GpuSlice::uniform(ctx, label, &CrossEntropyParams::default());
        Ok(Self {
            cfg: cfg.clone(),
            opts,
            pixels,
            mask: mask.clone(),
            ce_rows: GpuSlice::new(ctx, "loss rows (unused)", 1),
            labels: seg.labels.clone(),
            hidden,
            attentions: acts
                .iter()
                .filter_map(|a| a.attention.probs().cloned())
                .collect(),
            logits: seg.logits.clone(),
            stats: seg.stats.clone(),
            grads: g.grads,
            forward: g.fwd,
            backward: g.bwd,
            logit_rows: d.b,
            head_rows: None,
            ce_cap: 0,
            ce_fwd_params: unused("CrossEntropyParams (unused)"),
            ce_bwd_params: unused("CrossEntropyParams (unused)"),
            smoothing: 0.0,
            counted: std::cell::Cell::new(0),
            drop_uniforms: g.drop_uniforms,
            pixel_target_rows: None,
            pixel_loss: Some(seg.loss),
            loss_scaler: None,
        })
    }

    /// A new drop-path seed for the next step (queue writes into the graph's uniforms; no new buffers).
    pub fn set_drop_path_seed(&self, ctx: &GpuContext, seed: u64) {
        for (u, p) in &self.drop_uniforms {
            let params = DropPathParams {
                seed_lo: seed as u32,
                seed_hi: (seed >> 32) as u32,
                ..*p
            };
            ctx.queue
                .write_buffer(&u.buffer, 0, bytemuck::bytes_of(&params));
        }
    }

    /// The drop-path seed of training step `step` of a run seeded with `seed` (a new pattern every step).
    pub fn set_drop_path_step(&self, ctx: &GpuContext, seed: u64, step: u32) {
        self.set_drop_path_seed(
            ctx,
            seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
    }

    /// Examples the loss counts in the batch last written.
    pub fn counted(&self) -> u32 {
        self.counted.get()
    }

    /// (mean loss, top-1 accuracy) from the raw `stats` buffer (sums over the counted examples).
    pub fn metrics(&self, raw_stats: &[f32]) -> (f32, f32) {
        // Segmentation: the per-pixel loss already averaged over the counted pixels.
        if self.pixel_loss.is_some() {
            return (raw_stats[0], raw_stats[1]);
        }
        // Pixel regression: mean squared error per value (no accuracy).
        let per = if self.pixel_target_rows.is_some() {
            self.cfg.patch_dim() as f32
        } else {
            1.0
        };
        let m = self.counted.get().max(1) as f32;
        (
            raw_stats[0] / (m * per),
            if per > 1.0 { 0.0 } else { raw_stats[1] / m },
        )
    }

    /// Write a batch: pixels (B·Cin·H·W), mask (B·N, 1 = masked) and labels (MIM: one per masked patch in
    /// batch-major, row-major order; classification: one per image). Checks every size against the graph.
    pub fn write_batch(
        &self,
        ctx: &GpuContext,
        pixels: &[f32],
        mask: Option<&[u8]>,
        labels: Option<&[u32]>,
    ) -> Result<(), ModelError> {
        let cfg = &self.cfg;
        let (b, n) = (self.opts.batch as usize, cfg.patches() as usize);
        let want_pixels = b * (cfg.num_channels * cfg.image_size * cfg.image_size) as usize;
        if pixels.len() != want_pixels {
            return Err(ModelError::Input(format!(
                "pixel_values holds {} values but the model expects {b} x {} x {} x {}",
                pixels.len(),
                cfg.num_channels,
                cfg.image_size,
                cfg.image_size
            )));
        }
        self.pixels.write(ctx, pixels);
        let mask_u32: Vec<u32> = match mask {
            Some(m) if m.len() != b * n => {
                return Err(ModelError::Input(format!(
                    "bool_masked_pos holds {} values but the model expects {b} x {n}",
                    m.len()
                )))
            }
            Some(m) => m.iter().map(|&v| (v != 0) as u32).collect(),
            None => vec![0; b * n],
        };
        self.mask.write(ctx, &mask_u32);
        let masked: Vec<u32> = (0..(b * n) as u32)
            .filter(|&i| mask_u32[i as usize] != 0)
            .collect();
        match cfg.architecture() {
            Architecture::MaskedImageModeling => {
                if let MimRows::Masked(cap) = self.opts.mim_rows {
                    if masked.len() > cap as usize {
                        return Err(ModelError::Input(format!(
                            "the mask has {} masked patches but the head was built for at most {cap}",
                            masked.len()
                        )));
                    }
                }
                let mut counted = 0;
                if let Some(lab) = labels {
                    if lab.len() != masked.len() {
                        return Err(ModelError::Input(format!(
                            "labels holds {} values but {} patches are masked",
                            lab.len(),
                            masked.len()
                        )));
                    }
                    if let Some(&bad) = lab.iter().find(|&&v| v >= cfg.vocab_size) {
                        return Err(ModelError::Input(format!(
                            "label {bad} is outside the vocabulary of {}",
                            cfg.vocab_size
                        )));
                    }
                    self.labels.write(ctx, lab);
                    let rows: Vec<u32> = match self.opts.mim_rows {
                        MimRows::All => masked.clone(),
                        MimRows::Masked(_) => (0..masked.len() as u32).collect(),
                    };
                    self.ce_rows.write(ctx, &rows);
                    counted = masked.len() as u32;
                }
                if let MimRows::Masked(cap) = self.opts.mim_rows {
                    let t = cfg.tokens();
                    // Masked patches first, then one dummy row each for the unused capacity.
                    let dummy = b as u32 * t;
                    let head_rows: Vec<u32> = masked
                        .iter()
                        .map(|&i| (i / n as u32) * t + 1 + i % n as u32)
                        .chain((masked.len() as u32..cap).map(|j| dummy + j))
                        .collect();
                    self.mim_head_rows()?.write(ctx, &head_rows);
                }
                if let Some(rows) = &self.pixel_target_rows {
                    // The loss counts every masked patch; no labels needed.
                    let mut r = masked.clone();
                    r.resize(self.ce_cap as usize, 0);
                    rows.write(ctx, &r);
                    counted = masked.len() as u32;
                }
                self.set_counted(ctx, counted);
            }
            Architecture::SemanticSegmentation => self.write_pixel_labels(ctx, labels)?,
            Architecture::ImageClassification => {
                if let Some(lab) = labels {
                    if lab.len() != b {
                        return Err(ModelError::Input(format!(
                            "labels holds {} values but the batch has {b} images",
                            lab.len()
                        )));
                    }
                    if let Some(&bad) = lab.iter().find(|&&v| v >= cfg.labels()) {
                        return Err(ModelError::Input(format!(
                            "label {bad} is outside the {} classes",
                            cfg.labels()
                        )));
                    }
                    self.labels.write(ctx, lab);
                    self.ce_rows.write(ctx, &(0..b as u32).collect::<Vec<_>>());
                }
                self.set_counted(ctx, if labels.is_some() { b as u32 } else { 0 });
            }
        }
        Ok(())
    }

    /// For MIM labels produced on the GPU (the tokenizer's tokens gathered into `labels` by a dispatch of the
    /// same step): the loss counts the `m` masked patches of the batch last written.
    pub fn use_device_labels(&self, ctx: &GpuContext, m: u32) -> Result<(), ModelError> {
        if m > self.ce_cap {
            return Err(ModelError::Input(format!(
                "{m} labels exceed the head's capacity of {}",
                self.ce_cap
            )));
        }
        if self.opts.mim_rows == MimRows::All {
            return Err(ModelError::Input(
                "device labels need a head on masked rows (MimRows::Masked)".into(),
            ));
        }
        self.ce_rows.write(ctx, &(0..m).collect::<Vec<u32>>());
        self.set_counted(ctx, m);
        Ok(())
    }

    /// Segmentation labels: one class per pixel (B, H, W), `IGNORE` for pixels that count for nothing; none
    /// (inference) counts no pixel. The loss becomes the mean over the counted pixels.
    fn write_pixel_labels(
        &self,
        ctx: &GpuContext,
        labels: Option<&[u32]>,
    ) -> Result<(), ModelError> {
        use crate::ops::pixel_loss::{set_scale, IGNORE};
        let cfg = &self.cfg;
        let want = self.opts.batch as usize * (cfg.image_size as usize).pow(2);
        let ignored;
        let lab = match labels {
            Some(l) => l,
            None => {
                ignored = vec![IGNORE; want];
                &ignored
            }
        };
        if lab.len() != want {
            return Err(ModelError::Input(format!(
                "the label maps hold {} values but the model expects {} x {} x {}",
                lab.len(),
                self.opts.batch,
                cfg.image_size,
                cfg.image_size
            )));
        }
        if let Some(&bad) = lab.iter().find(|&&v| v >= cfg.labels() && v != IGNORE) {
            return Err(ModelError::Input(format!(
                "pixel label {bad} is outside the {} classes",
                cfg.labels()
            )));
        }
        self.labels.write(ctx, lab);
        let counted = lab.iter().filter(|&&v| v != IGNORE).count() as u32;
        self.counted.set(counted);
        if let Some(loss) = &self.pixel_loss {
            set_scale(ctx, loss, 1.0 / counted.max(1) as f32);
        }
        Ok(())
    }

    /// Tell the loss how many examples this batch has (0: no loss).
    fn set_counted(&self, ctx: &GpuContext, m: u32) {
        self.counted.set(m);
        let vocab = match self.cfg.architecture() {
            Architecture::MaskedImageModeling => super::params::mim_head(&self.cfg).1 as u32,
            Architecture::ImageClassification | Architecture::SemanticSegmentation => {
                self.cfg.labels()
            }
        };
        let fwd = CrossEntropyParams {
            m,
            vocab,
            smoothing: self.smoothing,
            scale: 1.0,
        };
        // A mean over examples (cross-entropy), or over every regressed value (pixels).
        let per = if self.pixel_target_rows.is_some() {
            vocab
        } else {
            1
        };
        let bwd = CrossEntropyParams {
            scale: 1.0 / (m.max(1) * per) as f32,
            ..fwd
        };
        ctx.queue
            .write_buffer(&self.ce_fwd_params.buffer, 0, bytemuck::bytes_of(&fwd));
        ctx.queue
            .write_buffer(&self.ce_bwd_params.buffer, 0, bytemuck::bytes_of(&bwd));
    }

    fn mim_head_rows(&self) -> Result<GpuSlice, ModelError> {
        self.head_rows
            .clone()
            .ok_or_else(|| ModelError::Input("this graph has no MIM head".into()))
    }
}
