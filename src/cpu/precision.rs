//! CPU twin of `ops::precision`: rounding to IEEE binary16 (what an f16-input product sees of its operands),
//! the loss-gradient scaling and the dynamic loss scale's update, and a linear layer whose products take f16
//! inputs and accumulate in f32; the f16 packing and product of the cooperative-matrix path.
//!
//! Loss-scale state, 6 f32 (the same on the GPU): [0] Σ g² of the scaled gradients, [1] the scale the step's
//! backward used, [2] 1 when the step's AdamW update was skipped, [3] the scale the next backward uses, [4]
//! finite steps since the scale last changed, [5] AdamW updates applied.

use crate::ops::matmul::{GemmShape, MatView};

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

/// The binary16 bits of `round_f16(x)`.
pub fn f16_bits(x: f32) -> u16 {
    let v = round_f16(x);
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let mag = bits & 0x7fff_ffff;
    if mag > 0x7f80_0000 {
        return sign | 0x7e00;
    }
    if mag == 0x7f80_0000 {
        return sign | 0x7c00;
    }
    if mag >= 0x3880_0000 {
        return sign | ((mag >> 13) - 0x1_c000) as u16;
    }
    sign | (v.abs() * 2f32.powi(24)) as u16
}

/// The strided view `(rows, cols)` of `x` as a dense row-major f16 matrix `(rows_p, cols_p)`, rounded, zero
/// past `rows` / `cols`, two values per word (column 2j in the low half): `ops::matmul_f16`'s packing.
pub fn pack_f16(x: &[f32], view: MatView, rows: u32, cols: u32, padded: (u32, u32)) -> Vec<u32> {
    let (rows_p, cols_p) = padded;
    let value = |r: u32, c: u32| -> u32 {
        if r < rows && c < cols {
            f16_bits(x[(view.off + r * view.rs + c * view.cs) as usize]) as u32
        } else {
            0
        }
    };
    let mut out = Vec::with_capacity((rows_p * cols_p / 2) as usize);
    for r in 0..rows_p {
        for c in (0..cols_p).step_by(2) {
            out.push(value(r, c) | (value(r, c + 1) << 16));
        }
    }
    out
}

/// `C = alpha · A · B (+ bias) (+ C)` with A and B rounded to f16 and f32 sums: the product
/// `ops::matmul_f16::gemm_f16` computes on cooperative matrices (one item, `shape.batch == 1`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f16(
    c: &mut [f32],
    cv: MatView,
    a: &[f32],
    av: MatView,
    b: &[f32],
    bv: MatView,
    bias: Option<&[f32]>,
    shape: GemmShape,
) {
    let round = |v: &[f32]| v.iter().map(|&e| round_f16(e)).collect::<Vec<f32>>();
    crate::cpu::matmul::gemm(c, cv, &round(a), av, &round(b), bv, bias, shape);
}

/// C's view `(m, n)` (=|+=) `alpha · c32[r · np + c] (+ bias[c])`: the padded product written back, as
/// `ops::matmul_f16::unpad_product` (`shape` gives m, n, alpha, bias and accumulate).
pub fn unpad_product(
    c: &mut [f32],
    cv: MatView,
    c32: &[f32],
    np: u32,
    bias: Option<&[f32]>,
    shape: GemmShape,
) {
    for r in 0..shape.m {
        for col in 0..shape.n {
            let mut v = shape.alpha * c32[(r * np + col) as usize];
            if let (true, Some(b)) = (shape.bias, bias) {
                v += b[col as usize];
            }
            let at = (cv.off + r * cv.rs + col * cv.cs) as usize;
            c[at] = if shape.accumulate { v + c[at] } else { v };
        }
    }
}
