//! The masked image modeling view: for each sample, the image, the masked input, the tokenizer's reconstruction
//! from the true tokens, the reconstruction with the predicted tokens at the masked patches, and which
//! predictions are right.

use egui::{Color32, Sense};

use super::{explain, grey_masked, patch_rect, picture, reconstruction, sample_texture, waiting};
use crate::app::BeitApp;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "BEiT hides blocks of patches (grey) and must guess each hidden patch's visual token, a code the tokenizer \
         learned. Decoding the guessed tokens shows what the model believes is under the mask; green patches are \
         guessed right, red wrong. \"Top 5\" counts hidden patches whose true token is among the five guesses \
         BEiT found most likely; the pixel error (0 to 1) says how far the decoded guess is from the tokenizer's \
         own reconstruction, so a near miss reads as one.",
    );
    let Some(cfg) = app.session.as_ref().map(|s| s.mim.cfg.clone()) else {
        return;
    };
    ui.horizontal(|ui| {
        if ui.button("Reshuffle samples").clicked() {
            app.reshuffle();
        }
        let label = match &app.recording {
            None => "Record GIF".to_string(),
            Some(r) => format!("Stop and save GIF ({} frames)", r.frames.len()),
        };
        if ui
            .button(label)
            .on_hover_text(
                "Record this view as training goes on: a frame each time the predictions refresh",
            )
            .clicked()
        {
            app.toggle_recording();
        }
    });
    let ctx = ui.ctx().clone();
    let grid = cfg.grid() as usize;
    let n = cfg.patches() as usize;
    if let Some(res) = app.inspector.results.as_ref() {
        ui.label(res.summary(n).line());
    }
    let size = 84.0;
    egui::Grid::new("mim grid")
        .spacing([8.0, 6.0])
        .show(ui, |ui| {
            for h in [
                "original",
                "masked input",
                "tokenizer (true tokens)",
                "BEiT's prediction",
                "right / wrong",
                "",
            ] {
                ui.label(h);
            }
            ui.end_row();
            for k in 0..app.inspector.samples.len() {
                let tex = sample_texture(app, &ctx, &cfg, k);
                picture(ui, tex, size, Sense::hover());
                let r = picture(ui, tex, size, Sense::hover());
                let mask = app.inspector.samples[k].mask.clone();
                grey_masked(ui, r.rect, grid, &mask);
                match reconstruction(app, ui, &cfg, k, false, size) {
                    Some(_) => {
                        reconstruction(app, ui, &cfg, k, true, size);
                        let r = reconstruction(app, ui, &cfg, k, true, size);
                        let mut caption = String::new();
                        if let (Some(res), Some(r)) = (app.inspector.results.as_ref(), r) {
                            for i in 0..n {
                                if let Some(ok) = res.prediction_right(k, i, n) {
                                    let c = if ok {
                                        Color32::from_rgba_unmultiplied(40, 200, 60, 120)
                                    } else {
                                        Color32::from_rgba_unmultiplied(220, 40, 40, 120)
                                    };
                                    ui.painter()
                                        .rect_filled(patch_rect(r.rect, grid, i), 0.0, c);
                                }
                            }
                            let (right, masked) = res.correct(k, n);
                            let top5 = res.correct_top5(k, n);
                            caption = format!(
                                "{right} / {masked} masked patches right, {top5} in the top 5"
                            );
                            if let Some(e) = res.masked_pixel_error(
                                k,
                                cfg.num_channels as usize,
                                cfg.image_size as usize,
                                cfg.patch_size as usize,
                            ) {
                                caption.push_str(&format!(
                                    "\npixel error {:.3} from the tokenizer's own",
                                    e
                                ));
                            }
                        }
                        let label = app.inspector.samples[k].label.clone().unwrap_or_default();
                        ui.label(format!("{label}\n{caption}"));
                    }
                    _ => {
                        waiting(ui);
                    }
                }
                ui.end_row();
            }
        });
}
