//! Launchers for `shaders/gelu.wgsl` (exact erf GELU). Shapes: `out, x, dy (n)`.

use super::{fits_u32, gpu_params, grid_for, launch, need, vec4_view, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `GeluParams` in gelu.wgsl.
    GeluParams in "gelu" as "GeluParams" { n: u32, flags: u32, _pad0: u32, _pad1: u32 }
);

/// `out = gelu(x)`.
pub fn gelu_forward(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "gelu::gelu_forward";
    need(K, "out", out, n as u64)?;
    need(K, "x", x, n as u64)?;
    fits_u32(K, n as u64)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(
        ctx,
        "GeluParams",
        &GeluParams {
            n,
            ..Default::default()
        },
    );
    launch_elementwise(ctx, "gelu_forward", [out, x, x], &u, n)
}

/// `dx (=|+=) dy · gelu'(x)`.
pub fn gelu_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dy: &GpuSlice,
    x: &GpuSlice,
    n: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "gelu::gelu_backward";
    need(K, "dx", dx, n as u64)?;
    need(K, "dy", dy, n as u64)?;
    need(K, "x", x, n as u64)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(
        ctx,
        "GeluParams",
        &GeluParams {
            n,
            flags: accumulate as u32,
            ..Default::default()
        },
    );
    launch_elementwise(ctx, "gelu_backward", [dx, x, dy], &u, n)
}

/// One launch of `entry` over `n` elements of `[out, x, dy]`: four per invocation (the `4` entry, through
/// vec4 views) where `n` is a multiple of 4, else one.
fn launch_elementwise(
    ctx: &GpuContext,
    entry: &str,
    [out, x, dy]: [&GpuSlice; 3],
    u: &GpuSlice,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    let dispatch = if n.is_multiple_of(4) {
        let (out4, x4, dy4) = (vec4_view(ctx, out), vec4_view(ctx, x), vec4_view(ctx, dy));
        launch(
            ctx,
            "gelu",
            &format!("{entry}4"),
            &[out, x, dy, u, &out4, &x4, &dy4],
            grid_for(n as u64 / 4, ELEMENT_WG),
        )?
    } else {
        launch(
            ctx,
            "gelu",
            entry,
            &[out, x, dy, u],
            grid_for(n as u64, ELEMENT_WG),
        )?
    };
    Ok(vec![dispatch])
}
