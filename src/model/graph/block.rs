//! One pre-norm Transformer block of the graph, forward and backward: x -> layernorm -> fused q/k/v (q and v
//! biased) -> attention with the relative position bias (the block's own table, the shared one, or both) ->
//! output projection -> layer scale λ1 -> drop path -> residual; then layernorm -> MLP with GELU -> λ2 -> drop
//! path -> residual. Shapes: x (B·T, C), qkv (B·T, 3C), probabilities (B, H, T, T), MLP (B·T, I).

use super::builder::Builder;
use crate::cpu::attention::{relative_position_index, RelposInverse};
use crate::gpu::{Dispatch, GpuSlice};
use crate::model::error::ModelError;
use crate::model::params;
use crate::ops::attention::{self, AttentionShape, HeadView, RelposScatterIndex};
use crate::ops::attention_fused;
use crate::ops::precision::ProductInputs;
use crate::ops::{elementwise, gelu, layernorm, matmul};

const SHARED_TABLE: &str = "beit.encoder.relative_position_bias.relative_position_bias_table";
const OWN_TABLE: &str = "attention.attention.relative_position_bias.relative_position_bias_table";

/// What every block shares: the relative position index (gather) and its inverse (scatter), the attention
/// shape, the scores scratch, and, where blocks recompute (see [`super::GraphOptions::keep_block_outputs`]), two
/// activations that each block's forward writes for the product after them and its backward computes again
/// from what it keeps (one elementwise pass each instead of a buffer per block; at BEiT-base batch 64 they
/// would hold 2.8 GB): the layer norm output (B·T, C), from the block's input and its stored mean and 1/std,
/// and the GELU output (B·T, I), from the stored pre-activation.
pub(super) struct BlockShared {
    index: GpuSlice,
    scatter: RelposScatterIndex,
    table_rows: u32,
    shape: AttentionShape,
    /// The scores (B, H, T, T) of the composed forward; with the fused attention the probabilities its backward
    /// computes again, for the dV product.
    scores: GpuSlice,
    /// Whether the attention core runs fused (see [`super::GraphOptions::fused_attention`]).
    fused: bool,
    /// `None` where the blocks keep their own.
    normed: Option<GpuSlice>,
    gelu: Option<GpuSlice>,
}

/// Activations of one block that the backward reads.
pub(super) struct BlockActs {
    mean1: GpuSlice,
    rstd1: GpuSlice,
    qkv: GpuSlice,
    bias: Option<GpuSlice>,
    /// What the attention core keeps for the backward.
    pub attention: AttentionKept,
    ctx: GpuSlice,
    ao: GpuSlice,
    xmid: GpuSlice,
    mean2: GpuSlice,
    rstd2: GpuSlice,
    h: GpuSlice,
    f: GpuSlice,
    /// The two layer norm outputs (B·T, C) and the GELU output (B·T, I): the block's own buffers when it keeps
    /// them, else the shared ones, written again in the backward (`kept` false).
    normed1: GpuSlice,
    normed2: GpuSlice,
    gelu: GpuSlice,
    kept: bool,
}

/// What a block's attention core keeps for its backward: the probabilities (B, H, T, T), which the app also
/// reads back, or, fused, each row's log-sum-exp of its scores (B, H, T), from which the backward computes the
/// probabilities again.
pub(super) enum AttentionKept {
    Probs(GpuSlice),
    Lse(GpuSlice),
}

impl AttentionKept {
    /// The probabilities where they are kept.
    pub fn probs(&self) -> Option<&GpuSlice> {
        match self {
            Self::Probs(p) => Some(p),
            Self::Lse(_) => None,
        }
    }
}

/// Scratch buffers the blocks' backward reuses, block after block.
pub(super) struct BlockScratch {
    after_drop: GpuSlice,
    d_branch: GpuSlice,
    d_normed: GpuSlice,
    dg: GpuSlice,
    dh: GpuSlice,
    dctx: GpuSlice,
    dqkv: GpuSlice,
    dp: GpuSlice,
    ds: GpuSlice,
}

fn qkv_views(i: u32, s: AttentionShape) -> HeadView {
    HeadView::fused_qkv(i, s.heads, s.tokens, s.head_dim)
}

impl Builder<'_> {
    pub fn block_shared(&self) -> BlockShared {
        let g = self.cfg.grid() as usize;
        let (index, table_rows) = relative_position_index(g, g);
        let d = self.dims;
        let keep = self.keeps_block_outputs();
        BlockShared {
            index: GpuSlice::from_slice(self.ctx, "relative_position_index", &index),
            scatter: RelposScatterIndex::upload(self.ctx, &RelposInverse::new(&index, table_rows)),
            table_rows: table_rows as u32,
            shape: AttentionShape {
                batch: d.b,
                heads: d.heads,
                tokens: d.t,
                head_dim: d.d,
                scale: (d.d as f32).powf(-0.5),
            },
            scores: self.buf("attention scores", d.bhtt()),
            fused: self.fuses_attention(),
            normed: (!keep).then(|| self.buf("layer norm output", d.btc())),
            gelu: (!keep).then(|| self.buf("mlp gelu", d.bti())),
        }
    }

    /// The relative position bias tables block `li` adds (its own, the shared one, or both, summed as HF does).
    fn bias_tables(&self, li: u32) -> Vec<String> {
        let own = self
            .cfg
            .use_relative_position_bias
            .then(|| format!("{}{OWN_TABLE}", params::block(li)));
        let shared = self
            .cfg
            .use_shared_relative_position_bias
            .then(|| SHARED_TABLE.to_string());
        own.into_iter().chain(shared).collect()
    }

    /// Gather the block's relative position bias (H, T, T), `None` when it has none.
    fn relative_bias_forward(
        &mut self,
        s: &BlockShared,
        li: u32,
    ) -> Result<Option<GpuSlice>, ModelError> {
        let (ctx, heads, tt) = (self.ctx, self.dims.heads, self.dims.tt());
        let mut gathered = Vec::new();
        for (k, table) in self.bias_tables(li).iter().enumerate() {
            let label = if k == 0 {
                "relative position bias"
            } else {
                "shared relative position bias"
            };
            let out = self.buf(label, heads as u64 * tt as u64);
            self.fwd.extend(attention::relpos_gather(
                ctx,
                &out,
                &self.p().t(table)?,
                &s.index,
                heads,
                tt,
                s.table_rows,
            )?);
            gathered.push(out);
        }
        match gathered.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            [a, b, ..] => {
                let sum = self.buf("summed relative position bias", heads as u64 * tt as u64);
                self.fwd
                    .extend(elementwise::add(ctx, &sum, a, b, heads * tt, false)?);
                Ok(Some(sum))
            }
        }
    }

    /// Block `li` on `x_in`; returns its activations and its output (hidden state li + 1).
    /// Block `li`'s layer norm `which` ("layernorm_before" / "layernorm_after") of `x (B·T, C)` into `out`,
    /// writing its mean and 1/std: the forward's, and the backward's recomputation of the same output.
    fn block_norm(
        &self,
        out: &GpuSlice,
        li: u32,
        which: &str,
        x: &GpuSlice,
        mean: &GpuSlice,
        rstd: &GpuSlice,
    ) -> Result<Vec<Dispatch>, ModelError> {
        let (d, p) = (self.dims, self.p());
        let name = |t: &str| format!("{}{which}.{t}", params::block(li));
        Ok(layernorm::layernorm_forward(
            self.ctx,
            out,
            mean,
            rstd,
            x,
            &p.t(&name("weight"))?,
            &p.t(&name("bias"))?,
            d.bt(),
            d.c,
            d.eps,
        )?)
    }

    pub fn block_forward(
        &mut self,
        s: &BlockShared,
        li: u32,
        x_in: &GpuSlice,
    ) -> Result<(BlockActs, GpuSlice), ModelError> {
        let (ctx, d, p) = (self.ctx, self.dims, self.p());
        let (bt, c, inter, btc, bti) = (d.bt(), d.c, d.inter, d.btc(), d.bti());
        let pre = params::block(li);
        let name = |s: &str| format!("{pre}{s}");
        let own = |b: &Self, shared: &Option<GpuSlice>, label: &str, n: u64| match shared {
            Some(sh) => sh.clone(),
            None => b.buf(label, n),
        };
        let mut a = BlockActs {
            mean1: self.buf("mean1", bt as u64),
            rstd1: self.buf("rstd1", bt as u64),
            qkv: self.buf("qkv", 3 * btc),
            bias: None,
            attention: if s.fused {
                AttentionKept::Lse(self.buf(
                    "attention log-sum-exp",
                    d.b as u64 * d.heads as u64 * d.t as u64,
                ))
            } else {
                AttentionKept::Probs(self.buf(&format!("attentions.{li}"), d.bhtt()))
            },
            ctx: self.buf("attention context", btc),
            ao: self.buf("attention output", btc),
            xmid: self.buf("residual after attention", btc),
            mean2: self.buf("mean2", bt as u64),
            rstd2: self.buf("rstd2", bt as u64),
            h: self.buf("mlp hidden", bti),
            f: self.buf("mlp output", btc),
            normed1: own(self, &s.normed, "layer norm before output", btc),
            normed2: own(self, &s.normed, "layer norm after output", btc),
            gelu: own(self, &s.gelu, "mlp gelu", bti),
            kept: s.normed.is_none(),
        };
        let x_out = self.buf(&format!("hidden_states.{}", li + 1), btc);
        // Attention branch.
        self.fwd.extend(self.block_norm(
            &a.normed1,
            li,
            "layernorm_before",
            x_in,
            &a.mean1,
            &a.rstd1,
        )?);
        let wqkv = p.run(
            &name("attention.attention.query.weight"),
            3 * c as u64 * c as u64,
        )?;
        let bqkv = p.run(&name("attention.attention.query.bias"), 3 * c as u64)?;
        self.fwd.extend(matmul::linear_forward_as(
            self.products,
            ctx,
            &a.qkv,
            &a.normed1,
            &wqkv,
            Some(&bqkv),
            bt,
            3 * c,
            c,
        )?);
        a.bias = self.relative_bias_forward(s, li)?;
        let sh = s.shape;
        let o = (&a.ctx, HeadView::btc(sh.heads, sh.tokens, sh.head_dim));
        let (q, k, v) = (
            (&a.qkv, qkv_views(0, sh)),
            (&a.qkv, qkv_views(1, sh)),
            (&a.qkv, qkv_views(2, sh)),
        );
        self.fwd.extend(match &a.attention {
            AttentionKept::Probs(probs) => attention::attention_forward(
                ctx,
                o,
                probs,
                &s.scores,
                q,
                k,
                v,
                a.bias.as_ref(),
                sh,
            )?,
            AttentionKept::Lse(lse) => {
                attention_fused::forward(ctx, o, lse, q, k, v, a.bias.as_ref(), sh)?
            }
        });
        self.fwd.extend(matmul::linear_forward_as(
            self.products,
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
        let keep = self.keep(li);
        self.residual(&a.xmid, x_in, &a.ao, lam1.as_ref(), keep, 2 * li)?;
        // MLP branch.
        self.fwd.extend(self.block_norm(
            &a.normed2,
            li,
            "layernorm_after",
            &a.xmid,
            &a.mean2,
            &a.rstd2,
        )?);
        // fc1 writes its GELU output in the same launch.
        self.fwd.extend(matmul::linear_gelu_forward_as(
            self.products,
            ctx,
            &a.h,
            &a.gelu,
            &a.normed2,
            &p.t(&name("intermediate.dense.weight"))?,
            Some(&p.t(&name("intermediate.dense.bias"))?),
            bt,
            inter,
            c,
        )?);
        self.fwd.extend(matmul::linear_forward_as(
            self.products,
            ctx,
            &a.f,
            &a.gelu,
            &p.t(&name("output.dense.weight"))?,
            Some(&p.t(&name("output.dense.bias"))?),
            bt,
            c,
            inter,
        )?);
        self.residual(&x_out, &a.xmid, &a.f, lam2.as_ref(), keep, 2 * li + 1)?;
        Ok((a, x_out))
    }

    pub fn block_scratch(&self, s: &BlockShared) -> BlockScratch {
        let d = self.dims;
        BlockScratch {
            after_drop: self.buf("d branch", d.btc()),
            d_branch: self.buf("d branch input", d.btc()),
            d_normed: self.buf("d normed", d.btc()),
            // Only the cooperative-matrix product, which has no epilogue, writes d gelu before GELU's slope.
            dg: self.buf(
                "d gelu",
                if self.products == ProductInputs::F16Coop {
                    d.bti()
                } else {
                    1
                },
            ),
            dh: self.buf("d mlp hidden", d.bti()),
            dctx: self.buf("d attention context", d.btc()),
            dqkv: self.buf("d qkv", 3 * d.btc()),
            // The fused attention's backward writes no dP.
            dp: self.buf("d probabilities", if s.fused { 1 } else { d.bhtt() }),
            ds: self.buf("d scores", d.bhtt()),
        }
    }

    /// Block `li` backward: `dx` holds d hidden[li + 1] on entry and d hidden[li] on exit; parameter
    /// gradients accumulate into the gradient buffer.
    pub fn block_backward(
        &mut self,
        s: &BlockShared,
        k: &BlockScratch,
        li: u32,
        a: &BlockActs,
        x_in: &GpuSlice,
        dx: &GpuSlice,
    ) -> Result<(), ModelError> {
        let (ctx, d, p) = (self.ctx, self.dims, self.p());
        let (bt, c, inter) = (d.bt(), d.c, d.inter);
        let pre = params::block(li);
        let name = |s: &str| format!("{pre}{s}");
        let lam = |b: &Self, s: &str| -> Option<(GpuSlice, GpuSlice)> {
            Some((p.opt(&name(s))?, b.gr().opt(&name(s))?))
        };
        let keep = self.keep(li);
        let scratch = (&k.after_drop, &k.d_branch);
        // MLP branch.
        let l2 = lam(self, "lambda_2");
        let d_f = self.residual_backward(
            dx,
            &a.f,
            l2.as_ref().map(|(x, y)| (x, y)),
            keep,
            2 * li + 1,
            scratch,
        )?;
        let gr = self.gr();
        // The GELU output fc2 read, again where it was not kept.
        let mut v = Vec::new();
        if !a.kept {
            v.extend(gelu::gelu_forward(ctx, &a.gelu, &a.h, d.bti() as u32)?);
        }
        // fc2's input gradient times GELU's slope in the product's launch: d of fc1's output.
        v.extend(matmul::linear_backward_gelu_as(
            self.products,
            ctx,
            &k.dh,
            &k.dg,
            &gr.t(&name("output.dense.weight"))?,
            Some(&gr.t(&name("output.dense.bias"))?),
            &d_f,
            &a.gelu,
            &a.h,
            &p.t(&name("output.dense.weight"))?,
            bt,
            c,
            inter,
        )?);
        // The layer norm output fc1 read, again where it was not kept (its mean and 1/std are rewritten with the
        // same values).
        if !a.kept {
            v.extend(self.block_norm(
                &a.normed2,
                li,
                "layernorm_after",
                &a.xmid,
                &a.mean2,
                &a.rstd2,
            )?);
        }
        v.extend(matmul::linear_backward_as(
            self.products,
            ctx,
            Some(&k.d_normed),
            &gr.t(&name("intermediate.dense.weight"))?,
            Some(&gr.t(&name("intermediate.dense.bias"))?),
            &k.dh,
            &a.normed2,
            &p.t(&name("intermediate.dense.weight"))?,
            bt,
            inter,
            c,
            false,
        )?);
        v.extend(layernorm::layernorm_backward(
            ctx,
            dx,
            &gr.t(&name("layernorm_after.weight"))?,
            &gr.t(&name("layernorm_after.bias"))?,
            &k.d_normed,
            &a.xmid,
            &a.mean2,
            &a.rstd2,
            &p.t(&name("layernorm_after.weight"))?,
            bt,
            c,
            true,
        )?);
        self.bwd.extend(v);
        // Attention branch.
        let l1 = lam(self, "lambda_1");
        let d_ao = self.residual_backward(
            dx,
            &a.ao,
            l1.as_ref().map(|(x, y)| (x, y)),
            keep,
            2 * li,
            scratch,
        )?;
        let gr = self.gr();
        let dctx = &k.dctx;
        let mut v = matmul::linear_backward_as(
            self.products,
            ctx,
            Some(dctx),
            &gr.t(&name("attention.output.dense.weight"))?,
            Some(&gr.t(&name("attention.output.dense.bias"))?),
            &d_ao,
            &a.ctx,
            &p.t(&name("attention.output.dense.weight"))?,
            bt,
            c,
            c,
            false,
        )?;
        let sh = s.shape;
        let btc = HeadView::btc(sh.heads, sh.tokens, sh.head_dim);
        let (dq, dk, dv) = (
            (&k.dqkv, qkv_views(0, sh)),
            (&k.dqkv, qkv_views(1, sh)),
            (&k.dqkv, qkv_views(2, sh)),
        );
        let (q, kk, vv) = (
            (&a.qkv, qkv_views(0, sh)),
            (&a.qkv, qkv_views(1, sh)),
            (&a.qkv, qkv_views(2, sh)),
        );
        v.extend(match &a.attention {
            AttentionKept::Probs(probs) => attention::attention_backward(
                ctx,
                dq,
                dk,
                dv,
                None,
                &k.dp,
                &k.ds,
                (dctx, btc),
                probs,
                q,
                kk,
                vv,
                sh,
            )?,
            // The probabilities again, into the scores scratch, for the dV product.
            AttentionKept::Lse(lse) => attention_fused::backward(
                ctx,
                dq,
                dk,
                dv,
                None,
                &s.scores,
                &k.ds,
                (dctx, btc),
                (&a.ctx, btc),
                lse,
                q,
                kk,
                vv,
                a.bias.as_ref(),
                sh,
            )?,
        });
        // Each bias table's gradient straight from the batch's score gradients (which both attention paths
        // leave in `ds`).
        for table in &self.bias_tables(li) {
            v.extend(attention::relpos_scatter_batched(
                ctx,
                &gr.t(table)?,
                &k.ds,
                &s.scatter,
                d.heads,
                d.b,
                true,
            )?);
        }
        // The layer norm output the fused q/k/v product read, again where it was not kept.
        if !a.kept {
            v.extend(self.block_norm(
                &a.normed1,
                li,
                "layernorm_before",
                x_in,
                &a.mean1,
                &a.rstd1,
            )?);
        }
        let qkv_len = 3 * c as u64 * c as u64;
        v.extend(matmul::linear_backward_as(
            self.products,
            ctx,
            Some(&k.d_normed),
            &gr.run(&name("attention.attention.query.weight"), qkv_len)?,
            Some(&gr.run(&name("attention.attention.query.bias"), 3 * c as u64)?),
            &k.dqkv,
            &a.normed1,
            &p.run(&name("attention.attention.query.weight"), qkv_len)?,
            bt,
            3 * c,
            c,
            false,
        )?);
        v.extend(layernorm::layernorm_backward(
            ctx,
            dx,
            &gr.t(&name("layernorm_before.weight"))?,
            &gr.t(&name("layernorm_before.bias"))?,
            &k.d_normed,
            x_in,
            &a.mean1,
            &a.rstd1,
            &p.t(&name("layernorm_before.weight"))?,
            bt,
            c,
            true,
        )?);
        self.bwd.extend(v);
        Ok(())
    }
}
