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
