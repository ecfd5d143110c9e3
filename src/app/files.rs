//! Files coming into and going out of the app: images and folders dropped on the window or chosen in the page
//! (decoded on a worker thread natively, a few files per frame in the browser), checkpoint files loaded, and the
//! one-file checkpoint saved without blocking (written to disk natively, offered as a download in the browser).

use super::{BeitApp, View};
use crate::data::dataset::Dataset;

/// Where a finished one-file checkpoint goes.
pub enum SaveTarget {
    /// Written to this path (native).
    #[cfg(not(target_arch = "wasm32"))]
    Path(std::path::PathBuf),
    /// Offered to the visitor as a download (browser).
    #[cfg(target_arch = "wasm32")]
    Download,
}

impl BeitApp {
    /// Start saving the networks as one file; it is written (or downloaded) when the GPU has copied them.
    pub fn save_one_file(&mut self, target: SaveTarget) {
        if self.export.is_some() {
            self.notice = Some("a checkpoint is already being saved".into());
            return;
        }
        if let Some(s) = self.session.as_ref() {
            self.export = Some((s.start_export(), target));
        }
    }

    /// Finish a save whose copies have come back.
    pub(super) fn poll_export(&mut self, ctx: &egui::Context) {
        let (Some((export, _)), Some(s)) = (self.export.as_mut(), self.session.as_mut()) else {
            return;
        };
        let Some(result) = export.poll(&s.ctx) else {
            ctx.request_repaint();
            return;
        };
        let Some((_, target)) = self.export.take() else {
            return;
        };
        let bytes = match result {
            Ok(b) => b,
            Err(e) => {
                s.error = Some(e);
                return;
            }
        };
        let size = format!("{:.1} MB", bytes.len() as f64 / 1e6);
        match target {
            #[cfg(not(target_arch = "wasm32"))]
            SaveTarget::Path(p) => {
                let written = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .map_err(|e| crate::model::ModelError::io(&p, e))
                    .and_then(|()| crate::tensorfile::write_atomic(&p, &bytes));
                match written {
                    Ok(()) => self.notice = Some(format!("saved {} ({size})", p.display())),
                    Err(e) => s.error = Some(e.to_string()),
                }
            }
            #[cfg(target_arch = "wasm32")]
            SaveTarget::Download => match self.dropped.download(super::bundle::FILE_NAME, &bytes) {
                Ok(()) => {
                    self.notice = Some(format!("saved {} ({size})", super::bundle::FILE_NAME));
                }
                Err(e) => s.error = Some(e),
            },
        }
    }

    /// Load checkpoint files (one-file checkpoints or HuggingFace-style files chosen together).
    pub fn load_checkpoint_files(&mut self, files: Vec<(String, Vec<u8>)>) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.load_files(&files) {
            Ok(msg) => {
                self.notice = Some(msg);
                self.reshuffle();
            }
            Err(e) => s.error = Some(e),
        }
    }

    /// A dataset has been read: it replaces the data (split 9:1 for validation).
    fn use_dataset(&mut self, source: String, result: Result<Dataset, String>) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match result {
            Ok(all) => {
                let skipped = all.skipped_summary();
                let n = all.len();
                let classes = if all.labels.is_some() {
                    format!(" in {} classes", all.class_names.len())
                } else {
                    " (no labels: pretraining only)".to_string()
                };
                let (train, val) = all.split(10);
                s.set_data(source.clone(), train, val);
                self.notice = Some(format!(
                    "opened {n} images from {source}{classes}{}",
                    skipped.map(|x| format!("; {x}")).unwrap_or_default()
                ));
                self.reshuffle();
            }
            Err(e) => s.error = Some(e),
        }
    }

    /// How files become images for the current model: its channels, downscaled to twice its image size.
    fn decode(&self) -> crate::data::dataset::Decode {
        self.session
            .as_ref()
            .map_or(crate::data::dataset::Decode::from(1), |s| {
                crate::data::dataset::Decode::for_model(
                    s.mim.cfg.num_channels,
                    s.mim.cfg.image_size,
                )
            })
    }

    /// One image replaces the selected sample.
    fn use_single_image(&mut self, name: &str, bytes: Result<Vec<u8>, String>) {
        let decode = self.decode();
        let decoded = bytes.and_then(|b| crate::data::dataset::decode_bytes(&b, decode));
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match decoded {
            // On the segmentation view (with a model to run), the image is segmented.
            Ok(img) if self.view == View::Segment && s.seg_preview.is_some() => {
                self.views.seg_custom_generation += 1;
                let short = std::path::Path::new(name)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(name);
                self.views.seg_custom = Some((short.to_string(), img));
                self.notice = Some(format!("{name} is now the segmented image"));
            }
            Ok(img) => {
                self.inspector.replace_image(&s.mim, self.views.sample, img);
                self.notice = Some(format!("{name} is now sample {}", self.views.sample + 1));
                if !matches!(self.view, View::Attention | View::Tokens | View::Mim) {
                    self.view = View::Paint;
                }
            }
            Err(e) => s.error = Some(format!("{name} could not be read as an image: {e}")),
        }
    }

    /// Files dropped on the page or chosen with a picker, once all of a set have arrived; a set of images is
    /// then decoded a few files per frame.
    #[cfg(target_arch = "wasm32")]
    pub(super) fn take_dropped(&mut self, ctx: &egui::Context) {
        use super::web_files::Purpose;
        use crate::data::dataset::FolderLoader;
        let files = ctx.input(|i| i.raw.dropped_files.clone());
        self.dropped.read(files);
        let decode = self.decode();
        for arrived in self.dropped.complete() {
            let mut files = arrived.files;
            if arrived.purpose == Purpose::Images && files.len() == 1 {
                if let Some((name, bytes)) = files.pop() {
                    self.use_single_image(&name, bytes);
                }
                continue;
            }
            let mut read = Vec::with_capacity(files.len());
            for (name, bytes) in files {
                match bytes {
                    Ok(b) => read.push((name, b)),
                    Err(e) => {
                        if let Some(s) = self.session.as_mut() {
                            s.error = Some(format!("{name} could not be read: {e}"));
                        }
                    }
                }
            }
            match arrived.purpose {
                Purpose::Checkpoint => self.load_checkpoint_files(read),
                Purpose::Images | Purpose::Folder => {
                    let source = read
                        .first()
                        .filter(|_| arrived.purpose == Purpose::Folder)
                        .and_then(|(n, _)| n.split('/').next())
                        .map_or("your files".to_string(), |root| format!("folder {root}"));
                    let loader = if arrived.purpose == Purpose::Folder {
                        FolderLoader::from_relative_paths(&source, read, decode)
                    } else {
                        let pending = read
                            .into_iter()
                            .map(|(name, b)| crate::data::dataset::PendingFile {
                                name,
                                label: None,
                                bytes: Some(b),
                            })
                            .collect();
                        FolderLoader::from_files(&source, pending, Vec::new(), decode)
                    };
                    log::info!(
                        "beitlab files: decoding {} files from {source}",
                        loader.progress().1
                    );
                    self.web_loader = Some((source, loader));
                }
            }
        }
        // A set of images is decoded a few files per frame.
        if let Some((_, loader)) = self.web_loader.as_mut() {
            loader.step(16);
            if loader.is_done() {
                if let Some((source, loader)) = self.web_loader.take() {
                    self.use_dataset(source, loader.finish().map_err(|e| e.to_string()));
                }
            }
            ctx.request_repaint();
        }
    }

    /// Files dropped on the window: a folder becomes the dataset, a `.safetensors` file is loaded as a
    /// checkpoint, an image replaces the selected sample.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn take_dropped(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for f in dropped {
            let path = f.path().to_path_buf();
            if path.is_dir() {
                self.open_data(path.display().to_string());
                continue;
            }
            let name = path.display().to_string();
            if name.to_ascii_lowercase().ends_with(".safetensors") {
                if let Some(s) = self.session.as_mut() {
                    match s.load(&path) {
                        Ok(msg) => self.notice = Some(msg),
                        Err(e) => s.error = Some(e),
                    }
                }
                self.reshuffle();
                continue;
            }
            self.use_single_image(&name, f.bytes());
        }
    }

    /// Start loading a folder of images (one sub-folder per class for fine-tuning) as the dataset.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_data(&mut self, path: String) {
        let decode = self.decode();
        self.loading = Some((
            path.clone(),
            crate::data::dataset::load_in_background(path, decode),
        ));
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn poll_loading(&mut self) {
        let Some((source, rx)) = &self.loading else {
            return;
        };
        let result = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(
                crate::data::dataset::DataError::Invalid("the loader stopped unexpectedly".into()),
            ),
        };
        let source = source.clone();
        self.loading = None;
        self.use_dataset(source, result.map_err(|e| e.to_string()));
    }
}
