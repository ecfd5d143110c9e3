//! Launchers for `shaders/vq.wgsl`: row L2 normalisation (forward / backward), row argmax, one-hot, and the
//! EMA codebook update with dead-code restart. Shapes in each function's comment.

use super::{fits_u32, gpu_params, grid_for, launch, need};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `VqParams` in vq.wgsl.
    VqParams in "vq" as "VqParams" { rows: u32, dim: u32, codes: u32, salt: u32, eps: f32, decay: f32, threshold: f32, _pad: u32 }
);

/// Smallest norm divided by (as torch.nn.functional.normalize's eps).
pub const NORM_EPS: f32 = 1e-12;

fn run(
    ctx: &GpuContext,
    entry: &str,
    args: [&GpuSlice; 8],
    params: VqParams,
    items: u64,
    wg: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    if items == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(ctx, "VqParams", &params);
    let [a0, a1, a2, a3, a4, a5, a6, a7] = args;
    Ok(vec![launch(
        ctx,
        "vq",
        entry,
        &[a0, a1, a2, a3, a4, a5, a6, a7, &u],
        grid_for(items, wg),
    )?])
}

/// `y (R, D) = x / max(‖x‖, eps)`, `norm (R)` saved.
pub fn l2norm_forward(
    ctx: &GpuContext,
    y: &GpuSlice,
    norm: &GpuSlice,
    x: &GpuSlice,
    rows: u32,
    dim: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "vq::l2norm_forward";
    let n = rows as u64 * dim as u64;
    need(K, "y", y, n)?;
    need(K, "x", x, n)?;
    need(K, "norm", norm, rows as u64)?;
    fits_u32(K, n)?;
    let p = VqParams {
        rows,
        dim,
        eps: NORM_EPS,
        ..Default::default()
    };
    run(
        ctx,
        "l2norm_forward",
        [y, norm, norm, x, x, x, x, x],
        p,
        rows as u64,
        64,
    )
}

/// `dx (R, D) = (dy − y·(y·dy)) / norm`.
pub fn l2norm_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    y: &GpuSlice,
    norm: &GpuSlice,
    rows: u32,
    dim: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "vq::l2norm_backward";
    let n = rows as u64 * dim as u64;
    for (w, s) in [("dx", dx), ("dy", dy), ("y", y)] {
        need(K, w, s, n)?;
    }
    need(K, "norm", norm, rows as u64)?;
    let p = VqParams {
        rows,
        dim,
        eps: NORM_EPS,
        ..Default::default()
    };
    run(
        ctx,
        "l2norm_backward",
        [dx, dx, dx, dx, dy, y, norm, dy],
        p,
        rows as u64,
        64,
    )
}

/// `idx (R) u32 = argmax_k scores[r, k]` (lowest index on ties), `best (R)` the maxima; scores (R, K).
pub fn argmax_rows(
    ctx: &GpuContext,
    idx: &GpuSlice,
    best: &GpuSlice,
    scores: &GpuSlice,
    rows: u32,
    codes: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "vq::argmax_rows";
    need(K, "scores", scores, rows as u64 * codes as u64)?;
    need(K, "idx", idx, rows as u64)?;
    need(K, "best", best, rows as u64)?;
    if codes == 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "no codes to choose from".into(),
        });
    }
    let p = VqParams {
        rows,
        codes,
        ..Default::default()
    };
    run(
        ctx,
        "argmax_rows",
        [best, best, best, idx, scores, scores, scores, idx],
        p,
        rows as u64,
        64,
    )
}

/// `out (R, K) = one_hot(idx (R))`.
pub fn one_hot(
    ctx: &GpuContext,
    out: &GpuSlice,
    idx: &GpuSlice,
    rows: u32,
    codes: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "vq::one_hot";
    let n = rows as u64 * codes as u64;
    need(K, "out", out, n)?;
    need(K, "idx", idx, rows as u64)?;
    fits_u32(K, n)?;
    let p = VqParams {
        rows,
        codes,
        ..Default::default()
    };
    run(
        ctx,
        "one_hot",
        [out, out, out, idx, out, out, out, idx],
        p,
        n,
        256,
    )
}

/// The EMA state of a codebook.
pub struct EmaState<'a> {
    /// (K, D), rows of unit length after the update.
    pub codebook: &'a GpuSlice,
    /// (K, D) running sums.
    pub ema_sum: &'a GpuSlice,
    /// (K) running counts.
    pub ema_count: &'a GpuSlice,
}

/// EMA update from this batch's per-code `counts (K)` and `sums (K, D)`; codes whose running count falls below
/// `threshold` restart at the row of `z (R, D)` with the lowest `score (R)` among 16 picked by hashing (code, `salt`).
#[allow(clippy::too_many_arguments)]
pub fn ema_update(
    ctx: &GpuContext,
    st: EmaState<'_>,
    counts: &GpuSlice,
    sums: &GpuSlice,
    z: &GpuSlice,
    score: &GpuSlice,
    rows: u32,
    dim: u32,
    codes: u32,
    decay: f32,
    threshold: f32,
    salt: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "vq::ema_update";
    let kd = codes as u64 * dim as u64;
    need(K, "codebook", st.codebook, kd)?;
    need(K, "ema_sum", st.ema_sum, kd)?;
    need(K, "sums", sums, kd)?;
    need(K, "ema_count", st.ema_count, codes as u64)?;
    need(K, "counts", counts, codes as u64)?;
    need(K, "z", z, rows as u64 * dim as u64)?;
    need(K, "score", score, rows as u64)?;
    let p = VqParams {
        rows,
        dim,
        codes,
        salt,
        eps: NORM_EPS,
        decay,
        threshold,
        _pad: 0,
    };
    let u = GpuSlice::uniform(ctx, "VqParams", &p);
    ema_update_with(ctx, st, counts, sums, z, score, &u, codes)
}

/// [`ema_update`] reading its parameters from a uniform the caller owns (and rewrites per step for the salt).
#[allow(clippy::too_many_arguments)]
pub fn ema_update_with(
    ctx: &GpuContext,
    st: EmaState<'_>,
    counts: &GpuSlice,
    sums: &GpuSlice,
    z: &GpuSlice,
    score: &GpuSlice,
    params: &GpuSlice,
    codes: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    if codes == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![launch(
        ctx,
        "vq",
        "ema_update",
        &[
            st.codebook,
            st.ema_sum,
            st.ema_count,
            counts,
            counts,
            sums,
            z,
            counts,
            params,
            score,
        ],
        grid_for(codes as u64, 64),
    )?])
}

/// `out (R) u32 = src[positions[r]]` for u32 data (tokens): no float reinterpretation on the way.
pub fn gather_u32(
    ctx: &GpuContext,
    out: &GpuSlice,
    src: &GpuSlice,
    positions: &GpuSlice,
    rows: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "vq::gather_u32";
    need(K, "out", out, rows as u64)?;
    need(K, "positions", positions, rows as u64)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let p = VqParams {
        rows,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "VqParams", &p);
    Ok(vec![launch(
        ctx,
        "vq",
        "gather_u32",
        &[out, out, out, out, out, out, out, src, &u, out, positions],
        grid_for(rows as u64, 256),
    )?])
}
