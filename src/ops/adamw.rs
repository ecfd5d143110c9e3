//! Launcher for `shaders/adamw.wgsl`: one AdamW step over flat buffers laid out by a [`FlatLayout`], with a
//! per-tensor lr multiplier and weight-decay flag and the global grad-norm clip applied in the same pass.

use super::{gpu_params, launch_with, need, vec4_view};
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

/// Elements per AdamW workgroup (times the plan's quads per invocation with `adamw_step4`).
pub const ADAMW_WG: u64 = 256;

/// Quads each invocation of `adamw_step4` updates on software adapters. There every storage access is a loop
/// over the lanes, and an invocation's five reads that do not depend on its elements (work item, tensor
/// settings, the clip's norm) cost as much as most of a quad's own seven. Tiny's AdamW step (6.9M parameters,
/// `LP_NUM_THREADS=1 beitlab bench kernels --preset tiny --batch 16`, three rounds on llvmpipe) took 89.7-93.0 ms
/// at one quad per invocation, 77.8-91.2 at 4, 72.1-73.1 at 8 and 69.3-73.4 at 16. GPUs keep one quad per
/// invocation and eight times the workgroups.
pub const SOFTWARE_QUADS_PER_INVOCATION: u32 = 8;

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
    /// Every tensor starts at a multiple of 4 elements and so does the end of the last, so `adamw_step4` can
    /// update them four at a time.
    pub quads: bool,
    /// Quads per invocation of `adamw_step4` (its work items hold 256 times this many elements): 1, or
    /// [`SOFTWARE_QUADS_PER_INVOCATION`] on software adapters.
    pub quads_per_invocation: u32,
    /// The gradients carry a dynamic loss scale and `grad_sumsq` is the loss scaler's state (flag bit 1 of
    /// `shaders/adamw.wgsl`: unscale, skip an overflowed step, bias corrections from the updates applied).
    pub loss_scaled: bool,
}

impl AdamWPlan {
    /// `groups[i] = (lr multiplier, weight decay)` for tensor `i` of `layout`; quads per invocation as the
    /// adapter wants them.
    pub fn new(
        ctx: &GpuContext,
        layout: &FlatLayout,
        groups: &[(f32, f32)],
    ) -> Result<Self, GpuError> {
        let software = ctx.adapter_info.device_type == wgpu::DeviceType::Cpu;
        let per_invocation = if software {
            SOFTWARE_QUADS_PER_INVOCATION
        } else {
            1
        };
        Self::with_quads_per_invocation(ctx, layout, groups, per_invocation)
    }

    /// [`AdamWPlan::new`] with `quads_per_invocation` chosen (1 to 64; tests run both layouts on one adapter).
    /// Without quads (a tensor starting off a multiple of 4) the scalar kernel's 256 elements per item hold.
    pub fn with_quads_per_invocation(
        ctx: &GpuContext,
        layout: &FlatLayout,
        groups: &[(f32, f32)],
        quads_per_invocation: u32,
    ) -> Result<Self, GpuError> {
        if !(1..=64).contains(&quads_per_invocation) {
            return Err(GpuError::BadLaunch {
                kernel: "adamw::adamw_step".into(),
                message: format!("{quads_per_invocation} quads per invocation is outside 1 to 64"),
            });
        }
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
        let quads = layout.entries.iter().all(|e| e.offset.is_multiple_of(4))
            && layout.total.is_multiple_of(4);
        let per_invocation = if quads { quads_per_invocation } else { 1 };
        let per_item = ADAMW_WG * per_invocation as u64;
        let mut work: Vec<u32> = Vec::new();
        let mut tensors = Vec::with_capacity(groups.len());
        for (i, (e, &(lr_mult, weight_decay))) in layout.entries.iter().zip(groups).enumerate() {
            let mut start = e.offset;
            while start < e.offset + e.len {
                work.extend([i as u32, start as u32]);
                start += per_item;
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
            quads,
            quads_per_invocation: per_invocation,
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
    let quads = plan.quads && param.len.is_multiple_of(4);
    if !quads && plan.quads_per_invocation != 1 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "the plan's work items hold {} quads per invocation, but {} parameters do not end on a quad",
                plan.quads_per_invocation, param.len
            ),
        });
    }
    let (entry, constants) = if quads {
        (
            "adamw_step4",
            vec![("QUADS_PER_INVOCATION", plan.quads_per_invocation as f64)],
        )
    } else {
        ("adamw_step", Vec::new())
    };
    Ok(vec![launch_with(
        ctx,
        "adamw",
        entry,
        &constants,
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
