//! The segmentation view: a validation canvas (or a dropped image) with its ground truth and the segmentation
//! model's prediction overlaid in class colours, a legend, per-class IoU bars from the latest validation pass, and
//! the class probabilities of the pixel under the pointer.

use egui::{Color32, ColorImage, Sense, Vec2};

use super::{explain, picture};
use crate::app::BeitApp;
use crate::data::augment::Augment;
use crate::data::segmentation::{eval_pair, IGNORE};

/// Colour of class `k`: background dark, then ten well separated colours, then the token palette.
pub fn class_color(k: u32) -> Color32 {
    const PALETTE: [Color32; 10] = [
        Color32::from_rgb(230, 25, 75),
        Color32::from_rgb(60, 180, 75),
        Color32::from_rgb(255, 225, 25),
        Color32::from_rgb(0, 130, 200),
        Color32::from_rgb(245, 130, 48),
        Color32::from_rgb(145, 30, 180),
        Color32::from_rgb(70, 240, 240),
        Color32::from_rgb(240, 50, 230),
        Color32::from_rgb(210, 245, 60),
        Color32::from_rgb(250, 190, 212),
    ];
    match k {
        0 => Color32::from_rgb(40, 40, 40),
        k if (k as usize) <= PALETTE.len() => PALETTE[k as usize - 1],
        k => crate::app::picture::token_color(k),
    }
}

/// The image with each pixel's class colour blended over it (background and ignored pixels left as they are).
fn overlay(base: &ColorImage, classes: &[u32]) -> ColorImage {
    let pixels = base
        .pixels
        .iter()
        .zip(classes)
        .map(|(&p, &k)| {
            if k == 0 || k == IGNORE {
                return p;
            }
            let c = class_color(k);
            let mix = |a: u8, b: u8| ((a as f32) * 0.4 + (b as f32) * 0.6).round() as u8;
            Color32::from_rgb(mix(p.r(), c.r()), mix(p.g(), c.g()), mix(p.b(), c.b()))
        })
        .collect();
    ColorImage::new(base.size, pixels)
}

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "Semantic segmentation, the paper's second downstream task: the pretrained encoder under a linear head \
         (a class per patch, upsampled to every pixel), fine-tuned on canvases of three items each. Left: the \
         image; middle: the true classes; right: the model's. Hover the right picture for a pixel's class \
         probabilities; drop an image on the window to segment it.",
    );
    let ctx = ui.ctx().clone();
    let Some(s) = app.session.as_mut() else {
        return;
    };
    let (Some(preview), Some((_, _, val))) = (s.seg_preview.as_mut(), s.seg_data.as_ref()) else {
        ui.label(
            "No segmentation model yet: press \"Segment\" under \"run alone\" at the top to fine-tune the \
             pretrained encoder on the built-in segmentation canvases.",
        );
        return;
    };
    let Some(model_cfg) = s
        .active
        .as_ref()
        .and_then(|a| match a {
            crate::app::session::Active::Segment(p) => Some(p.model.cfg.clone()),
            _ => None,
        })
        .or_else(|| s.segmenter.as_ref().map(|m| m.cfg.clone()))
    else {
        return;
    };
    let (c, size) = (model_cfg.num_channels, model_cfg.image_size);
    let names = model_cfg.class_names();
    // The image: a validation canvas, or the dropped one (no ground truth).
    ui.horizontal(|ui| {
        ui.label("canvas");
        let last = val.len().saturating_sub(1);
        if ui
            .add(egui::Slider::new(&mut app.views.seg_canvas, 0..=last))
            .changed()
        {
            app.views.seg_custom = None;
        }
        if let Some((name, _)) = &app.views.seg_custom {
            ui.label(format!("showing {name}"));
            if ui.button("Back to the canvases").clicked() {
                app.views.seg_custom = None;
            }
        }
    });
    let aug = Augment::beit(size, c);
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let image_key = match &app.views.seg_custom {
        Some((_, img)) => {
            pixels = aug.eval_batch(std::slice::from_ref(img), 1);
            labels = vec![IGNORE; (size * size) as usize];
            u64::MAX - app.views.seg_custom_generation
        }
        None => {
            let k = app.views.seg_canvas.min(val.len().saturating_sub(1));
            if let (Some(img), Some(mask)) = (val.images.get(k), val.masks.get(k)) {
                eval_pair(&aug, img, mask, &mut pixels, &mut labels);
            }
            k as u64
        }
    };
    if let Err(e) = preview.tick(&s.ctx, &pixels, (image_key, s.seg_version)) {
        s.error = Some(format!("the segmentation view could not be computed: {e}"));
        return;
    }
    let side = size as usize;
    // The pictures are only built when their cached textures are older than the image or the prediction.
    let base = || picture::chw_image(&pixels, c as usize, side, side);
    let shown = (3.0 * side as f32).clamp(96.0, 240.0);
    let textures = &mut app.textures;
    let gen = image_key.wrapping_mul(1_000_003);
    let img_tex = textures.get(&ctx, "segment image", gen, base);
    let truth_tex = textures.get(&ctx, "segment truth", gen, || overlay(&base(), &labels));
    let pred = preview
        .result
        .as_ref()
        .filter(|p| p.key.0 == image_key)
        .cloned();
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label("image");
            super::picture(ui, img_tex, shown, Sense::hover());
        });
        ui.vertical(|ui| {
            ui.label(if app.views.seg_custom.is_some() {
                "true classes (none for a dropped image)"
            } else {
                "true classes"
            });
            super::picture(ui, truth_tex, shown, Sense::hover());
        });
        ui.vertical(|ui| {
            ui.label("predicted classes");
            match &pred {
                Some(p) => {
                    let key = p.key.0.wrapping_mul(1_000_003) ^ p.key.1;
                    let tex = textures.get(&ctx, "segment prediction", key, || {
                        overlay(&base(), &p.predicted)
                    });
                    let r = super::picture(ui, tex, shown, Sense::hover());
                    app.views.image_rect = Some(r.rect);
                    if let Some(pos) = r.hover_pos() {
                        let at = |v: f32, lo: f32| (((v - lo) / shown) * side as f32) as usize;
                        let (x, y) = (at(pos.x, r.rect.min.x), at(pos.y, r.rect.min.y));
                        let mut probs: Vec<(usize, f32)> =
                            p.at(x, y).into_iter().enumerate().collect();
                        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
                        let text: Vec<String> = probs
                            .iter()
                            .take(5)
                            .map(|(k, v)| format!("{}: {:.1}%", names[*k], 100.0 * v))
                            .collect();
                        r.on_hover_text(format!(
                            "pixel ({x}, {y}) class probabilities\n{}",
                            text.join("\n")
                        ));
                    }
                }
                None => {
                    ui.allocate_exact_size(Vec2::splat(shown), Sense::hover());
                }
            }
        });
    });
    // Legend.
    ui.horizontal_wrapped(|ui| {
        for (k, name) in names.iter().enumerate() {
            let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
            ui.painter().rect_filled(rect, 2.0, class_color(k as u32));
            ui.label(name);
        }
    });
    ui.separator();
    // Per-class IoU of the latest validation pass.
    match &s.seg_scores {
        Some((step, scores)) => {
            ui.label(format!(
                "validation after step {step}: mIoU {:.1}%, pixel accuracy {:.1}% ({} labelled pixels)",
                100.0 * scores.miou,
                100.0 * scores.pixel_accuracy,
                scores.pixels
            ));
            for (k, name) in names.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.label(format!("{name:>12}"));
                    let (rect, _) = ui.allocate_exact_size(Vec2::new(200.0, 12.0), Sense::hover());
                    ui.painter()
                        .rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
                    match scores.iou.get(k).copied().flatten() {
                        Some(v) => {
                            let mut bar = rect;
                            bar.set_width(rect.width() * v as f32);
                            ui.painter().rect_filled(bar, 0.0, class_color(k as u32));
                            ui.label(format!("IoU {:.1}%", 100.0 * v));
                        }
                        None => {
                            ui.label("absent");
                        }
                    }
                });
            }
        }
        None => {
            ui.label(
                "Per-class IoU appears after the first validation pass (every tenth of the phase).",
            );
        }
    }
}
