//! Launchers for `shaders/attention_lanes.wgsl`: the attention core of short sequences in one launch per
//! direction on software adapters with 8-lane subgroups, and the choice between it and the composed path
//! (gemm + softmax launches) of [`super::attention`]. The CPU twins are `cpu::attention::attention_forward`
//! and `attention_backward`, which the composed path matches too.
//!
//! Shapes: Q, K, V, O, dO, dQ are [`HeadView`]s of (B, H, T, D); P and dS (B, H, T, T); bias (H, T, T).

use super::attention::{AttentionShape, HeadView};
use super::matmul::GemmKernel;
use super::{fits_u32, gpu_params, launch_with, vec4_view};
use crate::gpu::{workgroup_grid, Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `AttentionLanesParams` in attention_lanes.wgsl.
    AttentionLanesParams in "attention_lanes" as "AttentionLanesParams" {
        batch: u32, heads: u32, tokens: u32, head_dim: u32,
        scale: f32, flags: u32, groups: u32, _pad: u32,
        a_off: u32, a_rs: u32, a_hs: u32, a_bs: u32,
        b_off: u32, b_rs: u32, b_hs: u32, b_bs: u32,
        c_off: u32, c_rs: u32, c_hs: u32, c_bs: u32,
        o_off: u32, o_rs: u32, o_hs: u32, o_bs: u32,
    }
);

/// The longest sequence and widest head the one-launch kernels take: each lane holds 4 keys (8 past 32 tokens,
/// the shader's `WIDE`) and 4 output dimensions of 8 query rows.
pub const LANES_MAX_TOKENS: u32 = 64;
pub const LANES_MAX_HEAD_DIM: u32 = 32;

/// How the attention core runs: one launch per direction (`Lanes`, `shaders/attention_lanes.wgsl`) or
/// composed from gemm and softmax launches (`Composed`, any adapter and shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    Lanes,
    Composed,
}

impl AttentionKernel {
    /// `Lanes` on software adapters with 8-lane subgroups where the shape and views allow it
    /// ([`Self::fits`]), else `Composed`; `BEITLAB_ATTENTION=composed` forces the composed path (measuring).
    pub fn for_shape(ctx: &GpuContext, shape: AttentionShape, views: &[HeadView]) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        if std::env::var("BEITLAB_ATTENTION").as_deref() == Ok("composed") {
            return Self::Composed;
        }
        if ctx.adapter_info.device_type == wgpu::DeviceType::Cpu
            && Self::Lanes.fits(ctx, shape, views)
        {
            Self::Lanes
        } else {
            Self::Composed
        }
    }

    /// Whether this kernel can run `shape` with these views on `ctx`: `Lanes` needs 8-lane subgroups, at most
    /// [`LANES_MAX_TOKENS`] tokens, a head dimension that is a multiple of 4 up to [`LANES_MAX_HEAD_DIM`], and
    /// every view offset and stride a multiple of 4 (it reads and writes rows 4 elements at a time).
    pub fn fits(self, ctx: &GpuContext, shape: AttentionShape, views: &[HeadView]) -> bool {
        match self {
            Self::Composed => true,
            Self::Lanes => {
                GemmKernel::Lanes.runs_on(ctx)
                    && (1..=LANES_MAX_TOKENS).contains(&shape.tokens)
                    && shape.head_dim.is_multiple_of(4)
                    && (4..=LANES_MAX_HEAD_DIM).contains(&shape.head_dim)
                    && views.iter().all(|v| {
                        [v.off, v.row_stride, v.head_stride, v.batch_stride]
                            .iter()
                            .all(|x| x.is_multiple_of(4))
                    })
            }
        }
    }
}

/// The parameters of one launch: A, B, C, O as in the shader's header.
fn params(
    shape: AttentionShape,
    bias: bool,
    [a, b, c, o]: [HeadView; 4],
) -> Result<AttentionLanesParams, GpuError> {
    Ok(AttentionLanesParams {
        batch: shape.batch,
        heads: shape.heads,
        tokens: shape.tokens,
        head_dim: shape.head_dim,
        scale: shape.scale,
        flags: bias as u32,
        groups: shape.tokens.div_ceil(8),
        _pad: 0,
        a_off: a.off,
        a_rs: a.row_stride,
        a_hs: a.head_stride,
        a_bs: a.batch_stride,
        b_off: b.off,
        b_rs: b.row_stride,
        b_hs: b.head_stride,
        b_bs: b.batch_stride,
        c_off: c.off,
        c_rs: c.row_stride,
        c_hs: c.head_stride,
        c_bs: c.batch_stride,
        o_off: o.off,
        o_rs: o.row_stride,
        o_hs: o.head_stride,
        o_bs: o.batch_stride,
    })
}

/// The pipeline constants: 8 keys per lane past 32 tokens.
fn constants(shape: AttentionShape) -> [(&'static str, f64); 1] {
    [("WIDE", (shape.tokens > 32) as u32 as f64)]
}

/// One workgroup per (batch, head, group of 8 query rows).
fn grid(shape: AttentionShape) -> Result<[u32; 3], GpuError> {
    let items = shape.batch as u64 * shape.heads as u64 * shape.tokens.div_ceil(8) as u64;
    fits_u32("attention_lanes", items)?;
    Ok(workgroup_grid(items))
}

/// One launch of `entry` with the operand views A, B, C, O in its parameters: bindings 1-3 `reads` and 4 and
/// 9 `writes` as vec4s (O, and dK for the kv entry; an entry that writes one output gets it twice), 5-8
/// `squares` (P written, bias, P read, dS), each as the entry uses it.
#[allow(clippy::too_many_arguments)]
fn launch_entry(
    ctx: &GpuContext,
    entry: &str,
    shape: AttentionShape,
    bias: bool,
    views: [HeadView; 4],
    reads: [&GpuSlice; 3],
    writes: [&GpuSlice; 2],
    squares: [&GpuSlice; 4],
) -> Result<Vec<Dispatch>, GpuError> {
    let u = GpuSlice::uniform(ctx, "AttentionLanesParams", &params(shape, bias, views)?);
    let [r1, r2, r3] = reads.map(|s| vec4_view(ctx, s));
    let [w4, w9] = writes.map(|s| vec4_view(ctx, s));
    let [s5, s6, s7, s8] = squares;
    Ok(vec![launch_with(
        ctx,
        "attention_lanes",
        entry,
        &constants(shape),
        &[&u, &r1, &r2, &r3, &w4, s5, s6, s7, s8, &w9],
        grid(shape)?,
    )?])
}

/// `P = softmax(scale · Q·Kᵀ + bias)`, `O = P·V` in one launch (the caller checked [`AttentionKernel::fits`]
/// and the buffer lengths).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    ctx: &GpuContext,
    o: (&GpuSlice, HeadView),
    p: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    bias: Option<&GpuSlice>,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    // Without a bias the shader reads none; binding 6 takes a buffer already bound read-only.
    let b = bias.unwrap_or(q.0);
    launch_entry(
        ctx,
        "attention_forward_lanes",
        shape,
        bias.is_some(),
        [q.1, k.1, v.1, o.1],
        [q.0, k.0, v.0],
        [o.0, o.0],
        [p, b, p, p],
    )
}

/// `dS = P · (dP − Σ P·dP)` with `dP = dO·Vᵀ` (written to `ds`), `dQ = scale · dS·K`, in one launch.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_ds_dq(
    ctx: &GpuContext,
    dq: (&GpuSlice, HeadView),
    ds: &GpuSlice,
    dout: (&GpuSlice, HeadView),
    p: &GpuSlice,
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    launch_entry(
        ctx,
        "attention_backward_lanes",
        shape,
        false,
        [dout.1, v.1, k.1, dq.1],
        [dout.0, v.0, k.0],
        [dq.0, dq.0],
        [ds, p, p, ds],
    )
}

/// The longest sequence whose dV and dK take one launch ([`backward_kv`]); longer ones take two products.
pub const KV_MAX_TOKENS: u32 = 32;

/// `dV = Pᵀ·dO` and `dK = scale · dSᵀ·Q` in one launch, after [`backward_ds_dq`] wrote `ds` (one workgroup per
/// (batch, head, group of 8 keys)), up to [`KV_MAX_TOKENS`]. `dk` and `dv` may be views of one buffer (a fused
/// dqkv).
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_kv(
    ctx: &GpuContext,
    dk: (&GpuSlice, HeadView),
    dv: (&GpuSlice, HeadView),
    dout: (&GpuSlice, HeadView),
    q: (&GpuSlice, HeadView),
    p: &GpuSlice,
    ds: &GpuSlice,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    if shape.tokens > KV_MAX_TOKENS {
        return Err(GpuError::BadLaunch {
            kernel: "attention_lanes::attention_backward_kv_lanes".into(),
            message: format!("takes at most {KV_MAX_TOKENS} tokens; got {}", shape.tokens),
        });
    }
    // C's view places dV (written through binding 4); this entry never reads binding 3 (it sums dO and Q).
    launch_entry(
        ctx,
        "attention_backward_kv_lanes",
        shape,
        false,
        [dout.1, q.1, dv.1, dk.1],
        [dout.0, q.0, q.0],
        [dv.0, dk.0],
        [p, p, p, ds],
    )
}
