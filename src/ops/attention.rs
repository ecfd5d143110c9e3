//! Launchers for `shaders/attention.wgsl` and the attention core composed from them and `gemm`:
//! `P = softmax(scale · Q·Kᵀ + bias)`, `O = P·V`, and its backward (dQ, dK, dV, d bias); plus BEiT's
//! relative position bias gather and its gradient scatter-add into the table.
//!
//! Q, K, V, O and their gradients are [`HeadView`]s, so they can live inside a fused qkv activation
//! `(B, T, 3C)` or in a plain `(B, H, T, D)` tensor. Scores and probabilities are `(B, H, T, T)`, bias `(H, T, T)`.

use super::attention_lanes::{self, AttentionKernel};
use super::matmul::{gemm, GemmShape, MatView};
use super::{fits_u32, gpu_params, grid_for, launch, need, reduce, RowKernel};
use crate::cpu::attention::RelposInverse;
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `AttentionParams` in attention.wgsl.
    AttentionParams in "attention" as "AttentionParams" {
        rows: u32, cols: u32, bias_rows: u32, flags: u32, heads: u32, tt: u32, table_rows: u32, _pad: u32,
    }
);

/// Where per-head (T, D) matrices sit: element (b, h, t, d) at `off + b·batch_stride + h·head_stride + t·row_stride + d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadView {
    pub off: u32,
    pub row_stride: u32,
    pub head_stride: u32,
    pub batch_stride: u32,
}

impl HeadView {
    /// A dense `(B, H, T, D)` tensor.
    pub fn bhtd(heads: u32, tokens: u32, head_dim: u32) -> Self {
        Self {
            off: 0,
            row_stride: head_dim,
            head_stride: tokens * head_dim,
            batch_stride: heads * tokens * head_dim,
        }
    }

    /// Part `part` (0 = q, 1 = k, 2 = v) of a fused `(B, T, 3C)` qkv tensor, C = H·D.
    pub fn fused_qkv(part: u32, heads: u32, tokens: u32, head_dim: u32) -> Self {
        let c = heads * head_dim;
        Self {
            off: part * c,
            row_stride: 3 * c,
            head_stride: head_dim,
            batch_stride: tokens * 3 * c,
        }
    }

    /// A `(B, T, C)` tensor with heads side by side in C (attention output before the projection).
    pub fn btc(heads: u32, tokens: u32, head_dim: u32) -> Self {
        let c = heads * head_dim;
        Self {
            off: 0,
            row_stride: c,
            head_stride: head_dim,
            batch_stride: tokens * c,
        }
    }

    /// One past the largest element index this view touches for `shape` (0 when it has no element).
    pub fn extent(&self, shape: AttentionShape) -> u64 {
        self.mat()
            .extent(shape.tokens, shape.head_dim, shape.batch, shape.heads)
    }

    /// The (T, D) matrix of each (batch, head) as a gemm operand (batch outer, head inner).
    fn mat(&self) -> MatView {
        MatView {
            off: self.off,
            rs: self.row_stride,
            cs: 1,
            bo: self.batch_stride,
            bi: self.head_stride,
        }
    }

    /// The transpose (D, T) of each (batch, head) matrix.
    fn mat_t(&self) -> MatView {
        MatView {
            off: self.off,
            rs: 1,
            cs: self.row_stride,
            bo: self.batch_stride,
            bi: self.head_stride,
        }
    }
}

/// Sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    pub batch: u32,
    pub heads: u32,
    pub tokens: u32,
    pub head_dim: u32,
    /// Usually `head_dim^-0.5`.
    pub scale: f32,
}

impl AttentionShape {
    pub(super) fn scores_len(&self) -> u64 {
        self.batch as u64 * self.heads as u64 * self.tokens as u64 * self.tokens as u64
    }

    fn scores_view(&self) -> MatView {
        let t = self.tokens;
        MatView {
            off: 0,
            rs: t,
            cs: 1,
            bo: self.heads * t * t,
            bi: t * t,
        }
    }

    fn gemm(&self, m: u32, n: u32, k: u32, alpha: f32) -> GemmShape {
        GemmShape {
            batch: self.batch * self.heads,
            batch_inner: self.heads,
            alpha,
            ..GemmShape::new(m, n, k)
        }
    }
}

/// `p (rows, cols) = softmax(s + bias[row % bias_rows])` row-wise; no bias when `bias` is `None`.
pub fn softmax_forward(
    ctx: &GpuContext,
    p: &GpuSlice,
    s: &GpuSlice,
    bias: Option<(&GpuSlice, u32)>,
    rows: u32,
    cols: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    softmax_forward_using(RowKernel::for_adapter(ctx), ctx, p, s, bias, rows, cols)
}

/// [`softmax_forward`] with an explicit choice of kernel (tests check both on every adapter).
pub fn softmax_forward_using(
    kind: RowKernel,
    ctx: &GpuContext,
    p: &GpuSlice,
    s: &GpuSlice,
    bias: Option<(&GpuSlice, u32)>,
    rows: u32,
    cols: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention::softmax_forward";
    let n = rows as u64 * cols as u64;
    need(K, "p", p, n)?;
    need(K, "s", s, n)?;
    fits_u32(K, n)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let (b, bias_rows) = match bias {
        Some((b, r)) => {
            need(K, "bias", b, r as u64 * cols as u64)?;
            (b, r)
        }
        None => (s, 0),
    };
    let params = AttentionParams {
        rows,
        cols,
        bias_rows,
        flags: bias.is_some() as u32,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "AttentionParams", &params);
    Ok(vec![launch(
        ctx,
        "attention",
        kind.entry("softmax_forward", "softmax_forward_rows"),
        &[p, s, b, s, s, &u],
        kind.grid(rows as u64),
    )?])
}

/// `ds (rows, cols) = p · (dp − Σ_j dp·p)` row-wise.
pub fn softmax_backward(
    ctx: &GpuContext,
    ds: &GpuSlice,
    p: &GpuSlice,
    dp: &GpuSlice,
    rows: u32,
    cols: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    softmax_backward_using(RowKernel::for_adapter(ctx), ctx, ds, p, dp, rows, cols)
}

/// [`softmax_backward`] with an explicit choice of kernel.
pub fn softmax_backward_using(
    kind: RowKernel,
    ctx: &GpuContext,
    ds: &GpuSlice,
    p: &GpuSlice,
    dp: &GpuSlice,
    rows: u32,
    cols: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention::softmax_backward";
    let n = rows as u64 * cols as u64;
    need(K, "ds", ds, n)?;
    need(K, "p", p, n)?;
    need(K, "dp", dp, n)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let params = AttentionParams {
        rows,
        cols,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "AttentionParams", &params);
    Ok(vec![launch(
        ctx,
        "attention",
        kind.entry("softmax_backward", "softmax_backward_rows"),
        &[ds, p, dp, p, p, &u],
        kind.grid(rows as u64),
    )?])
}

/// `bias (H, T·T)[h, ij] = table (table_rows, H)[index[ij], h]`; `index` is u32 (T·T).
pub fn relpos_gather(
    ctx: &GpuContext,
    bias: &GpuSlice,
    table: &GpuSlice,
    index: &GpuSlice,
    heads: u32,
    tt: u32,
    table_rows: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention::relpos_gather";
    need(K, "bias", bias, heads as u64 * tt as u64)?;
    need(K, "table", table, table_rows as u64 * heads as u64)?;
    need(K, "index", index, tt as u64)?;
    if heads == 0 || tt == 0 {
        return Ok(Vec::new());
    }
    let params = AttentionParams {
        heads,
        tt,
        table_rows,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "AttentionParams", &params);
    Ok(vec![launch(
        ctx,
        "attention",
        "relpos_gather",
        &[bias, table, table, index, index, &u],
        grid_for(heads as u64 * tt as u64, 64),
    )?])
}

/// The inverted relative-position index on the GPU (built once per grid size).
pub struct RelposScatterIndex {
    pub offsets: GpuSlice,
    pub items: GpuSlice,
    pub table_rows: u32,
    pub tt: u32,
}

impl RelposScatterIndex {
    pub fn upload(ctx: &GpuContext, inv: &RelposInverse) -> Self {
        Self {
            offsets: GpuSlice::from_slice(ctx, "relpos scatter offsets", &inv.offsets),
            items: GpuSlice::from_slice(ctx, "relpos scatter items", &inv.items),
            table_rows: inv.table_rows,
            tt: inv.tt,
        }
    }
}

/// `dtable (table_rows, H) (=|+=)` the sum of `dbias (H, T·T)` over the positions that read each table row.
pub fn relpos_scatter(
    ctx: &GpuContext,
    dtable: &GpuSlice,
    dbias: &GpuSlice,
    index: &RelposScatterIndex,
    heads: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    relpos_scatter_batched(ctx, dtable, dbias, index, heads, 1, accumulate)
}

/// [`relpos_scatter`] of `Σ_b dscores[b]` for `dscores (B, H, T·T)`: the table gradient straight from the
/// score gradients of a batch, without summing them into a d bias first (one launch instead of three).
pub fn relpos_scatter_batched(
    ctx: &GpuContext,
    dtable: &GpuSlice,
    dscores: &GpuSlice,
    index: &RelposScatterIndex,
    heads: u32,
    batch: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention::relpos_scatter";
    need(K, "dtable", dtable, index.table_rows as u64 * heads as u64)?;
    let n = batch as u64 * heads as u64 * index.tt as u64;
    need(K, "dbias", dscores, n)?;
    fits_u32(K, n)?;
    if heads == 0 || index.table_rows == 0 {
        return Ok(Vec::new());
    }
    let params = AttentionParams {
        rows: batch,
        heads,
        tt: index.tt,
        table_rows: index.table_rows,
        flags: accumulate as u32,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "AttentionParams", &params);
    Ok(vec![launch(
        ctx,
        "attention",
        "relpos_scatter",
        &[dtable, dscores, dscores, &index.offsets, &index.items, &u],
        grid_for(index.table_rows as u64 * heads as u64, 64),
    )?])
}

/// Forward attention core: `scores = scale·Q·Kᵀ` (scratch), `P = softmax(scores + bias)`, `O = P·V`.
/// `p` and `scores` are `(B, H, T, T)`; `bias` is `(H, T, T)` or `None`.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward(
    ctx: &GpuContext,
    o: (&GpuSlice, HeadView),
    p: &GpuSlice,
    scores: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    bias: Option<&GpuSlice>,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    let kind = AttentionKernel::for_shape(ctx, shape, &[o.1, q.1, k.1, v.1]);
    attention_forward_using(kind, ctx, o, p, scores, q, k, v, bias, shape)
}

/// [`attention_forward`] with an explicit choice of path (tests check both where `Lanes` fits). `Lanes` does
/// not touch `scores`.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward_using(
    kind: AttentionKernel,
    ctx: &GpuContext,
    o: (&GpuSlice, HeadView),
    p: &GpuSlice,
    scores: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    bias: Option<&GpuSlice>,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention::attention_forward";
    let t = shape.tokens;
    let d = shape.head_dim;
    need(K, "scores", scores, shape.scores_len())?;
    need(K, "p", p, shape.scores_len())?;
    if let Some(b) = bias {
        need(K, "bias", b, shape.heads as u64 * t as u64 * t as u64)?;
    }
    if shape.scores_len() == 0 || d == 0 {
        return Ok(Vec::new());
    }
    if kind == AttentionKernel::Lanes {
        check_fits(ctx, shape, &[o.1, q.1, k.1, v.1])?;
        for (what, (s, view)) in [("o", o), ("q", q), ("k", k), ("v", v)] {
            need(K, what, s, view.extent(shape))?;
        }
        return attention_lanes::forward(ctx, o, p, q, k, v, bias, shape);
    }
    let mut out = gemm(
        ctx,
        scores,
        shape.scores_view(),
        q.0,
        q.1.mat(),
        k.0,
        k.1.mat_t(),
        None,
        shape.gemm(t, t, d, shape.scale),
    )?;
    let rows = fits_u32(
        "attention::attention_forward",
        shape.batch as u64 * shape.heads as u64 * t as u64,
    )?;
    out.extend(softmax_forward(
        ctx,
        p,
        scores,
        bias.map(|b| (b, shape.heads * t)),
        rows,
        t,
    )?);
    out.extend(gemm(
        ctx,
        o.0,
        o.1.mat(),
        p,
        shape.scores_view(),
        v.0,
        v.1.mat(),
        None,
        shape.gemm(t, d, t, 1.0),
    )?);
    Ok(out)
}

/// Backward attention core. Writes dQ, dK, dV (their views may share one fused buffer); `dbias (H, T, T)`
/// accumulates `Σ_b dScores` when given. `dp` and `ds` are `(B, H, T, T)` scratch.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    ctx: &GpuContext,
    dq: (&GpuSlice, HeadView),
    dk: (&GpuSlice, HeadView),
    dv: (&GpuSlice, HeadView),
    dbias: Option<&GpuSlice>,
    dp: &GpuSlice,
    ds: &GpuSlice,
    dout: (&GpuSlice, HeadView),
    p: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    let views = [dq.1, dk.1, dv.1, dout.1, q.1, k.1, v.1];
    let kind = AttentionKernel::for_shape(ctx, shape, &views);
    attention_backward_using(
        kind, ctx, dq, dk, dv, dbias, dp, ds, dout, p, q, k, v, shape,
    )
}

/// [`attention_backward`] with an explicit choice of path. `Lanes` computes dS and dQ in one launch (dP is
/// not written), then dV and dK in one more up to 32 tokens (as the composed path does past that), and d bias
/// as the composed path does.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward_using(
    kind: AttentionKernel,
    ctx: &GpuContext,
    dq: (&GpuSlice, HeadView),
    dk: (&GpuSlice, HeadView),
    dv: (&GpuSlice, HeadView),
    dbias: Option<&GpuSlice>,
    dp: &GpuSlice,
    ds: &GpuSlice,
    dout: (&GpuSlice, HeadView),
    p: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention::attention_backward";
    let t = shape.tokens;
    let d = shape.head_dim;
    let sv = shape.scores_view();
    need(K, "dp", dp, shape.scores_len())?;
    need(K, "ds", ds, shape.scores_len())?;
    need(K, "p", p, shape.scores_len())?;
    if shape.scores_len() == 0 || d == 0 {
        return Ok(Vec::new());
    }
    let lanes = kind == AttentionKernel::Lanes;
    if lanes {
        check_fits(ctx, shape, &[dq.1, dk.1, dv.1, dout.1, q.1, k.1, v.1])?;
        for (what, (s, view)) in [
            ("dq", dq),
            ("dk", dk),
            ("dv", dv),
            ("dout", dout),
            ("q", q),
            ("k", k),
            ("v", v),
        ] {
            need(K, what, s, view.extent(shape))?;
        }
    }
    let mut out = Vec::new();
    if lanes {
        // dS and dQ in one launch; then dV and dK in one more up to 32 tokens (past that, reading Pᵀ and dSᵀ a
        // key at a time costs more than two products: mini's 50 tokens 2.8 ms a launch against 2.3 ms for its
        // two gemm_lanes products, single-threaded llvmpipe).
        out.extend(attention_lanes::backward_ds_dq(
            ctx, dq, ds, dout, p, k, v, shape,
        )?);
        if t <= attention_lanes::KV_MAX_TOKENS {
            out.extend(attention_lanes::backward_kv(
                ctx, dk, dv, dout, q, p, ds, shape,
            )?);
        } else {
            out.extend(dv_dk_products(ctx, dk, dv, dout, q, p, ds, shape)?);
        }
    } else {
        // dP = dO · Vᵀ ; dS = softmax backward ; dQ = scale · dS · K
        out.extend(gemm(
            ctx,
            dp,
            sv,
            dout.0,
            dout.1.mat(),
            v.0,
            v.1.mat_t(),
            None,
            shape.gemm(t, t, d, 1.0),
        )?);
        let rows = fits_u32(K, shape.batch as u64 * shape.heads as u64 * t as u64)?;
        out.extend(softmax_backward(ctx, ds, p, dp, rows, t)?);
        out.extend(gemm(
            ctx,
            dq.0,
            dq.1.mat(),
            ds,
            sv,
            k.0,
            k.1.mat(),
            None,
            shape.gemm(t, d, t, shape.scale),
        )?);
        out.extend(dv_dk_products(ctx, dk, dv, dout, q, p, ds, shape)?);
    }
    if let Some(db) = dbias {
        out.extend(bias_gradient(ctx, db, ds, shape)?);
    }
    Ok(out)
}

/// `dbias (H, T, T) += Σ_b dS` from the score gradients (B, H, T, T).
pub(super) fn bias_gradient(
    ctx: &GpuContext,
    dbias: &GpuSlice,
    ds: &GpuSlice,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    let t = shape.tokens as u64;
    let hw = fits_u32("attention::bias_gradient", shape.heads as u64 * t * t)?;
    reduce::col_sum(ctx, dbias, ds, shape.batch, hw, true)
}

/// `dV = Pᵀ · dO` and `dK = scale · dSᵀ · Q` as two batched products, from P and dS (B, H, T, T): the composed
/// path's, the one-launch path's past 32 tokens, and the fused path's.
#[allow(clippy::too_many_arguments)]
pub(super) fn dv_dk_products(
    ctx: &GpuContext,
    dk: (&GpuSlice, HeadView),
    dv: (&GpuSlice, HeadView),
    dout: (&GpuSlice, HeadView),
    q: (&GpuSlice, HeadView),
    p: &GpuSlice,
    ds: &GpuSlice,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    let (t, d) = (shape.tokens, shape.head_dim);
    let sv_t = MatView {
        rs: 1,
        cs: t,
        ..shape.scores_view()
    };
    let mut out = gemm(
        ctx,
        dv.0,
        dv.1.mat(),
        p,
        sv_t,
        dout.0,
        dout.1.mat(),
        None,
        shape.gemm(t, d, t, 1.0),
    )?;
    out.extend(gemm(
        ctx,
        dk.0,
        dk.1.mat(),
        ds,
        sv_t,
        q.0,
        q.1.mat(),
        None,
        shape.gemm(t, d, t, shape.scale),
    )?);
    Ok(out)
}

/// A clear error where the one-launch path was asked for a device, shape or view it cannot take.
fn check_fits(ctx: &GpuContext, shape: AttentionShape, views: &[HeadView]) -> Result<(), GpuError> {
    if AttentionKernel::Lanes.fits(ctx, shape, views) {
        return Ok(());
    }
    Err(GpuError::BadLaunch {
        kernel: "attention_lanes".into(),
        message: format!(
            "the one-launch attention needs 8-lane subgroups, at most {} tokens, a head dimension that is a multiple of 4 up to {} and views aligned to 4 elements; got {} tokens of {}",
            attention_lanes::LANES_MAX_TOKENS,
            attention_lanes::LANES_MAX_HEAD_DIM,
            shape.tokens,
            shape.head_dim
        ),
    })
}
