//! CPU twin of `ops::tokens`: token assembly and its backward, row gather / scatter.

use super::{put, Real};
use crate::ops::tokens::TokenShape;

/// `x (B, T, C) = [cls; mask ? mask_token : emb] (+ pos)`.
pub fn assemble<T: Real>(
    x: &mut [T],
    emb: &[T],
    mask: Option<(&[u32], &[T])>,
    cls: &[T],
    pos: Option<&[T]>,
    s: TokenShape,
) {
    let (b_, n_, c_) = (s.batch as usize, s.patches as usize, s.dim as usize);
    let t_ = n_ + 1;
    for b in 0..b_ {
        for t in 0..t_ {
            for d in 0..c_ {
                let mut v = if t == 0 {
                    cls[d]
                } else {
                    match mask {
                        Some((m, mt)) if m[b * n_ + t - 1] != 0 => mt[d],
                        _ => emb[(b * n_ + t - 1) * c_ + d],
                    }
                };
                if let Some(p) = pos {
                    v += p[t * c_ + d];
                }
                x[(b * t_ + t) * c_ + d] = v;
            }
        }
    }
}

/// Gradients of [`assemble`] from `dx (B, T, C)`.
#[allow(clippy::too_many_arguments)]
pub fn assemble_backward<T: Real>(
    demb: Option<&mut [T]>,
    dmask_token: Option<&mut [T]>,
    dcls: Option<&mut [T]>,
    dpos: Option<&mut [T]>,
    dx: &[T],
    mask: Option<&[u32]>,
    s: TokenShape,
    accumulate_demb: bool,
) {
    let (b_, n_, c_) = (s.batch as usize, s.patches as usize, s.dim as usize);
    let t_ = n_ + 1;
    let masked = |b: usize, n: usize| mask.is_some_and(|m| m[b * n_ + n] != 0);
    if let Some(demb) = demb {
        for b in 0..b_ {
            for n in 0..n_ {
                for d in 0..c_ {
                    let v = if masked(b, n) {
                        T::zero()
                    } else {
                        dx[(b * t_ + 1 + n) * c_ + d]
                    };
                    put(&mut demb[(b * n_ + n) * c_ + d], v, accumulate_demb);
                }
            }
        }
    }
    if let Some(dm) = dmask_token {
        for b in 0..b_ {
            for n in 0..n_ {
                if masked(b, n) {
                    for d in 0..c_ {
                        dm[d] += dx[(b * t_ + 1 + n) * c_ + d];
                    }
                }
            }
        }
    }
    if let Some(dc) = dcls {
        for b in 0..b_ {
            for d in 0..c_ {
                dc[d] += dx[b * t_ * c_ + d];
            }
        }
    }
    if let Some(dp) = dpos {
        for b in 0..b_ {
            for e in 0..t_ * c_ {
                dp[e] += dx[b * t_ * c_ + e];
            }
        }
    }
}

pub fn gather_rows<T: Real>(
    out: &mut [T],
    src: &[T],
    idx: &[u32],
    rows: usize,
    dim: usize,
    accumulate: bool,
) {
    for i in 0..rows {
        for d in 0..dim {
            put(
                &mut out[i * dim + d],
                src[idx[i] as usize * dim + d],
                accumulate,
            );
        }
    }
}

pub fn scatter_rows<T: Real>(
    out: &mut [T],
    src: &[T],
    idx: &[u32],
    rows: usize,
    dim: usize,
    accumulate: bool,
) {
    for i in 0..rows {
        for d in 0..dim {
            put(
                &mut out[idx[i] as usize * dim + d],
                src[i * dim + d],
                accumulate,
            );
        }
    }
}

/// `out (B, C) = mean over patch tokens of x (B, T, C)`.
pub fn mean_patches<T: Real>(out: &mut [T], x: &[T], s: TokenShape) {
    let (b_, n_, c_) = (s.batch as usize, s.patches as usize, s.dim as usize);
    for b in 0..b_ {
        for d in 0..c_ {
            let mut acc = T::zero();
            for n in 0..n_ {
                acc += x[(b * (n_ + 1) + 1 + n) * c_ + d];
            }
            out[b * c_ + d] = acc / T::of(n_ as f64);
        }
    }
}

/// `dx (B, T, C) (=|+=) dout / N` on patch rows, 0 on CLS rows.
pub fn mean_patches_backward<T: Real>(dx: &mut [T], dout: &[T], s: TokenShape, accumulate: bool) {
    let (b_, n_, c_) = (s.batch as usize, s.patches as usize, s.dim as usize);
    for b in 0..b_ {
        for t in 0..=n_ {
            for d in 0..c_ {
                let v = if t == 0 {
                    T::zero()
                } else {
                    dout[b * c_ + d] / T::of(n_ as f64)
                };
                put(&mut dx[(b * (n_ + 1) + t) * c_ + d], v, accumulate);
            }
        }
    }
}

/// `out (B, C, N) = x (B, T, C)` patch rows transposed.
pub fn patch_map<T: Real>(out: &mut [T], x: &[T], s: TokenShape) {
    let (b_, n_, c_) = (s.batch as usize, s.patches as usize, s.dim as usize);
    for b in 0..b_ {
        for d in 0..c_ {
            for n in 0..n_ {
                out[(b * c_ + d) * n_ + n] = x[(b * (n_ + 1) + 1 + n) * c_ + d];
            }
        }
    }
}

/// `dx (B, T, C) (=|+=) dmap (B, C, N)` transposed back, 0 on CLS rows.
pub fn patch_map_backward<T: Real>(dx: &mut [T], dmap: &[T], s: TokenShape, accumulate: bool) {
    let (b_, n_, c_) = (s.batch as usize, s.patches as usize, s.dim as usize);
    for b in 0..b_ {
        for t in 0..=n_ {
            for d in 0..c_ {
                let v = if t == 0 {
                    T::zero()
                } else {
                    dmap[(b * c_ + d) * n_ + t - 1]
                };
                put(&mut dx[(b * (n_ + 1) + t) * c_ + d], v, accumulate);
            }
        }
    }
}
