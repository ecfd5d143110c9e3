//! The graph's top: the final norm as HF places it (on the sequence without mean pooling), the head (masked
//! image modeling on every patch or the masked ones; classification by mean pooling or CLS), the loss
//! (cross-entropy with label smoothing, or the mean squared error of pixel regression), and their backward down
//! to d hidden[L]. Shapes: head input (R, C), logits (R, V) with R = B·N, M masked rows, or B.

use super::builder::Builder;
use super::embed::Embedding;
use super::MimRows;
use crate::gpu::GpuSlice;
use crate::model::config::Architecture;
use crate::model::error::ModelError;
use crate::model::params;
use crate::ops::crossentropy::{self, CrossEntropyOut, CrossEntropyParams};
use crate::ops::{elementwise, layernorm, matmul, precision, tokens};

/// A row normalisation's outputs.
struct NormActs {
    y: GpuSlice,
    mean: GpuSlice,
    rstd: GpuSlice,
}

/// The head that ran, with what its backward needs.
enum Head {
    Mim { z: NormActs, rows: GpuSlice },
    MeanPool { pooled: GpuSlice, pn: NormActs },
    Cls { rows: GpuSlice },
}

/// The head's forward: logits and what the backward reads.
pub(super) struct HeadOut {
    /// Output of the last block, (B·T, C).
    last: GpuSlice,
    backbone_norm: Option<NormActs>,
    /// The sequence output the head reads (normed or not).
    seq: GpuSlice,
    head_in: GpuSlice,
    head: Head,
    /// (rows, width) of the logits.
    pub rows: u32,
    pub width: u32,
    pub logits: GpuSlice,
}

impl HeadOut {
    /// The token rows the MIM head reads, `None` for classification.
    pub fn mim_rows(&self) -> Option<GpuSlice> {
        match &self.head {
            Head::Mim { rows, .. } => Some(rows.clone()),
            _ => None,
        }
    }
}

/// The loss's buffers and uniforms: inputs written per batch, the forward's per-row values and the (Σ loss,
/// Σ correct) statistics.
pub(super) struct Loss {
    /// Row index into the logits and target of every counted example (the caller writes them).
    pub ce_rows: GpuSlice,
    pub labels: GpuSlice,
    /// Most examples the loss counts.
    pub cap: u32,
    pub stats: GpuSlice,
    pub fwd_params: GpuSlice,
    pub bwd_params: GpuSlice,
    pub smoothing: f32,
    lse: GpuSlice,
    /// Pixel regression: (target rows written per batch, gathered targets).
    pub pixel_target: Option<(GpuSlice, GpuSlice)>,
}

impl Builder<'_> {
    /// A layer norm over `rows` rows of `x` with parameters `prefix.weight` / `prefix.bias`.
    fn norm_forward(
        &mut self,
        label: &str,
        x: &GpuSlice,
        prefix: &str,
        rows: u32,
        padded_rows: u32,
    ) -> Result<NormActs, ModelError> {
        let c = self.dims.c;
        let nm = NormActs {
            y: self.buf(label, padded_rows as u64 * c as u64),
            mean: self.buf(label, rows as u64),
            rstd: self.buf(label, rows as u64),
        };
        let p = self.p();
        self.fwd.extend(layernorm::layernorm_forward(
            self.ctx,
            &nm.y,
            &nm.mean,
            &nm.rstd,
            x,
            &p.t(&format!("{prefix}.weight"))?,
            &p.t(&format!("{prefix}.bias"))?,
            rows,
            c,
            self.dims.eps,
        )?);
        Ok(nm)
    }

    /// The final norm and the head on `last` (hidden[L]).
    pub fn head_forward(&mut self, e: &Embedding, last: &GpuSlice) -> Result<HeadOut, ModelError> {
        let (ctx, cfg, d, p) = (self.ctx, self.cfg, self.dims, self.p());
        let (b, c, bt) = (d.b, d.c, d.bt());
        let (rows_n, width) = match self.arch() {
            Architecture::MaskedImageModeling => {
                if cfg.predicts_pixels() && self.opts.mim_rows == MimRows::All {
                    return Err(ModelError::Input(
                        "a pixel-regression head runs on masked rows only (MimRows::Masked)".into(),
                    ));
                }
                let rows = match self.opts.mim_rows {
                    MimRows::All => b * d.n,
                    MimRows::Masked(cap) => cap,
                };
                (rows, params::mim_head(cfg).1 as u32)
            }
            Architecture::ImageClassification => (b, cfg.labels()),
            Architecture::SemanticSegmentation => {
                return Err(ModelError::Config(
                    "a segmentation model's head is the dense head (segment.rs), not this one"
                        .into(),
                ))
            }
        };
        let backbone_norm = if cfg.use_mean_pooling {
            None
        } else {
            Some(self.norm_forward("beit.layernorm", last, "beit.layernorm", bt, bt)?)
        };
        let seq = backbone_norm
            .as_ref()
            .map_or(last.clone(), |nm| nm.y.clone());
        let logits = self.buf("logits", rows_n as u64 * width as u64);
        let head_in = self.buf("head input", rows_n as u64 * c as u64);
        let head = match self.arch() {
            Architecture::MaskedImageModeling => {
                // With a head on masked rows only, rows past the batch's count point at dummy rows after the
                // B·T token rows (one each, never normalised, never read back).
                let pad = if matches!(self.opts.mim_rows, MimRows::Masked(_)) {
                    rows_n
                } else {
                    0
                };
                let z = self.norm_forward("layernorm", &seq, "layernorm", bt, bt + pad)?;
                let rows = self.buf("head rows", rows_n as u64);
                let name = params::mim_head(cfg).0;
                self.fwd.extend(tokens::gather_rows(
                    ctx, &head_in, &z.y, &rows, rows_n, c, false,
                )?);
                self.fwd.extend(matmul::linear_forward_as(
                    self.products,
                    ctx,
                    &logits,
                    &head_in,
                    &p.t(&format!("{name}.weight"))?,
                    Some(&p.t(&format!("{name}.bias"))?),
                    rows_n,
                    width,
                    c,
                )?);
                Head::Mim { z, rows }
            }
            Architecture::ImageClassification if cfg.use_mean_pooling => {
                let pooled = self.buf("pooled", b as u64 * c as u64);
                self.fwd
                    .extend(tokens::mean_patches(ctx, &pooled, last, e.shape)?);
                let pn = self.norm_forward(
                    "beit.pooler.layernorm",
                    &pooled,
                    "beit.pooler.layernorm",
                    b,
                    b,
                )?;
                self.fwd.extend(matmul::linear_forward_as(
                    self.products,
                    ctx,
                    &logits,
                    &pn.y,
                    &p.t("classifier.weight")?,
                    Some(&p.t("classifier.bias")?),
                    b,
                    width,
                    c,
                )?);
                Head::MeanPool { pooled, pn }
            }
            Architecture::ImageClassification | Architecture::SemanticSegmentation => {
                let cls: Vec<u32> = (0..b).map(|i| i * d.t).collect();
                let rows = GpuSlice::from_slice(ctx, "CLS rows", &cls);
                self.fwd.extend(tokens::gather_rows(
                    ctx, &head_in, &seq, &rows, b, c, false,
                )?);
                self.fwd.extend(matmul::linear_forward_as(
                    self.products,
                    ctx,
                    &logits,
                    &head_in,
                    &p.t("classifier.weight")?,
                    Some(&p.t("classifier.bias")?),
                    b,
                    width,
                    c,
                )?);
                Head::Cls { rows }
            }
        };
        Ok(HeadOut {
            last: last.clone(),
            backbone_norm,
            seq,
            head_in,
            head,
            rows: rows_n,
            width,
            logits,
        })
    }

    /// The loss on the head's logits: cross-entropy over the counted rows, or pixel regression against the
    /// masked patches of `e`.
    pub fn loss_forward(&mut self, e: &Embedding, h: &HeadOut) -> Result<Loss, ModelError> {
        let ctx = self.ctx;
        let cap = h.rows;
        let smoothing = if self.arch() == Architecture::ImageClassification {
            self.opts.label_smoothing
        } else {
            0.0
        };
        // The loss counts this many rows, written with each batch (`write_batch`).
        let params = |m: u32, scale: f32| CrossEntropyParams {
            m,
            vocab: h.width,
            smoothing,
            scale,
        };
        let loss = Loss {
            ce_rows: self.buf("loss rows", cap as u64),
            labels: self.buf("labels", cap as u64),
            cap,
            stats: self.buf("loss and accuracy", 2),
            fwd_params: GpuSlice::uniform(ctx, "CrossEntropyParams", &params(0, 1.0)),
            bwd_params: GpuSlice::uniform(ctx, "CrossEntropyParams", &params(0, 0.0)),
            smoothing,
            lse: self.buf("lse", cap as u64),
            pixel_target: None,
        };
        let loss_rows = self.buf("loss per row", cap as u64);
        let pixels_head =
            self.arch() == Architecture::MaskedImageModeling && self.cfg.predicts_pixels();
        if pixels_head {
            // Pixel regression: the target rows are the masked patches' normalised pixels.
            let rows = self.buf("pixel target rows", cap as u64);
            let target = self.buf("pixel targets", cap as u64 * h.width as u64);
            self.fwd.extend(tokens::gather_rows(
                ctx, &target, &e.patches, &rows, cap, h.width, false,
            )?);
            self.fwd.extend(crossentropy::mse_forward_with(
                ctx,
                &loss_rows,
                Some(&loss.stats),
                &h.logits,
                &target,
                &loss.fwd_params,
                cap,
                h.width,
            )?);
            return Ok(Loss {
                pixel_target: Some((rows, target)),
                ..loss
            });
        }
        if cap > 0 {
            let correct = self.buf("correct", cap as u64);
            let out = CrossEntropyOut {
                loss: &loss_rows,
                correct: &correct,
                lse: &loss.lse,
                stats: Some(&loss.stats),
            };
            self.fwd.extend(crossentropy::ce_forward_with(
                ctx,
                out,
                &h.logits,
                h.rows,
                &loss.ce_rows,
                &loss.labels,
                &loss.fwd_params,
                cap,
                h.width,
            )?);
        }
        Ok(loss)
    }

    /// The loss's and the head's backward: writes d hidden[L] into `dx`.
    pub fn loss_and_head_backward(
        &mut self,
        e: &Embedding,
        h: &HeadOut,
        loss: &Loss,
        dx: &GpuSlice,
    ) -> Result<(), ModelError> {
        let (ctx, cfg, d, p) = (self.ctx, self.cfg, self.dims, self.p());
        let (b, c, bt, btc) = (d.b, d.c, d.bt(), d.btc());
        let (rows_n, width) = (h.rows, h.width);
        let dlogits = self.buf("d logits", rows_n as u64 * width as u64);
        let dhead_in = self.buf("d head input", rows_n as u64 * c as u64);
        let dseq = self.buf("d sequence output", btc);
        let gr = self.gr();
        // Rows the loss does not count (unselected patches, padding) get no gradient.
        let mut v = elementwise::fill(ctx, &dlogits, rows_n * width, 0.0)?;
        match &loss.pixel_target {
            Some((_, target)) => v.extend(crossentropy::mse_backward_with(
                ctx,
                &dlogits,
                &h.logits,
                target,
                &loss.bwd_params,
                loss.cap,
                width,
            )?),
            None => v.extend(crossentropy::ce_backward_with(
                ctx,
                &dlogits,
                &h.logits,
                rows_n,
                &loss.lse,
                &loss.ce_rows,
                &loss.labels,
                &loss.bwd_params,
                loss.cap,
                width,
            )?),
        }
        if let Some(scaler) = &self.scaler {
            v.extend(precision::scale_loss(
                ctx,
                &dlogits,
                scaler,
                rows_n * width,
            )?);
        }
        let products = self.products;
        let classifier = |v: &mut Vec<_>, x: &GpuSlice| -> Result<(), ModelError> {
            v.extend(matmul::linear_backward_as(
                products,
                ctx,
                Some(&dhead_in),
                &gr.t("classifier.weight")?,
                Some(&gr.t("classifier.bias")?),
                &dlogits,
                x,
                &p.t("classifier.weight")?,
                b,
                width,
                c,
                false,
            )?);
            Ok(())
        };
        match &h.head {
            Head::Mim { z, rows } => {
                let name = params::mim_head(cfg).0;
                v.extend(matmul::linear_backward_as(
                    products,
                    ctx,
                    Some(&dhead_in),
                    &gr.t(&format!("{name}.weight"))?,
                    Some(&gr.t(&format!("{name}.bias"))?),
                    &dlogits,
                    &h.head_in,
                    &p.t(&format!("{name}.weight"))?,
                    rows_n,
                    width,
                    c,
                    false,
                )?);
                let dz = self.buf("d layernorm output", z.y.len);
                v.extend(elementwise::fill(ctx, &dz, z.y.len as u32, 0.0)?);
                v.extend(tokens::scatter_rows(
                    ctx, &dz, &dhead_in, rows, rows_n, c, false,
                )?);
                v.extend(layernorm::layernorm_backward(
                    ctx,
                    &dseq,
                    &gr.t("layernorm.weight")?,
                    &gr.t("layernorm.bias")?,
                    &dz,
                    &h.seq,
                    &z.mean,
                    &z.rstd,
                    &p.t("layernorm.weight")?,
                    bt,
                    c,
                    false,
                )?);
            }
            Head::MeanPool { pooled, pn } => {
                classifier(&mut v, &pn.y)?;
                let dpooled = self.buf("d pooled", b as u64 * c as u64);
                v.extend(layernorm::layernorm_backward(
                    ctx,
                    &dpooled,
                    &gr.t("beit.pooler.layernorm.weight")?,
                    &gr.t("beit.pooler.layernorm.bias")?,
                    &dhead_in,
                    pooled,
                    &pn.mean,
                    &pn.rstd,
                    &p.t("beit.pooler.layernorm.weight")?,
                    b,
                    c,
                    false,
                )?);
                v.extend(tokens::mean_patches_backward(
                    ctx, &dseq, &dpooled, e.shape, false,
                )?);
            }
            Head::Cls { rows } => {
                classifier(&mut v, &h.head_in)?;
                v.extend(elementwise::fill(ctx, &dseq, btc as u32, 0.0)?);
                v.extend(tokens::scatter_rows(
                    ctx, &dseq, &dhead_in, rows, b, c, false,
                )?);
            }
        }
        match &h.backbone_norm {
            Some(nm) => v.extend(layernorm::layernorm_backward(
                ctx,
                dx,
                &gr.t("beit.layernorm.weight")?,
                &gr.t("beit.layernorm.bias")?,
                &dseq,
                &h.last,
                &nm.mean,
                &nm.rstd,
                &p.t("beit.layernorm.weight")?,
                bt,
                c,
                false,
            )?),
            None => v.extend(elementwise::copy(ctx, dx, &dseq, btc as u32, false)?),
        }
        self.bwd.extend(v);
        Ok(())
    }
}
