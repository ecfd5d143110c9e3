//! CPU twin of `ops::droppath`: the same counter-based hash, bit for bit, so GPU and CPU agree exactly.

use super::{put, Real};

/// The shader's 32-bit hash.
pub fn mix32(v: u32) -> u32 {
    let mut h = v;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// Whether sample `b` keeps its branch for (seed, stream).
pub fn keeps(seed: u64, stream: u32, b: u32, keep_prob: f32) -> bool {
    let h = mix32((seed as u32) ^ mix32(((seed >> 32) as u32) ^ mix32(stream ^ mix32(b))));
    let u = (h >> 8) as f32 * (1.0 / 16_777_216.0);
    u < keep_prob
}

#[allow(clippy::too_many_arguments)]
pub fn drop_path<T: Real>(
    out: &mut [T],
    x: &[T],
    batch: usize,
    per_sample: usize,
    keep_prob: f32,
    seed: u64,
    stream: u32,
    accumulate: bool,
) {
    for b in 0..batch {
        let scale = if keeps(seed, stream, b as u32, keep_prob) {
            T::one() / T::of(keep_prob as f64)
        } else {
            T::zero()
        };
        for i in 0..per_sample {
            let e = b * per_sample + i;
            put(&mut out[e], x[e] * scale, accumulate);
        }
    }
}

/// Twin of `ops::droppath::residual_branch`: `out = x_in + s_b · λ ⊙ branch` for `x_in, branch (B, S)`, rows of
/// `cols` values (λ per column), `s_b` the drop-path scale of sample b when `keep` is given.
#[allow(clippy::too_many_arguments)]
pub fn residual_branch<T: Real>(
    out: &mut [T],
    x_in: &[T],
    branch: &[T],
    lambda: Option<&[T]>,
    (batch, per_sample, cols): (usize, usize, usize),
    keep: Option<f32>,
    seed: u64,
    stream: u32,
) {
    for b in 0..batch {
        let scale = match keep {
            Some(kp) if keeps(seed, stream, b as u32, kp) => T::one() / T::of(kp as f64),
            Some(_) => T::zero(),
            None => T::one(),
        };
        for i in 0..per_sample {
            let e = b * per_sample + i;
            let lam = lambda.map_or(T::one(), |l| l[e % cols]);
            out[e] = x_in[e] + branch[e] * lam * scale;
        }
    }
}
