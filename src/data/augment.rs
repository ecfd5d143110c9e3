//! Preprocessing as BEiT does it, seeded: random resized crop (scale and ratio ranges as torchvision's),
//! horizontal flip, resize (bilinear) and per-channel normalisation; for evaluation, resize the shorter side and
//! take the centre crop. Output: f32 (C, S, S), normalised.

use super::dataset::Image;
use crate::rng::Rng;

/// Training-time augmentation settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Augment {
    pub size: u32,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub flip: bool,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Augment {
    /// BEiT's settings at `size`: scale (0.08, 1), ratio (3/4, 4/3), flip on, mean = std = 0.5.
    pub fn beit(size: u32, channels: u32) -> Self {
        Self {
            size,
            scale: (0.08, 1.0),
            ratio: (0.75, 4.0 / 3.0),
            flip: true,
            mean: vec![0.5; channels as usize],
            std: vec![0.5; channels as usize],
        }
    }

    /// A random crop (x, y, w, h) of an image, as torchvision's RandomResizedCrop.get_params.
    pub fn crop_box(&self, w: u32, h: u32, rng: &mut Rng) -> (f64, f64, f64, f64) {
        let area = (w * h) as f64;
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.range(self.scale.0, self.scale.1);
            let aspect = rng.range(lr0, lr1).exp();
            let cw = (target * aspect).sqrt().round();
            let ch = (target / aspect).sqrt().round();
            if cw > 0.0 && ch > 0.0 && cw <= w as f64 && ch <= h as f64 {
                let y = (rng.uniform() * (h as f64 - ch + 1.0)).floor();
                let x = (rng.uniform() * (w as f64 - cw + 1.0)).floor();
                return (x, y, cw, ch);
            }
        }
        // Fallback: the largest centred crop within the ratio range.
        let in_ratio = w as f64 / h as f64;
        let (cw, ch) = if in_ratio < self.ratio.0 {
            (w as f64, (w as f64 / self.ratio.0).round())
        } else if in_ratio > self.ratio.1 {
            ((h as f64 * self.ratio.1).round(), h as f64)
        } else {
            (w as f64, h as f64)
        };
        (
            ((w as f64 - cw) / 2.0).floor(),
            ((h as f64 - ch) / 2.0).floor(),
            cw,
            ch,
        )
    }

    /// One augmented view, appended to `out` as (C, S, S).
    pub fn apply(&self, img: &Image, rng: &mut Rng, out: &mut Vec<f32>) {
        let (x, y, w, h) = self.crop_box(img.width, img.height, rng);
        let flip = self.flip && rng.uniform() < 0.5;
        resample(
            img,
            (x, y, w, h),
            self.size,
            flip,
            &self.mean,
            &self.std,
            out,
        );
    }

    /// One augmented view for this augmentation and the same crop and flip resampled for `second` (another size
    /// or normalisation: the tokenizer's view in BEiT's two-view pretraining), appended to `out` and `out2`.
    /// Draws the same random numbers as [`Augment::apply`].
    pub fn apply_pair(
        &self,
        img: &Image,
        rng: &mut Rng,
        out: &mut Vec<f32>,
        second: &Augment,
        out2: &mut Vec<f32>,
    ) {
        let crop = self.crop_box(img.width, img.height, rng);
        let flip = self.flip && rng.uniform() < 0.5;
        resample(img, crop, self.size, flip, &self.mean, &self.std, out);
        resample(
            img,
            crop,
            second.size,
            flip,
            &second.mean,
            &second.std,
            out2,
        );
    }

    /// Evaluation views of `images` as one batch of `batch` images (C, S, S) each, zero-padded past the last image
    /// (the final batch of a dataset is usually short).
    pub fn eval_batch(&self, images: &[Image], batch: usize) -> Vec<f32> {
        let per = self.mean.len() * (self.size * self.size) as usize;
        let mut px = Vec::with_capacity(batch * per);
        for img in images {
            self.eval(img, &mut px);
        }
        px.resize(batch * per, 0.0);
        px
    }

    /// The evaluation view: shorter side resized to `size`, centre crop, no randomness.
    pub fn eval(&self, img: &Image, out: &mut Vec<f32>) {
        let s = img.width.min(img.height) as f64;
        let crop = (
            (img.width as f64 - s) / 2.0,
            (img.height as f64 - s) / 2.0,
            s,
            s,
        );
        resample(img, crop, self.size, false, &self.mean, &self.std, out);
    }
}

/// Bilinear resampling of the crop (x, y, w, h) to size x size (half-pixel centres, edges clamped), optional
/// horizontal flip, then (v / 255 − mean) / std per channel, written channel-major.
pub fn resample(
    img: &Image,
    crop: (f64, f64, f64, f64),
    size: u32,
    flip: bool,
    mean: &[f32],
    std: &[f32],
    out: &mut Vec<f32>,
) {
    let (cx, cy, cw, ch) = crop;
    let c = img.channels as usize;
    let (iw, ih) = (img.width as i64, img.height as i64);
    let px = |xx: i64, yy: i64, k: usize| {
        img.data[((yy.clamp(0, ih - 1) * iw + xx.clamp(0, iw - 1)) as usize) * c + k] as f64
    };
    let base = out.len();
    out.resize(base + c * (size * size) as usize, 0.0);
    for oy in 0..size {
        let sy = cy + (oy as f64 + 0.5) * ch / size as f64 - 0.5;
        let y0 = sy.floor();
        let fy = sy - y0;
        for ox in 0..size {
            let dst_x = if flip { size - 1 - ox } else { ox };
            let sx = cx + (ox as f64 + 0.5) * cw / size as f64 - 0.5;
            let x0 = sx.floor();
            let fx = sx - x0;
            for k in 0..c {
                let (x0i, y0i) = (x0 as i64, y0 as i64);
                let v = (1.0 - fy) * ((1.0 - fx) * px(x0i, y0i, k) + fx * px(x0i + 1, y0i, k))
                    + fy * ((1.0 - fx) * px(x0i, y0i + 1, k) + fx * px(x0i + 1, y0i + 1, k));
                let norm =
                    ((v / 255.0) as f32 - mean[k.min(mean.len() - 1)]) / std[k.min(std.len() - 1)];
                out[base + (k * size as usize + oy as usize) * size as usize + dst_x as usize] =
                    norm;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28 x 28 grey ramp, different along x and y, so that another crop or a flip changes the pixels.
    fn ramp() -> Image {
        let data = (0..28u32)
            .flat_map(|y| (0..28u32).map(move |x| (4 * x + 3 * y) as u8))
            .collect();
        Image {
            width: 28,
            height: 28,
            channels: 1,
            data,
        }
    }

    #[test]
    fn the_two_views_share_one_crop_and_flip() {
        let img = ramp();
        let model = Augment::beit(28, 1);
        // The tokenizer's view: twice the size, DALL-E's mapping (0.8x + 0.1 as a normalisation).
        let mut tok = Augment::beit(56, 1);
        tok.mean = vec![-0.125];
        tok.std = vec![1.25];
        for seed in 0..20 {
            let (mut a, mut b, mut alone) = (Vec::new(), Vec::new(), Vec::new());
            model.apply_pair(&img, &mut Rng::new(seed), &mut a, &tok, &mut b);
            model.apply(&img, &mut Rng::new(seed), &mut alone);
            assert_eq!(a, alone, "seed {seed}: the first view is apply()'s");
            // Both views sample the same linear ramp: each 2 x 2 block of the second, back in [0, 1], averages to
            // the first's pixel there.
            for y in 0..28 {
                for x in 0..28 {
                    let first = a[y * 28 + x] * 0.5 + 0.5;
                    let block: f32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|(dy, dx)| b[(2 * y + dy) * 56 + 2 * x + dx] * 1.25 - 0.125)
                        .sum::<f32>()
                        / 4.0;
                    assert!(
                        (first - block).abs() < 0.03,
                        "seed {seed} at ({x}, {y}): {first} vs {block}"
                    );
                }
            }
        }
    }
}
