//! CPU twin of `ops::reduce`.

use super::{put, Real};

pub fn col_sum<T: Real>(out: &mut [T], x: &[T], rows: usize, cols: usize, accumulate: bool) {
    for c in 0..cols {
        let mut s = T::zero();
        for r in 0..rows {
            s += x[r * cols + c];
        }
        put(&mut out[c], s, accumulate);
    }
}

pub fn row_sum<T: Real>(
    out: &mut [T],
    x: &[T],
    rows: usize,
    cols: usize,
    scale: f32,
    accumulate: bool,
) {
    for r in 0..rows {
        let mut s = T::zero();
        for c in 0..cols {
            s += x[r * cols + c];
        }
        put(&mut out[r], s * T::of(scale as f64), accumulate);
    }
}

/// `out[out_index] = finish(scale · Σ f(x))`, f = square when `square`, finish = sqrt when `sqrt`.
#[allow(clippy::too_many_arguments)]
pub fn sum<T: Real>(
    out: &mut [T],
    out_index: usize,
    x: &[T],
    n: usize,
    scale: f32,
    square: bool,
    sqrt: bool,
) {
    let mut s = T::zero();
    for &v in &x[..n] {
        s += if square { v * v } else { v };
    }
    let r = s * T::of(scale as f64);
    out[out_index] = if sqrt { r.sqrt() } else { r };
}

pub fn l2_norm<T: Real>(out: &mut [T], out_index: usize, x: &[T], n: usize) {
    sum(out, out_index, x, n, 1.0, true, true)
}

pub fn sum_squares<T: Real>(out: &mut [T], out_index: usize, x: &[T], n: usize) {
    sum(out, out_index, x, n, 1.0, true, false)
}

pub fn mean<T: Real>(out: &mut [T], out_index: usize, x: &[T], n: usize) {
    sum(out, out_index, x, n, 1.0 / n.max(1) as f32, false, false)
}
