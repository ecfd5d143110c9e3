//! Launchers for `shaders/gelu.wgsl` (exact erf GELU). Shapes: `out, x, dy (n)`.

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
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
    Ok(vec![launch(
        ctx,
        "gelu",
        "gelu_forward",
        &[out, x, x, &u],
        grid_for(n as u64, ELEMENT_WG),
    )?])
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
    Ok(vec![launch(
        ctx,
        "gelu",
        "gelu_backward",
        &[dx, x, dy, &u],
        grid_for(n as u64, ELEMENT_WG),
    )?])
}
