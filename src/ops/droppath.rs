//! Launchers for `shaders/droppath.wgsl`: per-sample drop path with a counter-based RNG, and the forward residual
//! update of a branch fused with its layer scale and drop path, and its backward. Shapes: `out, x, x_in (B, S)`,
//! `λ (C)`, `S = T·C`; the backward's partial sums `(chunks, C)`.

use super::{
    fits_u32, gpu_params, grid_for, launch, need, reduce, rows_per_chunk, vec4_view, ELEMENT_WG,
};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `DropPathParams` in droppath.wgsl.
    DropPathParams in "droppath" as "DropPathParams" {
        batch: u32, per_sample: u32, keep_prob: f32, flags: u32, seed_lo: u32, seed_hi: u32, stream: u32, cols: u32,
    }
);

gpu_params!(
    /// Mirrors `ChunkParams` in droppath.wgsl: how [`residual_branch_backward_with`] splits the rows for its
    /// partial sums.
    ChunkParams in "droppath" as "ChunkParams" { rows: u32, rows_per_chunk: u32, chunks: u32, _pad: u32 }
);

/// Threads per workgroup of the `residual_branch_backward` entries.
const BACKWARD_WG: u64 = 64;

impl DropPathParams {
    /// The uniform of one drop-path launch: `batch` samples of `per_sample` values, random stream `stream` of
    /// `seed`, accumulating into the output when `accumulate`.
    pub fn new(
        batch: u32,
        per_sample: u32,
        keep_prob: f32,
        seed: u64,
        stream: u32,
        accumulate: bool,
    ) -> Self {
        Self {
            batch,
            per_sample,
            keep_prob,
            flags: accumulate as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            stream,
            cols: 0,
        }
    }

    /// The uniform of one [`residual_branch`] launch: rows of `cols` values, `per_sample` values per sample, drop
    /// path with `keep` (none: every branch kept, unscaled), layer scale when `lambda`.
    #[allow(clippy::too_many_arguments)]
    pub fn residual(
        batch: u32,
        per_sample: u32,
        cols: u32,
        keep: Option<f32>,
        lambda: bool,
        seed: u64,
        stream: u32,
    ) -> Self {
        Self {
            flags: ((keep.is_some() as u32) << 1) | ((lambda as u32) << 2),
            cols,
            ..Self::new(batch, per_sample, keep.unwrap_or(1.0), seed, stream, false)
        }
    }
}

/// `out (=|+=) x · keep_b / keep_prob` with `keep_b` drawn from (seed, stream, b). The backward is the same
/// call on the upstream gradient with the same seed and stream.
#[allow(clippy::too_many_arguments)]
pub fn drop_path(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    batch: u32,
    per_sample: u32,
    keep_prob: f32,
    seed: u64,
    stream: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "droppath::drop_path";
    let n = batch as u64 * per_sample as u64;
    need(K, "out", out, n)?;
    need(K, "x", x, n)?;
    fits_u32(K, n)?;
    if !(keep_prob > 0.0 && keep_prob <= 1.0) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("keep probability {keep_prob} is outside (0, 1]"),
        });
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let params = DropPathParams::new(batch, per_sample, keep_prob, seed, stream, accumulate);
    let u = GpuSlice::uniform(ctx, "DropPathParams", &params);
    let quads = per_sample.is_multiple_of(4);
    launch_drop_path(ctx, "drop_path", quads, [out, x, &u, x, x], n)
}

/// One launch of `entry` over `n` elements with bindings `[out, x, params, x_in, λ]`: its `4` entry through
/// vec4 views where `quads`, else one element per thread.
fn launch_drop_path(
    ctx: &GpuContext,
    entry: &str,
    quads: bool,
    [out, x, params, x_in, lambda]: [&GpuSlice; 5],
    n: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    let dispatch = if quads {
        let views = [out, x, x_in, lambda].map(|s| vec4_view(ctx, s));
        launch(
            ctx,
            "droppath",
            &format!("{entry}4"),
            &[
                out, x, params, x_in, lambda, &views[0], &views[1], &views[2], &views[3],
            ],
            grid_for(n / 4, ELEMENT_WG),
        )?
    } else {
        launch(
            ctx,
            "droppath",
            entry,
            &[out, x, params, x_in, lambda],
            grid_for(n, ELEMENT_WG),
        )?
    };
    Ok(vec![dispatch])
}

/// [`drop_path`] reading its parameters from a uniform the caller owns and rewrites per step (new seed).
pub fn drop_path_with(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    params: &GpuSlice,
    p: &DropPathParams,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "droppath::drop_path";
    let n = p.batch as u64 * p.per_sample as u64;
    need(K, "out", out, n)?;
    need(K, "x", x, n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let quads = p.per_sample.is_multiple_of(4);
    launch_drop_path(ctx, "drop_path", quads, [out, x, params, x, x], n)
}

/// `out = x_in + s_b · λ ⊙ branch` in one pass (a residual update: the old path was a copy, a layer scale and a
/// drop path with accumulation, three launches): `s_b` the drop-path scale of sample b when `p` has drop path
/// on, λ (C) per column when given. Parameters from a uniform the caller owns and rewrites per step (new seed).
pub fn residual_branch_with(
    ctx: &GpuContext,
    out: &GpuSlice,
    x_in: &GpuSlice,
    branch: &GpuSlice,
    lambda: Option<&GpuSlice>,
    params: &GpuSlice,
    p: &DropPathParams,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "droppath::residual_branch";
    let n = p.batch as u64 * p.per_sample as u64;
    need(K, "out", out, n)?;
    need(K, "x_in", x_in, n)?;
    need(K, "branch", branch, n)?;
    fits_u32(K, n)?;
    if (p.flags & 2) != 0 && !(p.keep_prob > 0.0 && p.keep_prob <= 1.0) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("keep probability {} is outside (0, 1]", p.keep_prob),
        });
    }
    if lambda.is_some() != ((p.flags & 4) != 0)
        || p.cols == 0
        || !p.per_sample.is_multiple_of(p.cols)
    {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "the layer scale and its flag disagree, or {} columns do not divide a sample of {}",
                p.cols, p.per_sample
            ),
        });
    }
    if let Some(l) = lambda {
        need(K, "lambda", l, p.cols as u64)?;
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    // A quad lies in one row (and so one sample: a sample is whole rows).
    let quads = p.cols.is_multiple_of(4);
    launch_drop_path(
        ctx,
        "residual_branch",
        quads,
        [out, branch, params, x_in, lambda.unwrap_or(branch)],
        n,
    )
}

/// [`residual_branch_with`] with its own uniform (tests, one-off launches).
#[allow(clippy::too_many_arguments)]
pub fn residual_branch(
    ctx: &GpuContext,
    out: &GpuSlice,
    x_in: &GpuSlice,
    branch: &GpuSlice,
    lambda: Option<&GpuSlice>,
    (batch, per_sample, cols): (u32, u32, u32),
    keep: Option<f32>,
    seed: u64,
    stream: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    let p = DropPathParams::residual(
        batch,
        per_sample,
        cols,
        keep,
        lambda.is_some(),
        seed,
        stream,
    );
    let u = GpuSlice::uniform(ctx, "DropPathParams (residual)", &p);
    residual_branch_with(ctx, out, x_in, branch, lambda, &u, &p)
}

/// The backward of [`residual_branch_with`] with a layer scale, in one pass over the rows plus the column sum
/// of its partials: `d_branch = s_b · λ ⊙ dy` and `dλ (+)= Σ_rows s_b · dy ⊙ branch`, for `dy` the gradient of
/// the residual's output and `branch` the forward's branch. `p` (and the uniform `params` holding it, which the
/// caller rewrites per step with the forward's seed) must have the layer scale on; drop path as there. Before,
/// this was a drop path, a layer scale and its gradient's partial sums: three passes, four launches. Each
/// thread walks `rows_per_chunk` rows ([`residual_backward_rows_per_chunk`] for the adapter); `part` holds the
/// partial sums (chunks, C), at most one row per row of dy (the graph lends it the branch's scratch).
#[allow(clippy::too_many_arguments)]
pub fn residual_branch_backward_with(
    ctx: &GpuContext,
    d_branch: &GpuSlice,
    dlambda: &GpuSlice,
    part: &GpuSlice,
    dy: &GpuSlice,
    branch: &GpuSlice,
    lambda: &GpuSlice,
    params: &GpuSlice,
    p: &DropPathParams,
    rows_per_chunk: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "droppath::residual_branch_backward";
    let bad = |message: String| GpuError::BadLaunch {
        kernel: K.into(),
        message,
    };
    let n = p.batch as u64 * p.per_sample as u64;
    need(K, "d_branch", d_branch, n)?;
    need(K, "dy", dy, n)?;
    need(K, "branch", branch, n)?;
    fits_u32(K, n)?;
    if (p.flags & 4) == 0 || p.cols == 0 || !p.per_sample.is_multiple_of(p.cols) {
        return Err(bad(format!(
            "it needs the layer scale on and {} columns dividing a sample of {}",
            p.cols, p.per_sample
        )));
    }
    if (p.flags & 2) != 0 && !(p.keep_prob > 0.0 && p.keep_prob <= 1.0) {
        return Err(bad(format!(
            "keep probability {} is outside (0, 1]",
            p.keep_prob
        )));
    }
    need(K, "lambda", lambda, p.cols as u64)?;
    need(K, "dlambda", dlambda, p.cols as u64)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let rows = (n / p.cols as u64) as u32;
    let rpc = rows_per_chunk.max(1);
    let chunking = ChunkParams {
        rows,
        rows_per_chunk: rpc,
        chunks: rows.div_ceil(rpc),
        ..Default::default()
    };
    need(K, "part", part, chunking.chunks as u64 * p.cols as u64)?;
    let cu = GpuSlice::uniform(ctx, "ChunkParams", &chunking);
    // A quad lies in one row, and so in one sample.
    let quads = p.cols.is_multiple_of(4);
    let views = [d_branch, dy, branch, lambda, part].map(|s| vec4_view(ctx, s));
    let (entry, threads) = if quads {
        (
            "residual_branch_backward4",
            chunking.chunks as u64 * p.cols as u64 / 4,
        )
    } else {
        (
            "residual_branch_backward",
            chunking.chunks as u64 * p.cols as u64,
        )
    };
    let fused = launch(
        ctx,
        "droppath",
        entry,
        &[
            d_branch, dy, params, branch, lambda, &views[0], &views[1], &views[2], &views[3], part,
            &views[4], &cu,
        ],
        grid_for(threads, BACKWARD_WG),
    )?;
    let mut d = vec![fused];
    d.extend(reduce::col_sum(
        ctx,
        dlambda,
        part,
        chunking.chunks,
        p.cols,
        true,
    )?);
    Ok(d)
}

/// Rows each thread of `residual_branch_backward` walks for `rows` rows: on software adapters about √rows (at
/// least 64), few threads with long runs, as a CPU wants; on GPUs [`GPU_ROWS_PER_CHUNK`], so that a batch of
/// tiny's 8320 rows still has about 50K threads (a thread's loads wait on memory one row at a time), with the
/// longer column sum in two stages after it.
pub fn residual_backward_rows_per_chunk(ctx: &GpuContext, rows: u64) -> u32 {
    if ctx.adapter_info.device_type == wgpu::DeviceType::Cpu {
        rows_per_chunk(rows) as u32
    } else {
        GPU_ROWS_PER_CHUNK
    }
}

/// Rows per thread of `residual_branch_backward` on GPUs.
pub const GPU_ROWS_PER_CHUNK: u32 = 8;
