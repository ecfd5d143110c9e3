//! Launchers for `shaders/precision.wgsl`: rounding to f16 (the operands of emulated f16-input products), the
//! loss gradient times the dynamic loss scale, and the scale's update after AdamW; and [`LossScaler`], the
//! device-side state those kernels and AdamW share. CPU twin: `cpu::precision`.

use super::{fits_u32, gpu_params, grid_for, launch, need, vec4_view, ELEMENT_WG};
use crate::cpu::precision::{initial_state, state};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `PrecisionParams` in precision.wgsl.
    PrecisionParams in "precision" as "PrecisionParams" {
        n: u32, growth_interval: u32, _pad0: u32, _pad1: u32,
    }
);

/// The scale a mixed-precision run starts from (PyTorch's `GradScaler` default, 2^16).
pub const INITIAL_LOSS_SCALE: f32 = 65536.0;
/// Finite steps in a row after which the scale doubles (`GradScaler`'s default).
pub const GROWTH_INTERVAL: u32 = 2000;

/// The dynamic loss scale on the device (6 f32, laid out as `cpu::precision::state`): the loss gradient is
/// multiplied by it, AdamW divides it out again and skips the update when the scaled gradients overflowed,
/// and [`update_loss_scale`] sets the next one. Nothing is read back inside a step.
#[derive(Clone)]
pub struct LossScaler {
    pub state: GpuSlice,
    pub growth_interval: u32,
}

impl LossScaler {
    pub fn new(ctx: &GpuContext, initial: f32, growth_interval: u32) -> Self {
        Self {
            state: GpuSlice::from_slice(ctx, "loss scale state", &initial_state(initial)),
            growth_interval: growth_interval.max(1),
        }
    }

    /// Continue from a saved state (a resumed run).
    pub fn restore(&self, ctx: &GpuContext, saved: &[f32; state::LEN]) {
        self.state.write(ctx, saved);
    }
}

/// The uniforms of an element-wise entry over `n` values.
fn element_params(ctx: &GpuContext, n: u32) -> GpuSlice {
    let params = PrecisionParams {
        n,
        ..Default::default()
    };
    GpuSlice::uniform(ctx, "PrecisionParams", &params)
}

/// `out (n) = round_f16(x (n))`.
pub fn round_f16(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "precision::round_f16";
    need(K, "out", out, n as u64)?;
    need(K, "x", x, n as u64)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let u = element_params(ctx, n);
    Ok(vec![launch(
        ctx,
        "precision",
        "round_f16",
        &[out, x, out, &u, out],
        grid_for(n as u64, ELEMENT_WG),
    )?])
}

/// `x (n) *= scale`, the scale read from the scaler's state on the device.
pub fn scale_loss(
    ctx: &GpuContext,
    x: &GpuSlice,
    scaler: &LossScaler,
    n: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "precision::scale_loss";
    need(K, "x", x, n as u64)?;
    need(K, "state", &scaler.state, state::LEN as u64)?;
    fits_u32(K, n as u64)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let u = element_params(ctx, n);
    let (entry, items) = if n.is_multiple_of(4) {
        ("scale_loss4", n as u64 / 4)
    } else {
        ("scale_loss", n as u64)
    };
    let x4 = vec4_view(ctx, x);
    Ok(vec![launch(
        ctx,
        "precision",
        entry,
        &[x, x, &scaler.state, &u, &x4],
        grid_for(items, ELEMENT_WG),
    )?])
}

/// The scale's update after AdamW (one invocation): see `shaders/precision.wgsl`.
pub fn update_loss_scale(ctx: &GpuContext, scaler: &LossScaler) -> Result<Vec<Dispatch>, GpuError> {
    need(
        "precision::update_loss_scale",
        "state",
        &scaler.state,
        state::LEN as u64,
    )?;
    let u = GpuSlice::uniform(
        ctx,
        "PrecisionParams",
        &PrecisionParams {
            growth_interval: scaler.growth_interval,
            ..Default::default()
        },
    );
    let s = &scaler.state;
    Ok(vec![launch(
        ctx,
        "precision",
        "update_loss_scale",
        &[s, s, s, &u, s],
        [1, 1, 1],
    )?])
}

/// What the products of a network's linear layers read. `F32`: their f32 operands. `F16Emulated`: operands
/// rounded to f16, accumulated in f32 (mixed precision's numerics), through rounded copies fed to the f32
/// kernels: no faster, but it runs on any adapter, so the mode can be checked where no f16 cooperative matrix
/// exists (lavapipe) against the same numbers on the CPU. `F16Coop`: the same numbers on cooperative matrices
/// (`ops::matmul_f16`), where the device has them and their self-check passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProductInputs {
    #[default]
    F32,
    F16Emulated,
    F16Coop,
}

impl ProductInputs {
    /// Whether products round their operands to f16.
    pub fn is_f16(self) -> bool {
        self != Self::F32
    }

    /// `x`, or (emulated f16 inputs) a copy of its first `n` values rounded to f16, with the launches that make
    /// it.
    pub fn operand(
        self,
        ctx: &GpuContext,
        x: &GpuSlice,
        n: u64,
        out: &mut Vec<Dispatch>,
    ) -> Result<GpuSlice, GpuError> {
        match self {
            // The cooperative-matrix product rounds while it packs its operands.
            Self::F32 | Self::F16Coop => Ok(x.clone()),
            Self::F16Emulated => {
                let n = fits_u32("precision::round_f16", n)?;
                let rounded = GpuSlice::new(ctx, "f16 operand", n.max(1) as u64);
                out.extend(round_f16(ctx, &rounded, x, n)?);
                Ok(rounded)
            }
        }
    }
}
