//! CPU twin of `ops::attention`, and BEiT's relative position index with its inverse (used on the GPU to
//! scatter the bias gradient into the table without atomics).

use super::Real;
use crate::ops::attention::{AttentionShape, HeadView};

/// BEiT's relative position index for a `grid_h x grid_w` patch grid, shape `(T, T)` flattened, `T = N + 1`.
/// Patch i at (r1, c1), patch j at (r2, c2): `(r1 − r2 + gh − 1)·(2gw − 1) + (c1 − c2 + gw − 1)`;
/// CLS→patch `n − 3`, patch→CLS `n − 2`, CLS→CLS `n − 1`, with `n = (2gh − 1)(2gw − 1) + 3` table rows.
pub fn relative_position_index(grid_h: usize, grid_w: usize) -> (Vec<u32>, usize) {
    let n_rel = (2 * grid_h - 1) * (2 * grid_w - 1);
    let rows = n_rel + 3;
    let t = grid_h * grid_w + 1;
    let mut idx = vec![0u32; t * t];
    for i in 0..grid_h * grid_w {
        for j in 0..grid_h * grid_w {
            let (r1, c1) = (i / grid_w, i % grid_w);
            let (r2, c2) = (j / grid_w, j % grid_w);
            let dr = r1 + grid_h - 1 - r2;
            let dc = c1 + grid_w - 1 - c2;
            idx[(i + 1) * t + (j + 1)] = (dr * (2 * grid_w - 1) + dc) as u32;
        }
    }
    for k in 1..t {
        idx[k] = (rows - 3) as u32; // CLS -> patch (row 0)
        idx[k * t] = (rows - 2) as u32; // patch -> CLS (column 0)
    }
    idx[0] = (rows - 1) as u32;
    (idx, rows)
}

/// The inverse of an index: for each table row, the positions that read it (CSR: offsets, items).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelposInverse {
    pub offsets: Vec<u32>,
    pub items: Vec<u32>,
    pub table_rows: u32,
    pub tt: u32,
}

impl RelposInverse {
    pub fn new(index: &[u32], table_rows: usize) -> Self {
        let mut counts = vec![0u32; table_rows + 1];
        for &r in index {
            counts[r as usize + 1] += 1;
        }
        for i in 0..table_rows {
            counts[i + 1] += counts[i];
        }
        let mut fill = counts.clone();
        let mut items = vec![0u32; index.len()];
        for (pos, &r) in index.iter().enumerate() {
            items[fill[r as usize] as usize] = pos as u32;
            fill[r as usize] += 1;
        }
        Self {
            offsets: counts,
            items,
            table_rows: table_rows as u32,
            tt: index.len() as u32,
        }
    }
}

/// `p = softmax(s + bias[row % bias_rows])` row-wise.
pub fn softmax_forward<T: Real>(
    p: &mut [T],
    s: &[T],
    bias: Option<(&[T], usize)>,
    rows: usize,
    cols: usize,
) {
    for r in 0..rows {
        let score =
            |j: usize| s[r * cols + j] + bias.map_or(T::zero(), |(b, br)| b[(r % br) * cols + j]);
        let mut m = score(0);
        for j in 1..cols {
            if score(j) > m {
                m = score(j);
            }
        }
        let mut sum = T::zero();
        for j in 0..cols {
            sum += (score(j) - m).exp();
        }
        for j in 0..cols {
            p[r * cols + j] = (score(j) - m).exp() / sum;
        }
    }
}

/// `ds = p · (dp − Σ_j dp·p)` row-wise.
pub fn softmax_backward<T: Real>(ds: &mut [T], p: &[T], dp: &[T], rows: usize, cols: usize) {
    for r in 0..rows {
        let mut dot = T::zero();
        for j in 0..cols {
            dot += p[r * cols + j] * dp[r * cols + j];
        }
        for j in 0..cols {
            ds[r * cols + j] = p[r * cols + j] * (dp[r * cols + j] - dot);
        }
    }
}

/// `bias[h, ij] = table[index[ij], h]`.
pub fn relpos_gather<T: Real>(bias: &mut [T], table: &[T], index: &[u32], heads: usize, tt: usize) {
    for h in 0..heads {
        for ij in 0..tt {
            bias[h * tt + ij] = table[index[ij] as usize * heads + h];
        }
    }
}

/// `dtable[index[ij], h] (+)= dbias[h, ij]` (the adjoint of [`relpos_gather`]).
pub fn relpos_scatter<T: Real>(
    dtable: &mut [T],
    dbias: &[T],
    index: &[u32],
    heads: usize,
    tt: usize,
    accumulate: bool,
) {
    if !accumulate {
        dtable.iter_mut().for_each(|v| *v = T::zero());
    }
    for h in 0..heads {
        for ij in 0..tt {
            dtable[index[ij] as usize * heads + h] += dbias[h * tt + ij];
        }
    }
}

/// [`relpos_scatter`] of `Σ_b dscores[b]`, `dscores (B, H, T·T)`.
pub fn relpos_scatter_batched<T: Real>(
    dtable: &mut [T],
    dscores: &[T],
    index: &[u32],
    heads: usize,
    tt: usize,
    batch: usize,
    accumulate: bool,
) {
    let mut dbias = vec![T::zero(); heads * tt];
    for b in 0..batch {
        for (d, s) in dbias
            .iter_mut()
            .zip(&dscores[b * heads * tt..(b + 1) * heads * tt])
        {
            *d += *s;
        }
    }
    relpos_scatter(dtable, &dbias, index, heads, tt, accumulate);
}

fn at(v: &HeadView, b: u32, h: u32, t: u32, d: u32) -> usize {
    (v.off + b * v.batch_stride + h * v.head_stride + t * v.row_stride + d) as usize
}

/// Attention forward; `p (B, H, T, T)` saved, `bias (H, T, T)` optional, O written through its view.
#[allow(clippy::too_many_arguments)]
pub fn attention_forward<T: Real>(
    o: (&mut [T], HeadView),
    p: &mut [T],
    q: (&[T], HeadView),
    k: (&[T], HeadView),
    v: (&[T], HeadView),
    bias: Option<&[T]>,
    s: AttentionShape,
) {
    let (t, dh) = (s.tokens, s.head_dim);
    let tt = (t * t) as usize;
    let mut scores = vec![T::zero(); t as usize];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..t {
                for j in 0..t {
                    let mut acc = T::zero();
                    for d in 0..dh {
                        acc += q.0[at(&q.1, b, h, i, d)] * k.0[at(&k.1, b, h, j, d)];
                    }
                    scores[j as usize] = T::of(s.scale as f64) * acc;
                }
                let row = ((b * s.heads + h) * t + i) as usize;
                let brow: Option<(&[T], usize)> = bias.map(|bb| {
                    (
                        &bb[h as usize * tt + i as usize * t as usize..][..t as usize],
                        1,
                    )
                });
                softmax_forward(
                    &mut p[row * t as usize..(row + 1) * t as usize],
                    &scores,
                    brow,
                    1,
                    t as usize,
                );
                for d in 0..dh {
                    let mut acc = T::zero();
                    for j in 0..t {
                        acc += p[row * t as usize + j as usize] * v.0[at(&v.1, b, h, j, d)];
                    }
                    o.0[at(&o.1, b, h, i, d)] = acc;
                }
            }
        }
    }
}

/// Each row's log-sum-exp of the attention scores, `lse (B, H, T) = log Σ_j exp(scale · q_i·k_j + bias_ij)`
/// (what the fused kernels keep instead of P; `P_ij = exp(S_ij − lse_i)`).
pub fn attention_lse<T: Real>(
    lse: &mut [T],
    q: (&[T], HeadView),
    k: (&[T], HeadView),
    bias: Option<&[T]>,
    s: AttentionShape,
) {
    let (t, dh) = (s.tokens as usize, s.head_dim);
    let mut scores = vec![T::zero(); t];
    for b in 0..s.batch {
        for h in 0..s.heads {
            for i in 0..t {
                for (j, score) in scores.iter_mut().enumerate() {
                    let mut acc = T::zero();
                    for d in 0..dh {
                        acc += q.0[at(&q.1, b, h, i as u32, d)] * k.0[at(&k.1, b, h, j as u32, d)];
                    }
                    *score = T::of(s.scale as f64) * acc
                        + bias.map_or(T::zero(), |bb| bb[(h as usize * t + i) * t + j]);
                }
                let max = scores.iter().fold(f64::NEG_INFINITY, |m, x| m.max(x.f64()));
                let mut sum = T::zero();
                for &x in &scores {
                    sum += (x - T::of(max)).exp();
                }
                lse[(b * s.heads + h) as usize * t + i] = T::of(max) + sum.ln();
            }
        }
    }
}

/// Attention backward: writes dQ, dK, dV through their views; `dbias (H, T, T) += Σ_b dS` when given.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward<T: Real>(
    dq: (&mut [T], HeadView),
    dk: (&mut [T], HeadView),
    dv: (&mut [T], HeadView),
    mut dbias: Option<&mut [T]>,
    dout: (&[T], HeadView),
    p: &[T],
    q: (&[T], HeadView),
    k: (&[T], HeadView),
    v: (&[T], HeadView),
    s: AttentionShape,
) {
    let (t, dh) = (s.tokens as usize, s.head_dim);
    let scale = T::of(s.scale as f64);
    for b in 0..s.batch {
        for h in 0..s.heads {
            let base = ((b * s.heads + h) as usize) * t * t;
            let pm = &p[base..base + t * t];
            let mut dp = vec![T::zero(); t * t];
            for i in 0..t {
                for j in 0..t {
                    let mut acc = T::zero();
                    for d in 0..dh {
                        acc += dout.0[at(&dout.1, b, h, i as u32, d)]
                            * v.0[at(&v.1, b, h, j as u32, d)];
                    }
                    dp[i * t + j] = acc;
                }
            }
            for j in 0..t {
                for d in 0..dh {
                    let mut acc = T::zero();
                    for i in 0..t {
                        acc += pm[i * t + j] * dout.0[at(&dout.1, b, h, i as u32, d)];
                    }
                    dv.0[at(&dv.1, b, h, j as u32, d)] = acc;
                }
            }
            let mut ds = vec![T::zero(); t * t];
            softmax_backward(&mut ds, pm, &dp, t, t);
            if let Some(db) = dbias.as_deref_mut() {
                for ij in 0..t * t {
                    db[h as usize * t * t + ij] += ds[ij];
                }
            }
            for i in 0..t {
                for d in 0..dh {
                    let mut acc = T::zero();
                    for j in 0..t {
                        acc += ds[i * t + j] * k.0[at(&k.1, b, h, j as u32, d)];
                    }
                    dq.0[at(&dq.1, b, h, i as u32, d)] = scale * acc;
                }
            }
            for j in 0..t {
                for d in 0..dh {
                    let mut acc = T::zero();
                    for i in 0..t {
                        acc += ds[i * t + j] * q.0[at(&q.1, b, h, i as u32, d)];
                    }
                    dk.0[at(&dk.1, b, h, j as u32, d)] = scale * acc;
                }
            }
        }
    }
}
