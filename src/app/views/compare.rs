//! The compare view: a kept run next to the live one. Their pretraining curves overlaid, then, for the same
//! samples under the same masks, each model's decoded guess with its right (green) and wrong (red) patches, and
//! each run's totals against the most-common-token baseline.

use egui::{Color32, Sense};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::{explain, grey_masked, patch_rect, picture, reconstruction, sample_texture, waiting};
use crate::app::compare::{describe, KEPT};
use crate::app::curves::Panel;
use crate::app::inspect::Results;
use crate::app::phases::PhaseKind;
use crate::app::BeitApp;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "Two runs side by side. Pretrain, press \"Keep this model\", change a setting (blockwise or random \
         masking, the mask ratio, the learning rate) and run Pretrain again: the live model starts from the same \
         initialisation on the same tokenizer, so the difference you see is the setting's. Curves are overlaid; \
         below, both models guess the same hidden patches.",
    );
    let Some(s) = app.session.as_mut() else {
        return;
    };
    ui.horizontal(|ui| {
        let can_keep = s.active.is_none() && s.done[PhaseKind::Pretrain.index()] > 0;
        if ui
            .add_enabled(can_keep, egui::Button::new("Keep this model"))
            .on_hover_text("Keep the pretrained model for comparison; the live one starts fresh")
            .on_disabled_hover_text("Pretrain first, and let the phase finish or stop it")
            .clicked()
        {
            match s.keep_for_comparison() {
                Ok(m) => app.notice = Some(m),
                Err(e) => s.error = Some(e),
            }
        }
        if s.kept.is_some() && ui.button("Forget the kept run").clicked() {
            s.kept = None;
            s.curves.series.retain(|(_, n), _| !n.starts_with(KEPT));
        }
    });
    let Some(kept) = s.kept.as_ref() else {
        ui.label("No run kept yet.");
        return;
    };
    let live = describe(&s.settings, s.done[PhaseKind::Pretrain.index()]);
    ui.label(format!("kept: {}\nlive: {live}", kept.label));
    let (kcfg, cfg) = (kept.mim.cfg.clone(), s.mim.cfg.clone());
    if (kcfg.image_size, kcfg.patch_size, kcfg.num_channels)
        != (cfg.image_size, cfg.patch_size, cfg.num_channels)
    {
        ui.label(format!(
            "The kept run reads {} px images in {} px patches and the live one {} px in {} px: switch the preset back \
             to compare their guesses.",
            kcfg.image_size, kcfg.patch_size, cfg.image_size, cfg.patch_size
        ));
        return;
    }
    let width = ui.available_width();
    for panel in [Panel::Accuracy, Panel::Loss] {
        let series: Vec<(String, Vec<[f64; 2]>)> = s
            .curves
            .of(panel)
            .filter(|(n, _)| {
                n.starts_with("pretrain MIM") || n.starts_with(&format!("{KEPT}pretrain MIM"))
            })
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect();
        if series.is_empty() {
            continue;
        }
        Plot::new(format!("compare {}", panel.title()))
            .height(120.0)
            .width(width)
            .legend(Legend::default())
            .x_axis_label("step")
            .show(ui, |plot| {
                for (name, points) in series {
                    plot.line(Line::new(name, PlotPoints::from(points)));
                }
            });
    }
    let n = cfg.patches() as usize;
    let samples = &app.inspector.samples;
    for (who, r) in [
        ("kept", fresh(&app.compare.results, samples)),
        ("live", fresh(&app.inspector.results, samples)),
    ] {
        if let Some(r) = r {
            ui.label(format!("{who}: {}", r.summary(n).line()));
        }
    }
    let ctx = ui.ctx().clone();
    let grid = cfg.grid() as usize;
    let size = 84.0;
    egui::Grid::new("compare grid")
        .spacing([8.0, 6.0])
        .show(ui, |ui| {
            for h in ["masked input", "kept run's guess", "live run's guess", ""] {
                ui.label(h);
            }
            ui.end_row();
            for k in 0..app.inspector.samples.len() {
                let tex = sample_texture(app, &ctx, &cfg, k);
                let r = picture(ui, tex, size, Sense::hover());
                let mask = app.inspector.samples[k].mask.clone();
                grey_masked(ui, r.rect, grid, &mask);
                let kept_caption = match kept_guess(app, ui, &ctx, k, size) {
                    Some(c) => c,
                    None => {
                        waiting(ui);
                        String::new()
                    }
                };
                let live_caption = match reconstruction(app, ui, &cfg, k, true, size) {
                    Some(resp) => app
                        .inspector
                        .results
                        .as_ref()
                        .map(|res| outline(ui, resp.rect, grid, res, k, n))
                        .unwrap_or_default(),
                    None => {
                        waiting(ui);
                        String::new()
                    }
                };
                ui.label(format!("kept: {kept_caption}\nlive: {live_caption}"));
                ui.end_row();
            }
        });
}

/// Results computed for the samples' current masks, if they are.
fn fresh<'a>(
    r: &'a Option<Results>,
    samples: &[crate::app::inspect::Sample],
) -> Option<&'a Results> {
    r.as_ref()
        .filter(|r| r.masks.iter().zip(samples).all(|(m, x)| *m == x.mask))
}

/// The kept run's decoded guess for sample `k`, outlined; its caption, or `None` before its results arrive.
fn kept_guess(
    app: &mut BeitApp,
    ui: &mut egui::Ui,
    ctx: &egui::Context,
    k: usize,
    size: f32,
) -> Option<String> {
    let s = app.session.as_ref()?;
    let cfg = s.kept.as_ref()?.mim.cfg.clone();
    let (res, textures) = (app.compare.results.as_ref()?, &mut app.textures);
    let tex = textures.get(ctx, &format!("kept guess {k}"), res.generation, || {
        crate::app::picture::batch_image(&res.recon_pred, &cfg, k)
    });
    let r = picture(ui, tex, size, Sense::hover());
    Some(outline(
        ui,
        r.rect,
        cfg.grid() as usize,
        res,
        k,
        cfg.patches() as usize,
    ))
}

/// Colour sample `k`'s masked patches green (right) or red (wrong) over `rect`; "right / masked" as the caption.
fn outline(
    ui: &egui::Ui,
    rect: egui::Rect,
    grid: usize,
    res: &Results,
    k: usize,
    n: usize,
) -> String {
    for i in 0..n {
        if let Some(ok) = res.prediction_right(k, i, n) {
            let c = if ok {
                Color32::from_rgba_unmultiplied(40, 200, 60, 120)
            } else {
                Color32::from_rgba_unmultiplied(220, 40, 40, 120)
            };
            ui.painter().rect_filled(patch_rect(rect, grid, i), 0.0, c);
        }
    }
    let (right, masked) = res.correct(k, n);
    format!("{right} / {masked} right")
}
