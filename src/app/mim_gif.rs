//! The masked image modeling view as animation frames and an animated GIF, shared by `beitlab pretrain
//! --record` and the app's "Record GIF": per sample, the image, the masked input, the tokenizer's reconstruction
//! from the true tokens and the reconstruction with BEiT's predicted tokens under the mask, right patches
//! outlined green and wrong ones red, with the step and the masked-token accuracy written above.

use image::{Rgba, RgbaImage};

use super::inspect::{Results, Sample};
use crate::model::BeitConfig;

/// Screen pixels per image pixel in a frame.
const ZOOM: u32 = 3;
/// Space between pictures and above the rows (the caption).
const GAP: u32 = 4;
const CAPTION: u32 = 16;

/// A normalised value (mean 0.5, std 0.5) as a byte.
fn byte(v: f32) -> u8 {
    ((v * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// One frame of the MIM view for `samples` and their `r`esults after training step `step`.
pub fn frame(
    cfg: &BeitConfig,
    samples: &[Sample],
    r: &Results,
    step: u32,
    accuracy: f32,
) -> RgbaImage {
    let (s, c, grid, n) = (
        cfg.image_size,
        cfg.num_channels as usize,
        cfg.grid(),
        cfg.patches() as usize,
    );
    let side = s * ZOOM;
    let k = samples.len() as u32;
    let (w, h) = (4 * (side + GAP) + GAP, CAPTION + k * (side + GAP) + GAP);
    let mut img = RgbaImage::from_pixel(w, h, Rgba([250, 250, 250, 255]));
    let (mut rgb, mut caption) = (image::RgbImage::new(w, CAPTION), String::new());
    for p in rgb.pixels_mut() {
        *p = image::Rgb([250, 250, 250]);
    }
    let (right, masked) = (0..k as usize)
        .map(|i| r.correct(i, n))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    caption.push_str(&format!(
        "STEP {step}  MIM ACC {:.1}%  {right}/{masked} RIGHT",
        100.0 * accuracy
    ));
    crate::train::plot::text(&mut rgb, GAP as i64, 4, &caption, 2, [20, 20, 20]);
    for (x, y, p) in rgb.enumerate_pixels() {
        img.put_pixel(x, y, Rgba([p[0], p[1], p[2], 255]));
    }
    let per = c * (s * s) as usize;
    for (ki, sample) in samples.iter().enumerate() {
        let y0 = CAPTION + ki as u32 * (side + GAP) + GAP;
        let views: [&[f32]; 3] = [
            &sample.pixels,
            r.recon_true.get(ki * per..(ki + 1) * per).unwrap_or(&[]),
            r.recon_pred.get(ki * per..(ki + 1) * per).unwrap_or(&[]),
        ];
        for (col, pixels) in [0usize, 0, 1, 2].iter().map(|&v| views[v]).enumerate() {
            let x0 = GAP + col as u32 * (side + GAP);
            for y in 0..side {
                for x in 0..side {
                    let (py, px) = ((y / ZOOM) as usize, (x / ZOOM) as usize);
                    let at = |ch: usize| pixels.get(ch * (s * s) as usize + py * s as usize + px);
                    let (r0, g0, b0) = if c == 3 {
                        (at(0), at(1), at(2))
                    } else {
                        (at(0), at(0), at(0))
                    };
                    let mut px_rgb = [
                        byte(*r0.unwrap_or(&-1.0)),
                        byte(*g0.unwrap_or(&-1.0)),
                        byte(*b0.unwrap_or(&-1.0)),
                    ];
                    let patch = (py / cfg.patch_size as usize) * grid as usize
                        + px / cfg.patch_size as usize;
                    if col == 1 && r.is_masked(ki, patch) {
                        px_rgb = [128, 128, 128];
                    }
                    img.put_pixel(x0 + x, y0 + y, Rgba([px_rgb[0], px_rgb[1], px_rgb[2], 255]));
                }
            }
            if col == 3 {
                // Outline each masked patch: green when BEiT's token is right, red when wrong.
                let ps = cfg.patch_size * ZOOM;
                for i in 0..n {
                    let Some(ok) = r.prediction_right(ki, i, n) else {
                        continue;
                    };
                    let color = if ok {
                        Rgba([40, 190, 60, 255])
                    } else {
                        Rgba([220, 40, 40, 255])
                    };
                    let (gx, gy) = ((i as u32 % grid) * ps, (i as u32 / grid) * ps);
                    for t in 0..ps {
                        for (x, y) in [(t, 0), (t, ps - 1), (0, t), (ps - 1, t)] {
                            img.put_pixel(x0 + gx + x, y0 + gy + y, color);
                        }
                    }
                }
            }
        }
    }
    img
}

/// An animated GIF of `frames` (0.4 s each, the last held 2 s, looping).
pub fn encode_gif(frames: Vec<RgbaImage>) -> Result<Vec<u8>, String> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| e.to_string())?;
        let last = frames.len().saturating_sub(1);
        for (i, f) in frames.into_iter().enumerate() {
            let delay = if i == last { 2000 } else { 400 };
            enc.encode_frame(image::Frame::from_parts(
                f,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay, 1),
            ))
            .map_err(|e| format!("the GIF could not be encoded: {e}"))?;
        }
    }
    Ok(bytes)
}
