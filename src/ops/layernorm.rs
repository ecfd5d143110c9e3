//! Launchers for `shaders/layernorm.wgsl`. Shapes: `x, y, dx, dy (R, C)`, `mean, rstd (R)`, `gamma, beta (C)`.

use super::{
    fits_u32, gpu_params, grid_for, launch, need, reduce, rows_per_chunk, vec4_view, RowKernel,
};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `LayerNormParams` in layernorm.wgsl.
    LayerNormParams in "layernorm" as "LayerNormParams" {
        rows: u32, cols: u32, eps: f32, flags: u32, rows_per_chunk: u32, chunks: u32, beta_offset: u32, _pad: u32,
    }
);

fn check(kernel: &str, x: &GpuSlice, rows: u32, cols: u32) -> Result<(), GpuError> {
    need(kernel, "x", x, rows as u64 * cols as u64)?;
    fits_u32(kernel, rows as u64 * cols as u64).map(|_| ())
}

/// `y = (x − mean) · rstd · γ + β` per row; saves `mean` and `rstd` for the backward.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward(
    ctx: &GpuContext,
    y: &GpuSlice,
    mean: &GpuSlice,
    rstd: &GpuSlice,
    x: &GpuSlice,
    gamma: &GpuSlice,
    beta: &GpuSlice,
    rows: u32,
    cols: u32,
    eps: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    let kind = RowKernel::for_adapter(ctx);
    layernorm_forward_using(kind, ctx, y, mean, rstd, x, gamma, beta, rows, cols, eps)
}

/// [`layernorm_forward`] with an explicit choice of kernel (tests check both on every adapter).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward_using(
    kind: RowKernel,
    ctx: &GpuContext,
    y: &GpuSlice,
    mean: &GpuSlice,
    rstd: &GpuSlice,
    x: &GpuSlice,
    gamma: &GpuSlice,
    beta: &GpuSlice,
    rows: u32,
    cols: u32,
    eps: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "layernorm::layernorm_forward";
    check(K, x, rows, cols)?;
    need(K, "y", y, rows as u64 * cols as u64)?;
    need(K, "mean", mean, rows as u64)?;
    need(K, "rstd", rstd, rows as u64)?;
    need(K, "gamma", gamma, cols as u64)?;
    need(K, "beta", beta, cols as u64)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let params = LayerNormParams {
        rows,
        cols,
        eps,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "LayerNormParams", &params);
    let args = [y, mean, rstd, x, gamma, beta, x, &u, x, x];
    Ok(vec![launch_rows(
        ctx,
        kind,
        ("layernorm_forward", "layernorm_forward_rows"),
        args,
        cols,
        rows,
    )?])
}

/// Backward: `dx (=|+=) ...`, `dγ += Σ dy·x̂`, `dβ += Σ dy` (the latter two through row-chunk partials).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dgamma: &GpuSlice,
    dbeta: &GpuSlice,
    dy: &GpuSlice,
    x: &GpuSlice,
    mean: &GpuSlice,
    rstd: &GpuSlice,
    gamma: &GpuSlice,
    rows: u32,
    cols: u32,
    accumulate_dx: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    let kind = RowKernel::for_adapter(ctx);
    layernorm_backward_using(
        kind,
        ctx,
        dx,
        dgamma,
        dbeta,
        dy,
        x,
        mean,
        rstd,
        gamma,
        rows,
        cols,
        accumulate_dx,
    )
}

/// [`layernorm_backward`] with an explicit choice of kernel for `dx`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward_using(
    kind: RowKernel,
    ctx: &GpuContext,
    dx: &GpuSlice,
    dgamma: &GpuSlice,
    dbeta: &GpuSlice,
    dy: &GpuSlice,
    x: &GpuSlice,
    mean: &GpuSlice,
    rstd: &GpuSlice,
    gamma: &GpuSlice,
    rows: u32,
    cols: u32,
    accumulate_dx: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "layernorm::layernorm_backward";
    check(K, x, rows, cols)?;
    need(K, "dx", dx, rows as u64 * cols as u64)?;
    need(K, "dy", dy, rows as u64 * cols as u64)?;
    need(K, "dgamma", dgamma, cols as u64)?;
    need(K, "dbeta", dbeta, cols as u64)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let rpc = rows_per_chunk(rows as u64) as u32;
    let chunks = rows.div_ceil(rpc);
    // dγ partials at 0, dβ partials at the next storage-aligned offset, so each half binds on its own.
    let per = chunks as u64 * cols as u64;
    let align = (ctx.storage_alignment() / 4).max(1);
    let beta_offset = per.div_ceil(align) * align;
    let part = GpuSlice::new(ctx, "layernorm dγ dβ partials", beta_offset + per);
    let params = LayerNormParams {
        rows,
        cols,
        flags: accumulate_dx as u32,
        rows_per_chunk: rpc,
        chunks,
        beta_offset: fits_u32(K, beta_offset)?,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "LayerNormParams", &params);
    let input = launch_rows(
        ctx,
        kind,
        ("layernorm_backward_input", "layernorm_backward_input_rows"),
        [dx, dx, dx, x, gamma, gamma, dy, &u, mean, rstd],
        cols,
        rows,
    )?;
    let partial = launch(
        ctx,
        "layernorm",
        "layernorm_backward_params",
        &[&part, &part, &part, x, gamma, gamma, dy, &u, mean, rstd],
        grid_for(chunks as u64 * cols as u64, 64),
    )?;
    let fin_g = reduce::col_sum_partials(ctx, dgamma, &part.sub(0, per), chunks, cols, true)?;
    let fin_b =
        reduce::col_sum_partials(ctx, dbeta, &part.sub(beta_offset, per), chunks, cols, true)?;
    Ok(vec![input, partial, fin_g, fin_b])
}

/// One launch of a row kernel with bindings 0-9 `args`: a workgroup per row, or a thread per row
/// (`RowKernel::Thread`), whose `_rows4` entry reads and writes quads through vec4 views (bindings 10-14 of
/// out, x, γ, β, dy) where `cols` is a multiple of 4.
fn launch_rows(
    ctx: &GpuContext,
    kind: RowKernel,
    (per_workgroup, per_thread): (&'static str, &'static str),
    args: [&GpuSlice; 10],
    cols: u32,
    rows: u32,
) -> Result<Dispatch, GpuError> {
    let entry = kind.entry(per_workgroup, per_thread);
    if kind == RowKernel::Thread && cols.is_multiple_of(4) {
        let [out, x, gamma, beta, dy] =
            [args[0], args[3], args[4], args[5], args[6]].map(|s| vec4_view(ctx, s));
        let mut all: Vec<&GpuSlice> = args.to_vec();
        all.extend([&out, &x, &gamma, &beta, &dy]);
        launch(
            ctx,
            "layernorm",
            &format!("{entry}4"),
            &all,
            kind.grid(rows as u64),
        )
    } else {
        launch(ctx, "layernorm", entry, &args, kind.grid(rows as u64))
    }
}
