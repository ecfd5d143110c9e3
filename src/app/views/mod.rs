//! The app's layout (controls on top, settings on the left, status line at the bottom, a tab per view) and the
//! drawing helpers the views share: sample pictures, patch rectangles, explanations.

mod attention;
mod codebook;
mod compare;
mod controls;
mod curves;
mod files;
mod lesson;
mod mim;
mod paint;
pub mod segment;
mod status;
mod tokens;

use egui::{Color32, Rect, Sense, Vec2};

use super::{picture, BeitApp, View};
use crate::model::BeitConfig;

/// The whole window.
pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    egui::Panel::top("controls").show(ui, |ui| controls::top(app, ui));
    egui::Panel::bottom("status line").show(ui, |ui| controls::status_line(app, ui));
    if app.session.is_some() {
        egui::Panel::left("settings")
            .default_size(230.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| controls::settings(app, ui));
            });
    }
    egui::CentralPanel::default().show(ui, |ui| {
        controls::banners(app, ui);
        if let Some(f) = &app.fatal {
            ui.heading("Training cannot start on this machine");
            ui.label(f);
            return;
        }
        lesson::show(app, ui);
        let panel = ui.max_rect();
        app.view_panel = panel;
        ui.horizontal_wrapped(|ui| {
            for v in View::ALL {
                ui.selectable_value(&mut app.view, v, v.title());
            }
            ui.separator();
            let waiting = app.snapshot.is_some();
            if ui
                .add_enabled(!waiting, egui::Button::new("Save view as PNG"))
                .clicked()
            {
                app.save_view_png(ui.ctx(), panel);
            }
        });
        ui.separator();
        egui::ScrollArea::both().show(ui, |ui| match app.view {
            View::Mim => mim::show(app, ui),
            View::Tokens => tokens::show(app, ui),
            View::Codebook => codebook::show(app, ui),
            View::Attention => attention::show(app, ui),
            View::Paint => paint::show(app, ui),
            View::Curves => curves::show(app, ui),
            View::Status => status::show(app, ui),
            View::Files => files::show(app, ui),
            View::Segment => segment::show(app, ui),
            View::Compare => compare::show(app, ui),
        });
    });
}

/// A short explanation for a learner, under a view's title.
fn explain(ui: &mut egui::Ui, text: &str) {
    ui.label(
        egui::RichText::new(text)
            .italics()
            .color(ui.visuals().weak_text_color()),
    );
    ui.add_space(4.0);
}

/// The rectangle of patch `i` of a `grid` x `grid` picture drawn in `rect`.
fn patch_rect(rect: Rect, grid: usize, i: usize) -> Rect {
    let cell = rect.width() / grid as f32;
    let (r, c) = (i / grid, i % grid);
    Rect::from_min_size(
        rect.min + Vec2::new(c as f32 * cell, r as f32 * cell),
        Vec2::splat(cell),
    )
}

/// The patch under a screen position, if inside `rect`.
fn patch_at(rect: Rect, grid: usize, pos: egui::Pos2) -> Option<usize> {
    if !rect.contains(pos) {
        return None;
    }
    let cell = rect.width() / grid as f32;
    let c = (((pos.x - rect.min.x) / cell) as usize).min(grid - 1);
    let r = (((pos.y - rect.min.y) / cell) as usize).min(grid - 1);
    Some(r * grid + c)
}

/// Draw a texture at `size` and return its response (with `sense`).
fn picture(ui: &mut egui::Ui, tex: egui::TextureId, size: f32, sense: Sense) -> egui::Response {
    ui.add(egui::Image::new(egui::load::SizedTexture::new(tex, Vec2::splat(size))).sense(sense))
}

/// Sample `k`'s evaluation view as the model sees it.
fn sample_texture(
    app: &mut BeitApp,
    ctx: &egui::Context,
    cfg: &BeitConfig,
    k: usize,
) -> egui::TextureId {
    // The picture is only built when the cached texture is older than the samples.
    let (inspector, textures) = (&app.inspector, &mut app.textures);
    let (c, s) = (cfg.num_channels as usize, cfg.image_size as usize);
    textures.get(
        ctx,
        &format!("sample {k}"),
        inspector.sample_generation,
        || {
            let pixels = inspector.samples.get(k).map_or(&[][..], |x| &x.pixels[..]);
            picture::chw_image(pixels, c, s, s)
        },
    )
}

/// Sample `k`'s reconstruction from the true tokens (`pred` false) or with the predicted tokens at masked patches.
fn recon_texture(
    app: &mut BeitApp,
    ctx: &egui::Context,
    cfg: &BeitConfig,
    k: usize,
    pred: bool,
) -> Option<egui::TextureId> {
    let (r, textures) = (app.inspector.results.as_ref()?, &mut app.textures);
    let src = if pred { &r.recon_pred } else { &r.recon_true };
    Some(
        textures.get(ctx, &format!("recon {k} {pred}"), r.generation, || {
            picture::batch_image(src, cfg, k)
        }),
    )
}

/// Draw sample `k`'s reconstruction (from the true tokens, or with the predicted tokens under the mask) at `size`:
/// painted by the GPU from the inspector's buffers on eframe's renderer, from the read-back copy otherwise.
/// `None` until the first refresh has landed.
fn reconstruction(
    app: &mut BeitApp,
    ui: &mut egui::Ui,
    cfg: &BeitConfig,
    k: usize,
    pred: bool,
    size: f32,
) -> Option<egui::Response> {
    app.inspector.results.as_ref()?;
    if let (true, Some((t, p))) = (app.gpu_paint, app.inspector.reconstructions()) {
        let src = if pred { p } else { t };
        let (c, s) = (cfg.num_channels, cfg.image_size);
        let (rect, response) = ui.allocate_exact_size(Vec2::splat(size), Sense::hover());
        super::gpu_paint::paint(
            ui,
            rect,
            super::gpu_paint::HeatMap {
                id: 100 + 2 * k as u64 + pred as u64,
                buffer: src.buffer.clone(),
                params: super::gpu_paint::PaintParams {
                    base: (src.offset / 4) as u32 + k as u32 * c * s * s,
                    cols: s,
                    rows: s,
                    col_stride: 1,
                    row_stride: s,
                    heads: c,
                    head_stride: s * s,
                    mode: 2,
                    alpha: 1.0,
                    ..Default::default()
                },
            },
        );
        return Some(response);
    }
    let ctx = ui.ctx().clone();
    let tex = recon_texture(app, &ctx, cfg, k, pred)?;
    Some(picture(ui, tex, size, Sense::hover()))
}

/// Code `c` of the atlas as a texture.
fn code_texture(
    app: &mut BeitApp,
    ctx: &egui::Context,
    cfg: &BeitConfig,
    c: u32,
) -> Option<egui::TextureId> {
    let (atlas, textures) = (app.inspector.atlas.as_ref()?, &mut app.textures);
    let patch = atlas.patches.get(c as usize)?;
    let p = cfg.patch_size as usize;
    Some(
        textures.get(ctx, &format!("code {c}"), atlas.generation, || {
            picture::chw_image(patch, cfg.num_channels as usize, p, p)
        }),
    )
}

/// Grey out the masked patches of a picture.
fn grey_masked(ui: &egui::Ui, rect: Rect, grid: usize, mask: &[u8]) {
    for (i, &m) in mask.iter().enumerate() {
        if m != 0 {
            ui.painter().rect_filled(
                patch_rect(rect, grid, i),
                0.0,
                Color32::from_rgba_unmultiplied(128, 128, 128, 235),
            );
        }
    }
}

/// Pick the sample shown by a single-image view.
fn sample_picker(app: &mut BeitApp, ui: &mut egui::Ui) {
    ui.horizontal(|ui| {
        ui.label("sample");
        for k in 0..app.inspector.samples.len() {
            ui.selectable_value(&mut app.views.sample, k, format!("{}", k + 1));
        }
        if ui.button("Reshuffle").clicked() {
            app.reshuffle();
        }
    });
}

/// The message shown while nothing has been computed yet.
fn waiting(ui: &mut egui::Ui) {
    ui.label("Computing from the current weights...");
}
