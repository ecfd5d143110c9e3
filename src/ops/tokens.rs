//! Launchers for `shaders/tokens.wgsl`: token assembly (mask-token substitution, CLS, position embeddings)
//! with its backward, row gather / scatter for heads that run on selected tokens only, and the patch tokens as a
//! feature map (B, C, N) for dense heads.
//! Shapes: `emb (B, N, C)`, `x (B, T, C)` with `T = N + 1`, `mask (B, N)` u32 (1 = masked),
//! `mask_token, cls (C)`, `pos (T, C)`.

use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `TokenParams` in tokens.wgsl.
    TokenParams in "tokens" as "TokenParams" {
        batch: u32, patches: u32, dim: u32, flags: u32, rows: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
);

const USE_MASK: u32 = 1;
const USE_POS: u32 = 2;
const ACCUMULATE: u32 = 4;

/// Sizes of one token assembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenShape {
    pub batch: u32,
    pub patches: u32,
    pub dim: u32,
}

impl TokenShape {
    fn tokens_len(&self) -> u64 {
        self.batch as u64 * (self.patches as u64 + 1) * self.dim as u64
    }
    fn emb_len(&self) -> u64 {
        self.batch as u64 * self.patches as u64 * self.dim as u64
    }
}

/// `x = [cls; emb with masked rows replaced by mask_token] (+ pos)`. `mask` and `pos` are optional.
pub fn assemble(
    ctx: &GpuContext,
    x: &GpuSlice,
    emb: &GpuSlice,
    mask: Option<(&GpuSlice, &GpuSlice)>,
    cls: &GpuSlice,
    pos: Option<&GpuSlice>,
    s: TokenShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "tokens::assemble";
    need(K, "x", x, s.tokens_len())?;
    need(K, "emb", emb, s.emb_len())?;
    need(K, "cls", cls, s.dim as u64)?;
    fits_u32(K, s.tokens_len())?;
    let (m, mt) = match mask {
        Some((m, mt)) => {
            need(K, "mask", m, s.batch as u64 * s.patches as u64)?;
            need(K, "mask_token", mt, s.dim as u64)?;
            (m, mt)
        }
        None => (emb, cls),
    };
    if let Some(p) = pos {
        need(K, "pos", p, (s.patches as u64 + 1) * s.dim as u64)?;
    }
    if s.tokens_len() == 0 {
        return Ok(Vec::new());
    }
    let flags = if mask.is_some() { USE_MASK } else { 0 } | if pos.is_some() { USE_POS } else { 0 };
    let params = TokenParams {
        batch: s.batch,
        patches: s.patches,
        dim: s.dim,
        flags,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "TokenParams", &params);
    Ok(vec![launch(
        ctx,
        "tokens",
        "assemble",
        &[x, emb, m, &u, mt, cls, pos.unwrap_or(cls)],
        grid_for(s.tokens_len(), ELEMENT_WG),
    )?])
}

/// Gradients of [`assemble`] from `dx (B, T, C)`: `demb (=|+=)` (zero on masked rows); `dmask_token`, `dcls`,
/// `dpos` accumulate when given.
#[allow(clippy::too_many_arguments)]
pub fn assemble_backward(
    ctx: &GpuContext,
    demb: Option<&GpuSlice>,
    dmask_token: Option<&GpuSlice>,
    dcls: Option<&GpuSlice>,
    dpos: Option<&GpuSlice>,
    dx: &GpuSlice,
    mask: Option<&GpuSlice>,
    s: TokenShape,
    accumulate_demb: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "tokens::assemble_backward";
    need(K, "dx", dx, s.tokens_len())?;
    if let Some(m) = mask {
        need(K, "mask", m, s.batch as u64 * s.patches as u64)?;
    }
    if s.tokens_len() == 0 {
        return Ok(Vec::new());
    }
    let m = mask.unwrap_or(dx);
    let base = if mask.is_some() { USE_MASK } else { 0 };
    let mut out = Vec::new();
    let mut one = |entry: &str, target: &GpuSlice, len: u64, flags: u32| -> Result<(), GpuError> {
        need(K, entry, target, len)?;
        let params = TokenParams {
            batch: s.batch,
            patches: s.patches,
            dim: s.dim,
            flags,
            ..Default::default()
        };
        let u = GpuSlice::uniform(ctx, "TokenParams", &params);
        out.push(launch(
            ctx,
            "tokens",
            entry,
            &[target, dx, m, &u, dx, dx, dx],
            grid_for(len, ELEMENT_WG),
        )?);
        Ok(())
    };
    if let Some(t) = demb {
        one(
            "assemble_grad_emb",
            t,
            s.emb_len(),
            base | if accumulate_demb { ACCUMULATE } else { 0 },
        )?;
    }
    if let Some(t) = dmask_token {
        if mask.is_none() {
            return Err(GpuError::BadLaunch {
                kernel: K.into(),
                message: "a mask-token gradient needs the mask".into(),
            });
        }
        one("assemble_grad_mask", t, s.dim as u64, base | ACCUMULATE)?;
    }
    if let Some(t) = dcls {
        one("assemble_grad_cls", t, s.dim as u64, ACCUMULATE)?;
    }
    if let Some(t) = dpos {
        one(
            "assemble_grad_pos",
            t,
            (s.patches as u64 + 1) * s.dim as u64,
            ACCUMULATE,
        )?;
    }
    Ok(out)
}

/// `out (M, C) (=|+=) src[idx[i], :]` with `idx (M)` u32.
pub fn gather_rows(
    ctx: &GpuContext,
    out: &GpuSlice,
    src: &GpuSlice,
    idx: &GpuSlice,
    rows: u32,
    dim: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    rows_op(ctx, "gather_rows", out, src, idx, rows, dim, accumulate)
}

/// `out[idx[i], :] (=|+=) src (M, C)[i, :]`; indices must be distinct. Rows not named are left untouched.
pub fn scatter_rows(
    ctx: &GpuContext,
    out: &GpuSlice,
    src: &GpuSlice,
    idx: &GpuSlice,
    rows: u32,
    dim: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    rows_op(ctx, "scatter_rows", out, src, idx, rows, dim, accumulate)
}

#[allow(clippy::too_many_arguments)]
fn rows_op(
    ctx: &GpuContext,
    entry: &str,
    out: &GpuSlice,
    src: &GpuSlice,
    idx: &GpuSlice,
    rows: u32,
    dim: u32,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    let kernel = format!("tokens::{entry}");
    need(&kernel, "idx", idx, rows as u64)?;
    let n = rows as u64 * dim as u64;
    fits_u32(&kernel, n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    let params = TokenParams {
        rows,
        dim,
        flags: if accumulate { ACCUMULATE } else { 0 },
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "TokenParams", &params);
    Ok(vec![launch(
        ctx,
        "tokens",
        entry,
        &[out, src, idx, &u, src, src, src],
        grid_for(n, ELEMENT_WG),
    )?])
}

/// `out (B, C) = mean over the N patch tokens of x (B, T, C)` (CLS excluded).
pub fn mean_patches(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: TokenShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "tokens::mean_patches";
    need(K, "x", x, s.tokens_len())?;
    need(K, "out", out, s.batch as u64 * s.dim as u64)?;
    token_launch(
        ctx,
        "mean_patches",
        out,
        x,
        s,
        0,
        s.batch as u64 * s.dim as u64,
    )
}

/// `dx (B, T, C) (=|+=) dout (B, C) / N` on patch rows, 0 on CLS rows.
pub fn mean_patches_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dout: &GpuSlice,
    s: TokenShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "tokens::mean_patches_backward";
    need(K, "dx", dx, s.tokens_len())?;
    need(K, "dout", dout, s.batch as u64 * s.dim as u64)?;
    fits_u32(K, s.tokens_len())?;
    let flags = if accumulate { ACCUMULATE } else { 0 };
    token_launch(
        ctx,
        "mean_patches_backward",
        dx,
        dout,
        s,
        flags,
        s.tokens_len(),
    )
}

/// `out (B, C, N) = x (B, T, C)` patch rows transposed: the patch tokens as a C-channel map on the patch grid.
pub fn patch_map(
    ctx: &GpuContext,
    out: &GpuSlice,
    x: &GpuSlice,
    s: TokenShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "tokens::patch_map";
    need(K, "x", x, s.tokens_len())?;
    need(K, "out", out, s.emb_len())?;
    fits_u32(K, s.tokens_len())?;
    token_launch(ctx, "patch_map", out, x, s, 0, s.emb_len())
}

/// `dx (B, T, C) (=|+=) dmap (B, C, N)` transposed back onto the patch rows, 0 on CLS rows.
pub fn patch_map_backward(
    ctx: &GpuContext,
    dx: &GpuSlice,
    dmap: &GpuSlice,
    s: TokenShape,
    accumulate: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "tokens::patch_map_backward";
    need(K, "dx", dx, s.tokens_len())?;
    need(K, "dmap", dmap, s.emb_len())?;
    fits_u32(K, s.tokens_len())?;
    let flags = if accumulate { ACCUMULATE } else { 0 };
    token_launch(
        ctx,
        "patch_map_backward",
        dx,
        dmap,
        s,
        flags,
        s.tokens_len(),
    )
}

/// One launch of `entry` over `items` elements with `out` and `src` bound (the other bindings unused).
fn token_launch(
    ctx: &GpuContext,
    entry: &str,
    out: &GpuSlice,
    src: &GpuSlice,
    s: TokenShape,
    flags: u32,
    items: u64,
) -> Result<Vec<Dispatch>, GpuError> {
    if items == 0 {
        return Ok(Vec::new());
    }
    let params = TokenParams {
        batch: s.batch,
        patches: s.patches,
        dim: s.dim,
        flags,
        ..Default::default()
    };
    let u = GpuSlice::uniform(ctx, "TokenParams", &params);
    Ok(vec![launch(
        ctx,
        "tokens",
        entry,
        &[out, src, src, &u, src, src, src],
        grid_for(items, ELEMENT_WG),
    )?])
}
