//! CPU twin of `ops::matmul`: the strided batched product and `nn.Linear` forward / backward.

use super::gelu::{gelu, gelu_slope};
use super::{put, Real};
use crate::ops::matmul::{GemmShape, MatView};

/// `C = alpha · A · B (+ bias) (+ C)` over strided views, as `ops::matmul::gemm`.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Real>(
    c: &mut [T],
    cv: MatView,
    a: &[T],
    av: MatView,
    b: &[T],
    bv: MatView,
    bias: Option<&[T]>,
    s: GemmShape,
) {
    gemm_with_epilogue(c, cv, a, av, b, bv, bias, s, Epilogue::None);
}

/// The epilogue of `ops::matmul::Epilogue` on each element of C, its buffer laid out as C.
pub enum Epilogue<'a, T> {
    None,
    /// `out = gelu(C)` for every element written.
    Gelu(&'a mut [T]),
    /// Each new value times `gelu'(pre)` before it is stored (`ops::matmul` takes it without accumulation).
    GeluGrad(&'a [T]),
}

/// [`gemm`] with an epilogue, as `ops::matmul::gemm_with_epilogue`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with_epilogue<T: Real>(
    c: &mut [T],
    cv: MatView,
    a: &[T],
    av: MatView,
    b: &[T],
    bv: MatView,
    bias: Option<&[T]>,
    s: GemmShape,
    mut epilogue: Epilogue<T>,
) {
    let at = |v: &MatView, z: u32, r: u32, col: u32| -> usize {
        (v.off + (z / s.batch_inner) * v.bo + (z % s.batch_inner) * v.bi + r * v.rs + col * v.cs)
            as usize
    };
    for z in 0..s.batch {
        for i in 0..s.m {
            for j in 0..s.n {
                let mut acc = T::zero();
                for kk in 0..s.k {
                    acc += a[at(&av, z, i, kk)] * b[at(&bv, z, kk, j)];
                }
                let mut v = T::of(s.alpha as f64) * acc;
                if s.bias {
                    if let Some(bias) = bias {
                        v += bias[j as usize];
                    }
                }
                let idx = at(&cv, z, i, j);
                if let Epilogue::GeluGrad(pre) = &epilogue {
                    v = v * gelu_slope(pre[idx]);
                }
                put(&mut c[idx], v, s.accumulate);
                if let Epilogue::Gelu(out) = &mut epilogue {
                    out[idx] = gelu(c[idx]);
                }
            }
        }
    }
}

/// `Y (M, N) = X (M, K) · W (N, K)ᵀ + b`.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward<T: Real>(
    y: &mut [T],
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    m: usize,
    n: usize,
    k: usize,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = T::zero();
            for kk in 0..k {
                acc += x[i * k + kk] * w[j * k + kk];
            }
            y[i * n + j] = acc + b.map_or(T::zero(), |b| b[j]);
        }
    }
}

/// `dX (=|+=) dY · W`, `dW += dYᵀ · X`, `db += Σ dY`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Real>(
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: Option<&mut [T]>,
    dy: &[T],
    x: &[T],
    w: &[T],
    m: usize,
    n: usize,
    k: usize,
    accumulate_dx: bool,
) {
    if let Some(dx) = dx {
        for i in 0..m {
            for kk in 0..k {
                let mut acc = T::zero();
                for j in 0..n {
                    acc += dy[i * n + j] * w[j * k + kk];
                }
                put(&mut dx[i * k + kk], acc, accumulate_dx);
            }
        }
    }
    for j in 0..n {
        for kk in 0..k {
            let mut acc = T::zero();
            for i in 0..m {
                acc += dy[i * n + j] * x[i * k + kk];
            }
            dw[j * k + kk] += acc;
        }
    }
    if let Some(db) = db {
        for j in 0..n {
            let mut acc = T::zero();
            for i in 0..m {
                acc += dy[i * n + j];
            }
            db[j] += acc;
        }
    }
}
