//! Paint a mask: draw (left button) and erase (right button) masked patches on any sample, or on an image file
//! dropped on the window, and see BEiT's predictions for exactly those patches as soon as they are computed.

use egui::{Color32, Sense, Stroke};

use super::{
    explain, grey_masked, patch_at, patch_rect, picture, reconstruction, sample_picker,
    sample_texture, waiting,
};
use crate::app::BeitApp;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "Hide any patches you like: drag with the left button to mask, with the right button to unmask. Drop an \
         image file on the window to use your own picture. BEiT fills in what it thinks is hidden.",
    );
    let Some(s) = app.session.as_ref() else {
        return;
    };
    let cfg = s.mim.cfg.clone();
    let settings = s.settings.clone();
    sample_picker(app, ui);
    let k = app
        .views
        .sample
        .min(app.inspector.samples.len().saturating_sub(1));
    if app.inspector.samples.is_empty() {
        return;
    }
    let grid = cfg.grid() as usize;
    ui.horizontal(|ui| {
        if ui.button("Clear mask").clicked() {
            app.inspector.samples[k].mask.fill(0);
            app.inspector.dirty = true;
        }
        if ui
            .button("New mask")
            .on_hover_text("A mask drawn with the current masking settings")
            .clicked()
        {
            let mut rng = crate::rng::Rng::new(
                app.inspector.sample_generation ^ app.frames.recent.len() as u64,
            );
            app.inspector.samples[k].mask =
                crate::app::phases::make_mask(grid as u32, &settings, &mut rng);
            app.inspector.dirty = true;
        }
    });
    let ctx = ui.ctx().clone();
    let tex = sample_texture(app, &ctx, &cfg, k);
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label("your mask");
            let r = picture(ui, tex, 256.0, Sense::click_and_drag());
            app.views.image_rect = Some(r.rect);
            let erase = ui.input(|i| i.pointer.secondary_down())
                || r.clicked_by(egui::PointerButton::Secondary);
            let active = r.is_pointer_button_down_on()
                || r.clicked()
                || r.clicked_by(egui::PointerButton::Secondary);
            if let Some(i) = r
                .interact_pointer_pos()
                .filter(|_| active)
                .and_then(|p| patch_at(r.rect, grid, p))
            {
                let want = if erase { 0 } else { 1 };
                let m = &mut app.inspector.samples[k].mask;
                if m[i] != want {
                    m[i] = want;
                    app.inspector.dirty = true;
                }
            }
            let mask = app.inspector.samples[k].mask.clone();
            grey_masked(ui, r.rect, grid, &mask);
            for i in 0..grid * grid {
                ui.painter().rect_stroke(
                    patch_rect(r.rect, grid, i),
                    0.0,
                    Stroke::new(0.5, Color32::from_gray(90)),
                    egui::StrokeKind::Inside,
                );
            }
        });
        ui.vertical(|ui| {
            ui.label("BEiT's prediction under the mask");
            let fresh = app
                .inspector
                .results
                .as_ref()
                .is_some_and(|r| r.masks.get(k) == Some(&app.inspector.samples[k].mask));
            match reconstruction(app, ui, &cfg, k, true, 256.0) {
                Some(_) => {
                    if let Some(res) = &app.inspector.results {
                        let (right, masked) = res.correct(k, grid * grid);
                        ui.label(format!(
                            "{right} / {masked} masked patches predicted right{}",
                            if fresh { "" } else { " (updating...)" }
                        ));
                    }
                }
                None => waiting(ui),
            }
        });
    });
}
