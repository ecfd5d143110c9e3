//! Launchers for `shaders/reduce.wgsl`: column sums (two stages through a scratch buffer when there are many
//! rows), row sums, and multi-pass sums of a flat buffer (mean, sum of squares, global L2 norm).

use super::{
    fits_u32, gpu_params, grid_for, launch, need, rows_per_chunk, vec4_view, RowKernel, ELEMENT_WG,
};
use crate::gpu::{workgroup_grid, Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `ReduceParams` in reduce.wgsl.
    ReduceParams in "reduce" as "ReduceParams" {
        rows: u32, cols: u32, rows_per_chunk: u32, chunks: u32, n: u32, flags: u32, scale: f32, out_offset: u32,
    }
);

const ACCUMULATE: u32 = 1;
const SQUARE: u32 = 2;
const SQRT: u32 = 4;

/// Elements summed by one workgroup of `reduce_sum` (256 threads x 4 quads).
pub const SUM_PER_GROUP: u64 = 4096;

/// Elements summed by one workgroup of `reduce_sum_long` (64 threads x 256 quads; software adapters).
pub const SUM_PER_LONG_GROUP: u64 = 65536;

/// The kernel of a flat sum: `Workgroup` (`reduce_sum`, many short workgroups for GPUs) or `Thread`
/// (`reduce_sum_long`, long runs per thread and few barriers for software adapters); see [`RowKernel`].
fn sum_kernel(kind: RowKernel) -> (&'static str, u64) {
    match kind {
        RowKernel::Workgroup => ("reduce_sum", SUM_PER_GROUP),
        RowKernel::Thread => ("reduce_sum_long", SUM_PER_LONG_GROUP),
    }
}

fn col_sum_pass(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    rows: u32,
    cols: u32,
    rpc: u32,
    flags: u32,
) -> Result<Dispatch, GpuError> {
    let chunks = rows.div_ceil(rpc);
    let params = ReduceParams {
        rows,
        cols,
        rows_per_chunk: rpc,
        chunks,
        flags,
        scale: 1.0,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "ReduceParams", &params);
    launch(
        ctx,
        "reduce",
        "col_sum",
        &[out, x, &u],
        grid_for(cols as u64 * chunks as u64, ELEMENT_WG),
    )
}

/// `out (C) (=|+=) Σ_r x[r, :]` for `x (R, C)`.
pub fn col_sum(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    rows: u32,
    cols: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "reduce::col_sum";
    need(K, "out", out, cols as u64)?;
    need(K, "x", x, rows as u64 * cols as u64)?;
    fits_u32(K, rows as u64 * cols as u64)?;
    let flags = if accumulate { ACCUMULATE } else { 0 };
    if cols == 0 {
        return Ok(Vec::new());
    }
    let rpc = rows_per_chunk(rows as u64) as u32;
    if rows <= rpc || single_pass_is_cheaper(ctx, rows, cols) {
        return Ok(vec![col_sum_pass(
            ctx,
            out,
            x,
            rows,
            cols,
            rows.max(1),
            flags,
        )?]);
    }
    let chunks = rows.div_ceil(rpc);
    let scratch = GpuSlice::new(ctx, "col_sum partials", chunks as u64 * cols as u64);
    Ok(vec![
        col_sum_pass(ctx, &scratch, x, rows, cols, rpc, 0)?,
        col_sum_pass(ctx, out, &scratch, chunks, cols, chunks, flags)?,
    ])
}

/// On a software adapter a small column sum costs less in one pass than the fixed cost of a second launch
/// (about 40 us on llvmpipe): the micro preset's bias gradients (544 x 32 .. 544 x 128) in one dispatch each.
/// Up to 1024 rows only: one thread adding a long column alone loses precision the two stages keep (the
/// pyramid segmentation head's finite-difference check failed when longer columns took one pass).
fn single_pass_is_cheaper(ctx: &GpuContext, rows: u32, cols: u32) -> bool {
    ctx.adapter_info.device_type == wgpu::DeviceType::Cpu
        && rows <= SOFTWARE_SINGLE_PASS_ROWS
        && rows as u64 * cols as u64 <= SOFTWARE_SINGLE_PASS
}

/// Elements up to which [`col_sum`] takes one pass on software adapters.
const SOFTWARE_SINGLE_PASS: u64 = 1 << 17;

/// Rows up to which [`col_sum`] takes one pass on software adapters.
const SOFTWARE_SINGLE_PASS_ROWS: u32 = 1024;

/// Finish a column sum from `(chunks, C)` partials: `out (C) (=|+=) Σ_k part[k, :]`.
pub fn col_sum_partials(
    ctx: &GpuContext,
    out: &GpuSlice,
    part: &GpuSlice,
    chunks: u32,
    cols: u32,
    accumulate: bool,
) -> Result<Dispatch, GpuError> {
    col_sum_pass(
        ctx,
        out,
        part,
        chunks,
        cols,
        chunks.max(1),
        if accumulate { ACCUMULATE } else { 0 },
    )
}

/// `out (R) (=|+=) scale · Σ_c x[r, c]` for `x (R, C)`.
pub fn row_sum(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    rows: u32,
    cols: u32,
    scale: f32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "reduce::row_sum";
    need(K, "out", out, rows as u64)?;
    need(K, "x", x, rows as u64 * cols as u64)?;
    if rows == 0 {
        return Ok(Vec::new());
    }
    let flags = if accumulate { ACCUMULATE } else { 0 };
    let params = ReduceParams {
        rows,
        cols,
        flags,
        scale,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "ReduceParams", &params);
    Ok(vec![launch(
        ctx,
        "reduce",
        "row_sum",
        &[out, x, &u],
        workgroup_grid(rows as u64),
    )?])
}

/// `out[out_index] = finish(scale · Σ_i f(x[i]))` over `n` elements, f = square when `square`,
/// finish = square root when `sqrt`; multi-pass through scratch buffers, no float atomics.
#[allow(clippy::too_many_arguments)]
pub fn sum(
    ctx: &GpuContext,
    out: &GpuSlice,
    out_index: u32,
    x: &GpuSlice,
    n: u32,
    scale: f32,
    square: bool,
    sqrt: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    let kind = RowKernel::for_adapter(ctx);
    sum_using(kind, ctx, out, out_index, x, n, scale, square, sqrt)
}

/// [`sum`] with an explicit choice of kernel (tests check both on every adapter).
#[allow(clippy::too_many_arguments)]
pub fn sum_using(
    kind: RowKernel,
    ctx: &GpuContext,
    out: &GpuSlice,
    out_index: u32,
    x: &GpuSlice,
    n: u32,
    scale: f32,
    square: bool,
    sqrt: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "reduce::sum";
    let (entry, per_group) = sum_kernel(kind);
    need(K, "out", out, out_index as u64 + 1)?;
    need(K, "x", x, n as u64)?;
    let mut dispatches = Vec::new();
    let mut src = x.clone();
    let mut len = n as u64;
    let mut first = true;
    loop {
        let groups = len.div_ceil(per_group).max(1);
        let last = groups == 1;
        let mut flags = if first && square { SQUARE } else { 0 };
        let (dst, off) = if last {
            if sqrt {
                flags |= SQRT;
            }
            (out.clone(), out_index)
        } else {
            (GpuSlice::new(ctx, "sum partials", groups), 0)
        };
        let params = ReduceParams {
            n: len as u32,
            flags,
            scale: if last { scale } else { 1.0 },
            out_offset: off,
            ..Default::default()
        };
        let u = GpuSlice::uniform(ctx, "ReduceParams", &params);
        if len == 0 {
            // Σ over nothing: write 0 (a one-element dummy input, never read past n = 0).
            let zero = GpuSlice::new(ctx, "sum empty input", 1);
            dispatches.push(launch(
                ctx,
                "reduce",
                entry,
                &[&dst, &zero, &u, &vec4_view(ctx, &zero)],
                [1, 1, 1],
            )?);
            break;
        }
        dispatches.push(launch(
            ctx,
            "reduce",
            entry,
            &[&dst, &src, &u, &vec4_view(ctx, &src)],
            workgroup_grid(groups),
        )?);
        if last {
            break;
        }
        src = dst;
        len = groups;
        first = false;
    }
    Ok(dispatches)
}

/// `out[out_index] = ‖x‖₂` over `n` elements.
pub fn l2_norm(
    ctx: &GpuContext,
    out: &GpuSlice,
    out_index: u32,
    x: &GpuSlice,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    sum(ctx, out, out_index, x, n, 1.0, true, true)
}

/// `out[out_index] = Σ x² ` over `n` elements (what AdamW's clip reads).
pub fn sum_squares(
    ctx: &GpuContext,
    out: &GpuSlice,
    out_index: u32,
    x: &GpuSlice,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    sum(ctx, out, out_index, x, n, 1.0, true, false)
}

/// `out[out_index] = mean(x)` over `n > 0` elements.
pub fn mean(
    ctx: &GpuContext,
    out: &GpuSlice,
    out_index: u32,
    x: &GpuSlice,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    sum(
        ctx,
        out,
        out_index,
        x,
        n,
        1.0 / n.max(1) as f32,
        false,
        false,
    )
}
