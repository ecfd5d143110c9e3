//! CPU twin of `ops::groupnorm`: group normalisation of (B, C, H·W) maps with a per-channel affine.

use super::{put, Real};
use crate::ops::groupnorm::GroupNormShape;

/// `y = (x − mean) · rstd · γ[c] + β[c]` per (image, group); mean and rstd (B·G) saved.
pub fn group_norm_forward<T: Real>(
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    s: GroupNormShape,
) {
    let (cg, hw) = ((s.channels / s.groups) as usize, s.pixels as usize);
    let n = cg * hw;
    for bg in 0..(s.batch * s.groups) as usize {
        let xs = &x[bg * n..(bg + 1) * n];
        let m = xs.iter().fold(T::zero(), |a, &v| a + v) / T::of(n as f64);
        let var = xs.iter().fold(T::zero(), |a, &v| a + (v - m) * (v - m)) / T::of(n as f64);
        let r = T::one() / (var + T::of(s.eps as f64)).sqrt();
        mean[bg] = m;
        rstd[bg] = r;
        let c0 = (bg % s.groups as usize) * cg;
        for i in 0..n {
            let c = c0 + i / hw;
            y[bg * n + i] = (xs[i] - m) * r * gamma[c] + beta[c];
        }
    }
}

/// `dx (=|+=)`, `dγ`, `dβ (=|+=)` of [`group_norm_forward`].
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward<T: Real>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dy: &[T],
    x: &[T],
    gamma: &[T],
    mean: &[T],
    rstd: &[T],
    s: GroupNormShape,
    accumulate: bool,
) {
    let (cg, hw) = ((s.channels / s.groups) as usize, s.pixels as usize);
    let n = cg * hw;
    let mut dg = vec![T::zero(); s.channels as usize];
    let mut db = vec![T::zero(); s.channels as usize];
    for bg in 0..(s.batch * s.groups) as usize {
        let c0 = (bg % s.groups as usize) * cg;
        let (m, r) = (mean[bg], rstd[bg]);
        let (mut m1, mut m2) = (T::zero(), T::zero());
        for i in 0..n {
            let c = c0 + i / hw;
            let xhat = (x[bg * n + i] - m) * r;
            let g = dy[bg * n + i] * gamma[c];
            m1 += g;
            m2 += g * xhat;
            dg[c] += dy[bg * n + i] * xhat;
            db[c] += dy[bg * n + i];
        }
        let (m1, m2) = (m1 / T::of(n as f64), m2 / T::of(n as f64));
        for i in 0..n {
            let c = c0 + i / hw;
            let xhat = (x[bg * n + i] - m) * r;
            let v = r * (dy[bg * n + i] * gamma[c] - m1 - xhat * m2);
            put(&mut dx[bg * n + i], v, accumulate);
        }
    }
    for c in 0..s.channels as usize {
        put(&mut dgamma[c], dg[c], accumulate);
        put(&mut dbeta[c], db[c], accumulate);
    }
}
