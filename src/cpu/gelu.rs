//! CPU twin of `ops::gelu`: exact GELU `x·Φ(x)`, Φ through the same erfc approximation as the shader
//! (fractional error < 1.2e-7, so in f64 it is the true function to ~1e-7 relative).

use super::{put, Real};

/// erfc(v), Chebyshev-fitted (Numerical Recipes' erfcc), fractional error < 1.2e-7.
pub fn erfc_approx<T: Real>(v: T) -> T {
    let z = v.abs();
    let t = T::one() / (T::one() + T::of(0.5) * z);
    let c = |x: f64| T::of(x);
    let poly = -z * z - c(1.26551223)
        + t * (c(1.00002368)
            + t * (c(0.37409196)
                + t * (c(0.09678418)
                    + t * (c(-0.18628806)
                        + t * (c(0.27886807)
                            + t * (c(-1.13520398)
                                + t * (c(1.48851587)
                                    + t * (c(-0.82215223) + t * c(0.17087277)))))))));
    let r = t * poly.exp();
    if v >= T::zero() {
        r
    } else {
        c(2.0) - r
    }
}

/// Φ(v), the standard normal CDF.
pub fn phi_cdf<T: Real>(v: T) -> T {
    T::of(0.5) * erfc_approx(-v * T::of(std::f64::consts::FRAC_1_SQRT_2))
}

/// `x · Φ(x)`.
pub fn gelu<T: Real>(v: T) -> T {
    v * phi_cdf(v)
}

/// GELU's slope `Φ(x) + x·φ(x)`.
pub fn gelu_slope<T: Real>(v: T) -> T {
    let pdf = T::of(0.398_942_280_401_432_7) * (T::of(-0.5) * v * v).exp();
    phi_cdf(v) + v * pdf
}

/// `out = x · Φ(x)`.
pub fn gelu_forward<T: Real>(out: &mut [T], x: &[T], n: usize) {
    for i in 0..n {
        out[i] = gelu(x[i]);
    }
}

/// `dx (=|+=) dy · (Φ(x) + x·φ(x))`.
pub fn gelu_backward<T: Real>(dx: &mut [T], dy: &[T], x: &[T], n: usize, accumulate: bool) {
    for i in 0..n {
        put(&mut dx[i], dy[i] * gelu_slope(x[i]), accumulate);
    }
}
