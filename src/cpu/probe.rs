//! CPU twin of `ops::probe`: the sums the adapter probes of `shaders/probe.wgsl` compute, in the same order.
//!
//! Shapes: src (n) with n a power of two of at least 32; out (invocations).

use super::Real;

/// The multiply-add chains' factor (`CHAIN_FACTOR` in probe.wgsl).
pub const CHAIN_FACTOR: f64 = 0.999;

/// probe_multiply_add: per invocation i, x = src[i..i+4] (wrapped at n), six vec4 chains a_j = x + j stepped
/// 8 · `iters` times by a ← a·c + x, then the sum of their 24 components.
pub fn multiply_add<T: Real>(out: &mut [T], src: &[T], n: usize, invocations: usize, iters: u32) {
    let c = T::of(CHAIN_FACTOR);
    for (i, o) in out.iter_mut().enumerate().take(invocations) {
        let x: [T; 4] = std::array::from_fn(|q| src[(i + q) & (n - 1)]);
        let mut chains: [[T; 4]; 6] = std::array::from_fn(|j| x.map(|v| v + T::of(j as f64)));
        for _ in 0..8 * iters as usize {
            for chain in chains.iter_mut() {
                for (a, xq) in chain.iter_mut().zip(x) {
                    *a = *a * c + xq;
                }
            }
        }
        let mut t = chains[0];
        for chain in &chains[1..] {
            for (tq, a) in t.iter_mut().zip(chain) {
                *tq += *a;
            }
        }
        *o = t[0] + t[1] + t[2] + t[3];
    }
}

/// probe_read (`width` 1) and probe_read4 (`width` 4): per invocation i, step s reads the 8 items (scalars or
/// vec4s) from item 8(i + s) wrapped at n / width, adding the first 4 into `lo` and the last 4 into `hi`; the
/// result is lo + hi (summed over components for vec4s).
pub fn read<T: Real>(
    out: &mut [T],
    src: &[T],
    n: usize,
    invocations: usize,
    iters: u32,
    width: usize,
) {
    let items = n / width;
    let item = |k: usize, q: usize| src[k * width + q];
    for (i, o) in out.iter_mut().enumerate().take(invocations) {
        let mut lo = vec![T::zero(); width];
        let mut hi = vec![T::zero(); width];
        for s in 0..iters as usize {
            let start = (8 * (i + s)) & (items - 1);
            for q in 0..width {
                lo[q] +=
                    item(start, q) + item(start + 1, q) + item(start + 2, q) + item(start + 3, q);
                hi[q] += item(start + 4, q)
                    + item(start + 5, q)
                    + item(start + 6, q)
                    + item(start + 7, q);
            }
        }
        let t: Vec<T> = lo.iter().zip(&hi).map(|(l, h)| *l + *h).collect();
        *o = t.iter().skip(1).fold(t[0], |acc, v| acc + *v);
    }
}
