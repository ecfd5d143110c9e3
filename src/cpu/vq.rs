//! CPU twin of `ops::vq`.

use super::Real;

pub fn l2norm_forward<T: Real>(y: &mut [T], norm: &mut [T], x: &[T], rows: usize, dim: usize) {
    let eps = T::of(crate::ops::vq::NORM_EPS as f64);
    for r in 0..rows {
        let mut s = T::zero();
        for j in 0..dim {
            s += x[r * dim + j] * x[r * dim + j];
        }
        let mut n = s.sqrt();
        if n < eps {
            n = eps;
        }
        for j in 0..dim {
            y[r * dim + j] = x[r * dim + j] / n;
        }
        norm[r] = n;
    }
}

pub fn l2norm_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    y: &[T],
    norm: &[T],
    rows: usize,
    dim: usize,
) {
    for r in 0..rows {
        let mut dot = T::zero();
        for j in 0..dim {
            dot += y[r * dim + j] * dy[r * dim + j];
        }
        for j in 0..dim {
            dx[r * dim + j] = (dy[r * dim + j] - y[r * dim + j] * dot) / norm[r];
        }
    }
}

pub fn argmax_rows<T: Real>(
    idx: &mut [u32],
    best: &mut [T],
    scores: &[T],
    rows: usize,
    codes: usize,
) {
    for r in 0..rows {
        let row = &scores[r * codes..(r + 1) * codes];
        let mut k = 0;
        for j in 1..codes {
            if row[j] > row[k] {
                k = j;
            }
        }
        idx[r] = k as u32;
        best[r] = row[k];
    }
}

pub fn one_hot<T: Real>(out: &mut [T], idx: &[u32], rows: usize, codes: usize) {
    for r in 0..rows {
        for k in 0..codes {
            out[r * codes + k] = if idx[r] as usize == k {
                T::one()
            } else {
                T::zero()
            };
        }
    }
}

/// Candidate `c` (of 16) for the restart of code `k`, as the shader hashes it.
pub fn restart_candidate(k: u32, salt: u32, c: u32, rows: u32) -> u32 {
    let mut h = k.wrapping_mul(2_654_435_761)
        ^ salt.wrapping_mul(2_246_822_519)
        ^ c.wrapping_mul(3_266_489_917);
    h ^= h >> 15;
    h = h.wrapping_mul(2_246_822_519);
    h ^= h >> 13;
    h % rows
}

/// The row a dead code restarts at: the candidate with the lowest best similarity.
pub fn restart_row(k: u32, salt: u32, rows: u32, score: &[f32]) -> u32 {
    let mut r = restart_candidate(k, salt, 0, rows);
    for c in 1..16 {
        let rc = restart_candidate(k, salt, c, rows);
        if score[rc as usize] < score[r as usize] {
            r = rc;
        }
    }
    r
}

/// EMA update with dead-code restart, as `ops::vq::ema_update`.
#[allow(clippy::too_many_arguments)]
pub fn ema_update(
    codebook: &mut [f32],
    ema_sum: &mut [f32],
    ema_count: &mut [f32],
    counts: &[f32],
    sums: &[f32],
    z: &[f32],
    score: &[f32],
    rows: usize,
    dim: usize,
    codes: usize,
    decay: f32,
    threshold: f32,
    salt: u32,
) {
    for k in 0..codes {
        let count = decay * ema_count[k] + (1.0 - decay) * counts[k];
        if count < threshold && rows > 0 {
            let r = restart_row(k as u32, salt, rows as u32, score) as usize;
            ema_sum[k * dim..(k + 1) * dim].copy_from_slice(&z[r * dim..(r + 1) * dim]);
            ema_count[k] = 2.0 * threshold;
        } else {
            for j in 0..dim {
                ema_sum[k * dim + j] =
                    decay * ema_sum[k * dim + j] + (1.0 - decay) * sums[k * dim + j];
            }
            ema_count[k] = count;
        }
        let s: f32 = ema_sum[k * dim..(k + 1) * dim].iter().map(|v| v * v).sum();
        let n = s.sqrt().max(crate::ops::vq::NORM_EPS);
        for j in 0..dim {
            codebook[k * dim + j] = ema_sum[k * dim + j] / n;
        }
    }
}

/// `out[r] = src[positions[r]]`.
pub fn gather_u32(out: &mut [u32], src: &[u32], positions: &[u32], rows: usize) {
    for r in 0..rows {
        out[r] = src[positions[r] as usize];
    }
}
