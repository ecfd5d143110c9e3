//! Launchers for `shaders/elementwise.wgsl`: fill, copy, residual add, accumulate-into. Shapes in each
//! function's comment.

use super::{fits_u32, gpu_params, grid_for, launch, need, vec4_view, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `ElementwiseParams` in elementwise.wgsl.
    ElementwiseParams in "elementwise" as "ElementwiseParams" {
        n: u32, flags: u32,
        value: f32,
        value2: f32,
    }
);

fn simple(
    ctx: &GpuContext,
    entry: &str,
    out: &GpuSlice,
    a: &GpuSlice,
    b: &GpuSlice,
    params: ElementwiseParams,
) -> Result<Vec<Dispatch>, GpuError> {
    let kernel = format!("elementwise::{entry}");
    need(&kernel, "out", out, params.n as u64)?;
    fits_u32(&kernel, params.n as u64)?;
    if params.n == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(ctx, "ElementwiseParams", &params);
    // Four elements per thread (the `4` entry) where whole quads cover n.
    let quads = params.n.is_multiple_of(4);
    let dispatch = if quads {
        let (out4, a4, b4) = (vec4_view(ctx, out), vec4_view(ctx, a), vec4_view(ctx, b));
        launch(
            ctx,
            "elementwise",
            &format!("{entry}4"),
            &[out, a, b, &u, &out4, &a4, &b4],
            grid_for(params.n as u64 / 4, ELEMENT_WG),
        )?
    } else {
        launch(
            ctx,
            "elementwise",
            entry,
            &[out, a, b, &u],
            grid_for(params.n as u64, ELEMENT_WG),
        )?
    };
    Ok(vec![dispatch])
}

/// `out (n) = value`.
pub fn fill(
    ctx: &GpuContext,
    out: &GpuSlice,
    n: u32,
    value: f32,
) -> Result<Vec<Dispatch>, GpuError> {
    simple(
        ctx,
        "fill",
        out,
        out,
        out,
        ElementwiseParams {
            n,
            value,
            ..Default::default()
        },
    )
}

/// `out (n) (=|+=) a (n)`: copy, or accumulate-into.
pub fn copy(
    ctx: &GpuContext,
    out: &GpuSlice,
    a: &GpuSlice,
    n: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    need("elementwise::copy", "a", a, n as u64)?;
    simple(
        ctx,
        "copy",
        out,
        a,
        a,
        ElementwiseParams {
            n,
            flags: accumulate as u32,
            ..Default::default()
        },
    )
}

/// `out (n) (=|+=) a (n) + b (n)` (residual add).
pub fn add(
    ctx: &GpuContext,
    out: &GpuSlice,
    a: &GpuSlice,
    b: &GpuSlice,
    n: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    need("elementwise::add", "a", a, n as u64)?;
    need("elementwise::add", "b", b, n as u64)?;
    simple(
        ctx,
        "add",
        out,
        a,
        b,
        ElementwiseParams {
            n,
            flags: accumulate as u32,
            ..Default::default()
        },
    )
}

/// `out (n) (=|+=) alpha · a (n) + beta · b (n)`.
#[allow(clippy::too_many_arguments)]
pub fn axpby(
    ctx: &GpuContext,
    out: &GpuSlice,
    alpha: f32,
    a: &GpuSlice,
    beta: f32,
    b: &GpuSlice,
    n: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    need("elementwise::axpby", "a", a, n as u64)?;
    need("elementwise::axpby", "b", b, n as u64)?;
    simple(
        ctx,
        "axpby",
        out,
        a,
        b,
        ElementwiseParams {
            n,
            flags: accumulate as u32,
            value: alpha,
            value2: beta,
        },
    )
}
