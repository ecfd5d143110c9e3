//! CPU twin of `ops::adamw`: torch.optim.AdamW's update with per-tensor lr multiplier and weight decay, and
//! the global-norm clip factor `min(1, max_norm / (‖g‖ + 1e-6))` as torch.nn.utils.clip_grad_norm_.

use crate::gpu::FlatLayout;
use crate::ops::adamw::AdamWStep;

/// One step over flat f32 buffers; `groups[i] = (lr multiplier, weight decay)` of tensor i of `layout`.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    param: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    grad_sumsq: f32,
    layout: &FlatLayout,
    groups: &[(f32, f32)],
    hp: &AdamWStep,
) {
    let pr = hp.params(0);
    let clip = match hp.max_grad_norm {
        Some(max) => (max / (grad_sumsq.sqrt() + 1e-6)).min(1.0),
        None => 1.0,
    };
    for (e, &(lr_mult, wd)) in layout.entries.iter().zip(groups) {
        let lr = hp.lr * lr_mult;
        for i in e.offset as usize..(e.offset + e.len) as usize {
            let g = grad[i] * clip;
            let mut x = param[i] * (1.0 - lr * wd);
            let mi = m[i] + pr.one_minus_beta1 * (g - m[i]);
            let vi = pr.beta2 * v[i] + pr.one_minus_beta2 * g * g;
            let denom = vi.sqrt() / pr.bias_correction2.sqrt() + hp.eps;
            x -= (lr / pr.bias_correction1) * (mi / denom);
            m[i] = mi;
            v[i] = vi;
            param[i] = x;
        }
    }
}

/// [`adamw_step`] on loss-scaled gradients (mixed precision; `st` is the loss scaler's state, see
/// `cpu::precision`): nothing changes when their Σ g² overflowed; otherwise they are divided by the scale, the
/// clip uses the unscaled norm, and the bias corrections count the updates applied (`st[APPLIED] + 1`) in f32.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step_scaled(
    param: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    st: &[f32; crate::cpu::precision::state::LEN],
    layout: &FlatLayout,
    groups: &[(f32, f32)],
    hp: &AdamWStep,
) {
    use crate::cpu::precision::state;
    let sumsq = st[state::SUMSQ];
    if !sumsq.is_finite() {
        return;
    }
    let pr = hp.params(0);
    let inv = 1.0 / st[state::SCALE];
    let clip = match hp.max_grad_norm {
        Some(max) => (max / (sumsq.sqrt() * inv + 1e-6)).min(1.0),
        None => 1.0,
    };
    let t = st[state::APPLIED] + 1.0;
    let (bc1, bc2) = (1.0 - pr.beta1.powf(t), 1.0 - pr.beta2.powf(t));
    for (e, &(lr_mult, wd)) in layout.entries.iter().zip(groups) {
        let lr = hp.lr * lr_mult;
        for i in e.offset as usize..(e.offset + e.len) as usize {
            let g = grad[i] * (inv * clip);
            let mut x = param[i] * (1.0 - lr * wd);
            let mi = m[i] + pr.one_minus_beta1 * (g - m[i]);
            let vi = pr.beta2 * v[i] + pr.one_minus_beta2 * g * g;
            let denom = vi.sqrt() / bc2.sqrt() + hp.eps;
            x -= (lr / bc1) * (mi / denom);
            m[i] = mi;
            v[i] = vi;
            param[i] = x;
        }
    }
}
