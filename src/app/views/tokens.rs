//! The visual tokens view: an image's token grid coloured by id (true tokens and BEiT's predictions side by
//! side); hovering a patch shows its token, the five most probable predictions and each of those codes decoded.

use egui::{Align2, Color32, FontId, Sense, Vec2};

use super::{
    code_texture, explain, patch_at, patch_rect, picture, sample_picker, sample_texture, waiting,
};
use crate::app::{picture as pic, BeitApp};

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "The tokenizer turns every patch into one of a few hundred codes (its visual words); BEiT learns to \
         predict them. Hover a patch to see its token, BEiT's five best guesses and what each code looks like.",
    );
    let Some(cfg) = app.session.as_ref().map(|s| s.mim.cfg.clone()) else {
        return;
    };
    sample_picker(app, ui);
    let ctx = ui.ctx().clone();
    let k = app.views.sample;
    let grid = cfg.grid() as usize;
    let n = grid * grid;
    let Some(res) = app.inspector.results.clone() else {
        waiting(ui);
        return;
    };
    let size = 220.0;
    let mut hovered = None;
    ui.horizontal(|ui| {
        let tex = sample_texture(app, &ctx, &cfg, k);
        ui.vertical(|ui| {
            ui.label("image");
            let r = picture(ui, tex, size, Sense::hover());
            hovered = hovered.or(r.hover_pos().and_then(|p| patch_at(r.rect, grid, p)));
        });
        for (title, ids) in [
            ("true tokens", &res.tokens),
            ("predicted tokens", &res.predicted),
        ] {
            ui.vertical(|ui| {
                ui.label(title);
                let (rect, r) = ui.allocate_exact_size(Vec2::splat(size), Sense::hover());
                for i in 0..n {
                    let id = ids.get(k * n + i).copied().unwrap_or(0);
                    let cell = patch_rect(rect, grid, i);
                    ui.painter()
                        .rect_filled(cell.shrink(0.5), 0.0, pic::token_color(id));
                    if grid <= 8 {
                        ui.painter().text(
                            cell.center(),
                            Align2::CENTER_CENTER,
                            id.to_string(),
                            FontId::monospace(11.0),
                            Color32::BLACK,
                        );
                    }
                    if res.is_masked(k, i) {
                        ui.painter().rect_stroke(
                            cell.shrink(1.0),
                            0.0,
                            egui::Stroke::new(2.0, Color32::WHITE),
                            egui::StrokeKind::Inside,
                        );
                    }
                }
                hovered = hovered.or(r.hover_pos().and_then(|p| patch_at(r.rect, grid, p)));
            });
        }
    });
    ui.label("Masked patches have a white border.");
    let Some(i) = hovered else {
        ui.label("Hover a patch for its top-5 predictions.");
        return;
    };
    let at = k * n + i;
    let masked = res.is_masked(k, i);
    ui.separator();
    ui.label(format!(
        "patch {i} (row {}, column {}){}: true token {}",
        i / grid,
        i % grid,
        if masked { ", masked" } else { "" },
        res.tokens.get(at).copied().unwrap_or(0)
    ));
    let top = res.top5.get(at).copied().unwrap_or_default();
    ui.horizontal(|ui| {
        for (id, prob) in top {
            ui.vertical(|ui| {
                match code_texture(app, &ctx, &cfg, id) {
                    Some(t) => {
                        picture(ui, t, 56.0, Sense::hover());
                    }
                    None => {
                        ui.label("(decoding codes...)");
                    }
                }
                let mark = if Some(&id) == res.tokens.get(at) {
                    " (true)"
                } else {
                    ""
                };
                ui.label(format!("token {id}{mark}\n{:.1}%", 100.0 * prob));
            });
        }
    });
}
