//! The codebook atlas: every code of the tokenizer decoded to a patch, most used first, with how often each is
//! used over validation images; large codebooks (DALL-E's 8192 codes) in pages.

use egui::Sense;

use super::{code_texture, explain, picture, waiting};
use crate::app::BeitApp;

/// Codes per page.
pub const PAGE: usize = 256;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "Each square is one code of the visual tokenizer decoded back to pixels, sorted by how often validation \
         patches use it. A healthy codebook uses many codes; BEiT's targets are these codes.",
    );
    let Some(cfg) = app.session.as_ref().map(|s| s.mim.cfg.clone()) else {
        return;
    };
    let Some(atlas) = app.inspector.atlas.as_ref() else {
        waiting(ui);
        return;
    };
    let total: u32 = atlas.usage.iter().sum();
    let used = atlas.usage.iter().filter(|&&u| u > 0).count();
    let entropy: f64 = atlas
        .usage
        .iter()
        .filter(|&&u| u > 0)
        .map(|&u| {
            let p = u as f64 / total.max(1) as f64;
            -p * p.ln()
        })
        .sum();
    ui.label(format!(
        "{used} of {} codes used by {total} patches; perplexity {:.1}",
        atlas.usage.len(),
        entropy.exp()
    ));
    let mut order: Vec<u32> = (0..atlas.usage.len() as u32).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(atlas.usage[c as usize]));
    let usage = atlas.usage.clone();
    let pages = order.len().div_ceil(PAGE).max(1);
    let page = app.views.codebook_page.min(pages - 1);
    if pages > 1 {
        ui.horizontal(|ui| {
            if ui
                .add_enabled(page > 0, egui::Button::new("< more used"))
                .clicked()
            {
                app.views.codebook_page = page - 1;
            }
            ui.label(format!(
                "codes {}..{} of {} (page {} of {pages})",
                page * PAGE + 1,
                ((page + 1) * PAGE).min(order.len()),
                order.len(),
                page + 1
            ));
            if ui
                .add_enabled(page + 1 < pages, egui::Button::new("less used >"))
                .clicked()
            {
                app.views.codebook_page = page + 1;
            }
        });
    }
    let order: Vec<u32> = order.into_iter().skip(page * PAGE).take(PAGE).collect();
    let ctx = ui.ctx().clone();
    let columns = ((ui.available_width() / 52.0) as usize).max(4);
    egui::Grid::new("atlas").spacing([4.0, 4.0]).show(ui, |ui| {
        for (j, &c) in order.iter().enumerate() {
            ui.vertical(|ui| {
                if let Some(t) = code_texture(app, &ctx, &cfg, c) {
                    picture(ui, t, 40.0, Sense::hover())
                        .on_hover_text(format!("code {c}: used {} times", usage[c as usize]));
                }
                ui.label(egui::RichText::new(format!("{c}: {}", usage[c as usize])).small());
            });
            if (j + 1) % columns == 0 {
                ui.end_row();
            }
        }
    });
}
