//! CPU twin of `ops::precision`: rounding to IEEE binary16 (what an f16-input product sees of its operands),
//! the loss-gradient scaling and the dynamic loss scale's update, and a linear layer whose products take f16
//! inputs and accumulate in f32.
//!
//! Loss-scale state, 6 f32 (the same on the GPU): [0] Σ g² of the scaled gradients, [1] the scale the step's
//! backward used, [2] 1 when the step's AdamW update was skipped, [3] the scale the next backward uses, [4]
//! finite steps since the scale last changed, [5] AdamW updates applied.

/// Index of each field of the loss-scale state.
pub mod state {
    pub const SUMSQ: usize = 0;
    pub const USED_SCALE: usize = 1;
    pub const SKIPPED: usize = 2;
    pub const SCALE: usize = 3;
    pub const GOOD_STEPS: usize = 4;
    pub const APPLIED: usize = 5;
    /// Values in the state.
    pub const LEN: usize = 6;
}

/// The largest finite f16.
pub const F16_MAX: f32 = 65504.0;

/// `x` rounded to the nearest f16 (ties to even), back in f32: values from 65520 up become infinite, values
/// below 2^-14 land on the subnormal grid of 2^-24, NaN stays NaN.
pub fn round_f16(x: f32) -> f32 {
    let bits = x.to_bits();
    let abs = bits & 0x7fff_ffff;
    if abs > 0x7f80_0000 {
        return x;
    }
    if abs >= 0x477f_f000 {
        return f32::from_bits((bits & 0x8000_0000) | 0x7f80_0000);
    }
    if abs < 0x3880_0000 {
        // Below the smallest normal f16: multiples of 2^-24 (the division and product are exact).
        let quantum = 2f32.powi(-24);
        return round_half_even(x / quantum) * quantum;
    }
    // A normal f16 keeps 10 of f32's 23 fraction bits: drop 13, ties to even.
    let lsb = (abs >> 13) & 1;
    f32::from_bits((bits + 0x0fff + lsb) & 0xffff_e000)
}

fn round_half_even(x: f32) -> f32 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

/// `out[i] = round_f16(x[i])`.
pub fn round_f16_into(out: &mut [f32], x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = round_f16(v);
    }
}

/// `x[i] *= state[SCALE]`: the loss gradient scaled before the backward.
pub fn scale_by_loss_scale(x: &mut [f32], st: &[f32; state::LEN]) {
    for v in x {
        *v *= st[state::SCALE];
    }
}

/// After AdamW: record the scale used and whether the step was skipped (Σ g² not finite); halve the scale on
/// a skip, double it after `growth_interval` finite steps in a row.
pub fn update_loss_scale(st: &mut [f32; state::LEN], growth_interval: u32) {
    let used = st[state::SCALE];
    st[state::USED_SCALE] = used;
    if st[state::SUMSQ].is_finite() {
        st[state::SKIPPED] = 0.0;
        st[state::APPLIED] += 1.0;
        let good = st[state::GOOD_STEPS] + 1.0;
        if good >= growth_interval as f32 {
            st[state::SCALE] = used * 2.0;
            st[state::GOOD_STEPS] = 0.0;
        } else {
            st[state::GOOD_STEPS] = good;
        }
    } else {
        st[state::SKIPPED] = 1.0;
        st[state::SCALE] = used * 0.5;
        st[state::GOOD_STEPS] = 0.0;
    }
}

/// The state a run starts from: scale `initial`, nothing applied.
pub fn initial_state(initial: f32) -> [f32; state::LEN] {
    let mut st = [0.0; state::LEN];
    st[state::USED_SCALE] = initial;
    st[state::SCALE] = initial;
    st
}

/// `Y (M, N) = round(X) · round(W)ᵀ + b` with f32 accumulation: [`crate::cpu::matmul::linear_forward`] on
/// operands rounded to f16 (the bias stays f32).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_f16(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
) {
    let (mut xr, mut wr) = (vec![0.0; x.len()], vec![0.0; w.len()]);
    round_f16_into(&mut xr, x);
    round_f16_into(&mut wr, w);
    crate::cpu::matmul::linear_forward(y, &xr, &wr, b, m, n, k);
}

/// Backward of [`linear_forward_f16`]: [`crate::cpu::matmul::linear_backward`] with `dY`, `X` and `W` rounded
/// to f16 (so the bias gradient sums the rounded `dY`, as the GPU's emulated products do).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_f16(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    m: usize,
    n: usize,
    k: usize,
    accumulate_dx: bool,
) {
    let round = |v: &[f32]| v.iter().map(|&e| round_f16(e)).collect::<Vec<f32>>();
    let (dyr, xr, wr) = (round(dy), round(x), round(w));
    crate::cpu::matmul::linear_backward(dx, dw, db, &dyr, &xr, &wr, m, n, k, accumulate_dx);
}
