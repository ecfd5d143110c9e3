//! "Save view as PNG": the app asks the window for a screenshot of its next frame, crops it to the view's panel
//! and writes it as a PNG (natively `beitlab-VIEW.png` in the working folder, numbered when taken; in the browser,
//! a download).

use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

use egui::{ColorImage, Rect};

use super::{BeitApp, View};

/// A screenshot asked for and not yet arrived: what it shows and where the view's panel was.
pub struct PendingSnapshot {
    rx: Receiver<Arc<ColorImage>>,
    view: View,
    /// The view's panel in physical pixels.
    crop: Rect,
    asked: super::time::Instant,
}

/// How long a screenshot may take before the app says the window cannot take one.
const PATIENCE: super::time::Duration = super::time::Duration::from_secs(5);

/// `image` cut to `rect` (physical pixels, clamped to the image).
pub fn crop(image: &ColorImage, rect: Rect) -> ColorImage {
    let [w, h] = image.size;
    let x0 = (rect.min.x.max(0.0) as usize).min(w);
    let y0 = (rect.min.y.max(0.0) as usize).min(h);
    let x1 = (rect.max.x.ceil().max(0.0) as usize).clamp(x0, w);
    let y1 = (rect.max.y.ceil().max(0.0) as usize).clamp(y0, h);
    let mut pixels = Vec::with_capacity((x1 - x0) * (y1 - y0));
    for y in y0..y1 {
        pixels.extend_from_slice(&image.pixels[y * w + x0..y * w + x1]);
    }
    ColorImage::new([x1 - x0, y1 - y0], pixels)
}

/// PNG bytes of an image (RGBA).
pub fn png_bytes(image: &ColorImage) -> Result<Vec<u8>, String> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let img = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| "the screenshot has no pixels".to_string())?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| format!("the screenshot could not be encoded as PNG: {e}"))?;
    Ok(out.into_inner())
}

impl BeitApp {
    /// Ask for a screenshot of the next frame; it is cropped to `panel` (points) and saved when it arrives.
    pub fn save_view_png(&mut self, ctx: &egui::Context, panel: Rect) {
        let (tx, rx) = channel();
        ctx.request_screenshot(move |image| {
            let _ = tx.send(image);
        });
        let ppp = ctx.pixels_per_point();
        self.snapshot = Some(PendingSnapshot {
            rx,
            view: self.view,
            crop: Rect::from_min_max(
                (panel.min.to_vec2() * ppp).to_pos2(),
                (panel.max.to_vec2() * ppp).to_pos2(),
            ),
            asked: super::time::Instant::now(),
        });
        ctx.request_repaint();
    }

    /// Save a screenshot that has arrived.
    pub(super) fn poll_snapshot(&mut self, ctx: &egui::Context) {
        let Some(pending) = self.snapshot.as_ref() else {
            return;
        };
        let Ok(image) = pending.rx.try_recv() else {
            if pending.asked.elapsed() > PATIENCE {
                self.snapshot = None;
                self.notice = Some(
                    "this window did not deliver a screenshot, so the view was not saved".into(),
                );
            } else {
                ctx.request_repaint();
            }
            return;
        };
        let (view, rect) = (pending.view, pending.crop);
        self.snapshot = None;
        let name = format!("beitlab-{}", view.short_name());
        let saved =
            png_bytes(&crop(&image, rect)).and_then(|bytes| self.save_output(&name, "png", &bytes));
        match saved {
            Ok(name) => self.notice = Some(format!("saved the {} view as {name}", view.title())),
            Err(e) => self.notice = Some(e),
        }
    }

    /// Write a file the app made (a PNG of a view, a GIF): natively `BASE.EXT` in the working folder, numbered
    /// when one exists; in the browser a download. Returns the name.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn save_output(
        &mut self,
        base: &str,
        ext: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        let name = (1..)
            .map(|i| {
                if i == 1 {
                    format!("{base}.{ext}")
                } else {
                    format!("{base}-{i}.{ext}")
                }
            })
            .find(|n| !std::path::Path::new(n).exists())
            .unwrap_or_else(|| format!("{base}.{ext}"));
        std::fs::write(&name, bytes).map_err(|e| format!("{name}: {e}"))?;
        Ok(name)
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn save_output(
        &mut self,
        base: &str,
        ext: &str,
        bytes: &[u8],
    ) -> Result<String, String> {
        let name = format!("{base}.{ext}");
        self.dropped.download(&name, bytes)?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use egui::{Color32, ColorImage, Rect};

    #[test]
    fn a_view_is_cut_out_and_encoded_as_png() {
        // 4 x 3, each pixel's red channel its index.
        let pixels = (0..12).map(|i| Color32::from_rgb(i, 0, 0)).collect();
        let image = ColorImage::new([4, 3], pixels);
        let cut = super::crop(
            &image,
            Rect::from_min_max((1.0, 1.0).into(), (3.0, 9.0).into()),
        );
        assert_eq!(cut.size, [2, 2]);
        assert_eq!(
            cut.pixels.iter().map(|c| c.r()).collect::<Vec<_>>(),
            vec![5, 6, 9, 10]
        );
        let png = super::png_bytes(&cut).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (2, 2));
        assert_eq!(back.get_pixel(1, 1).0, [10, 0, 0, 255]);
    }
}
