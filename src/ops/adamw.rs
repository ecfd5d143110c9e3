//! Launcher for `shaders/adamw.wgsl`: one AdamW step over flat buffers laid out by a [`FlatLayout`], with a
//! per-tensor lr multiplier and weight-decay flag and the global grad-norm clip applied in the same pass.

use super::{gpu_params, launch, need, vec4_view};
use crate::gpu::{workgroup_grid, Dispatch, FlatLayout, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `AdamWParams` in adamw.wgsl.
    AdamWParams in "adamw" as "AdamWParams" {
        lr: f32, beta1: f32, beta2: f32, eps: f32, bias_correction1: f32, bias_correction2: f32,
        max_grad_norm: f32, flags: u32, work_items: u32, one_minus_beta1: f32, one_minus_beta2: f32, _pad: u32,
    }
);

gpu_params!(
    /// Mirrors `TensorInfo` in adamw.wgsl: one row per tensor of the flat buffer.
    TensorInfo in "adamw" as "TensorInfo" { end: u32, lr_mult: f32, weight_decay: f32, _pad: u32 }
);

/// Elements per AdamW workgroup.
pub const ADAMW_WG: u64 = 256;

/// Hyper-parameters of one step (lr already scheduled; `step` counts from 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    pub lr: f32,
    /// Betas in double precision: 1 − β is formed before rounding to f32, as PyTorch does.
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f32,
    pub step: u32,
    /// Clip the gradient to this global L2 norm (read from `grad_sumsq`); `None` for no clipping.
    pub max_grad_norm: Option<f32>,
}

impl AdamWStep {
    pub fn params(&self, work_items: u32) -> AdamWParams {
        AdamWParams {
            lr: self.lr,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            eps: self.eps,
            bias_correction1: (1.0 - self.beta1.powi(self.step as i32)) as f32,
            bias_correction2: (1.0 - self.beta2.powi(self.step as i32)) as f32,
            max_grad_norm: self.max_grad_norm.unwrap_or(0.0),
            flags: self.max_grad_norm.is_some() as u32,
            work_items,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            _pad: 0,
        }
    }
}

/// The static part of the optimizer: which workgroup updates which elements, each tensor's group settings,
/// and the uniform holding the step's hyper-parameters, rewritten each step by [`AdamWPlan::set_step`] so the
/// dispatch itself is built once.
pub struct AdamWPlan {
    pub work: GpuSlice,
    pub tensors: GpuSlice,
    pub hyper: GpuSlice,
    pub work_items: u32,
    /// Every tensor starts at a multiple of 4 elements, so `adamw_step4` can update them four at a time.
    pub quads: bool,
    /// The gradients carry a dynamic loss scale and `grad_sumsq` is the loss scaler's state (flag bit 1 of
    /// `shaders/adamw.wgsl`: unscale, skip an overflowed step, bias corrections from the updates applied).
    pub loss_scaled: bool,
}

impl AdamWPlan {
    /// `groups[i] = (lr multiplier, weight decay)` for tensor `i` of `layout`.
    pub fn new(
        ctx: &GpuContext,
        layout: &FlatLayout,
        groups: &[(f32, f32)],
    ) -> Result<Self, GpuError> {
        if groups.len() != layout.entries.len() {
            return Err(GpuError::BadLaunch {
                kernel: "adamw::adamw_step".into(),
                message: format!(
                    "{} tensors but {} optimizer settings",
                    layout.entries.len(),
                    groups.len()
                ),
            });
        }
        let mut work: Vec<u32> = Vec::new();
        let mut tensors = Vec::with_capacity(groups.len());
        for (i, (e, &(lr_mult, weight_decay))) in layout.entries.iter().zip(groups).enumerate() {
            let mut start = e.offset;
            while start < e.offset + e.len {
                work.extend([i as u32, start as u32]);
                start += ADAMW_WG;
            }
            tensors.push(TensorInfo {
                end: (e.offset + e.len) as u32,
                lr_mult,
                weight_decay,
                _pad: 0,
            });
        }
        let work_items = (work.len() / 2) as u32;
        if work.is_empty() {
            work.extend([0, 0]);
            tensors.push(TensorInfo::default());
        }
        Ok(Self {
            hyper: GpuSlice::uniform(ctx, "AdamWParams", &AdamWParams::default()),
            work: GpuSlice::from_slice(ctx, "adamw work list", &work),
            tensors: GpuSlice::from_slice(
                ctx,
                "adamw tensor table",
                bytemuck::cast_slice::<TensorInfo, u32>(&tensors),
            ),
            work_items,
            quads: layout.entries.iter().all(|e| e.offset.is_multiple_of(4)),
            loss_scaled: false,
        })
    }

    /// Write this step's hyper-parameters (ordered before the next submit; no new buffers).
    pub fn set_step(&self, ctx: &GpuContext, hp: &AdamWStep) {
        let mut params = hp.params(self.work_items);
        params.flags |= (self.loss_scaled as u32) << 1;
        ctx.queue
            .write_buffer(&self.hyper.buffer, 0, bytemuck::bytes_of(&params));
    }
}

/// The AdamW dispatch, in place on `param`, `m`, `v` from `grad` (all laid out like the plan's layout), using
/// the hyper-parameters last given to [`AdamWPlan::set_step`]. `grad_sumsq (1)` holds Σ g² for the clip, or,
/// for a loss-scaled plan, is the loss scaler's state (6).
pub fn adamw_step(
    ctx: &GpuContext,
    param: &GpuSlice,
    m: &GpuSlice,
    v: &GpuSlice,
    grad: &GpuSlice,
    grad_sumsq: &GpuSlice,
    plan: &AdamWPlan,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "adamw::adamw_step";
    for (what, s) in [("m", m), ("v", v), ("grad", grad)] {
        need(K, what, s, param.len)?;
    }
    let state_len = if plan.loss_scaled {
        crate::cpu::precision::state::LEN as u64
    } else {
        1
    };
    need(K, "grad_sumsq", grad_sumsq, state_len)?;
    if plan.work_items == 0 {
        return Ok(Vec::new());
    }
    let (param4, m4, v4, grad4) = (
        vec4_view(ctx, param),
        vec4_view(ctx, m),
        vec4_view(ctx, v),
        vec4_view(ctx, grad),
    );
    // Four at a time where every quad a tensor touches lies inside the vec4 views.
    let entry = if plan.quads && param.len.is_multiple_of(4) {
        "adamw_step4"
    } else {
        "adamw_step"
    };
    Ok(vec![launch(
        ctx,
        "adamw",
        entry,
        &[
            param,
            m,
            v,
            grad,
            &plan.work,
            &plan.tensors,
            grad_sumsq,
            &plan.hyper,
            &param4,
            &m4,
            &v4,
            &grad4,
        ],
        workgroup_grid(plan.work_items as u64),
    )?])
}
