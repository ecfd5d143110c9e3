//! The attention view: pick a layer and a head (or the mean over heads), click a patch or CLS of a sample, and
//! see where that token attends as a heat map over the image; next to it, the head's relative position bias as
//! a picture. Both maps are painted by the GPU straight from the network's buffers.

use egui::{Color32, Sense, Stroke, Vec2};

use super::{explain, patch_at, patch_rect, picture, sample_picker, sample_texture};
use crate::app::gpu_paint::{self, HeatMap, PaintParams};
use crate::app::BeitApp;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "Every token mixes in information from the tokens it attends to. Click a patch (or CLS) to see its \
         attention over the image in the chosen layer and head, computed on the masked input of the MIM view. \
         The right picture is the head's learned bias for each relative offset (centre: same position).",
    );
    let Some(s) = app.session.as_ref() else {
        return;
    };
    let cfg = s.mim.cfg.clone();
    let (layers, heads) = (
        cfg.num_hidden_layers as usize,
        cfg.num_attention_heads as usize,
    );
    let params = s.mim.params.clone();
    app.views.layer = app.views.layer.min(layers - 1);
    sample_picker(app, ui);
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut app.views.layer, 0..=layers - 1).text("layer"));
        egui::ComboBox::from_label("head")
            .selected_text(match app.views.head {
                None => "mean of heads".to_string(),
                Some(h) => format!("head {h}"),
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut app.views.head, None, "mean of heads");
                for h in 0..heads {
                    ui.selectable_value(&mut app.views.head, Some(h), format!("head {h}"));
                }
            });
        if ui.selectable_label(app.views.query == 0, "CLS").clicked() {
            app.views.query = 0;
        }
    });
    let grid = cfg.grid() as usize;
    let t = grid * grid + 1;
    let k = app.views.sample;
    let ctx = ui.ctx().clone();
    let tex = sample_texture(app, &ctx, &cfg, k);
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label(match app.views.query {
                0 => "attention of CLS".to_string(),
                q => format!("attention of patch {}", q - 1),
            });
            let r = picture(ui, tex, 256.0, Sense::click());
            app.views.image_rect = Some(r.rect);
            if let Some(p) = r.interact_pointer_pos().filter(|_| r.clicked()) {
                if let Some(i) = patch_at(r.rect, grid, p) {
                    app.views.query = 1 + i;
                }
            }
            let q = app.views.query.min(t - 1);
            match (app.gpu_paint, app.inspector.attention(app.views.layer)) {
                (true, Some(att)) => {
                    let h0 = app.views.head.unwrap_or(0);
                    let base = att.offset / 4 + (((k * heads + h0) * t + q) * t + 1) as u64;
                    gpu_paint::paint(
                        ui,
                        r.rect,
                        HeatMap {
                            id: 1,
                            buffer: att.buffer.clone(),
                            params: PaintParams {
                                base: base as u32,
                                cols: grid as u32,
                                rows: grid as u32,
                                col_stride: 1,
                                row_stride: grid as u32,
                                heads: if app.views.head.is_some() { 1 } else { heads as u32 },
                                head_stride: (t * t) as u32,
                                mode: 0,
                                alpha: 0.6,
                                ..Default::default()
                            },
                        },
                    );
                }
                (false, _) => {
                    ui.label("(heat maps need the GPU renderer)");
                }
                _ => {}
            }
            if q > 0 {
                ui.painter().rect_stroke(
                    patch_rect(r.rect, grid, q - 1),
                    0.0,
                    Stroke::new(2.0, Color32::WHITE),
                    egui::StrokeKind::Inside,
                );
            }
        });
        ui.vertical(|ui| {
            let shared = "beit.encoder.relative_position_bias.relative_position_bias_table";
            let own = format!(
                "beit.encoder.layer.{}.attention.attention.relative_position_bias.relative_position_bias_table",
                app.views.layer
            );
            let table = params.get(shared).or_else(|_| params.get(&own));
            let side = 2 * grid - 1;
            ui.label(format!("relative position bias ({side} x {side} offsets)"));
            let (r, _) = ui.allocate_exact_size(Vec2::splat(200.0), Sense::hover());
            match (app.gpu_paint, table) {
                (true, Ok(tb)) => {
                    let h0 = app.views.head.unwrap_or(0) as u64;
                    gpu_paint::paint(
                        ui,
                        r,
                        HeatMap {
                            id: 2,
                            buffer: tb.buffer.clone(),
                            params: PaintParams {
                                base: (tb.offset / 4 + h0) as u32,
                                cols: side as u32,
                                rows: side as u32,
                                col_stride: heads as u32,
                                row_stride: (side * heads) as u32,
                                heads: if app.views.head.is_some() { 1 } else { heads as u32 },
                                head_stride: 1,
                                mode: 1,
                                alpha: 1.0,
                                ..Default::default()
                            },
                        },
                    );
                }
                (_, Err(_)) => {
                    ui.label("this model has no relative position bias");
                }
                (false, _) => {
                    ui.label("(bias pictures need the GPU renderer)");
                }
            }
            ui.label("blue: negative, red: positive");
        });
    });
}
