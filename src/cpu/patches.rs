//! CPU twin of `ops::patches`: image (B, C, H, W) <-> patches (B, N, C·p·p) in Conv2d weight order.

use super::Real;
use crate::ops::patches::PatchShape;

/// The image index of element `e` of the patches tensor.
fn image_index(s: &PatchShape, e: usize) -> usize {
    let (c_, h, w, p) = (
        s.channels as usize,
        s.height as usize,
        s.width as usize,
        s.patch as usize,
    );
    let cpp = c_ * p * p;
    let gw = w / p;
    let n_per = (h / p) * gw;
    let b = e / (n_per * cpp);
    let n = (e % (n_per * cpp)) / cpp;
    let k = e % cpp;
    let (c, ky, kx) = (k / (p * p), (k % (p * p)) / p, k % p);
    let (y, x) = ((n / gw) * p + ky, (n % gw) * p + kx);
    ((b * c_ + c) * h + y) * w + x
}

pub fn patchify<T: Real>(patches: &mut [T], img: &[T], s: PatchShape) {
    for e in 0..s.elements() as usize {
        patches[e] = img[image_index(&s, e)];
    }
}

pub fn unpatchify<T: Real>(img: &mut [T], patches: &[T], s: PatchShape) {
    for e in 0..s.elements() as usize {
        img[image_index(&s, e)] = patches[e];
    }
}

/// `out (B·N, 5·P)`: each patch, then its neighbours above, below, left, right (zeros past the border).
pub fn patch_context<T: Real>(out: &mut [T], patches: &[T], s: PatchShape) {
    let pp = (s.channels * s.patch * s.patch) as usize;
    let (gh, gw) = ((s.height / s.patch) as i64, (s.width / s.patch) as i64);
    let n_per = (gh * gw) as usize;
    for b in 0..s.batch as usize {
        for n in 0..n_per {
            let (y, x) = ((n as i64) / gw, (n as i64) % gw);
            for (slot, (dy, dx)) in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]
                .iter()
                .enumerate()
            {
                let (ny, nx) = (y + dy, x + dx);
                for k in 0..pp {
                    let v = if ny >= 0 && nx >= 0 && ny < gh && nx < gw {
                        patches[(b * n_per + (ny * gw + nx) as usize) * pp + k]
                    } else {
                        T::zero()
                    };
                    out[(b * n_per + n) * 5 * pp + slot * pp + k] = v;
                }
            }
        }
    }
}
