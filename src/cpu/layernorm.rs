//! CPU twin of `ops::layernorm`. Shapes: `x, y, dx, dy (R, C)`, `mean, rstd (R)`, `gamma, beta (C)`.

use super::{put, Real};

/// `y = (x − mean) · rstd · γ + β`, biased variance as PyTorch; saves mean and rstd.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_forward<T: Real>(
    y: &mut [T],
    mean: &mut [T],
    rstd: &mut [T],
    x: &[T],
    gamma: &[T],
    beta: &[T],
    rows: usize,
    cols: usize,
    eps: f32,
) {
    let c = T::of(cols as f64);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mut s = T::zero();
        for &v in row {
            s += v;
        }
        let mu = s / c;
        let mut var = T::zero();
        for &v in row {
            var += (v - mu) * (v - mu);
        }
        let rs = T::one() / (var / c + T::of(eps as f64)).sqrt();
        for j in 0..cols {
            y[r * cols + j] = (row[j] - mu) * rs * gamma[j] + beta[j];
        }
        mean[r] = mu;
        rstd[r] = rs;
    }
}

/// `dx (=|+=) rstd · (g − mean(g) − x̂·mean(g·x̂))` with `g = dy·γ`; `dγ += Σ dy·x̂`; `dβ += Σ dy`.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<T: Real>(
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
    dy: &[T],
    x: &[T],
    mean: &[T],
    rstd: &[T],
    gamma: &[T],
    rows: usize,
    cols: usize,
    accumulate_dx: bool,
) {
    let c = T::of(cols as f64);
    for r in 0..rows {
        let (mu, rs) = (mean[r], rstd[r]);
        let mut sg = T::zero();
        let mut sgx = T::zero();
        for j in 0..cols {
            let g = dy[r * cols + j] * gamma[j];
            let xhat = (x[r * cols + j] - mu) * rs;
            sg += g;
            sgx += g * xhat;
            dgamma[j] += dy[r * cols + j] * xhat;
            dbeta[j] += dy[r * cols + j];
        }
        for j in 0..cols {
            let xhat = (x[r * cols + j] - mu) * rs;
            let d = rs * (dy[r * cols + j] * gamma[j] - sg / c - xhat * (sgx / c));
            put(&mut dx[r * cols + j], d, accumulate_dx);
        }
    }
}
