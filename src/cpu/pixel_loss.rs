//! CPU twin of `ops::pixel_loss`: per-pixel softmax cross-entropy with an ignored label.

use super::{put, Real};

/// stats (B·H·W, 3) = (scale · loss, scale · correct, counted) and dlogits (=|+=) scale · (softmax − one-hot),
/// zero at ignored pixels (label `ignore` or not below `classes`).
#[allow(clippy::too_many_arguments)]
pub fn pixel_cross_entropy<T: Real>(
    stats: &mut [T],
    dlogits: Option<&mut [T]>,
    logits: &[T],
    labels: &[u32],
    batch: usize,
    classes: usize,
    pixels: usize,
    ignore: u32,
    scale: f64,
    accumulate: bool,
) {
    let mut grad = vec![T::zero(); batch * classes * pixels];
    for b in 0..batch {
        for q in 0..pixels {
            let i = b * pixels + q;
            let at = |c: usize| logits[(b * classes + c) * pixels + q];
            let label = labels[i];
            if label == ignore || label as usize >= classes {
                stats[3 * i..3 * i + 3]
                    .iter_mut()
                    .for_each(|v| *v = T::zero());
                continue;
            }
            let mut arg = 0;
            for c in 1..classes {
                if at(c) > at(arg) {
                    arg = c;
                }
            }
            let best = at(arg);
            let mut sum = T::zero();
            for c in 0..classes {
                sum += (at(c) - best).exp();
            }
            let lse = best + sum.ln();
            let s = T::of(scale);
            stats[3 * i] = s * (lse - at(label as usize));
            stats[3 * i + 1] = if arg == label as usize { s } else { T::zero() };
            stats[3 * i + 2] = T::one();
            for c in 0..classes {
                let mut g = (at(c) - lse).exp();
                if c == label as usize {
                    g = g - T::one();
                }
                grad[(b * classes + c) * pixels + q] = s * g;
            }
        }
    }
    if let Some(d) = dlogits {
        for (o, g) in d.iter_mut().zip(grad) {
            put(o, g, accumulate);
        }
    }
}
