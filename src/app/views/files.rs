//! Data and checkpoints: open images or a folder of images as the dataset (natively typed, browsed or dropped on
//! the window; in the browser picked or dropped), save the three networks (HuggingFace-style folders natively, one
//! file in either) and load them back.

use super::explain;
use crate::app::BeitApp;
#[cfg(not(target_arch = "wasm32"))]
use crate::app::BrowseTarget;

pub fn show(app: &mut BeitApp, ui: &mut egui::Ui) {
    explain(
        ui,
        "Train on your own images: a folder of images, or one sub-folder per class for fine-tuning. Checkpoints \
         are HuggingFace folders (config.json + model.safetensors) that transformers can load, or one \
         .safetensors file holding the tokenizer, the pretrained and the fine-tuned networks.",
    );
    let Some(s) = app.session.as_ref() else {
        return;
    };
    ui.label(format!(
        "dataset: {} ({} + {} images)",
        s.train.source,
        s.train.len(),
        s.val.len()
    ));
    #[cfg(not(target_arch = "wasm32"))]
    native(app, ui);
    #[cfg(target_arch = "wasm32")]
    web(app, ui);
}

/// A button whose position is remembered under `id` (tests click it).
fn button(app: &mut BeitApp, ui: &mut egui::Ui, id: &'static str, text: &str, hover: &str) -> bool {
    let b = ui.button(text).on_hover_text(hover);
    app.views.button_rects.retain(|(i, _)| *i != id);
    app.views.button_rects.push((id, b.rect));
    b.clicked()
}

#[cfg(target_arch = "wasm32")]
fn web(app: &mut BeitApp, ui: &mut egui::Ui) {
    use crate::app::web_files::Purpose;
    let mut pick = None;
    ui.horizontal(|ui| {
        if button(
            app,
            ui,
            "images",
            "Open images...",
            "One image replaces the selected sample; several become the dataset (or drop them on the page)",
        ) {
            pick = Some(Purpose::Images);
        }
        if button(
            app,
            ui,
            "folder",
            "Open folder...",
            "A folder of images; with one sub-folder per class, the classes become labels for fine-tuning",
        ) {
            pick = Some(Purpose::Folder);
        }
    });
    if let Some((source, loader)) = &app.web_loader {
        let (done, all) = loader.progress();
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("decoding {source}: {done} / {all} files"));
        });
    }
    ui.separator();
    ui.horizontal(|ui| {
        if button(
            app,
            ui,
            "save",
            "Save checkpoint",
            "Download the tokenizer, the pretrained BEiT and the fine-tuned classifier as one .safetensors file",
        ) {
            app.save_one_file(crate::app::files::SaveTarget::Download);
        }
        if button(
            app,
            ui,
            "load",
            "Load checkpoint...",
            "A file saved here, or a HuggingFace folder's config.json + model.safetensors chosen together \
             (or drop them on the page)",
        ) {
            pick = Some(Purpose::Checkpoint);
        }
        if app.export.is_some() {
            ui.spinner();
            ui.label("reading the weights back...");
        }
    });
    if let Some(p) = pick {
        if let Err(e) = app.dropped.open_picker(p) {
            app.notice = Some(e);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn native(app: &mut BeitApp, ui: &mut egui::Ui) {
    use std::path::PathBuf;
    ui.horizontal(|ui| {
        ui.label("image folder");
        ui.text_edit_singleline(&mut app.views.data_path);
        if ui.button("Browse...").clicked() {
            app.views.browse_target = BrowseTarget::Data;
            app.views.browsing = Some(start_dir(&app.views.data_path));
        }
        if ui.button("Open").clicked() {
            let p = app.views.data_path.trim().to_string();
            app.open_data(p);
        }
        if ui.button("Built-in data").clicked() {
            app.open_data("builtin".into());
        }
    });
    if let Some((src, _)) = &app.loading {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("reading {src}..."));
        });
    }
    ui.separator();
    ui.horizontal(|ui| {
        ui.label("checkpoint folder");
        ui.text_edit_singleline(&mut app.views.checkpoint_path);
        if ui.button("Browse...").clicked() {
            app.views.browse_target = BrowseTarget::Checkpoint;
            app.views.browsing = Some(start_dir(&app.views.checkpoint_path));
        }
    });
    ui.horizontal(|ui| {
        let dir = PathBuf::from(app.views.checkpoint_path.trim());
        if ui.button("Save checkpoint").clicked() {
            if let Some(s) = app.session.as_mut() {
                match s.save(&dir) {
                    Ok(()) => {
                        app.notice = Some(format!(
                            "saved tokenizer/, pretrained/ and finetuned/ under {}",
                            dir.display()
                        ))
                    }
                    Err(e) => s.error = Some(e),
                }
            }
        }
        if button(
            app,
            ui,
            "save-file",
            "Save one file",
            "Write the three networks into one .safetensors file (the browser's checkpoint format) under the \
             checkpoint folder",
        ) {
            app.save_one_file(crate::app::files::SaveTarget::Path(
                dir.join(crate::app::bundle::FILE_NAME),
            ));
        }
        if ui
            .button("Load checkpoint")
            .on_hover_text("A checkpoint folder, or a one-file checkpoint's path")
            .clicked()
        {
            if let Some(s) = app.session.as_mut() {
                match s.load(&dir) {
                    Ok(msg) => app.notice = Some(msg),
                    Err(e) => s.error = Some(e),
                }
            }
        }
    });
    browser(app, ui);
}

#[cfg(not(target_arch = "wasm32"))]
fn start_dir(typed: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(typed.trim());
    if p.is_dir() {
        return p;
    }
    std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"))
}

/// A small folder browser: sub-folders of the current one; "Use this folder" fills the chosen field.
#[cfg(not(target_arch = "wasm32"))]
fn browser(app: &mut BeitApp, ui: &mut egui::Ui) {
    let Some(dir) = app.views.browsing.clone() else {
        return;
    };
    ui.separator();
    ui.label(format!("choose a folder: {}", dir.display()));
    let mut next = None;
    ui.horizontal(|ui| {
        if ui.button("Use this folder").clicked() {
            let text = dir.display().to_string();
            match app.views.browse_target {
                BrowseTarget::Data => app.views.data_path = text,
                BrowseTarget::Checkpoint => app.views.checkpoint_path = text,
            }
            app.views.browsing = None;
        }
        if let Some(parent) = dir.parent() {
            if ui.button("Up").clicked() {
                next = Some(parent.to_path_buf());
            }
        }
        if ui.button("Cancel").clicked() {
            app.views.browsing = None;
        }
    });
    let mut subdirs: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    subdirs.sort();
    egui::ScrollArea::vertical()
        .max_height(220.0)
        .show(ui, |ui| {
            for d in subdirs {
                let name = d
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                if ui.selectable_label(false, format!("{name}/")).clicked() {
                    next = Some(d);
                }
            }
        });
    if let Some(n) = next {
        app.views.browsing = Some(n);
    }
}
