//! Turning network tensors into pictures for egui: normalised (C, S, S) pixels back to colours, one patch of a
//! batch, and a colour per token id (heat maps are coloured on the GPU by `shaders/paint.wgsl`).

use egui::{Color32, ColorImage};

use crate::model::BeitConfig;

/// Pixels were normalised with mean 0.5 and std 0.5 (the app's models and tokenizers).
fn to_byte(x: f32) -> u8 {
    ((x * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

/// A (C, H, W) normalised image (C = 1 or 3) as an egui image.
pub fn chw_image(chw: &[f32], channels: usize, height: usize, width: usize) -> ColorImage {
    let plane = height * width;
    let pixels = (0..plane)
        .map(|i| {
            let at = |c: usize| {
                to_byte(
                    chw.get(c.min(channels - 1) * plane + i)
                        .copied()
                        .unwrap_or(0.0),
                )
            };
            Color32::from_rgb(at(0), at(1), at(2))
        })
        .collect();
    ColorImage::new([width, height], pixels)
}

/// Image `k` of a (B, C, S, S) batch.
pub fn batch_image(batch: &[f32], cfg: &BeitConfig, k: usize) -> ColorImage {
    let (c, s) = (cfg.num_channels as usize, cfg.image_size as usize);
    let len = c * s * s;
    let part = batch.get(k * len..(k + 1) * len).unwrap_or(&[]);
    chw_image(part, c, s, s)
}

/// Patch `i` (row-major in the patch grid) of image `k` of a (B, C, S, S) batch, as (C, P, P).
pub fn patch_of(batch: &[f32], cfg: &BeitConfig, k: usize, i: usize) -> Vec<f32> {
    let (c, s, p, g) = (
        cfg.num_channels as usize,
        cfg.image_size as usize,
        cfg.patch_size as usize,
        cfg.grid() as usize,
    );
    let (py, px) = (i / g, i % g);
    let mut out = Vec::with_capacity(c * p * p);
    for ch in 0..c {
        for y in 0..p {
            for x in 0..p {
                let at = ((k * c + ch) * s + py * p + y) * s + px * p + x;
                out.push(batch.get(at).copied().unwrap_or(0.0));
            }
        }
    }
    out
}

/// A stable, distinct colour for a token id (golden-angle hues).
pub fn token_color(id: u32) -> Color32 {
    let hue = (id as f32 * 0.618_034).fract();
    let light = 0.45 + 0.2 * ((id / 7) % 2) as f32;
    egui::ecolor::Hsva::new(hue, 0.75, light + 0.3, 1.0).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_come_from_the_right_place() {
        let cfg = BeitConfig::preset("micro").expect("preset");
        // Two 1 x 28 x 28 images whose value encodes (image, y, x).
        let batch: Vec<f32> = (0..2 * 28 * 28).map(|i| i as f32).collect();
        let p = patch_of(&batch, &cfg, 1, 5); // image 1, patch row 1, column 1
        assert_eq!(p.len(), 49);
        assert_eq!(p[0], (784 + 7 * 28 + 7) as f32);
        assert_eq!(p[48], (784 + 13 * 28 + 13) as f32);
        let img = chw_image(&[-1.0, 1.0, 0.0, 0.0], 1, 2, 2);
        assert_eq!(img.pixels[0], Color32::from_rgb(0, 0, 0));
        assert_eq!(img.pixels[1], Color32::from_rgb(255, 255, 255));
    }
}
