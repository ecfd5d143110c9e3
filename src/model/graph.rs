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

use super::config::{Architecture, BeitConfig};
use super::error::ModelError;
use super::params::ParamTable;
use crate::cpu::attention::{relative_position_index, RelposInverse};
use crate::gpu::{Dispatch, FlatBuffer, GpuContext, GpuSlice};
use crate::ops::attention::{self, AttentionShape, HeadView, RelposScatterIndex};
use crate::ops::crossentropy::{self, CrossEntropyOut, CrossEntropyParams};
use crate::ops::droppath::DropPathParams;
use crate::ops::patches::{self, PatchShape};
use crate::ops::tokens::{self, TokenShape};
use crate::ops::{droppath, elementwise, gelu, layernorm, matmul};

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
}

/// Activations of one block that the backward reads.
struct BlockActs {
    ln1: GpuSlice,
    mean1: GpuSlice,
    rstd1: GpuSlice,
    qkv: GpuSlice,
    bias: Option<GpuSlice>,
    probs: GpuSlice,
    ctx: GpuSlice,
    ao: GpuSlice,
    xmid: GpuSlice,
    ln2: GpuSlice,
    mean2: GpuSlice,
    rstd2: GpuSlice,
    h: GpuSlice,
    g: GpuSlice,
    f: GpuSlice,
}

/// A row-normalisation's outputs.
struct NormActs {
    y: GpuSlice,
    mean: GpuSlice,
    rstd: GpuSlice,
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
    /// Attention probabilities of every block, (B, H, T, T).
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
}

fn buf(ctx: &GpuContext, label: &str, n: u64) -> GpuSlice {
    GpuSlice::new(ctx, label, n.max(1))
}

/// Parameter (or gradient) tensors by name, and runs of packed tensors as one slice.
struct Named<'a> {
    buf: &'a FlatBuffer,
}

impl Named<'_> {
    fn t(&self, name: &str) -> Result<GpuSlice, ModelError> {
        Ok(self.buf.get(name)?)
    }
    /// `count` elements starting at tensor `first` (a packed run such as q, k, v weights).
    fn run(&self, first: &str, count: u64) -> Result<GpuSlice, ModelError> {
        let e = self
            .buf
            .layout
            .find(first)
            .ok_or_else(|| ModelError::Checkpoint(format!("tensor {first} is missing")))?;
        Ok(self.buf.whole.sub(e.offset, count))
    }
    fn opt(&self, name: &str) -> Option<GpuSlice> {
        self.buf.get(name).ok()
    }
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
        cfg.validate()?;
        let b = opts.batch;
        if b == 0 {
            return Err(ModelError::Input("batch size must be positive".into()));
        }
        let (c, heads, t, n, inter) = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.tokens(),
            cfg.patches(),
            cfg.intermediate_size,
        );
        let d = cfg.head_dim();
        let l_count = cfg.num_hidden_layers;
        let bt = b * t;
        let (btc, bti) = (bt as u64 * c as u64, bt as u64 * inter as u64);
        let eps = cfg.layer_norm_eps as f32;
        let p = Named { buf: params };
        let grads = FlatBuffer::new(ctx, "gradients", table.layout.clone());
        let gr = Named { buf: &grads };
        let arch = cfg.architecture();
        let pixels_head = arch == Architecture::MaskedImageModeling && cfg.predicts_pixels();
        let mim_head = super::params::mim_head(cfg).0;

        // Inputs.
        let ps = PatchShape {
            batch: b,
            channels: cfg.num_channels,
            height: cfg.image_size,
            width: cfg.image_size,
            patch: cfg.patch_size,
        };
        let pixels = buf(ctx, "pixel_values", ps.elements());
        let mask = buf(ctx, "bool_masked_pos", b as u64 * n as u64);
        let (logit_rows, ce_count, head_width) = match arch {
            Architecture::MaskedImageModeling => {
                // The loss counts at most every patch (All) or the head's capacity (Masked).
                let rows = match opts.mim_rows {
                    MimRows::All => b * n,
                    MimRows::Masked(cap) => cap,
                };
                if cfg.predicts_pixels() && opts.mim_rows == MimRows::All {
                    return Err(ModelError::Input(
                        "a pixel-regression head runs on masked rows only (MimRows::Masked)".into(),
                    ));
                }
                (rows, rows, super::params::mim_head(cfg).1 as u32)
            }
            Architecture::ImageClassification => (b, b, cfg.labels()),
        };
        let ce_rows = buf(ctx, "loss rows", ce_count as u64);
        let labels = buf(ctx, "labels", ce_count as u64);

        let mut fwd: Vec<Dispatch> = Vec::new();
        let mut bwd: Vec<Dispatch> = Vec::new();

        // ---- Embeddings: patches -> linear -> [mask token] -> CLS -> [positions].
        let patch_rows = b * n;
        let patches_buf = buf(ctx, "patches", ps.elements());
        let emb = buf(ctx, "patch embeddings", patch_rows as u64 * c as u64);
        fwd.extend(patches::patchify(ctx, &patches_buf, &pixels, ps)?);
        let (pe_w, pe_b) = (
            p.t("beit.embeddings.patch_embeddings.projection.weight")?,
            p.t("beit.embeddings.patch_embeddings.projection.bias")?,
        );
        fwd.extend(matmul::linear_forward(
            ctx,
            &emb,
            &patches_buf,
            &pe_w,
            Some(&pe_b),
            patch_rows,
            c,
            cfg.patch_dim(),
        )?);
        let ts = TokenShape {
            batch: b,
            patches: n,
            dim: c,
        };
        let mask_token = if cfg.use_mask_token {
            p.opt("beit.embeddings.mask_token")
        } else {
            None
        };
        let pos = p.opt("beit.embeddings.position_embeddings");
        let cls = p.t("beit.embeddings.cls_token")?;
        let mut hidden = vec![buf(ctx, "hidden_states.0", btc)];
        fwd.extend(tokens::assemble(
            ctx,
            &hidden[0],
            &emb,
            mask_token.as_ref().map(|mt| (&mask, mt)),
            &cls,
            pos.as_ref(),
            ts,
        )?);

        // ---- Relative position bias indices (shared by every table).
        let g = cfg.grid() as usize;
        let (index, table_rows) = relative_position_index(g, g);
        let index_buf = GpuSlice::from_slice(ctx, "relative_position_index", &index);
        let scatter = RelposScatterIndex::upload(ctx, &RelposInverse::new(&index, table_rows));
        let tt = t * t;
        let shared_table = if cfg.use_shared_relative_position_bias {
            Some("beit.encoder.relative_position_bias.relative_position_bias_table".to_string())
        } else {
            None
        };

        // ---- Blocks.
        let shape = AttentionShape {
            batch: b,
            heads,
            tokens: t,
            head_dim: d,
            scale: (d as f32).powf(-0.5),
        };
        let scores = buf(ctx, "attention scores", b as u64 * heads as u64 * tt as u64);
        let views = |i| HeadView::fused_qkv(i, heads, t, d);
        let ctx_view = HeadView::btc(heads, t, d);
        let mut acts: Vec<BlockActs> = Vec::new();
        let keep = |li: u32| -> Option<f32> {
            let rate = if l_count > 1 {
                cfg.drop_path_rate * li as f64 / (l_count - 1) as f64
            } else {
                0.0
            };
            (opts.drop_path_seed.is_some() && rate > 0.0).then_some((1.0 - rate) as f32)
        };
        let seed = opts.drop_path_seed.unwrap_or(0);
        // Every drop-path launch reads a uniform kept here, so a new seed per step is a queue write.
        let drop_uniforms: std::cell::RefCell<Vec<(GpuSlice, DropPathParams)>> = Default::default();
        let drop = |out: &GpuSlice,
                    x: &GpuSlice,
                    kp: f32,
                    stream: u32,
                    accumulate: bool|
         -> Result<Vec<Dispatch>, ModelError> {
            let params = DropPathParams {
                batch: b,
                per_sample: t * c,
                keep_prob: kp,
                flags: accumulate as u32,
                seed_lo: seed as u32,
                seed_hi: (seed >> 32) as u32,
                stream,
                _pad: 0,
            };
            let u = GpuSlice::uniform(ctx, "DropPathParams", &params);
            let d = droppath::drop_path_with(ctx, out, x, &u, &params)?;
            drop_uniforms.borrow_mut().push((u, params));
            Ok(d)
        };
        let tmp_c = buf(ctx, "branch scratch", btc);
        // x_out = x_in + drop_path(λ · branch): the residual update of one branch.
        let residual = |out: &GpuSlice,
                        x_in: &GpuSlice,
                        branch: &GpuSlice,
                        lambda: Option<&GpuSlice>,
                        keep: Option<f32>,
                        stream: u32|
         -> Result<Vec<Dispatch>, ModelError> {
            let mut v = Vec::new();
            match (lambda, keep) {
                (None, None) => {
                    v.extend(elementwise::add(ctx, out, x_in, branch, btc as u32, false)?)
                }
                (Some(lam), None) => {
                    v.extend(elementwise::copy(ctx, out, x_in, btc as u32, false)?);
                    v.extend(elementwise::scale_cols(ctx, out, branch, lam, bt, c, true)?);
                }
                (lam, Some(kp)) => {
                    let scaled = match lam {
                        Some(lam) => {
                            v.extend(elementwise::scale_cols(
                                ctx, &tmp_c, branch, lam, bt, c, false,
                            )?);
                            &tmp_c
                        }
                        None => branch,
                    };
                    v.extend(elementwise::copy(ctx, out, x_in, btc as u32, false)?);
                    v.extend(drop(out, scaled, kp, stream, true)?);
                }
            }
            Ok(v)
        };

        for li in 0..l_count {
            let pre = super::params::block(li);
            let name = |s: &str| format!("{pre}{s}");
            let a = BlockActs {
                ln1: buf(ctx, "ln1", btc),
                mean1: buf(ctx, "mean1", bt as u64),
                rstd1: buf(ctx, "rstd1", bt as u64),
                qkv: buf(ctx, "qkv", 3 * btc),
                bias: None,
                probs: buf(
                    ctx,
                    &format!("attentions.{li}"),
                    b as u64 * heads as u64 * tt as u64,
                ),
                ctx: buf(ctx, "attention context", btc),
                ao: buf(ctx, "attention output", btc),
                xmid: buf(ctx, "residual after attention", btc),
                ln2: buf(ctx, "ln2", btc),
                mean2: buf(ctx, "mean2", bt as u64),
                rstd2: buf(ctx, "rstd2", bt as u64),
                h: buf(ctx, "mlp hidden", bti),
                g: buf(ctx, "mlp gelu", bti),
                f: buf(ctx, "mlp output", btc),
            };
            let x_in = hidden[li as usize].clone();
            let x_out = buf(ctx, &format!("hidden_states.{}", li + 1), btc);
            fwd.extend(layernorm::layernorm_forward(
                ctx,
                &a.ln1,
                &a.mean1,
                &a.rstd1,
                &x_in,
                &p.t(&name("layernorm_before.weight"))?,
                &p.t(&name("layernorm_before.bias"))?,
                bt,
                c,
                eps,
            )?);
            let wqkv = p.run(
                &name("attention.attention.query.weight"),
                3 * c as u64 * c as u64,
            )?;
            let bqkv = p.run(&name("attention.attention.query.bias"), 3 * c as u64)?;
            fwd.extend(matmul::linear_forward(
                ctx,
                &a.qkv,
                &a.ln1,
                &wqkv,
                Some(&bqkv),
                bt,
                3 * c,
                c,
            )?);
            // Relative position bias: the block's own table, the shared one, or both (summed, as HF does).
            let own_table = cfg.use_relative_position_bias.then(|| {
                name("attention.attention.relative_position_bias.relative_position_bias_table")
            });
            let tables: Vec<String> = own_table
                .iter()
                .chain(shared_table.iter())
                .cloned()
                .collect();
            let mut bias = None;
            if !tables.is_empty() {
                let bias_buf = buf(ctx, "relative position bias", heads as u64 * tt as u64);
                fwd.extend(attention::relpos_gather(
                    ctx,
                    &bias_buf,
                    &p.t(&tables[0])?,
                    &index_buf,
                    heads,
                    tt,
                    table_rows as u32,
                )?);
                if tables.len() > 1 {
                    let second = buf(
                        ctx,
                        "shared relative position bias",
                        heads as u64 * tt as u64,
                    );
                    fwd.extend(attention::relpos_gather(
                        ctx,
                        &second,
                        &p.t(&tables[1])?,
                        &index_buf,
                        heads,
                        tt,
                        table_rows as u32,
                    )?);
                    let sum = buf(
                        ctx,
                        "summed relative position bias",
                        heads as u64 * tt as u64,
                    );
                    fwd.extend(elementwise::add(
                        ctx,
                        &sum,
                        &bias_buf,
                        &second,
                        heads * tt,
                        false,
                    )?);
                    bias = Some(sum);
                } else {
                    bias = Some(bias_buf);
                }
            }
            fwd.extend(attention::attention_forward(
                ctx,
                (&a.ctx, ctx_view),
                &a.probs,
                &scores,
                (&a.qkv, views(0)),
                (&a.qkv, views(1)),
                (&a.qkv, views(2)),
                bias.as_ref(),
                shape,
            )?);
            fwd.extend(matmul::linear_forward(
                ctx,
                &a.ao,
                &a.ctx,
                &p.t(&name("attention.output.dense.weight"))?,
                Some(&p.t(&name("attention.output.dense.bias"))?),
                bt,
                c,
                c,
            )?);
            let (lam1, lam2) = (p.opt(&name("lambda_1")), p.opt(&name("lambda_2")));
            fwd.extend(residual(
                &a.xmid,
                &x_in,
                &a.ao,
                lam1.as_ref(),
                keep(li),
                2 * li,
            )?);
            fwd.extend(layernorm::layernorm_forward(
                ctx,
                &a.ln2,
                &a.mean2,
                &a.rstd2,
                &a.xmid,
                &p.t(&name("layernorm_after.weight"))?,
                &p.t(&name("layernorm_after.bias"))?,
                bt,
                c,
                eps,
            )?);
            fwd.extend(matmul::linear_forward(
                ctx,
                &a.h,
                &a.ln2,
                &p.t(&name("intermediate.dense.weight"))?,
                Some(&p.t(&name("intermediate.dense.bias"))?),
                bt,
                inter,
                c,
            )?);
            fwd.extend(gelu::gelu_forward(ctx, &a.g, &a.h, bti as u32)?);
            fwd.extend(matmul::linear_forward(
                ctx,
                &a.f,
                &a.g,
                &p.t(&name("output.dense.weight"))?,
                Some(&p.t(&name("output.dense.bias"))?),
                bt,
                c,
                inter,
            )?);
            fwd.extend(residual(
                &x_out,
                &a.xmid,
                &a.f,
                lam2.as_ref(),
                keep(li),
                2 * li + 1,
            )?);
            hidden.push(x_out);
            acts.push(BlockActs { bias, ..a });
        }

        // ---- Final norm and head.
        let last = hidden[l_count as usize].clone();
        let norm = |label: &str, rows: u32| NormActs {
            y: buf(ctx, label, rows as u64 * c as u64),
            mean: buf(ctx, label, rows as u64),
            rstd: buf(ctx, label, rows as u64),
        };
        let backbone_norm = if !cfg.use_mean_pooling {
            let nm = norm("beit.layernorm", bt);
            fwd.extend(layernorm::layernorm_forward(
                ctx,
                &nm.y,
                &nm.mean,
                &nm.rstd,
                &last,
                &p.t("beit.layernorm.weight")?,
                &p.t("beit.layernorm.bias")?,
                bt,
                c,
                eps,
            )?);
            Some(nm)
        } else {
            None
        };
        let seq = backbone_norm
            .as_ref()
            .map_or(last.clone(), |nm| nm.y.clone());
        let logits = buf(ctx, "logits", logit_rows as u64 * head_width as u64);
        let (loss_rows, correct, lse, stats) = (
            buf(ctx, "loss per row", ce_count as u64),
            buf(ctx, "correct", ce_count as u64),
            buf(ctx, "lse", ce_count as u64),
            buf(ctx, "loss and accuracy", 2),
        );
        let head_in = buf(ctx, "head input", logit_rows as u64 * c as u64);
        // Head forward; remember what the backward needs.
        enum Head {
            Mim { z: NormActs, rows: GpuSlice },
            MeanPool { pooled: GpuSlice, pn: NormActs },
            Cls { rows: GpuSlice },
        }
        let head = match arch {
            Architecture::MaskedImageModeling => {
                // With a head on masked rows only, rows past the batch's count point at dummy rows after the
                // B·T token rows (one each, never normalised, never read back).
                let pad_rows = if matches!(opts.mim_rows, MimRows::Masked(_)) {
                    logit_rows
                } else {
                    0
                };
                let z = NormActs {
                    y: buf(ctx, "layernorm", (bt + pad_rows) as u64 * c as u64),
                    mean: buf(ctx, "layernorm", bt as u64),
                    rstd: buf(ctx, "layernorm", bt as u64),
                };
                fwd.extend(layernorm::layernorm_forward(
                    ctx,
                    &z.y,
                    &z.mean,
                    &z.rstd,
                    &seq,
                    &p.t("layernorm.weight")?,
                    &p.t("layernorm.bias")?,
                    bt,
                    c,
                    eps,
                )?);
                let rows = buf(ctx, "head rows", logit_rows as u64);
                fwd.extend(tokens::gather_rows(
                    ctx, &head_in, &z.y, &rows, logit_rows, c, false,
                )?);
                fwd.extend(matmul::linear_forward(
                    ctx,
                    &logits,
                    &head_in,
                    &p.t(&format!("{}.weight", mim_head))?,
                    Some(&p.t(&format!("{}.bias", mim_head))?),
                    logit_rows,
                    head_width,
                    c,
                )?);
                Head::Mim { z, rows }
            }
            Architecture::ImageClassification if cfg.use_mean_pooling => {
                let pooled = buf(ctx, "pooled", b as u64 * c as u64);
                fwd.extend(tokens::mean_patches(ctx, &pooled, &last, ts)?);
                let pn = norm("beit.pooler.layernorm", b);
                fwd.extend(layernorm::layernorm_forward(
                    ctx,
                    &pn.y,
                    &pn.mean,
                    &pn.rstd,
                    &pooled,
                    &p.t("beit.pooler.layernorm.weight")?,
                    &p.t("beit.pooler.layernorm.bias")?,
                    b,
                    c,
                    eps,
                )?);
                fwd.extend(matmul::linear_forward(
                    ctx,
                    &logits,
                    &pn.y,
                    &p.t("classifier.weight")?,
                    Some(&p.t("classifier.bias")?),
                    b,
                    head_width,
                    c,
                )?);
                Head::MeanPool { pooled, pn }
            }
            Architecture::ImageClassification => {
                let rows: Vec<u32> = (0..b).map(|i| i * t).collect();
                let rows = GpuSlice::from_slice(ctx, "CLS rows", &rows);
                fwd.extend(tokens::gather_rows(
                    ctx, &head_in, &seq, &rows, b, c, false,
                )?);
                fwd.extend(matmul::linear_forward(
                    ctx,
                    &logits,
                    &head_in,
                    &p.t("classifier.weight")?,
                    Some(&p.t("classifier.bias")?),
                    b,
                    head_width,
                    c,
                )?);
                Head::Cls { rows }
            }
        };
        let smoothing = if arch == Architecture::ImageClassification {
            opts.label_smoothing
        } else {
            0.0
        };
        // The loss counts this many rows, written with each batch (`write_batch`).
        let ce_params = |m: u32, scale: f32| CrossEntropyParams {
            m,
            vocab: head_width,
            smoothing,
            scale,
        };
        let ce_fwd_params = GpuSlice::uniform(ctx, "CrossEntropyParams", &ce_params(0, 1.0));
        let ce_bwd_params = GpuSlice::uniform(ctx, "CrossEntropyParams", &ce_params(0, 0.0));
        // Pixel regression: the target rows are the masked patches' normalised pixels (`target_rows` per batch).
        let pixel_target = if pixels_head {
            let rows = buf(ctx, "pixel target rows", ce_count as u64);
            let target = buf(ctx, "pixel targets", ce_count as u64 * head_width as u64);
            fwd.extend(tokens::gather_rows(
                ctx,
                &target,
                &patches_buf,
                &rows,
                ce_count,
                head_width,
                false,
            )?);
            fwd.extend(crossentropy::mse_forward_with(
                ctx,
                &loss_rows,
                Some(&stats),
                &logits,
                &target,
                &ce_fwd_params,
                ce_count,
                head_width,
            )?);
            Some((rows, target))
        } else {
            None
        };
        if ce_count > 0 && !pixels_head {
            let out = CrossEntropyOut {
                loss: &loss_rows,
                correct: &correct,
                lse: &lse,
                stats: Some(&stats),
            };
            fwd.extend(crossentropy::ce_forward_with(
                ctx,
                out,
                &logits,
                logit_rows,
                &ce_rows,
                &labels,
                &ce_fwd_params,
                ce_count,
                head_width,
            )?);
        }

        // ================= Backward, in exact reverse. =================
        bwd.extend(elementwise::fill(
            ctx,
            &grads.whole,
            grads.layout.total as u32,
            0.0,
        )?);
        let dx = buf(ctx, "d hidden", btc);
        if ce_count > 0 {
            let dlogits = buf(ctx, "d logits", logit_rows as u64 * head_width as u64);
            // Rows the loss does not count (unselected patches, padding) get no gradient.
            bwd.extend(elementwise::fill(
                ctx,
                &dlogits,
                logit_rows * head_width,
                0.0,
            )?);
            match &pixel_target {
                Some((_, target)) => bwd.extend(crossentropy::mse_backward_with(
                    ctx,
                    &dlogits,
                    &logits,
                    target,
                    &ce_bwd_params,
                    ce_count,
                    head_width,
                )?),
                None => bwd.extend(crossentropy::ce_backward_with(
                    ctx,
                    &dlogits,
                    &logits,
                    logit_rows,
                    &lse,
                    &ce_rows,
                    &labels,
                    &ce_bwd_params,
                    ce_count,
                    head_width,
                )?),
            }
            let dhead_in = buf(ctx, "d head input", logit_rows as u64 * c as u64);
            let dseq = buf(ctx, "d sequence output", btc);
            match &head {
                Head::Mim { z, rows } => {
                    bwd.extend(matmul::linear_backward(
                        ctx,
                        Some(&dhead_in),
                        &gr.t(&format!("{}.weight", mim_head))?,
                        Some(&gr.t(&format!("{}.bias", mim_head))?),
                        &dlogits,
                        &head_in,
                        &p.t(&format!("{}.weight", mim_head))?,
                        logit_rows,
                        head_width,
                        c,
                        false,
                    )?);
                    let dz = buf(ctx, "d layernorm output", z.y.len);
                    bwd.extend(elementwise::fill(ctx, &dz, z.y.len as u32, 0.0)?);
                    bwd.extend(tokens::scatter_rows(
                        ctx, &dz, &dhead_in, rows, logit_rows, c, false,
                    )?);
                    bwd.extend(layernorm::layernorm_backward(
                        ctx,
                        &dseq,
                        &gr.t("layernorm.weight")?,
                        &gr.t("layernorm.bias")?,
                        &dz,
                        &seq,
                        &z.mean,
                        &z.rstd,
                        &p.t("layernorm.weight")?,
                        bt,
                        c,
                        false,
                    )?);
                }
                Head::MeanPool { pooled, pn } => {
                    bwd.extend(matmul::linear_backward(
                        ctx,
                        Some(&dhead_in),
                        &gr.t("classifier.weight")?,
                        Some(&gr.t("classifier.bias")?),
                        &dlogits,
                        &pn.y,
                        &p.t("classifier.weight")?,
                        b,
                        head_width,
                        c,
                        false,
                    )?);
                    let dpooled = buf(ctx, "d pooled", b as u64 * c as u64);
                    bwd.extend(layernorm::layernorm_backward(
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
                    bwd.extend(tokens::mean_patches_backward(
                        ctx, &dseq, &dpooled, ts, false,
                    )?);
                }
                Head::Cls { rows } => {
                    bwd.extend(matmul::linear_backward(
                        ctx,
                        Some(&dhead_in),
                        &gr.t("classifier.weight")?,
                        Some(&gr.t("classifier.bias")?),
                        &dlogits,
                        &head_in,
                        &p.t("classifier.weight")?,
                        b,
                        head_width,
                        c,
                        false,
                    )?);
                    bwd.extend(elementwise::fill(ctx, &dseq, btc as u32, 0.0)?);
                    bwd.extend(tokens::scatter_rows(
                        ctx, &dseq, &dhead_in, rows, b, c, false,
                    )?);
                }
            }
            match &backbone_norm {
                Some(nm) => bwd.extend(layernorm::layernorm_backward(
                    ctx,
                    &dx,
                    &gr.t("beit.layernorm.weight")?,
                    &gr.t("beit.layernorm.bias")?,
                    &dseq,
                    &last,
                    &nm.mean,
                    &nm.rstd,
                    &p.t("beit.layernorm.weight")?,
                    bt,
                    c,
                    false,
                )?),
                None => bwd.extend(elementwise::copy(ctx, &dx, &dseq, btc as u32, false)?),
            }

            // Blocks in reverse. `dx` holds d hidden[l + 1] on entry and d hidden[l] on exit.
            let (tmp_a, tmp_b, tmp_c2) = (
                buf(ctx, "d branch", btc),
                buf(ctx, "d branch input", btc),
                buf(ctx, "d normed", btc),
            );
            let (dg, dh) = (buf(ctx, "d gelu", bti), buf(ctx, "d mlp hidden", bti));
            let dqkv = buf(ctx, "d qkv", 3 * btc);
            let (dp, ds) = (
                buf(ctx, "d probabilities", b as u64 * heads as u64 * tt as u64),
                buf(ctx, "d scores", b as u64 * heads as u64 * tt as u64),
            );
            let dbias = buf(ctx, "d relative position bias", heads as u64 * tt as u64);
            // d branch = λ ⊙ drop_path'(dx); dλ += Σ drop_path'(dx) ⊙ branch. Returns the slice holding d branch.
            let branch_back = |v: &mut Vec<Dispatch>,
                               branch: &GpuSlice,
                               lam: Option<(&GpuSlice, &GpuSlice)>,
                               keep: Option<f32>,
                               stream: u32|
             -> Result<GpuSlice, ModelError> {
                let after_dp = match keep {
                    Some(kp) => {
                        v.extend(drop(&tmp_a, &dx, kp, stream, false)?);
                        tmp_a.clone()
                    }
                    None => dx.clone(),
                };
                match lam {
                    Some((lam, dlam)) => {
                        v.extend(elementwise::scale_cols_grad(
                            ctx, dlam, &after_dp, branch, bt, c,
                        )?);
                        v.extend(elementwise::scale_cols(
                            ctx, &tmp_b, &after_dp, lam, bt, c, false,
                        )?);
                        Ok(tmp_b.clone())
                    }
                    None => Ok(after_dp),
                }
            };
            for li in (0..l_count).rev() {
                let pre = super::params::block(li);
                let name = |s: &str| format!("{pre}{s}");
                let a = &acts[li as usize];
                let x_in = &hidden[li as usize];
                let lam = |s: &str| -> Option<(GpuSlice, GpuSlice)> {
                    Some((p.opt(&name(s))?, gr.opt(&name(s))?))
                };
                // MLP branch.
                let l2 = lam("lambda_2");
                let d_f = branch_back(
                    &mut bwd,
                    &a.f,
                    l2.as_ref().map(|(x, y)| (x, y)),
                    keep(li),
                    2 * li + 1,
                )?;
                bwd.extend(matmul::linear_backward(
                    ctx,
                    Some(&dg),
                    &gr.t(&name("output.dense.weight"))?,
                    Some(&gr.t(&name("output.dense.bias"))?),
                    &d_f,
                    &a.g,
                    &p.t(&name("output.dense.weight"))?,
                    bt,
                    c,
                    inter,
                    false,
                )?);
                bwd.extend(gelu::gelu_backward(ctx, &dh, &dg, &a.h, bti as u32, false)?);
                bwd.extend(matmul::linear_backward(
                    ctx,
                    Some(&tmp_c2),
                    &gr.t(&name("intermediate.dense.weight"))?,
                    Some(&gr.t(&name("intermediate.dense.bias"))?),
                    &dh,
                    &a.ln2,
                    &p.t(&name("intermediate.dense.weight"))?,
                    bt,
                    inter,
                    c,
                    false,
                )?);
                bwd.extend(layernorm::layernorm_backward(
                    ctx,
                    &dx,
                    &gr.t(&name("layernorm_after.weight"))?,
                    &gr.t(&name("layernorm_after.bias"))?,
                    &tmp_c2,
                    &a.xmid,
                    &a.mean2,
                    &a.rstd2,
                    &p.t(&name("layernorm_after.weight"))?,
                    bt,
                    c,
                    true,
                )?);
                // Attention branch.
                let l1 = lam("lambda_1");
                let d_ao = branch_back(
                    &mut bwd,
                    &a.ao,
                    l1.as_ref().map(|(x, y)| (x, y)),
                    keep(li),
                    2 * li,
                )?;
                let dctx = buf(ctx, "d attention context", btc);
                bwd.extend(matmul::linear_backward(
                    ctx,
                    Some(&dctx),
                    &gr.t(&name("attention.output.dense.weight"))?,
                    Some(&gr.t(&name("attention.output.dense.bias"))?),
                    &d_ao,
                    &a.ctx,
                    &p.t(&name("attention.output.dense.weight"))?,
                    bt,
                    c,
                    c,
                    false,
                )?);
                let own_table = cfg.use_relative_position_bias.then(|| {
                    name("attention.attention.relative_position_bias.relative_position_bias_table")
                });
                let tables: Vec<String> = own_table
                    .iter()
                    .chain(shared_table.iter())
                    .cloned()
                    .collect();
                if a.bias.is_some() {
                    bwd.extend(elementwise::fill(ctx, &dbias, heads * tt, 0.0)?);
                }
                bwd.extend(attention::attention_backward(
                    ctx,
                    (&dqkv, views(0)),
                    (&dqkv, views(1)),
                    (&dqkv, views(2)),
                    a.bias.as_ref().map(|_| &dbias),
                    &dp,
                    &ds,
                    (&dctx, ctx_view),
                    &a.probs,
                    (&a.qkv, views(0)),
                    (&a.qkv, views(1)),
                    (&a.qkv, views(2)),
                    shape,
                )?);
                for tname in &tables {
                    bwd.extend(attention::relpos_scatter(
                        ctx,
                        &gr.t(tname)?,
                        &dbias,
                        &scatter,
                        heads,
                        true,
                    )?);
                }
                let dwqkv = gr.run(
                    &name("attention.attention.query.weight"),
                    3 * c as u64 * c as u64,
                )?;
                let dbqkv = gr.run(&name("attention.attention.query.bias"), 3 * c as u64)?;
                let wqkv = p.run(
                    &name("attention.attention.query.weight"),
                    3 * c as u64 * c as u64,
                )?;
                bwd.extend(matmul::linear_backward(
                    ctx,
                    Some(&tmp_c2),
                    &dwqkv,
                    Some(&dbqkv),
                    &dqkv,
                    &a.ln1,
                    &wqkv,
                    bt,
                    3 * c,
                    c,
                    false,
                )?);
                bwd.extend(layernorm::layernorm_backward(
                    ctx,
                    &dx,
                    &gr.t(&name("layernorm_before.weight"))?,
                    &gr.t(&name("layernorm_before.bias"))?,
                    &tmp_c2,
                    x_in,
                    &a.mean1,
                    &a.rstd1,
                    &p.t(&name("layernorm_before.weight"))?,
                    bt,
                    c,
                    true,
                )?);
            }

            // Embeddings.
            let demb = buf(ctx, "d patch embeddings", patch_rows as u64 * c as u64);
            let dmask = mask_token
                .as_ref()
                .and_then(|_| gr.opt("beit.embeddings.mask_token"));
            let dpos = pos
                .as_ref()
                .and_then(|_| gr.opt("beit.embeddings.position_embeddings"));
            let mask_arg = mask_token.as_ref().map(|_| &mask);
            bwd.extend(tokens::assemble_backward(
                ctx,
                Some(&demb),
                dmask.as_ref(),
                Some(&gr.t("beit.embeddings.cls_token")?),
                dpos.as_ref(),
                &dx,
                mask_arg,
                ts,
                false,
            )?);
            bwd.extend(matmul::linear_backward(
                ctx,
                None,
                &gr.t("beit.embeddings.patch_embeddings.projection.weight")?,
                Some(&gr.t("beit.embeddings.patch_embeddings.projection.bias")?),
                &demb,
                &patches_buf,
                &pe_w,
                patch_rows,
                c,
                cfg.patch_dim(),
                false,
            )?);
        }

        // Head rows of the MIM head: every patch, or the masked ones once the mask is known (set_mask).
        if let Head::Mim { rows, .. } = &head {
            if opts.mim_rows == MimRows::All {
                let all: Vec<u32> = (0..b)
                    .flat_map(|bi| (0..n).map(move |ni| bi * t + 1 + ni))
                    .collect();
                rows.write(ctx, &all);
            }
        }
        let head_rows = match &head {
            Head::Mim { rows, .. } => Some(rows.clone()),
            _ => None,
        };
        let attentions = acts.iter().map(|a| a.probs.clone()).collect();
        let graph = Self {
            cfg: cfg.clone(),
            opts,
            pixels,
            mask,
            ce_rows,
            labels,
            hidden,
            attentions,
            logits,
            stats,
            grads,
            forward: fwd,
            backward: bwd,
            logit_rows,
            head_rows,
            ce_cap: ce_count,
            ce_fwd_params,
            ce_bwd_params,
            smoothing,
            counted: std::cell::Cell::new(0),
            drop_uniforms: drop_uniforms.into_inner(),
            pixel_target_rows: pixel_target.map(|(rows, _)| rows),
        };
        Ok(graph)
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

    /// Tell the loss how many examples this batch has (0: no loss).
    fn set_counted(&self, ctx: &GpuContext, m: u32) {
        self.counted.set(m);
        let vocab = match self.cfg.architecture() {
            Architecture::MaskedImageModeling => super::params::mim_head(&self.cfg).1 as u32,
            Architecture::ImageClassification => self.cfg.labels(),
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
