//! CPU twin of `ops::crossentropy`: cross-entropy over selected rows with label smoothing.

use super::Real;

/// Per selected row i: `loss[i] = lse − (1 − ε)·z_y − ε/V·Σ z`, `correct[i] = argmax == y`, `lse[i]`.
/// Returns `(mean loss, accuracy)`.
#[allow(clippy::too_many_arguments)]
pub fn ce_forward<T: Real>(
    loss: &mut [T],
    correct: &mut [T],
    lse: &mut [T],
    logits: &[T],
    rows: &[u32],
    labels: &[u32],
    m: usize,
    vocab: usize,
    smoothing: f32,
) -> (f64, f64) {
    let eps = T::of(smoothing as f64);
    for i in 0..m {
        let z = &logits[rows[i] as usize * vocab..][..vocab];
        let mut arg = 0;
        for v in 1..vocab {
            if z[v] > z[arg] {
                arg = v;
            }
        }
        let mut se = T::zero();
        let mut sz = T::zero();
        for &zv in z {
            se += (zv - z[arg]).exp();
            sz += zv;
        }
        let l = z[arg] + se.ln();
        let y = labels[i] as usize;
        loss[i] = l - (T::one() - eps) * z[y] - eps / T::of(vocab as f64) * sz;
        correct[i] = if arg == y { T::one() } else { T::zero() };
        lse[i] = l;
    }
    let n = m.max(1) as f64;
    (
        loss[..m].iter().map(|v| v.f64()).sum::<f64>() / n,
        correct[..m].iter().map(|v| v.f64()).sum::<f64>() / n,
    )
}

/// `dlogits[rows[i]] = (softmax − q) · scale`; other rows untouched.
#[allow(clippy::too_many_arguments)]
pub fn ce_backward<T: Real>(
    dlogits: &mut [T],
    logits: &[T],
    lse: &[T],
    rows: &[u32],
    labels: &[u32],
    m: usize,
    vocab: usize,
    smoothing: f32,
    scale: f32,
) {
    let eps = T::of(smoothing as f64);
    for i in 0..m {
        let base = rows[i] as usize * vocab;
        for v in 0..vocab {
            let mut q = eps / T::of(vocab as f64);
            if v == labels[i] as usize {
                q += T::one() - eps;
            }
            dlogits[base + v] = ((logits[base + v] - lse[i]).exp() - q) * T::of(scale as f64);
        }
    }
}

/// `loss[i] = Σ_j (pred − target)²` for i < m.
pub fn mse_forward<T: Real>(loss: &mut [T], pred: &[T], target: &[T], m: usize, width: usize) {
    for i in 0..m {
        let mut s = T::zero();
        for j in 0..width {
            let d = pred[i * width + j] - target[i * width + j];
            s += d * d;
        }
        loss[i] = s;
    }
}

/// `dpred = 2·scale·(pred − target)` for the first m rows.
pub fn mse_backward<T: Real>(
    dpred: &mut [T],
    pred: &[T],
    target: &[T],
    m: usize,
    width: usize,
    scale: f32,
) {
    for e in 0..m * width {
        dpred[e] = T::of(2.0 * scale as f64) * (pred[e] - target[e]);
    }
}
