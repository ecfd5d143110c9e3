//! What every part of the graph builder shares: the device, the config's dimensions, the parameter and
//! gradient tensors by name, the forward and backward dispatch lists being built, and the residual / drop-path
//! units both passes use. Each part (`embed.rs`, `block.rs`, `head.rs`) adds its dispatches through it.

use super::GraphOptions;
use crate::gpu::{Dispatch, FlatBuffer, GpuContext, GpuSlice};
use crate::model::config::{Architecture, BeitConfig};
use crate::model::error::ModelError;
use crate::model::params::ParamTable;
use crate::ops::droppath::{self, DropPathParams};
use crate::ops::elementwise;
use crate::ops::precision::{LossScaler, ProductInputs, GROWTH_INTERVAL, INITIAL_LOSS_SCALE};

/// A fresh buffer of `n` f32 (at least one).
pub(super) fn buf(ctx: &GpuContext, label: &str, n: u64) -> GpuSlice {
    GpuSlice::new(ctx, label, n.max(1))
}

/// Parameter (or gradient) tensors by name, and runs of packed tensors as one slice.
#[derive(Clone, Copy)]
pub(super) struct Named<'a> {
    pub buf: &'a FlatBuffer,
}

impl Named<'_> {
    pub fn t(&self, name: &str) -> Result<GpuSlice, ModelError> {
        Ok(self.buf.get(name)?)
    }
    /// `count` elements starting at tensor `first` (a packed run such as q, k, v weights).
    pub fn run(&self, first: &str, count: u64) -> Result<GpuSlice, ModelError> {
        let e = self
            .buf
            .layout
            .find(first)
            .ok_or_else(|| ModelError::Checkpoint(format!("tensor {first} is missing")))?;
        Ok(self.buf.whole.sub(e.offset, count))
    }
    pub fn opt(&self, name: &str) -> Option<GpuSlice> {
        self.buf.get(name).ok()
    }
}

/// The sizes every part uses: B, C, H, T, N, I, D, L and the layer-norm epsilon.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub b: u32,
    pub c: u32,
    pub heads: u32,
    pub t: u32,
    pub n: u32,
    pub inter: u32,
    pub d: u32,
    pub layers: u32,
    pub eps: f32,
}

impl Dims {
    /// B·T token rows.
    pub fn bt(&self) -> u32 {
        self.b * self.t
    }
    /// B·T·C values of a hidden state.
    pub fn btc(&self) -> u64 {
        self.bt() as u64 * self.c as u64
    }
    /// B·T·I values of an MLP activation.
    pub fn bti(&self) -> u64 {
        self.bt() as u64 * self.inter as u64
    }
    /// T·T entries of one attention map.
    pub fn tt(&self) -> u32 {
        self.t * self.t
    }
    /// B·H·T·T values of every attention map of a block.
    pub fn bhtt(&self) -> u64 {
        self.b as u64 * self.heads as u64 * self.tt() as u64
    }
}

/// The graph under construction.
pub(super) struct Builder<'a> {
    pub ctx: &'a GpuContext,
    pub cfg: &'a BeitConfig,
    pub opts: GraphOptions,
    pub dims: Dims,
    params: &'a FlatBuffer,
    pub grads: FlatBuffer,
    pub fwd: Vec<Dispatch>,
    pub bwd: Vec<Dispatch>,
    /// Every drop-path launch reads a uniform kept here, so a new seed per step is a queue write.
    pub drop_uniforms: Vec<(GpuSlice, DropPathParams)>,
    /// What the linear layers' products read (f16 operands in mixed precision).
    pub products: ProductInputs,
    /// Mixed precision: the dynamic loss scale the loss gradient is multiplied by.
    pub scaler: Option<LossScaler>,
}

impl<'a> Builder<'a> {
    pub fn new(
        ctx: &'a GpuContext,
        cfg: &'a BeitConfig,
        table: &ParamTable,
        params: &'a FlatBuffer,
        opts: GraphOptions,
    ) -> Result<Self, ModelError> {
        cfg.validate()?;
        if opts.batch == 0 {
            return Err(ModelError::Input("batch size must be positive".into()));
        }
        if opts.mixed.is_some() && cfg.architecture() == Architecture::SemanticSegmentation {
            return Err(ModelError::Input(
                "mixed precision covers pretraining and image classification; semantic segmentation trains in f32".into(),
            ));
        }
        let dims = Dims {
            b: opts.batch,
            c: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            t: cfg.tokens(),
            n: cfg.patches(),
            inter: cfg.intermediate_size,
            d: cfg.head_dim(),
            layers: cfg.num_hidden_layers,
            eps: cfg.layer_norm_eps as f32,
        };
        if opts.mixed == Some(ProductInputs::F16Coop) {
            crate::ops::matmul_f16::reserve_scratch(ctx, &linear_products(&dims, cfg));
        }
        Ok(Self {
            ctx,
            cfg,
            opts,
            dims,
            params,
            grads: FlatBuffer::new(ctx, "gradients", table.layout.clone()),
            fwd: Vec::new(),
            bwd: Vec::new(),
            drop_uniforms: Vec::new(),
            products: opts.mixed.unwrap_or_default(),
            scaler: opts
                .mixed
                .map(|_| LossScaler::new(ctx, INITIAL_LOSS_SCALE, GROWTH_INTERVAL)),
        })
    }

    /// Parameters by name.
    pub fn p(&self) -> Named<'a> {
        Named { buf: self.params }
    }

    /// Gradients by name.
    pub fn gr(&self) -> Named<'_> {
        Named { buf: &self.grads }
    }

    pub fn arch(&self) -> Architecture {
        self.cfg.architecture()
    }

    pub fn buf(&self, label: &str, n: u64) -> GpuSlice {
        buf(self.ctx, label, n)
    }

    /// Keep probability of block `li`'s drop path (rates rising linearly to `drop_path_rate`), `None` when drop
    /// path is off (evaluation, or a zero rate).
    pub fn keep(&self, li: u32) -> Option<f32> {
        let l = self.dims.layers;
        let rate = if l > 1 {
            self.cfg.drop_path_rate * li as f64 / (l - 1) as f64
        } else {
            0.0
        };
        (self.opts.drop_path_seed.is_some() && rate > 0.0).then_some((1.0 - rate) as f32)
    }

    /// Drop path of `x` into `out` (accumulated when `accumulate`) on random stream `stream`, its uniform kept
    /// for per-step seeds.
    pub fn drop_path(
        &mut self,
        out: &GpuSlice,
        x: &GpuSlice,
        keep_prob: f32,
        stream: u32,
        accumulate: bool,
    ) -> Result<Vec<Dispatch>, ModelError> {
        let seed = self.opts.drop_path_seed.unwrap_or(0);
        let d = self.dims;
        let params = DropPathParams::new(d.b, d.t * d.c, keep_prob, seed, stream, accumulate);
        let u = GpuSlice::uniform(self.ctx, "DropPathParams", &params);
        let d = droppath::drop_path_with(self.ctx, out, x, &u, &params)?;
        self.drop_uniforms.push((u, params));
        Ok(d)
    }

    /// Whether blocks keep their layer norm and GELU outputs (see [`GraphOptions::keep_block_outputs`]).
    pub fn keeps_block_outputs(&self) -> bool {
        self.opts
            .keep_block_outputs
            .unwrap_or(self.ctx.adapter_info.device_type == wgpu::DeviceType::Cpu)
    }

    /// Whether blocks run the fused attention core (see [`GraphOptions::fused_attention`]).
    pub fn fuses_attention(&self) -> bool {
        let d = self.dims;
        let shape = crate::ops::attention::AttentionShape {
            batch: d.b,
            heads: d.heads,
            tokens: d.t,
            head_dim: d.d,
            scale: 1.0,
        };
        let wanted = self.opts.fused_attention.unwrap_or_else(|| {
            #[cfg(not(target_arch = "wasm32"))]
            match std::env::var("BEITLAB_ATTENTION").as_deref() {
                Ok("fused") => return true,
                Ok("composed") => return false,
                _ => {}
            }
            // The browser keeps the probabilities: its adapter may be a software one it does not name.
            if cfg!(target_arch = "wasm32")
                || crate::gpu::is_software_adapter(&self.ctx.adapter_info)
            {
                return false;
            }
            // Where the context tunes, the faster of the two for this shape (the fused one on a near tie).
            let with_bias =
                self.cfg.use_relative_position_bias || self.cfg.use_shared_relative_position_bias;
            crate::ops::attention_fused::tuned(self.ctx, shape, with_bias)
                .ok()
                .flatten()
                .unwrap_or(true)
        });
        wanted && crate::ops::attention_fused::fits(shape)
    }

    /// x_out = x_in + drop_path(λ · branch): the residual update of one branch (forward), one launch: a plain
    /// sum without layer scale and drop path, else `droppath::residual_branch` (its uniform is kept with the
    /// drop-path ones, so a new seed per step reaches it).
    pub fn residual(
        &mut self,
        out: &GpuSlice,
        x_in: &GpuSlice,
        branch: &GpuSlice,
        lambda: Option<&GpuSlice>,
        keep: Option<f32>,
        stream: u32,
    ) -> Result<(), ModelError> {
        let (ctx, d) = (self.ctx, self.dims);
        if lambda.is_none() && keep.is_none() {
            let sum = elementwise::add(ctx, out, x_in, branch, d.btc() as u32, false)?;
            self.fwd.extend(sum);
            return Ok(());
        }
        let seed = self.opts.drop_path_seed.unwrap_or(0);
        let params =
            DropPathParams::residual(d.b, d.t * d.c, d.c, keep, lambda.is_some(), seed, stream);
        let u = GpuSlice::uniform(ctx, "DropPathParams (residual)", &params);
        let fused = droppath::residual_branch_with(ctx, out, x_in, branch, lambda, &u, &params)?;
        self.fwd.extend(fused);
        self.drop_uniforms.push((u, params));
        Ok(())
    }

    /// The backward of [`Builder::residual`] for the branch: d branch = λ ⊙ drop_path'(dx), dλ += Σ
    /// drop_path'(dx) ⊙ branch. `scratch` holds (after drop path, after λ); returns the slice holding d branch.
    /// With a layer scale it is one pass (`droppath::residual_branch_backward_with`) plus the column sum of dλ;
    /// without, the drop path alone, or nothing.
    pub fn residual_backward(
        &mut self,
        dx: &GpuSlice,
        branch: &GpuSlice,
        lambda: Option<(&GpuSlice, &GpuSlice)>,
        keep: Option<f32>,
        stream: u32,
        scratch: (&GpuSlice, &GpuSlice),
    ) -> Result<GpuSlice, ModelError> {
        let (ctx, d) = (self.ctx, self.dims);
        match (lambda, keep) {
            (Some((lam, dlam)), _) => {
                let seed = self.opts.drop_path_seed.unwrap_or(0);
                let params =
                    DropPathParams::residual(d.b, d.t * d.c, d.c, keep, true, seed, stream);
                let u = GpuSlice::uniform(ctx, "DropPathParams (residual backward)", &params);
                // The drop path's scratch is free here: it holds the layer scale's partial sums.
                let rows_per_chunk = droppath::residual_backward_rows_per_chunk(ctx, d.bt() as u64);
                let fused = droppath::residual_branch_backward_with(
                    ctx,
                    scratch.1,
                    dlam,
                    scratch.0,
                    dx,
                    branch,
                    lam,
                    &u,
                    &params,
                    rows_per_chunk,
                )?;
                self.bwd.extend(fused);
                self.drop_uniforms.push((u, params));
                Ok(scratch.1.clone())
            }
            (None, Some(kp)) => {
                let dp = self.drop_path(scratch.0, dx, kp, stream, false)?;
                self.bwd.extend(dp);
                Ok(scratch.0.clone())
            }
            (None, None) => Ok(dx.clone()),
        }
    }

    /// The backward's first dispatch: every gradient starts at zero.
    pub fn zero_gradients(&mut self) -> Result<(), ModelError> {
        let d = elementwise::fill(
            self.ctx,
            &self.grads.whole,
            self.grads.layout.total as u32,
            0.0,
        )?;
        self.bwd.extend(d);
        Ok(())
    }
}

/// Every `(M, N, K)` product of the network's linear layers, forward (`Y = X·Wᵀ`) and backward (`dX = dY·W`,
/// `dW = dYᵀ·X`), at most as many rows as the batch has tokens.
fn linear_products(d: &Dims, cfg: &BeitConfig) -> Vec<(u32, u32, u32)> {
    let tokens = d.b * d.t;
    let patch_in = cfg.num_channels * cfg.patch_size * cfg.patch_size;
    let layers = [
        (d.b * d.n, patch_in, d.c),
        (tokens, d.c, 3 * d.c),
        (tokens, d.c, d.c),
        (tokens, d.c, d.inter),
        (tokens, d.inter, d.c),
        (d.b * d.n, d.c, cfg.vocab_size),
    ];
    layers
        .iter()
        .flat_map(|&(m, fan_in, fan_out)| {
            [
                (m, fan_out, fan_in),
                (m, fan_in, fan_out),
                (fan_out, fan_in, m),
            ]
        })
        .collect()
}
