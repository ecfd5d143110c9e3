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

/// The scale drop path gives sample `b`'s branch: 1 / keep or 0 as [`keeps`] draws, 1 without drop path.
fn branch_scale<T: Real>(keep: Option<f32>, seed: u64, stream: u32, b: usize) -> T {
    match keep {
        Some(kp) if keeps(seed, stream, b as u32, kp) => T::one() / T::of(kp as f64),
        Some(_) => T::zero(),
        None => T::one(),
    }
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
        let scale = branch_scale::<T>(Some(keep_prob), seed, stream, b);
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
        let scale = branch_scale::<T>(keep, seed, stream, b);
        for i in 0..per_sample {
            let e = b * per_sample + i;
            let lam = lambda.map_or(T::one(), |l| l[e % cols]);
            out[e] = x_in[e] + branch[e] * lam * scale;
        }
    }
}

/// Twin of `ops::droppath::residual_branch_backward_with`, the backward of [`residual_branch`] with a layer scale:
/// `d_branch = s_b · λ ⊙ dy` and `dλ += Σ_rows s_b · dy ⊙ branch`, for `dy, branch (B, S)` in rows of `cols`
/// values and `s_b` the drop-path scale of sample b when `keep` is given.
#[allow(clippy::too_many_arguments)]
pub fn residual_branch_backward<T: Real>(
    d_branch: &mut [T],
    dlambda: &mut [T],
    dy: &[T],
    branch: &[T],
    lambda: &[T],
    (batch, per_sample, cols): (usize, usize, usize),
    keep: Option<f32>,
    seed: u64,
    stream: u32,
) {
    for b in 0..batch {
        let scale = branch_scale::<T>(keep, seed, stream, b);
        for i in 0..per_sample {
            let e = b * per_sample + i;
            let g = dy[e] * scale;
            d_branch[e] = g * lambda[e % cols];
            dlambda[e % cols] += g * branch[e];
        }
    }
}
