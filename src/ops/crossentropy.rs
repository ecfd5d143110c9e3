//! Launchers for `shaders/crossentropy.wgsl`: cross-entropy over selected rows of `logits (R, V)`, with
//! label smoothing, per-row loss / correctness, their means, and the fused backward.
//! Shapes: `rows, labels (M)` u32; `loss, correct, lse (M)`; `stats (2)` = (mean loss, top-1 accuracy).

use super::{gpu_params, grid_for, launch, need, reduce, vec4_view, RowKernel};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `CrossEntropyParams` in crossentropy.wgsl.
    CrossEntropyParams in "crossentropy" as "CrossEntropyParams" { m: u32, vocab: u32, smoothing: f32, scale: f32 }
);

/// The buffers a cross-entropy forward writes.
pub struct CrossEntropyOut<'a> {
    pub loss: &'a GpuSlice,
    pub correct: &'a GpuSlice,
    pub lse: &'a GpuSlice,
    /// `(mean loss, accuracy)` written at `stats[0..2]` when given.
    pub stats: Option<&'a GpuSlice>,
}

/// The forward's kernel: a thread per row on software adapters for rows of up to [`THREAD_ROW_VOCAB`] logits
/// or of whole quads (read four at a time), a workgroup per row elsewhere. A workgroup barrier on a software
/// adapter costs more than a short row's arithmetic; for tiny's 410 rows of 8192 logits the thread per row
/// reading quads took 8.7 ms single-threaded on llvmpipe against 18.2 for the workgroup per row (`bench
/// kernels`, row ce_forward).
pub fn forward_kernel(ctx: &GpuContext, vocab: u32) -> RowKernel {
    match RowKernel::for_adapter(ctx) {
        RowKernel::Thread if vocab <= THREAD_ROW_VOCAB || vocab.is_multiple_of(4) => {
            RowKernel::Thread
        }
        _ => RowKernel::Workgroup,
    }
}

/// The longest row of single logits (a vocabulary that is no multiple of 4) the forward gives one thread on a
/// software adapter (a few hundred such rows spread over few workgroups; longer ones keep a workgroup each).
pub const THREAD_ROW_VOCAB: u32 = 1024;

/// Per selected row: loss, correct (0/1) and log-sum-exp; optionally their means into `stats`.
#[allow(clippy::too_many_arguments)]
pub fn ce_forward(
    ctx: &GpuContext,
    out: CrossEntropyOut<'_>,
    logits: &GpuSlice,
    total_rows: u32,
    rows: &GpuSlice,
    labels: &GpuSlice,
    m: u32,
    vocab: u32,
    smoothing: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    let kind = forward_kernel(ctx, vocab);
    ce_forward_using(
        kind, ctx, out, logits, total_rows, rows, labels, m, vocab, smoothing,
    )
}

/// [`ce_forward`] with an explicit choice of kernel (tests check both on every adapter).
#[allow(clippy::too_many_arguments)]
pub fn ce_forward_using(
    kind: RowKernel,
    ctx: &GpuContext,
    out: CrossEntropyOut<'_>,
    logits: &GpuSlice,
    total_rows: u32,
    rows: &GpuSlice,
    labels: &GpuSlice,
    m: u32,
    vocab: u32,
    smoothing: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "crossentropy::ce_forward";
    need(K, "logits", logits, total_rows as u64 * vocab as u64)?;
    need(K, "rows", rows, m as u64)?;
    need(K, "labels", labels, m as u64)?;
    need(K, "loss", out.loss, m as u64)?;
    need(K, "correct", out.correct, m as u64)?;
    need(K, "lse", out.lse, m as u64)?;
    if m == 0 {
        return Ok(Vec::new());
    }
    let params = CrossEntropyParams {
        m,
        vocab,
        smoothing,
        scale: 1.0,
    };
    let u = GpuSlice::uniform(ctx, "CrossEntropyParams", &params);
    let mut d = vec![forward_dispatch(
        kind, ctx, &out, logits, rows, labels, &u, m,
    )?];
    if let Some(stats) = out.stats {
        need(K, "stats", stats, 2)?;
        d.extend(reduce::mean(ctx, stats, 0, out.loss, m)?);
        d.extend(reduce::mean(ctx, stats, 1, out.correct, m)?);
    }
    Ok(d)
}

/// The `ce_forward` dispatch over `launched` selected rows with the parameter uniform `params` bound.
#[allow(clippy::too_many_arguments)]
fn forward_dispatch(
    kind: RowKernel,
    ctx: &GpuContext,
    out: &CrossEntropyOut<'_>,
    logits: &GpuSlice,
    rows: &GpuSlice,
    labels: &GpuSlice,
    params: &GpuSlice,
    launched: u32,
) -> Result<Dispatch, GpuError> {
    launch(
        ctx,
        "crossentropy",
        kind.entry("ce_forward", "ce_forward_rows"),
        &[
            out.loss,
            out.correct,
            out.lse,
            logits,
            rows,
            labels,
            params,
            logits,
            logits,
            &vec4_view(ctx, logits),
        ],
        kind.grid(launched as u64),
    )
}

/// `dlogits[rows[i]] = (softmax(logits[rows[i]]) − q_i) · scale` (scale = 1 / M for a mean loss).
/// Rows of `dlogits` that are not selected are left untouched.
#[allow(clippy::too_many_arguments)]
pub fn ce_backward(
    ctx: &GpuContext,
    dlogits: &GpuSlice,
    logits: &GpuSlice,
    total_rows: u32,
    lse: &GpuSlice,
    rows: &GpuSlice,
    labels: &GpuSlice,
    m: u32,
    vocab: u32,
    smoothing: f32,
    scale: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "crossentropy::ce_backward";
    need(K, "logits", logits, total_rows as u64 * vocab as u64)?;
    need(K, "dlogits", dlogits, total_rows as u64 * vocab as u64)?;
    need(K, "lse", lse, m as u64)?;
    need(K, "rows", rows, m as u64)?;
    need(K, "labels", labels, m as u64)?;
    if m == 0 {
        return Ok(Vec::new());
    }
    let params = CrossEntropyParams {
        m,
        vocab,
        smoothing,
        scale,
    };
    let u = GpuSlice::uniform(ctx, "CrossEntropyParams", &params);
    Ok(vec![backward_dispatch(
        ctx, dlogits, logits, lse, rows, labels, &u, m, vocab,
    )?])
}

/// The `ce_backward` dispatch over `launched` selected rows: `ce_backward4` (four logits per thread) where the
/// vocabulary is a multiple of 4.
#[allow(clippy::too_many_arguments)]
fn backward_dispatch(
    ctx: &GpuContext,
    dlogits: &GpuSlice,
    logits: &GpuSlice,
    lse: &GpuSlice,
    rows: &GpuSlice,
    labels: &GpuSlice,
    params: &GpuSlice,
    launched: u32,
    vocab: u32,
) -> Result<Dispatch, GpuError> {
    let elements = launched as u64 * vocab as u64;
    if vocab.is_multiple_of(4) {
        let (logits4, dlogits4) = (vec4_view(ctx, logits), vec4_view(ctx, dlogits));
        return launch(
            ctx,
            "crossentropy",
            "ce_backward4",
            &[
                dlogits, dlogits, dlogits, logits, rows, labels, params, lse, logits, &logits4,
                &dlogits4,
            ],
            grid_for(elements / 4, 256),
        );
    }
    launch(
        ctx,
        "crossentropy",
        "ce_backward",
        &[dlogits, dlogits, dlogits, logits, rows, labels, params, lse],
        grid_for(elements, 256),
    )
}

/// [`ce_forward`] for a per-step count of rows: `params` is a uniform the caller rewrites each step with the
/// actual count `m ≤ m_cap` (rows past it are skipped). Writes Σ loss and Σ correct (not means) at
/// `stats[0..2]`; the per-row buffers are zeroed first so rows past `m` add nothing.
#[allow(clippy::too_many_arguments)]
pub fn ce_forward_with(
    ctx: &GpuContext,
    out: CrossEntropyOut<'_>,
    logits: &GpuSlice,
    total_rows: u32,
    rows: &GpuSlice,
    labels: &GpuSlice,
    params: &GpuSlice,
    m_cap: u32,
    vocab: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "crossentropy::ce_forward";
    need(K, "logits", logits, total_rows as u64 * vocab as u64)?;
    need(K, "rows", rows, m_cap as u64)?;
    need(K, "labels", labels, m_cap as u64)?;
    if m_cap == 0 {
        return Ok(Vec::new());
    }
    let mut d = super::elementwise::fill(ctx, out.loss, m_cap, 0.0)?;
    d.extend(super::elementwise::fill(ctx, out.correct, m_cap, 0.0)?);
    d.push(forward_dispatch(
        forward_kernel(ctx, vocab),
        ctx,
        &out,
        logits,
        rows,
        labels,
        params,
        m_cap,
    )?);
    if let Some(stats) = out.stats {
        need(K, "stats", stats, 2)?;
        d.extend(reduce::sum(
            ctx, stats, 0, out.loss, m_cap, 1.0, false, false,
        )?);
        d.extend(reduce::sum(
            ctx,
            stats,
            1,
            out.correct,
            m_cap,
            1.0,
            false,
            false,
        )?);
    }
    Ok(d)
}

/// [`ce_backward`] for a per-step count of rows read from `params` (whose `scale` is 1 / m).
#[allow(clippy::too_many_arguments)]
pub fn ce_backward_with(
    ctx: &GpuContext,
    dlogits: &GpuSlice,
    logits: &GpuSlice,
    total_rows: u32,
    lse: &GpuSlice,
    rows: &GpuSlice,
    labels: &GpuSlice,
    params: &GpuSlice,
    m_cap: u32,
    vocab: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "crossentropy::ce_backward";
    need(K, "dlogits", dlogits, total_rows as u64 * vocab as u64)?;
    need(K, "lse", lse, m_cap as u64)?;
    if m_cap == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![backward_dispatch(
        ctx, dlogits, logits, lse, rows, labels, params, m_cap, vocab,
    )?])
}

/// Pixel-regression loss per row for the first `m` rows (m and scale read from `params`, a per-step uniform):
/// `loss[i] = Σ_j (pred − target)²`; `stats[0]` (when given) = Σ over rows (rows past m are zeroed first).
/// Shapes: pred, target (m_cap, P), loss (m_cap).
#[allow(clippy::too_many_arguments)]
pub fn mse_forward_with(
    ctx: &GpuContext,
    loss: &GpuSlice,
    stats: Option<&GpuSlice>,
    pred: &GpuSlice,
    target: &GpuSlice,
    params: &GpuSlice,
    m_cap: u32,
    width: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "crossentropy::mse_forward";
    need(K, "pred", pred, m_cap as u64 * width as u64)?;
    need(K, "target", target, m_cap as u64 * width as u64)?;
    need(K, "loss", loss, m_cap as u64)?;
    if m_cap == 0 {
        return Ok(Vec::new());
    }
    let mut d = super::elementwise::fill(ctx, loss, m_cap, 0.0)?;
    d.push(launch(
        ctx,
        "crossentropy",
        "mse_forward",
        &[loss, loss, loss, pred, pred, pred, params, pred, target],
        grid_for(m_cap as u64, 64),
    )?);
    if let Some(stats) = stats {
        need(K, "stats", stats, 2)?;
        d.extend(reduce::sum(ctx, stats, 0, loss, m_cap, 1.0, false, false)?);
    }
    Ok(d)
}

/// `dpred = 2·scale·(pred − target)` for the first m rows (scale from `params`); other rows untouched.
pub fn mse_backward_with(
    ctx: &GpuContext,
    dpred: &GpuSlice,
    pred: &GpuSlice,
    target: &GpuSlice,
    params: &GpuSlice,
    m_cap: u32,
    width: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "crossentropy::mse_backward";
    need(K, "dpred", dpred, m_cap as u64 * width as u64)?;
    if m_cap == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![launch(
        ctx,
        "crossentropy",
        "mse_backward",
        &[dpred, dpred, dpred, pred, pred, pred, params, pred, target],
        grid_for(m_cap as u64 * width as u64, 256),
    )?])
}
