//! CPU twin of `ops::conv`: stride-1 2D convolution with zero padding (optional ReLU on the input, scale,
//! accumulate) and the 1x1 convolution of a one-hot token image. Shapes as the launchers'.

use super::Real;
use crate::ops::conv::{ConvEpilogue, ConvShape};

/// `out (=|+=) scale · (conv(act(x), w) + bias)`.
pub fn conv2d<T: Real>(
    out: &mut [T],
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    s: ConvShape,
    e: ConvEpilogue,
) {
    let (oh, ow) = s.out_size();
    let (h, wd, k) = (s.height as usize, s.width as usize, s.kernel as usize);
    let (ci_n, co_n) = (s.in_channels as usize, s.out_channels as usize);
    let (oh, ow, pad) = (oh as usize, ow as usize, s.pad as i64);
    let act = |v: T| {
        if e.relu_input && v < T::zero() {
            T::zero()
        } else {
            v
        }
    };
    for b in 0..s.batch as usize {
        for co in 0..co_n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = T::zero();
                    for ci in 0..ci_n {
                        for ky in 0..k {
                            let iy = (oy + ky) as i64 - pad;
                            if iy < 0 || iy >= h as i64 {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = (ox + kx) as i64 - pad;
                                if ix < 0 || ix >= wd as i64 {
                                    continue;
                                }
                                let xv = x[((b * ci_n + ci) * h + iy as usize) * wd + ix as usize];
                                acc += w[((co * ci_n + ci) * k + ky) * k + kx] * act(xv);
                            }
                        }
                    }
                    if let Some(bias) = bias {
                        acc += bias[co];
                    }
                    let v = T::of(e.scale as f64) * acc;
                    let o = &mut out[((b * co_n + co) * oh + oy) * ow + ox];
                    *o = if e.accumulate { *o + v } else { v };
                }
            }
        }
    }
}

/// `out (B, Co, H, W) = w[:, tokens] + bias`, w (Co, vocab); tokens past the vocabulary read its last column.
#[allow(clippy::too_many_arguments)]
pub fn token_conv<T: Real>(
    out: &mut [T],
    tokens: &[u32],
    w: &[T],
    bias: Option<&[T]>,
    batch: usize,
    vocab: usize,
    out_channels: usize,
    side: (usize, usize),
) {
    let hw = side.0 * side.1;
    for b in 0..batch {
        for co in 0..out_channels {
            for q in 0..hw {
                let t = (tokens[b * hw + q] as usize).min(vocab - 1);
                let mut v = w[co * vocab + t];
                if let Some(bias) = bias {
                    v += bias[co];
                }
                out[(b * out_channels + co) * hw + q] = v;
            }
        }
    }
}
