//! CPU twin of `ops::conv`: stride-1 2D convolution with zero padding (optional ReLU on the input, scale,
//! accumulate), its input, weight and bias gradients, and the 1x1 convolution of a one-hot token image. Shapes
//! as the launchers'.

use super::{put, Real};
use crate::ops::conv::{ConvEpilogue, ConvShape, TransposeShape};

/// `out (=|+=) scale · (conv(act(x), w) + bias)`.
pub fn conv2d<T: Real>(
    out: &mut [T],
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    s: ConvShape,
    e: ConvEpilogue,
) {
    let act = |v: T| {
        if e.relu_input && v < T::zero() {
            T::zero()
        } else {
            v
        }
    };
    let mut acc = vec![T::zero(); s.output_len() as usize];
    for_each_tap(s, |o, wi, i| acc[o] += w[wi] * act(x[i]));
    let (oh, ow) = s.out_size();
    let per = (oh * ow) as usize;
    for (o, a) in acc.into_iter().enumerate() {
        let a = match bias {
            Some(b) => a + b[(o / per) % s.out_channels as usize],
            None => a,
        };
        let v = T::of(e.scale as f64) * a;
        put(&mut out[o], v, e.accumulate);
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

/// Visit every (output index, weight index, input index) triple of a convolution: `f(o, w, i)`.
fn for_each_tap(s: ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let (oh, ow) = s.out_size();
    let (h, wd, k) = (s.height as usize, s.width as usize, s.kernel as usize);
    let (ci_n, co_n) = (s.in_channels as usize, s.out_channels as usize);
    let (oh, ow, pad) = (oh as usize, ow as usize, s.pad as i64);
    for b in 0..s.batch as usize {
        for co in 0..co_n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let o = ((b * co_n + co) * oh + oy) * ow + ox;
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
                                let i = ((b * ci_n + ci) * h + iy as usize) * wd + ix as usize;
                                f(o, ((co * ci_n + ci) * k + ky) * k + kx, i);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dx (=|+=) dL/dx` of [`conv2d`] (scale 1); with `relu_of`, zero where the forward's input was not positive.
pub fn conv2d_input_grad<T: Real>(
    dx: &mut [T],
    dy: &[T],
    w: &[T],
    relu_of: Option<&[T]>,
    s: ConvShape,
    accumulate: bool,
) {
    let mut g = vec![T::zero(); s.input_len() as usize];
    for_each_tap(s, |o, wi, i| g[i] += w[wi] * dy[o]);
    for (i, v) in g.into_iter().enumerate() {
        let v = match relu_of {
            Some(x) if x[i] <= T::zero() => T::zero(),
            _ => v,
        };
        put(&mut dx[i], v, accumulate);
    }
}

/// `dw (=|+=) dL/dw` of [`conv2d`] (scale 1), the input read as the forward read it.
pub fn conv2d_weight_grad<T: Real>(
    dw: &mut [T],
    x: &[T],
    dy: &[T],
    s: ConvShape,
    relu_input: bool,
    accumulate: bool,
) {
    let mut g = vec![T::zero(); s.weight_len() as usize];
    let act = |v: T| {
        if relu_input && v < T::zero() {
            T::zero()
        } else {
            v
        }
    };
    for_each_tap(s, |o, wi, i| g[wi] += dy[o] * act(x[i]));
    for (i, v) in g.into_iter().enumerate() {
        put(&mut dw[i], v, accumulate);
    }
}

/// `dbias (=|+=) Σ dy` over images and pixels.
pub fn conv2d_bias_grad<T: Real>(dbias: &mut [T], dy: &[T], s: ConvShape, accumulate: bool) {
    let (oh, ow) = s.out_size();
    let per = (oh * ow) as usize;
    let co_n = s.out_channels as usize;
    for co in 0..co_n {
        let mut sum = T::zero();
        for b in 0..s.batch as usize {
            for q in 0..per {
                sum += dy[(b * co_n + co) * per + q];
            }
        }
        put(&mut dbias[co], sum, accumulate);
    }
}

/// Visit every (output index, weight index, input index) of a 2x2 stride-2 transposed convolution.
fn for_each_transpose_tap(s: TransposeShape, mut f: impl FnMut(usize, usize, usize)) {
    let (h, w) = (s.height as usize, s.width as usize);
    let (ci_n, co_n) = (s.in_channels as usize, s.out_channels as usize);
    for b in 0..s.batch as usize {
        for ci in 0..ci_n {
            for y in 0..h {
                for x in 0..w {
                    let i = ((b * ci_n + ci) * h + y) * w + x;
                    for co in 0..co_n {
                        for a in 0..2 {
                            for c in 0..2 {
                                let o = ((b * co_n + co) * 2 * h + 2 * y + a) * 2 * w + 2 * x + c;
                                f(o, ((ci * co_n + co) * 2 + a) * 2 + c, i);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `out (=|+=) scale · (conv_transpose_2x2_stride2(x, w) + bias)`.
pub fn conv_transpose2<T: Real>(
    out: &mut [T],
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    s: TransposeShape,
    e: ConvEpilogue,
) {
    let mut acc = vec![T::zero(); s.output_len() as usize];
    for_each_transpose_tap(s, |o, wi, i| acc[o] += w[wi] * x[i]);
    let per = 4 * (s.height * s.width) as usize;
    for (o, a) in acc.into_iter().enumerate() {
        let a = match bias {
            Some(b) => a + b[(o / per) % s.out_channels as usize],
            None => a,
        };
        let v = T::of(e.scale as f64) * a;
        put(&mut out[o], v, e.accumulate);
    }
}

/// `dx (=|+=)` the input gradient of [`conv_transpose2`].
pub fn conv_transpose2_input_grad<T: Real>(
    dx: &mut [T],
    dy: &[T],
    w: &[T],
    s: TransposeShape,
    accumulate: bool,
) {
    let mut g = vec![T::zero(); s.input_len() as usize];
    for_each_transpose_tap(s, |o, wi, i| g[i] += w[wi] * dy[o]);
    for (i, v) in g.into_iter().enumerate() {
        put(&mut dx[i], v, accumulate);
    }
}

/// `dw (=|+=)` the weight gradient of [`conv_transpose2`].
pub fn conv_transpose2_weight_grad<T: Real>(
    dw: &mut [T],
    x: &[T],
    dy: &[T],
    s: TransposeShape,
    accumulate: bool,
) {
    let mut g = vec![T::zero(); s.weight_len() as usize];
    for_each_transpose_tap(s, |o, wi, i| g[wi] += x[i] * dy[o]);
    for (i, v) in g.into_iter().enumerate() {
        put(&mut dw[i], v, accumulate);
    }
}
