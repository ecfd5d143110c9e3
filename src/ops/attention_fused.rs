//! Launchers for `shaders/attention_fused.wgsl`: the attention core without (B, H, T, T) probabilities kept
//! between forward and backward. The forward writes O and each row's log-sum-exp (B, H, T); the backward
//! computes P again from them, writes P and dS into scratch (shared by every block of a graph) and dQ, then
//! dV = Pᵀ·dO and dK = scale · dSᵀ·Q are two batched products. The CPU twins are
//! `cpu::attention::attention_forward` (with `attention_lse`) and `attention_backward`.
//!
//! Shapes: Q, K, V [`HeadView`]s of (B, H, T, D) in one buffer (a fused qkv tensor), O, dO, dQ, dK, dV views
//! of (B, H, T, D); bias (H, T, T); lse (B, H, T); P and dS scratch (B, H, T, T).

use super::attention::{bias_gradient, dv_dk_products, AttentionShape, HeadView};
use super::{fits_u32, gpu_params, launch_with, need};
use crate::gpu::{workgroup_grid, Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `FusedAttentionParams` in attention_fused.wgsl.
    FusedAttentionParams in "attention_fused" as "FusedAttentionParams" {
        batch: u32, heads: u32, tokens: u32, head_dim: u32,
        scale: f32, flags: u32, q_tiles: u32, _pad: u32,
        q_off: u32, q_rs: u32, q_hs: u32, q_bs: u32,
        k_off: u32, k_rs: u32, k_hs: u32, k_bs: u32,
        v_off: u32, v_rs: u32, v_hs: u32, v_bs: u32,
        o_off: u32, o_rs: u32, o_hs: u32, o_bs: u32,
        do_off: u32, do_rs: u32, do_hs: u32, do_bs: u32,
        dq_off: u32, dq_rs: u32, dq_hs: u32, dq_bs: u32,
    }
);

/// The widest head the fused kernels take (each thread holds 16 of a row's output dimensions).
pub const FUSED_MAX_HEAD_DIM: u32 = 64;

/// Query rows per workgroup (`ROWS` in the shader).
const ROWS: u32 = 16;

/// Whether the fused kernels take `shape`: a head of 1 to [`FUSED_MAX_HEAD_DIM`] dimensions, any length.
pub fn fits(shape: AttentionShape) -> bool {
    (1..=FUSED_MAX_HEAD_DIM).contains(&shape.head_dim)
}

/// Elements of the per-row log-sum-exp the forward writes and the backward reads: (B, H, T).
pub fn lse_len(shape: AttentionShape) -> u64 {
    shape.batch as u64 * shape.heads as u64 * shape.tokens as u64
}

fn view_fields(v: HeadView) -> [u32; 4] {
    [v.off, v.row_stride, v.head_stride, v.batch_stride]
}

/// The launch parameters: Q, K, V, O and (backward) dO and dQ views.
fn params(
    shape: AttentionShape,
    bias: bool,
    [q, k, v, o, d_o, dq]: [HeadView; 6],
) -> FusedAttentionParams {
    let [q_off, q_rs, q_hs, q_bs] = view_fields(q);
    let [k_off, k_rs, k_hs, k_bs] = view_fields(k);
    let [v_off, v_rs, v_hs, v_bs] = view_fields(v);
    let [o_off, o_rs, o_hs, o_bs] = view_fields(o);
    let [do_off, do_rs, do_hs, do_bs] = view_fields(d_o);
    let [dq_off, dq_rs, dq_hs, dq_bs] = view_fields(dq);
    FusedAttentionParams {
        batch: shape.batch,
        heads: shape.heads,
        tokens: shape.tokens,
        head_dim: shape.head_dim,
        scale: shape.scale,
        flags: bias as u32,
        q_tiles: shape.tokens.div_ceil(ROWS),
        _pad: 0,
        q_off,
        q_rs,
        q_hs,
        q_bs,
        k_off,
        k_rs,
        k_hs,
        k_bs,
        v_off,
        v_rs,
        v_hs,
        v_bs,
        o_off,
        o_rs,
        o_hs,
        o_bs,
        do_off,
        do_rs,
        do_hs,
        do_bs,
        dq_off,
        dq_rs,
        dq_hs,
        dq_bs,
    }
}

/// The checks both directions share: the head fits, Q, K and V are views of one buffer, every view and
/// buffer is long enough. Returns the workgroup grid (one per (batch, head, 16 query rows)).
#[allow(clippy::too_many_arguments)]
fn check(
    k_name: &str,
    shape: AttentionShape,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    others: &[(&str, (&GpuSlice, HeadView))],
    bias: Option<&GpuSlice>,
    lse: &GpuSlice,
) -> Result<[u32; 3], GpuError> {
    if !fits(shape) {
        return Err(GpuError::BadLaunch {
            kernel: k_name.into(),
            message: format!(
                "the fused attention takes heads of 1 to {FUSED_MAX_HEAD_DIM} dimensions; got {}",
                shape.head_dim
            ),
        });
    }
    let one_buffer = |s: &GpuSlice| s.buffer == q.0.buffer && s.offset == q.0.offset;
    if !(one_buffer(k.0) && one_buffer(v.0)) {
        return Err(GpuError::BadLaunch {
            kernel: k_name.into(),
            message: "the fused attention reads Q, K and V from one buffer (a fused qkv tensor)"
                .into(),
        });
    }
    for (what, (s, view)) in [("q", q), ("k", k), ("v", v)]
        .into_iter()
        .chain(others.iter().copied())
    {
        need(k_name, what, s, view.extent(shape))?;
    }
    if let Some(b) = bias {
        need(
            k_name,
            "bias",
            b,
            shape.heads as u64 * shape.tokens as u64 * shape.tokens as u64,
        )?;
    }
    need(k_name, "lse", lse, lse_len(shape))?;
    let items = shape.batch as u64 * shape.heads as u64 * shape.tokens.div_ceil(ROWS) as u64;
    fits_u32(k_name, items)?;
    Ok(workgroup_grid(items))
}

/// `O = softmax(scale · Q·Kᵀ + bias)·V` and `lse` (B, H, T), the log of each row's softmax denominator, in one
/// launch; nothing of size (B, H, T, T) is written.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    ctx: &GpuContext,
    o: (&GpuSlice, HeadView),
    lse: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    bias: Option<&GpuSlice>,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention_fused::fused_attention_forward";
    if shape.batch == 0 || shape.heads == 0 || shape.tokens == 0 {
        return Ok(Vec::new());
    }
    let grid = check(K, shape, q, k, v, &[("o", o)], bias, lse)?;
    let views = [q.1, k.1, v.1, o.1, o.1, o.1];
    Ok(vec![launch(
        ctx,
        "fused_attention_forward",
        (shape, views, grid),
        q.0,
        bias,
        &[o.0, lse],
    )?])
}

/// One launch of `entry` with these views in its parameters: the uniform (binding 0), the qkv buffer (1), the
/// bias (4; without one the shader reads none, and the qkv buffer, already bound read-only, stands in), then
/// `rest` from binding 5 on.
fn launch(
    ctx: &GpuContext,
    entry: &str,
    (shape, views, grid): (AttentionShape, [HeadView; 6], [u32; 3]),
    qkv: &GpuSlice,
    bias: Option<&GpuSlice>,
    rest: &[&GpuSlice],
) -> Result<Dispatch, GpuError> {
    let u = GpuSlice::uniform(
        ctx,
        "FusedAttentionParams",
        &params(shape, bias.is_some(), views),
    );
    let mut args = vec![&u, qkv, qkv, qkv, bias.unwrap_or(qkv)];
    args.extend_from_slice(rest);
    launch_with(ctx, "attention_fused", entry, &[], &args, grid)
}

/// The backward of [`forward`]: dQ, dK, dV written through their views (dK and dV may be views of dQ's
/// buffer, a fused dqkv); `probs` and `ds` (B, H, T, T) are scratch that this writes (P again, and dS, which
/// the relative position tables' gradient reads afterwards); `dbias (H, T, T) += Σ_b dS` where given.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ctx: &GpuContext,
    dq: (&GpuSlice, HeadView),
    dk: (&GpuSlice, HeadView),
    dv: (&GpuSlice, HeadView),
    dbias: Option<&GpuSlice>,
    probs: &GpuSlice,
    ds: &GpuSlice,
    dout: (&GpuSlice, HeadView),
    o: (&GpuSlice, HeadView),
    lse: &GpuSlice,
    q: (&GpuSlice, HeadView),
    k: (&GpuSlice, HeadView),
    v: (&GpuSlice, HeadView),
    bias: Option<&GpuSlice>,
    shape: AttentionShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "attention_fused::fused_attention_backward";
    if shape.batch == 0 || shape.heads == 0 || shape.tokens == 0 {
        return Ok(Vec::new());
    }
    let grid = check(
        K,
        shape,
        q,
        k,
        v,
        &[("dq", dq), ("dk", dk), ("dv", dv), ("dout", dout), ("o", o)],
        bias,
        lse,
    )?;
    need(K, "probs", probs, shape.scores_len())?;
    need(K, "ds", ds, shape.scores_len())?;
    let views = [q.1, k.1, v.1, o.1, dout.1, dq.1];
    let mut out = vec![launch(
        ctx,
        "fused_attention_backward",
        (shape, views, grid),
        q.0,
        bias,
        &[o.0, lse, dout.0, dq.0, probs, ds],
    )?];
    out.extend(dv_dk_products(ctx, dk, dv, dout, q, probs, ds, shape)?);
    if let Some(db) = dbias {
        out.extend(bias_gradient(ctx, db, ds, shape)?);
    }
    Ok(out)
}

/// Whether the fused core is faster than the composed one for `shape` on this device, by the tuner
/// (`gpu::tune`: forward and backward of both timed on temporaries once per shape; the fused core wins unless
/// the other is more than 5% faster, since it also holds no (B, H, T, T) probabilities per block). `None` where
/// the context does not tune or the shape does not fit.
pub fn tuned(
    ctx: &GpuContext,
    shape: AttentionShape,
    with_bias: bool,
) -> Result<Option<bool>, GpuError> {
    if !ctx.tunes() || !fits(shape) || shape.batch == 0 || shape.heads == 0 || shape.tokens == 0 {
        return Ok(None);
    }
    let AttentionShape {
        batch: b,
        heads: h,
        tokens: t,
        head_dim: d,
        ..
    } = shape;
    let key = format!("attention B{b} H{h} T{t} D{d} bias {}", with_bias as u8);
    let names = ["fused".to_string(), "composed".to_string()];
    let rows = b as u64 * t as u64;
    let c = h as u64 * d as u64;
    let tt = shape.scores_len();
    let temp = |len: u64| GpuSlice::temporary(ctx, "tuning attention", len);
    let (qkv, dqkv, o, dout) = (
        temp(rows * 3 * c),
        temp(rows * 3 * c),
        temp(rows * c),
        temp(rows * c),
    );
    let (bias, lse) = (temp(h as u64 * t as u64 * t as u64), temp(lse_len(shape)));
    let squares: Vec<GpuSlice> = (0..4).map(|_| temp(tt)).collect();
    let [probs, scores, dp, ds] = [&squares[0], &squares[1], &squares[2], &squares[3]];
    let view = |part| HeadView::fused_qkv(part, h, t, d);
    let ov = HeadView::btc(h, t, d);
    let (q, k, v) = ((&qkv, view(0)), (&qkv, view(1)), (&qkv, view(2)));
    let (dq, dk, dv) = ((&dqkv, view(0)), (&dqkv, view(1)), (&dqkv, view(2)));
    let bias = with_bias.then_some(&bias);
    let choice = ctx.tuned_choice(
        &key,
        &names,
        |name| {
            let mut work = Vec::new();
            if name == "fused" {
                work.extend(forward(ctx, (&o, ov), &lse, q, k, v, bias, shape)?);
                work.extend(backward(
                    ctx,
                    dq,
                    dk,
                    dv,
                    None,
                    probs,
                    ds,
                    (&dout, ov),
                    (&o, ov),
                    &lse,
                    q,
                    k,
                    v,
                    bias,
                    shape,
                )?);
            } else {
                work.extend(super::attention::attention_forward(
                    ctx,
                    (&o, ov),
                    probs,
                    scores,
                    q,
                    k,
                    v,
                    bias,
                    shape,
                )?);
                work.extend(super::attention::attention_backward(
                    ctx,
                    dq,
                    dk,
                    dv,
                    None,
                    dp,
                    ds,
                    (&dout, ov),
                    probs,
                    q,
                    k,
                    v,
                    shape,
                )?);
            }
            Ok(work)
        },
        Some(("fused", 0.05)),
    )?;
    Ok(choice.map(|c| c == "fused"))
}
