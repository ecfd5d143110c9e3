//! The embedding part of the graph: pixels -> patches -> linear projection -> mask-token substitution -> CLS ->
//! absolute positions, giving hidden state 0 (B·T, C); and its backward into the projection, the mask token,
//! the CLS token and the position embeddings.

use super::builder::Builder;
use crate::gpu::GpuSlice;
use crate::model::error::ModelError;
use crate::ops::matmul;
use crate::ops::patches::{self, PatchShape};
use crate::ops::tokens::{self, TokenShape};

const PROJECTION: &str = "beit.embeddings.patch_embeddings.projection";

/// What the embedding's forward leaves for its backward and for the heads.
pub(super) struct Embedding {
    /// Flattened patches (B·N, Cin·p·p), also the pixel-regression targets.
    pub patches: GpuSlice,
    pub mask_token: Option<GpuSlice>,
    pub positions: Option<GpuSlice>,
    pub shape: TokenShape,
    /// Hidden state 0, (B·T, C).
    pub x0: GpuSlice,
}

impl Builder<'_> {
    /// Patch embedding of `pixels` (B, Cin, H, W) with `mask` (B, N) substituting the mask token.
    pub fn embeddings_forward(
        &mut self,
        pixels: &GpuSlice,
        mask: &GpuSlice,
    ) -> Result<Embedding, ModelError> {
        let (ctx, cfg, dims, p) = (self.ctx, self.cfg, self.dims, self.p());
        let ps = PatchShape {
            batch: dims.b,
            channels: cfg.num_channels,
            height: cfg.image_size,
            width: cfg.image_size,
            patch: cfg.patch_size,
        };
        let patch_rows = dims.b * dims.n;
        let patches_buf = self.buf("patches", ps.elements());
        let emb = self.buf("patch embeddings", patch_rows as u64 * dims.c as u64);
        self.fwd
            .extend(patches::patchify(ctx, &patches_buf, pixels, ps)?);
        self.fwd.extend(matmul::linear_forward_as(
            self.products,
            ctx,
            &emb,
            &patches_buf,
            &p.t(&format!("{PROJECTION}.weight"))?,
            Some(&p.t(&format!("{PROJECTION}.bias"))?),
            patch_rows,
            dims.c,
            cfg.patch_dim(),
        )?);
        let shape = TokenShape {
            batch: dims.b,
            patches: dims.n,
            dim: dims.c,
        };
        let mask_token = if cfg.use_mask_token {
            p.opt("beit.embeddings.mask_token")
        } else {
            None
        };
        let positions = p.opt("beit.embeddings.position_embeddings");
        let x0 = self.buf("hidden_states.0", dims.btc());
        self.fwd.extend(tokens::assemble(
            ctx,
            &x0,
            &emb,
            mask_token.as_ref().map(|mt| (mask, mt)),
            &p.t("beit.embeddings.cls_token")?,
            positions.as_ref(),
            shape,
        )?);
        Ok(Embedding {
            patches: patches_buf,
            mask_token,
            positions,
            shape,
            x0,
        })
    }

    /// Gradients of the embedding's parameters from `dx` = d hidden state 0.
    pub fn embeddings_backward(
        &mut self,
        e: &Embedding,
        mask: &GpuSlice,
        dx: &GpuSlice,
    ) -> Result<(), ModelError> {
        let (ctx, cfg, dims, p) = (self.ctx, self.cfg, self.dims, self.p());
        let patch_rows = dims.b * dims.n;
        let demb = self.buf("d patch embeddings", patch_rows as u64 * dims.c as u64);
        let gr = self.gr();
        let dmask = e
            .mask_token
            .as_ref()
            .and_then(|_| gr.opt("beit.embeddings.mask_token"));
        let dpos = e
            .positions
            .as_ref()
            .and_then(|_| gr.opt("beit.embeddings.position_embeddings"));
        let cls = gr.t("beit.embeddings.cls_token")?;
        let (dw, db) = (
            gr.t(&format!("{PROJECTION}.weight"))?,
            gr.t(&format!("{PROJECTION}.bias"))?,
        );
        let mut v = tokens::assemble_backward(
            ctx,
            Some(&demb),
            dmask.as_ref(),
            Some(&cls),
            dpos.as_ref(),
            dx,
            e.mask_token.as_ref().map(|_| mask),
            e.shape,
            false,
        )?;
        v.extend(matmul::linear_backward_as(
            self.products,
            ctx,
            None,
            &dw,
            Some(&db),
            &demb,
            &e.patches,
            &p.t(&format!("{PROJECTION}.weight"))?,
            patch_rows,
            dims.c,
            cfg.patch_dim(),
            false,
        )?);
        self.bwd.extend(v);
        Ok(())
    }
}
