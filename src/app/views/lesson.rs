//! The guided lesson's panel above the views: the chapter's title and text, one thing to try, previous / next /
//! close; the masking chapter adds the live per-position masking frequency under the current settings.

use egui::{Color32, RichText, Sense, Vec2};

use crate::app::lesson::{masking_frequency, CHAPTERS};
use crate::app::{BeitApp, View};

/// Masks drawn for the frequency map (drawn again only when the grid or the masking settings change).
const FREQUENCY_DRAWS: usize = 400;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    let Some(lesson) = app.lesson else {
        return;
    };
    let chapter = lesson.current();
    let mut go_to = None;
    let mut close = false;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!(
                "Lesson, chapter {} of {}: {}",
                lesson.chapter + 1,
                CHAPTERS.len(),
                chapter.title
            ));
            if lesson.chapter > 0 && ui.button("Previous chapter").clicked() {
                go_to = Some(lesson.chapter - 1);
            }
            if lesson.chapter + 1 < CHAPTERS.len() && ui.button("Next chapter").clicked() {
                go_to = Some(lesson.chapter + 1);
            }
            if app.view != chapter.view && ui.button("Back to this chapter's view").clicked() {
                go_to = Some(lesson.chapter);
            }
            if ui.button("Close lesson").clicked() {
                close = true;
            }
        });
        ui.label(chapter.text);
        ui.label(RichText::new(format!("Try this: {}", chapter.try_this)).italics());
        if chapter.view == View::Paint {
            frequency_map(app, ui);
        }
    });
    if close {
        app.lesson = None;
    } else if let Some(c) = go_to {
        app.open_lesson(c);
    }
}

/// How often each grid position is hidden under the current masking settings, darker = more often.
fn frequency_map(app: &mut BeitApp, ui: &mut egui::Ui) {
    let Some(s) = app.session.as_ref() else {
        return;
    };
    let grid = s.mim.cfg.grid();
    let key = (grid, s.settings.masking, s.settings.mask_ratio.to_bits());
    let cache = &mut app.views.masking_frequency;
    if cache.as_ref().is_none_or(|(k, _)| *k != key) {
        *cache = Some((
            key,
            masking_frequency(grid, &s.settings, FREQUENCY_DRAWS, 7),
        ));
    }
    let Some((_, freq)) = cache.as_ref() else {
        return;
    };
    ui.horizontal(|ui| {
        let side = 120.0;
        let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), Sense::hover());
        let cell = side / grid as f32;
        for (i, f) in freq.iter().enumerate() {
            let (r, c) = (i as u32 / grid, i as u32 % grid);
            let min = rect.min + Vec2::new(c as f32 * cell, r as f32 * cell);
            let shade = (255.0 * (1.0 - f)).round() as u8;
            ui.painter().rect_filled(
                egui::Rect::from_min_size(min, Vec2::splat(cell - 1.0)),
                0.0,
                Color32::from_rgb(shade, shade, 255),
            );
        }
        let (lo, hi) = freq
            .iter()
            .fold((1.0f32, 0.0f32), |(a, b), &f| (a.min(f), b.max(f)));
        ui.label(format!(
            "masking frequency per position over {FREQUENCY_DRAWS} masks ({} masking, ratio {:.2}): from {:.0}% at the \
             least hidden position to {:.0}% at the most",
            match s.settings.masking {
                crate::app::settings::MaskMode::Blockwise => "blockwise",
                crate::app::settings::MaskMode::Random => "random",
            },
            s.settings.mask_ratio,
            100.0 * lo,
            100.0 * hi
        ));
    });
}
