//! CPU twin of `ops::elementwise`.

use super::{put, Real};

pub fn fill<T: Real>(out: &mut [T], n: usize, value: f32) {
    out[..n].iter_mut().for_each(|v| *v = T::of(value as f64));
}

pub fn copy<T: Real>(out: &mut [T], a: &[T], n: usize, accumulate: bool) {
    for i in 0..n {
        put(&mut out[i], a[i], accumulate);
    }
}

pub fn add<T: Real>(out: &mut [T], a: &[T], b: &[T], n: usize, accumulate: bool) {
    for i in 0..n {
        put(&mut out[i], a[i] + b[i], accumulate);
    }
}

/// `out (=|+=) alpha · a + beta · b`.
#[allow(clippy::too_many_arguments)]
pub fn axpby<T: Real>(
    out: &mut [T],
    alpha: f32,
    a: &[T],
    beta: f32,
    b: &[T],
    n: usize,
    accumulate: bool,
) {
    for i in 0..n {
        put(
            &mut out[i],
            T::of(alpha as f64) * a[i] + T::of(beta as f64) * b[i],
            accumulate,
        );
    }
}

/// `out (R, C) (=|+=) x · γ (C)`.
pub fn scale_cols<T: Real>(
    out: &mut [T],
    x: &[T],
    gamma: &[T],
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    for i in 0..rows * cols {
        put(&mut out[i], x[i] * gamma[i % cols], accumulate);
    }
}

/// `dγ (C) += Σ_r dy · x`.
pub fn scale_cols_grad<T: Real>(dgamma: &mut [T], dy: &[T], x: &[T], rows: usize, cols: usize) {
    for r in 0..rows {
        for c in 0..cols {
            dgamma[c] += dy[r * cols + c] * x[r * cols + c];
        }
    }
}
