// adamw.wgsl: one AdamW step over the flat parameter / gradient / moment buffers, in one dispatch, as
// torch.optim.AdamW computes it: p ← p·(1 − lr·wd); m ← lerp(m, g, 1 − β1); v ← β2·v + (1 − β2)·g²;
// p ← p − (lr / bc1) · m / (√v / √bc2 + eps). Each tensor has an lr multiplier (layer-wise decay) and a
// weight-decay flag; the gradient is first scaled by the global clip factor min(1, max_norm / (‖g‖ + 1e-6))
// read from the device (the norm is computed on the GPU in the same step).
//
// Loss-scaled (flag bit 1, mixed precision): grad_sumsq is the loss scaler's state (see precision.wgsl): the
// gradients were computed times the scale state[3], so they and their norm are divided by it; when their Σ g²
// state[0] is not finite the update is skipped (weights and moments untouched), and the bias corrections come
// from the updates applied so far, state[5] + 1, not from the step number.
//
// adamw_step4 does the same four elements per invocation through vec4 views (every tensor starting at a
// multiple of 4 and the total a multiple of 4): on llvmpipe every storage access is a loop over the lanes, and
// four elements per access made the step 2x faster there. With QUADS_PER_INVOCATION above 1 (software
// adapters) each work item covers that many times 256 elements and each invocation that many quads, so the
// reads every invocation makes once (its work item, its tensor's settings, the clip's norm: five accesses, each
// a loop over the lanes there) serve several quads instead of one.
//
// Shapes: param, grad, m, v (total) flat; work (groups, 2) u32 = (tensor index, first element) per workgroup
// of 256 elements (256 · QUADS_PER_INVOCATION for adamw_step4); tensors (count) of TensorInfo; grad_sumsq (1) = Σ g², or (6) the loss scaler's state.

struct TensorInfo {
    end: u32,
    lr_mult: f32,
    weight_decay: f32,
    _pad: u32,
}

struct AdamWParams {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    max_grad_norm: f32,
    // bit 0: clip by the global gradient norm; bit 1: loss-scaled gradients (see above).
    flags: u32,
    work_items: u32,
    // 1 − β1 and 1 − β2 computed in double precision on the CPU (as PyTorch does with Python floats).
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read_write> m: array<f32>;
@group(0) @binding(2) var<storage, read_write> v: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read> work: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> tensors: array<TensorInfo>;
@group(0) @binding(6) var<storage, read> grad_sumsq: array<f32>;
@group(0) @binding(7) var<uniform> p: AdamWParams;
@group(0) @binding(8) var<storage, read_write> param4: array<vec4<f32>>; // param, 4 at a time
@group(0) @binding(9) var<storage, read_write> m4: array<vec4<f32>>;     // m, 4 at a time
@group(0) @binding(10) var<storage, read_write> v4: array<vec4<f32>>;    // v, 4 at a time
@group(0) @binding(11) var<storage, read> grad4: array<vec4<f32>>;       // grad, 4 at a time

fn loss_scaled() -> bool {
    return (p.flags & 2u) != 0u;
}

// 1 / the loss scale the gradients carry (1 without loss scaling).
fn inv_scale() -> f32 {
    if (loss_scaled()) {
        return 1.0 / grad_sumsq[3];
    }
    return 1.0;
}

// Whether this step's update is skipped: loss-scaled gradients that overflowed.
fn skipped() -> bool {
    return loss_scaled() && (bitcast<u32>(grad_sumsq[0]) & 0x7f800000u) == 0x7f800000u;
}

// What multiplies each stored gradient: 1 / scale times the global clip factor min(1, max_norm / (‖g‖ + 1e-6))
// of the unscaled gradient.
fn grad_factor() -> f32 {
    let inv = inv_scale();
    var clip = 1.0;
    if ((p.flags & 1u) != 0u) {
        clip = min(1.0, p.max_grad_norm / (sqrt(grad_sumsq[0]) * inv + 1e-6));
    }
    return inv * clip;
}

// (1 − β1^t, 1 − β2^t): the host's values, or from the applied updates when loss-scaled.
fn bias_corrections() -> vec2<f32> {
    if (loss_scaled()) {
        let t = grad_sumsq[5] + 1.0;
        return vec2<f32>(1.0 - pow(p.beta1, t), 1.0 - pow(p.beta2, t));
    }
    return vec2<f32>(p.bias_correction1, p.bias_correction2);
}

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.work_items) {
        return;
    }
    let item = work[w];
    let info = tensors[item.x];
    let i = item.y + li;
    if (i >= info.end || skipped()) {
        return;
    }
    let g = grad[i] * grad_factor();
    let bc = bias_corrections();
    let lr = p.lr * info.lr_mult;
    var x = param[i] * (1.0 - lr * info.weight_decay);
    let mi = m[i] + p.one_minus_beta1 * (g - m[i]);
    let vi = p.beta2 * v[i] + p.one_minus_beta2 * g * g;
    let denom = sqrt(vi) / sqrt(bc.y) + p.eps;
    x = x - (lr / bc.x) * (mi / denom);
    m[i] = mi;
    v[i] = vi;
    param[i] = x;
}

// Quads of a work item per invocation of adamw_step4 (the launcher's `quads_per_invocation`): its work items
// hold 256 times this many elements.
override QUADS_PER_INVOCATION: u32 = 1u;

// adamw_step on quads: invocation li of work item w updates elements 4(li + 64j) .. 4(li + 64j) + 3 of its
// 256 · QUADS_PER_INVOCATION, j < QUADS_PER_INVOCATION (those before the tensor's end).
@compute @workgroup_size(64)
fn adamw_step4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.work_items) {
        return;
    }
    let item = work[w];
    let info = tensors[item.x];
    if (4u * (item.y / 4u + li) >= info.end || skipped()) {
        return;
    }
    let factor = grad_factor();
    let bc = bias_corrections();
    let lr = p.lr * info.lr_mult;
    for (var j = 0u; j < QUADS_PER_INVOCATION; j++) {
        let q = item.y / 4u + li + 64u * j;
        let i = 4u * q;
        if (i >= info.end) {
            break;
        }
        let g = grad4[q] * factor;
        let m_old = m4[q];
        var x = param4[q] * (1.0 - lr * info.weight_decay);
        let mi = m_old + p.one_minus_beta1 * (g - m_old);
        let vi = p.beta2 * v4[q] + p.one_minus_beta2 * g * g;
        let denom = sqrt(vi) / sqrt(bc.y) + p.eps;
        x = x - (lr / bc.x) * (mi / denom);
        if (i + 3u < info.end) {
            m4[q] = mi;
            v4[q] = vi;
            param4[q] = x;
        } else {
            // The tensor ends inside this quad: only its elements.
            for (var k = 0u; k < info.end - i; k++) {
                m4[q][k] = mi[k];
                v4[q][k] = vi[k];
                param4[q][k] = x[k];
            }
        }
    }
}
