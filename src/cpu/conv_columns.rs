//! CPU twin of `ops::conv_columns`' kernels: the columns of an image under a convolution's taps, the weights
//! packed as a product's left operand, and the ReLU mask of an input gradient. Shapes as the launchers'.

use super::{put, Real};
use crate::ops::conv::ConvShape;
use crate::ops::conv_columns::Chunk;

/// `cols (images, rows, pixels)` of `chunk`: row (ci, ky, kx) at output pixel q holds act(x[b, ci, oy + ky −
/// pad, ox + kx − pad]) or 0 outside the image; with `ones` a last row of ones.
pub fn image_to_columns<T: Real>(
    cols: &mut [T],
    x: &[T],
    s: ConvShape,
    relu: bool,
    ones: bool,
    chunk: Chunk,
) {
    let (_, ow) = s.out_size();
    let (ci_n, k, h, w) = (
        s.in_channels as usize,
        s.kernel as usize,
        s.height as i64,
        s.width as i64,
    );
    let taps = ci_n * k * k;
    let rows = taps + ones as usize;
    let pixels = chunk.pixels as usize;
    for bl in 0..chunk.images as usize {
        let b = chunk.b0 as usize + bl;
        for r in 0..rows {
            for j in 0..pixels {
                let q = chunk.p0 as usize + j;
                let v = if r == taps {
                    T::one()
                } else {
                    let (ci, ky, kx) = (r / (k * k), (r / k) % k, r % k);
                    let iy = (q / ow as usize + ky) as i64 - s.pad as i64;
                    let ix = (q % ow as usize + kx) as i64 - s.pad as i64;
                    if iy < 0 || ix < 0 || iy >= h || ix >= w {
                        T::zero()
                    } else {
                        let v = x[((b * ci_n + ci) * h as usize + iy as usize) * w as usize
                            + ix as usize];
                        if relu && v < T::zero() {
                            T::zero()
                        } else {
                            v
                        }
                    }
                };
                cols[(bl * rows + r) * pixels + j] = v;
            }
        }
    }
}

/// `wp (Co, Ci·k·k (+1))` = w with `bias` as the last column, or with `transposed` `wp (Ci, Co·k·k)` with
/// wp[ci, (co, ky, kx)] = w[co, ci, k − 1 − ky, k − 1 − kx].
pub fn pack_weights<T: Real>(
    wp: &mut [T],
    w: &[T],
    bias: Option<&[T]>,
    out_channels: usize,
    in_channels: usize,
    kernel: usize,
    transposed: bool,
) {
    let kk = kernel * kernel;
    if transposed {
        for ci in 0..in_channels {
            for co in 0..out_channels {
                for t in 0..kk {
                    wp[(ci * out_channels + co) * kk + t] =
                        w[(co * in_channels + ci) * kk + kk - 1 - t];
                }
            }
        }
        return;
    }
    let taps = in_channels * kk;
    let width = taps + bias.is_some() as usize;
    for co in 0..out_channels {
        wp[co * width..co * width + taps].copy_from_slice(&w[co * taps..(co + 1) * taps]);
        if let Some(b) = bias {
            wp[co * width + taps] = b[co];
        }
    }
}

/// `dx[i] (=|+=) g[i]` where `saved[i] > 0`, else (+) 0.
pub fn relu_mask<T: Real>(dx: &mut [T], g: &[T], saved: &[T], accumulate: bool) {
    for ((d, &gv), &sv) in dx.iter_mut().zip(g).zip(saved) {
        put(d, if sv > T::zero() { gv } else { T::zero() }, accumulate);
    }
}
