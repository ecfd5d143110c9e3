//! The controls: start / pause / step / stop and each phase alone (top), the settings (left), the status line
//! (bottom), and the error and notice banners.

use crate::train::precision::Precision;
use egui::{Color32, RichText};

use crate::app::phases::PhaseKind;
use crate::app::settings::MaskMode;
use crate::app::BeitApp;

pub fn top(app: &mut BeitApp, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        ui.heading("beitlab");
        if app.lesson.is_none()
            && ui
                .button("Lesson")
                .on_hover_text("A guided tour of BEiT in six short chapters, each on its live view")
                .clicked()
        {
            app.open_lesson(0);
        }
        let Some(s) = app.session.as_mut() else {
            return;
        };
        ui.separator();
        if ui
            .button("Start")
            .on_hover_text("Train the tokenizer, then pretrain BEiT, then fine-tune it (continues when paused)")
            .clicked()
        {
            s.start();
        }
        if s.running {
            if ui.button("Pause").clicked() {
                s.pause();
            }
        } else if s.active.is_some() && ui.button("Resume").clicked() {
            s.running = true;
        }
        if ui
            .button("Step")
            .on_hover_text("Run exactly one training step")
            .clicked()
        {
            s.step_once();
        }
        if s.active.is_some() && ui.button("Stop").clicked() {
            s.stop();
        }
        ui.separator();
        ui.label("run alone:");
        for kind in PhaseKind::ALL {
            let label = match kind {
                PhaseKind::Tokenizer => "Tokenizer",
                PhaseKind::Pretrain => "Pretrain",
                PhaseKind::Finetune => "Fine-tune",
                PhaseKind::Segment => "Segment",
            };
            if ui
                .button(label)
                .on_hover_text("Run this phase alone, continuing from the current weights")
                .clicked()
            {
                s.run_phase(kind);
            }
        }
        ui.separator();
        if ui
            .button("Reset")
            .on_hover_text("Fresh networks for the chosen preset and batch")
            .clicked()
        {
            if let Err(e) = s.reset() {
                s.error = Some(e);
            }
            app.reshuffle();
        }
    });
    if let Some((kind, done, total)) = app.session.as_ref().and_then(|s| s.progress()) {
        let running = app.session.as_ref().is_some_and(|s| s.running);
        ui.add(
            egui::ProgressBar::new(done as f32 / total.max(1) as f32).text(format!(
                "{} {done} / {total}{}",
                kind.name(),
                if running { "" } else { " (paused)" }
            )),
        );
    }
}

pub fn settings(app: &mut BeitApp, ui: &mut egui::Ui) {
    let Some(s) = app.session.as_mut() else {
        return;
    };
    let st = &mut s.settings;
    ui.heading("Settings");
    ui.label(RichText::new("Preset and batch take effect at Start or Reset.").small());
    egui::ComboBox::from_label("preset")
        .selected_text(st.preset.clone())
        .show_ui(ui, |ui| {
            for (name, what) in [
                ("mini", "mini (28 px, 7x7 patches)"),
                ("micro", "micro (28 px, 4x4 patches)"),
                ("tiny", "tiny (32 px, 8x8 patches)"),
                ("tiny14", "tiny14 (56 px, 14x14 patches)"),
            ] {
                ui.selectable_value(&mut st.preset, name.to_string(), what);
            }
        });
    ui.add(
        egui::DragValue::new(&mut st.batch)
            .range(1..=512)
            .prefix("batch "),
    );
    ui.horizontal(|ui| {
        ui.label("precision");
        ui.radio_value(&mut st.precision, Precision::F32, "f32");
        ui.radio_value(&mut st.precision, Precision::Mixed, "mixed")
            .on_hover_text("f16-input products with a dynamic loss scale, for pretraining and fine-tuning (taken at a phase's start)");
    });
    if let Some(note) = st.precision.resolve(&s.ctx).note {
        ui.label(RichText::new(note).small());
    }
    ui.separator();
    ui.label("Steps and peak learning rate per phase (the rate applies from the next step):");
    for kind in PhaseKind::ALL {
        let i = kind.index();
        ui.horizontal(|ui| {
            ui.label(format!("{:<9}", kind.name()));
            ui.add(
                egui::DragValue::new(&mut st.steps[i])
                    .range(1..=1_000_000)
                    .suffix(" steps"),
            );
            ui.add(
                egui::DragValue::new(&mut st.lr[i])
                    .speed(1e-4)
                    .range(1e-6..=0.1)
                    .max_decimals(5)
                    .prefix("lr "),
            );
        });
    }
    ui.separator();
    ui.label("Masking (from the next pretraining step):");
    ui.add(egui::Slider::new(&mut st.mask_ratio, 0.05..=0.9).text("mask ratio"));
    ui.horizontal(|ui| {
        ui.radio_value(&mut st.masking, MaskMode::Blockwise, "blockwise");
        ui.radio_value(&mut st.masking, MaskMode::Random, "random");
    });
    ui.separator();
    ui.checkbox(&mut st.compare_scratch, "also fine-tune from scratch")
        .on_hover_text("After the pretrained model, fine-tune a randomly initialised one the same way: the Curves view compares them");
    ui.add(egui::Slider::new(&mut s.frames_per_submit, 1..=4).text("frames per training step"))
        .on_hover_text("2 or more keeps the window responsive when a step takes longer than a frame (a CPU adapter)");
    let mut ms = app.budget.as_secs_f64() * 1e3;
    if ui
        .add(egui::Slider::new(&mut ms, 1.0..=40.0).text("ms of training per frame"))
        .changed()
    {
        app.budget = crate::app::time::Duration::from_secs_f64(ms / 1e3);
    }
}

pub fn status_line(app: &mut BeitApp, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        if let Some(s) = &app.session {
            ui.label(s.ctx.adapter_info.name.to_string());
            ui.separator();
            match s.progress() {
                Some((kind, done, total)) => {
                    ui.label(format!("{} step {done}/{total}", kind.name()))
                }
                None => ui.label("idle"),
            };
            if let Some(ips) = s.images_per_second().filter(|_| s.running) {
                ui.separator();
                ui.label(format!("{ips:.0} images/s"));
            }
            if let Some(eta) = s.eta_seconds().filter(|_| s.running) {
                ui.separator();
                ui.label(format!("ETA {eta:.0} s"));
            }
        }
        if let Some((mean, max)) = app.frames.summary() {
            ui.separator();
            ui.label(format!("frame {mean:.1} ms (max {max:.0})"));
        }
    });
}

pub fn banners(app: &mut BeitApp, ui: &mut egui::Ui) {
    let mut dismiss_error = false;
    if let Some(err) = app.session.as_ref().and_then(|s| s.error.as_ref()) {
        egui::Frame::new()
            .fill(Color32::from_rgb(110, 20, 20))
            .inner_margin(6.0)
            .show(ui, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(format!("Error: {err}")).color(Color32::WHITE));
                    dismiss_error = ui.button("Dismiss").clicked();
                });
            });
    }
    if dismiss_error {
        if let Some(s) = app.session.as_mut() {
            s.error = None;
        }
    }
    let mut dismiss_notice = false;
    if let Some(n) = &app.notice {
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new(n).color(Color32::from_rgb(120, 200, 120)));
            dismiss_notice = ui.small_button("ok").clicked();
        });
    }
    if dismiss_notice {
        app.notice = None;
    }
}
