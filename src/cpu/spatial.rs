//! CPU twin of `ops::spatial`: 2x2 max-pooling, 2x nearest upsampling, argmax over channels and the DALL-E
//! decoder's sigmoid-unmap and bilinear resizing, on images (B, C, H, W).

use super::{put, Real};
use crate::ops::spatial::ImageShape;

/// `out (B, C, H/2, W/2)` = max of each 2x2 block.
pub fn max_pool2<T: Real>(out: &mut [T], x: &[T], s: ImageShape) {
    let (h, w) = (s.height as usize, s.width as usize);
    let (oh, ow) = (h / 2, w / 2);
    for plane in 0..(s.batch * s.channels) as usize {
        for oy in 0..oh {
            for ox in 0..ow {
                let at = |dy: usize, dx: usize| x[(plane * h + 2 * oy + dy) * w + 2 * ox + dx];
                let mut m = at(0, 0);
                for v in [at(0, 1), at(1, 0), at(1, 1)] {
                    if v > m {
                        m = v;
                    }
                }
                out[(plane * oh + oy) * ow + ox] = m;
            }
        }
    }
}

/// `out (B, C, 2H, 2W)` = each pixel repeated 2x2.
pub fn upsample_nearest2<T: Real>(out: &mut [T], x: &[T], s: ImageShape) {
    let (h, w) = (s.height as usize, s.width as usize);
    for plane in 0..(s.batch * s.channels) as usize {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                out[(plane * 2 * h + oy) * 2 * w + ox] = x[(plane * h + oy / 2) * w + ox / 2];
            }
        }
    }
}

/// `tokens (B, H, W)` = argmax over channels (lowest channel on ties).
pub fn argmax_channels<T: Real>(tokens: &mut [u32], x: &[T], s: ImageShape) {
    let hw = (s.height * s.width) as usize;
    let c = s.channels as usize;
    for b in 0..s.batch as usize {
        for q in 0..hw {
            let at = |ch: usize| x[(b * c + ch) * hw + q];
            let mut arg = 0;
            for ch in 1..c {
                if at(ch) > at(arg) {
                    arg = ch;
                }
            }
            tokens[b * hw + q] = arg as u32;
        }
    }
}

/// `out = scale · clamp((sigmoid(x) − eps) / (1 − 2·eps), 0, 1) + shift` on the first C of `in_channels`.
pub fn sigmoid_unmap<T: Real>(
    out: &mut [T],
    x: &[T],
    s: ImageShape,
    in_channels: usize,
    eps: f64,
    scale: f64,
    shift: f64,
) {
    let hw = (s.height * s.width) as usize;
    let c = s.channels as usize;
    for b in 0..s.batch as usize {
        for ch in 0..c {
            for q in 0..hw {
                let v = x[(b * in_channels + ch) * hw + q];
                let sig = T::one() / (T::one() + (-v).exp());
                let u = ((sig - T::of(eps)) / T::of(1.0 - 2.0 * eps))
                    .f64()
                    .clamp(0.0, 1.0);
                out[(b * c + ch) * hw + q] = T::of(scale * u + shift);
            }
        }
    }
}

/// (lower index, upper index, weight of the upper) of destination `i` along an axis of `n_in` -> `n_out`
/// samples, align_corners = False.
fn source_index(i: usize, n_in: usize, n_out: usize) -> (usize, usize, f64) {
    let s = ((i as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
    let lo = (s.floor() as usize).min(n_in - 1);
    (lo, (lo + 1).min(n_in - 1), s - lo as f64)
}

/// `out (B, C, out_h, out_w)` = bilinear resize of every plane (PyTorch's interpolate, align_corners = False).
pub fn resize_bilinear<T: Real>(out: &mut [T], x: &[T], s: ImageShape, out_side: (usize, usize)) {
    let (h, w) = (s.height as usize, s.width as usize);
    let (oh, ow) = out_side;
    for plane in 0..(s.batch * s.channels) as usize {
        for oy in 0..oh {
            let (y0, y1, ly) = source_index(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1, lx) = source_index(ox, w, ow);
                let at = |yy: usize, xx: usize| x[(plane * h + yy) * w + xx];
                let (lx, ly) = (T::of(lx), T::of(ly));
                let top = at(y0, x0) + lx * (at(y0, x1) - at(y0, x0));
                let bottom = at(y1, x0) + lx * (at(y1, x1) - at(y1, x0));
                out[(plane * oh + oy) * ow + ox] = top + ly * (bottom - top);
            }
        }
    }
}

/// `dx (=|+=)` the adjoint of [`resize_bilinear`]: each output pixel's gradient added to the four input pixels it
/// read, with their weights.
pub fn resize_bilinear_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    s: ImageShape,
    out_side: (usize, usize),
    accumulate: bool,
) {
    let (h, w) = (s.height as usize, s.width as usize);
    let (oh, ow) = out_side;
    if !accumulate {
        dx.iter_mut()
            .take(s.len() as usize)
            .for_each(|v| *v = T::zero());
    }
    for plane in 0..(s.batch * s.channels) as usize {
        for oy in 0..oh {
            let (y0, y1, ly) = source_index(oy, h, oh);
            for ox in 0..ow {
                let (x0, x1, lx) = source_index(ox, w, ow);
                let g = dy[(plane * oh + oy) * ow + ox];
                let (lx, ly) = (T::of(lx), T::of(ly));
                let one = T::one();
                for (yy, wy) in [(y0, one - ly), (y1, ly)] {
                    for (xx, wx) in [(x0, one - lx), (x1, lx)] {
                        dx[(plane * h + yy) * w + xx] += wy * wx * g;
                    }
                }
            }
        }
    }
}

/// `dx (=|+=)` the gradient of [`max_pool2`]: each block's `dy` to its first maximum (row-major order).
pub fn max_pool2_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    x: &[T],
    s: ImageShape,
    accumulate: bool,
) {
    let (h, w) = (s.height as usize, s.width as usize);
    let (oh, ow) = (h / 2, w / 2);
    if !accumulate {
        dx.iter_mut()
            .take(s.len() as usize)
            .for_each(|v| *v = T::zero());
    }
    for plane in 0..(s.batch * s.channels) as usize {
        for oy in 0..oh {
            for ox in 0..ow {
                let at = |dy_: usize, dx_: usize| (plane * h + 2 * oy + dy_) * w + 2 * ox + dx_;
                let mut best = at(0, 0);
                for i in [at(0, 1), at(1, 0), at(1, 1)] {
                    if x[i] > x[best] {
                        best = i;
                    }
                }
                dx[best] += dy[(plane * oh + oy) * ow + ox];
            }
        }
    }
}

/// `dx (=|+=)` the gradient of [`upsample_nearest2`]: sums of 2x2 blocks of `dy`.
pub fn upsample_nearest2_backward<T: Real>(
    dx: &mut [T],
    dy: &[T],
    s: ImageShape,
    accumulate: bool,
) {
    let (h, w) = (s.height as usize, s.width as usize);
    for plane in 0..(s.batch * s.channels) as usize {
        for y in 0..h {
            for x in 0..w {
                let at = |dy_: usize, dx_: usize| {
                    dy[(plane * 2 * h + 2 * y + dy_) * 2 * w + 2 * x + dx_]
                };
                let g = at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1);
                put(&mut dx[(plane * h + y) * w + x], g, accumulate);
            }
        }
    }
}
