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
