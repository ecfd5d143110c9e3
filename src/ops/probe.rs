//! Launchers for `shaders/probe.wgsl`: the adapter probes `bench kernels` times (the cost of a multiply-add
//! with values in registers, of a scalar and of a vec4 storage read), so a kernel's speed can be read against
//! what the adapter can do. CPU twins: `cpu::probe`.
//!
//! Shapes: src (n) floats, n a power of two of at least 32 (the reads wrap at n); out (invocations).

use super::{gpu_params, launch, need, vec4_view};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `ProbeParams` in probe.wgsl.
    ProbeParams in "probe" as "ProbeParams" { n: u32, iters: u32, invocations: u32, _pad: u32 }
);

/// Invocations per workgroup of every probe.
const PROBE_WG: u32 = 64;

/// Multiply-adds per invocation and step of `probe_multiply_add` (6 chains of vec4s, 8 each).
pub const MULTIPLY_ADDS_PER_STEP: u64 = 192;

/// Items (scalars or vec4s) each invocation reads per step of `probe_read` / `probe_read4`.
pub const READS_PER_STEP: u64 = 8;

/// What a probe measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `probe_multiply_add`: multiply-adds on values in registers.
    MultiplyAdd,
    /// `probe_read`: scalar storage reads.
    Read,
    /// `probe_read4`: vec4 storage reads.
    Read4,
}

impl Probe {
    /// Work per invocation and step: multiply-adds ([`MULTIPLY_ADDS_PER_STEP`]) or items read
    /// ([`READS_PER_STEP`]).
    pub fn per_step(self) -> u64 {
        match self {
            Self::MultiplyAdd => MULTIPLY_ADDS_PER_STEP,
            Self::Read | Self::Read4 => READS_PER_STEP,
        }
    }

    /// Bytes of one item read (none for the multiply-add probe).
    pub fn bytes_per_read(self) -> Option<u64> {
        match self {
            Self::MultiplyAdd => None,
            Self::Read => Some(4),
            Self::Read4 => Some(16),
        }
    }

    fn entry(self) -> &'static str {
        match self {
            Self::MultiplyAdd => "probe_multiply_add",
            Self::Read => "probe_read",
            Self::Read4 => "probe_read4",
        }
    }
}

/// One launch of `probe`: `invocations` invocations of `iters` steps each over `src (n)`, one sum per
/// invocation into `out (invocations)`.
pub fn probe(
    ctx: &GpuContext,
    which: Probe,
    out: &GpuSlice,
    src: &GpuSlice,
    n: u32,
    invocations: u32,
    iters: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "probe::probe";
    let bad = |message: String| GpuError::BadLaunch {
        kernel: K.to_string(),
        message,
    };
    if !n.is_power_of_two() || n < 32 {
        return Err(bad(format!(
            "n must be a power of two of at least 32, not {n}"
        )));
    }
    let groups = invocations.div_ceil(PROBE_WG);
    if groups > ctx.limits.max_compute_workgroups_per_dimension {
        return Err(bad(format!(
            "{invocations} invocations need {groups} workgroups in one dimension, more than the device's {}",
            ctx.limits.max_compute_workgroups_per_dimension
        )));
    }
    need(K, "src", src, n as u64)?;
    need(K, "out", out, invocations as u64)?;
    if invocations == 0 {
        return Ok(Vec::new());
    }
    let u = GpuSlice::uniform(
        ctx,
        "ProbeParams",
        &ProbeParams {
            n,
            iters,
            invocations,
            ..Default::default()
        },
    );
    let src4 = vec4_view(ctx, src);
    Ok(vec![launch(
        ctx,
        "probe",
        which.entry(),
        &[out, src, &u, &src4],
        [groups, 1, 1],
    )?])
}
