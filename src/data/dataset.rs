//! Datasets: the built-in Fashion-MNIST subset (embedded in the binary), IDX files (the MNIST distribution
//! format, `/usr/share/datasets/fashion-mnist` as is), and image folders (one subfolder per class, labels from
//! the sorted subfolder names, or a flat folder without labels). Images keep their own size; every image is
//! converted to the requested channel count (1: luma, 3: RGB). Unreadable files are skipped and counted.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One decoded image: `height x width x channels` bytes, row-major, channels last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub channels: u32,
    pub data: Vec<u8>,
}

/// A set of images with optional labels.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    pub images: Vec<Image>,
    /// One per image when the source has labels.
    pub labels: Option<Vec<u32>>,
    pub class_names: Vec<String>,
    /// Files that could not be read as images: (path, reason), in the order met.
    pub skipped: Vec<(String, String)>,
    /// Where it came from, for messages.
    pub source: String,
}

/// Everything that can go wrong loading data, one sentence each.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Which split of the built-in data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

const BUILTIN_TRAIN_IMAGES: &[u8] =
    include_bytes!("../../assets/fashion-mnist/fashion-mnist-small-train-images.u8.gz");
const BUILTIN_TRAIN_LABELS: &[u8] =
    include_bytes!("../../assets/fashion-mnist/fashion-mnist-small-train-labels.u8.gz");
const BUILTIN_VAL_IMAGES: &[u8] =
    include_bytes!("../../assets/fashion-mnist/fashion-mnist-small-val-images.u8.gz");
const BUILTIN_VAL_LABELS: &[u8] =
    include_bytes!("../../assets/fashion-mnist/fashion-mnist-small-val-labels.u8.gz");

fn gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| DataError::Invalid(format!("{what} is not valid gzip data ({e})")))?;
    Ok(out)
}

/// Gray 28 x 28 images in raw bytes -> images with `channels` channels.
fn gray_images(raw: &[u8], size: u32, channels: u32) -> Vec<Image> {
    let per = (size * size) as usize;
    raw.chunks_exact(per)
        .map(|px| to_channels(size, size, 1, px, channels))
        .collect()
}

/// Convert interleaved pixels with `from` channels (1 gray, 3 RGB) to `to` channels.
fn to_channels(width: u32, height: u32, from: u32, px: &[u8], to: u32) -> Image {
    let data = match (from, to) {
        (a, b) if a == b => px.to_vec(),
        (1, 3) => px.iter().flat_map(|&g| [g, g, g]).collect(),
        (3, 1) => px
            .chunks_exact(3)
            .map(|c| {
                ((299 * c[0] as u32 + 587 * c[1] as u32 + 114 * c[2] as u32 + 500) / 1000) as u8
            })
            .collect(),
        _ => px.to_vec(),
    };
    Image {
        width,
        height,
        channels: to,
        data,
    }
}

/// "10th", "2nd", "3rd", "21st".
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl Dataset {
    /// Split off every `every`-th image of each class (every `every`-th image when unlabelled) as a validation
    /// set, keeping labels, class names and the skipped-file list (on the training part). A set too small to
    /// hold any image out is used for both, and the validation part's `source` says so.
    pub fn split(self, every: usize) -> (Dataset, Dataset) {
        let every = every.max(2);
        let part = |source: String, skipped| Dataset {
            labels: self.labels.as_ref().map(|_| Vec::new()),
            class_names: self.class_names.clone(),
            source,
            skipped,
            ..Default::default()
        };
        let mut train = part(self.source.clone(), self.skipped.clone());
        let per_class = if self.labels.is_some() {
            " of each class"
        } else {
            ""
        };
        let mut val = part(
            format!(
                "{} (every {} image{per_class})",
                self.source,
                ordinal(every)
            ),
            Vec::new(),
        );
        // Images seen so far per class (one counter for an unlabelled set).
        let mut seen: Vec<usize> = vec![0; self.class_names.len().max(1)];
        for (i, img) in self.images.into_iter().enumerate() {
            let label = self.labels.as_ref().map(|l| l[i]);
            let slot = label.map_or(0, |l| l as usize).min(seen.len() - 1);
            let counter = &mut seen[slot];
            *counter += 1;
            let to = if counter.is_multiple_of(every) {
                &mut val
            } else {
                &mut train
            };
            if let (Some(l), Some(labels)) = (label, to.labels.as_mut()) {
                labels.push(l);
            }
            to.images.push(img);
        }
        if val.is_empty() {
            val.images = train.images.clone();
            val.labels = train.labels.clone();
            val.source = format!(
                "{} (too few images to hold any out: the training images again)",
                self.source
            );
        }
        (train, val)
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The built-in Fashion-MNIST subset (train 10,000 / val 2,000 images of 28 x 28), from the binary itself.
    pub fn builtin(split: Split, channels: u32) -> Result<Self, DataError> {
        let (img, lab) = match split {
            Split::Train => (BUILTIN_TRAIN_IMAGES, BUILTIN_TRAIN_LABELS),
            Split::Val => (BUILTIN_VAL_IMAGES, BUILTIN_VAL_LABELS),
        };
        let raw = gunzip(img, "the built-in images")?;
        let labels: Vec<u32> = gunzip(lab, "the built-in labels")?
            .into_iter()
            .map(u32::from)
            .collect();
        let images = gray_images(&raw, 28, channels);
        if images.len() != labels.len() {
            return Err(DataError::Invalid(
                "the built-in dataset has different numbers of images and labels".into(),
            ));
        }
        Ok(Self {
            images,
            labels: Some(labels),
            class_names: FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
            skipped: Vec::new(),
            source: format!(
                "built-in Fashion-MNIST {}",
                if split == Split::Train {
                    "train"
                } else {
                    "val"
                }
            ),
        })
    }

    /// IDX image + label files (gzip or raw). `images` is the idx3 file; labels are looked up beside it
    /// (`...images-idx3-ubyte` -> `...labels-idx1-ubyte`, same compression) and used when present.
    pub fn idx(images: &Path, channels: u32) -> Result<Self, DataError> {
        let read = |p: &Path| -> Result<Vec<u8>, DataError> {
            let raw = std::fs::read(p).map_err(|e| io(p, e))?;
            if raw.starts_with(&[0x1f, 0x8b]) {
                gunzip(&raw, &p.display().to_string())
            } else {
                Ok(raw)
            }
        };
        let raw = read(images)?;
        let bad = |m: &str| DataError::Invalid(format!("{}: {m}", images.display()));
        if raw.len() < 16 || raw[..4] != [0, 0, 8, 3] {
            return Err(bad("not an IDX image file (magic 0x00000803 expected)"));
        }
        let be = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let (n, h, w) = (be(4) as usize, be(8), be(12));
        if raw.len() < 16 + n * (h * w) as usize {
            return Err(bad(&format!(
                "truncated: {n} images of {h} x {w} announced, {} bytes present",
                raw.len()
            )));
        }
        let images_v: Vec<Image> = raw[16..16 + n * (h * w) as usize]
            .chunks_exact((h * w) as usize)
            .map(|px| to_channels(w, h, 1, px, channels))
            .collect();
        let name = images.file_name().and_then(|s| s.to_str()).unwrap_or("");
        let label_path = images.with_file_name(name.replace("images-idx3", "labels-idx1"));
        let labels = if label_path != images && label_path.exists() {
            let l = read(&label_path)?;
            if l.len() < 8 || l[..4] != [0, 0, 8, 1] {
                return Err(DataError::Invalid(format!(
                    "{}: not an IDX label file (magic 0x00000801 expected)",
                    label_path.display()
                )));
            }
            let count = u32::from_be_bytes([l[4], l[5], l[6], l[7]]) as usize;
            if count != n || l.len() < 8 + n {
                return Err(DataError::Invalid(format!(
                    "{}: {count} labels for {n} images",
                    label_path.display()
                )));
            }
            Some(l[8..8 + n].iter().map(|&v| v as u32).collect())
        } else {
            None
        };
        if n == 0 {
            return Err(bad("holds no images"));
        }
        let classes = labels
            .as_ref()
            .map_or(0, |l: &Vec<u32>| l.iter().max().map_or(0, |m| m + 1));
        Ok(Self {
            images: images_v,
            labels,
            class_names: (0..classes).map(|c| c.to_string()).collect(),
            skipped: Vec::new(),
            source: images.display().to_string(),
        })
    }

    /// A folder: one subfolder per class (labels from the sorted names), or images directly (no labels).
    /// A directory holding IDX files is read as IDX (the train split, or `t10k` when `test` is true).
    pub fn folder(dir: &Path, channels: u32, test_split: bool) -> Result<Self, DataError> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        entries.sort();
        let prefix = if test_split {
            "t10k-images-idx3-ubyte"
        } else {
            "train-images-idx3-ubyte"
        };
        if let Some(idx) = entries.iter().find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        }) {
            return Self::idx(idx, channels);
        }
        let mut loader = FolderLoader::scan(dir, channels, entries)?;
        while !loader.is_done() {
            loader.step(256);
        }
        loader.finish()
    }

    /// One line about skipped files, naming the first few; `None` when nothing was skipped.
    pub fn skipped_summary(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let first: Vec<String> = self
            .skipped
            .iter()
            .take(3)
            .map(|(p, r)| format!("{p}: {r}"))
            .collect();
        Some(format!(
            "skipped {} unreadable file{}: {}{}",
            self.skipped.len(),
            if self.skipped.len() == 1 { "" } else { "s" },
            first.join("; "),
            if self.skipped.len() > 3 { "; ..." } else { "" }
        ))
    }

    /// Training and validation sets for a command: the built-in splits for `builtin`; otherwise `spec` with
    /// every 10th image of each class held out, or all of `spec` for training and `val_spec` for validation
    /// (its classes matched to the training set's by name). Skipped files are reported by the caller.
    pub fn open_train_val(
        spec: &str,
        val_spec: Option<&str>,
        channels: u32,
    ) -> Result<(Dataset, Dataset), DataError> {
        if spec == "builtin" || spec == "builtin:train" {
            let val = match val_spec {
                None => Self::builtin(Split::Val, channels)?,
                Some(v) => {
                    Self::open(v, channels)?.with_classes_of(&FASHION_CLASSES.map(String::from))?
                }
            };
            return Ok((Self::builtin(Split::Train, channels)?, val));
        }
        let all = Self::open(spec, channels)?;
        match val_spec {
            None => Ok(all.split(10)),
            Some(v) => {
                let val = Self::open(v, channels)?.with_classes_of(&all.class_names)?;
                Ok((all, val))
            }
        }
    }

    /// Renumber the labels so that class names match `names` (the training set's classes): a validation or
    /// evaluation set may hold fewer classes, in any order. An unlabelled set stays unlabelled; a class that
    /// `names` lacks is an error naming it. IDX sets (numbered classes) keep their numbers.
    pub fn with_classes_of(mut self, names: &[String]) -> Result<Self, DataError> {
        let Some(labels) = self.labels.as_mut() else {
            return Ok(self);
        };
        if self.class_names == names {
            return Ok(self);
        }
        let numbered = |n: &[String]| n.iter().enumerate().all(|(i, s)| s == &i.to_string());
        if numbered(&self.class_names) {
            if let Some(&l) = labels.iter().find(|&&l| l as usize >= names.len()) {
                return Err(DataError::Invalid(format!(
                    "{} has class {l}, but the training data has {} classes",
                    self.source,
                    names.len()
                )));
            }
            self.class_names = names.to_vec();
            return Ok(self);
        }
        let mut map = Vec::with_capacity(self.class_names.len());
        for name in &self.class_names {
            match names.iter().position(|n| n == name) {
                Some(i) => map.push(i as u32),
                None => {
                    return Err(DataError::Invalid(format!(
                        "{} has a class \"{name}\" that the training data lacks (its classes: {})",
                        self.source,
                        names.join(", ")
                    )))
                }
            }
        }
        for l in labels.iter_mut() {
            *l = map[*l as usize];
        }
        self.class_names = names.to_vec();
        Ok(self)
    }

    /// Load `builtin`, `builtin:val`, an IDX file, or a folder.
    pub fn open(spec: &str, channels: u32) -> Result<Self, DataError> {
        match spec {
            "builtin" | "builtin:train" => Self::builtin(Split::Train, channels),
            "builtin:val" => Self::builtin(Split::Val, channels),
            path => {
                let p = Path::new(path);
                if p.is_dir() {
                    Self::folder(p, channels, false)
                } else if p.is_file() {
                    Self::idx(p, channels)
                } else {
                    Err(DataError::Invalid(format!(
                        "{path}: no such file or folder (use \"builtin\" for the built-in data)"
                    )))
                }
            }
        }
    }
}

/// Decode one image file (PNG, JPEG, BMP, GIF first frame, WebP, TIFF; gray, RGB, RGBA, 16-bit) to `channels`.
pub fn decode_file(path: &Path, channels: u32) -> Result<Image, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode_bytes(&bytes, channels)
}

/// Decode image bytes to `channels` (1 or 3).
pub fn decode_bytes(bytes: &[u8], channels: u32) -> Result<Image, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    Ok(if channels == 1 {
        Image {
            width: w,
            height: h,
            channels: 1,
            data: img.to_luma8().into_raw(),
        }
    } else {
        Image {
            width: w,
            height: h,
            channels: 3,
            data: img.to_rgb8().into_raw(),
        }
    })
}

/// One file waiting to be decoded: a path on disk, or bytes handed over by the caller (a browser's file picker).
#[derive(Clone, Debug)]
pub struct PendingFile {
    pub name: String,
    pub label: Option<u32>,
    pub bytes: Option<Vec<u8>>,
}

/// Decodes a folder's images a bounded number at a time, so a caller can spread the work over frames (browser)
/// or run it on a worker thread (native) and show progress. [`Dataset::folder`] runs it to the end.
pub struct FolderLoader {
    files: Vec<PendingFile>,
    next: usize,
    channels: u32,
    dataset: Dataset,
    labels: Vec<u32>,
    labelled: bool,
}

impl FolderLoader {
    /// Files given directly (name, class index, bytes); `class_names` empty for an unlabelled set.
    pub fn from_files(
        source: &str,
        files: Vec<PendingFile>,
        class_names: Vec<String>,
        channels: u32,
    ) -> Self {
        let labelled = !class_names.is_empty();
        Self {
            files,
            next: 0,
            channels,
            dataset: Dataset {
                class_names,
                source: source.to_string(),
                ..Default::default()
            },
            labels: Vec::new(),
            labelled,
        }
    }

    /// Files of a folder chosen in a browser, named by their path relative to the folder's parent
    /// (`photos/cat/1.png`): when every file sits one sub-folder deep, the sub-folders are the classes (sorted);
    /// otherwise the set is unlabelled. Hidden files (a name starting with `.`) are left out.
    pub fn from_relative_paths(source: &str, files: Vec<(String, Vec<u8>)>, channels: u32) -> Self {
        let parts = |p: &str| -> Vec<String> {
            p.split(['/', '\\'])
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        };
        let files: Vec<(Vec<String>, String, Vec<u8>)> = files
            .into_iter()
            .map(|(name, bytes)| (parts(&name), name, bytes))
            .filter(|(p, _, _)| !p.last().is_some_and(|f| f.starts_with('.')))
            .collect();
        let labelled = !files.is_empty() && files.iter().all(|(p, _, _)| p.len() == 3);
        let mut class_names: Vec<String> = Vec::new();
        if labelled {
            class_names = files.iter().map(|(p, _, _)| p[1].clone()).collect();
            class_names.sort();
            class_names.dedup();
        }
        let mut pending: Vec<PendingFile> = files
            .into_iter()
            .map(|(p, name, bytes)| PendingFile {
                label: labelled
                    .then(|| class_names.binary_search(&p[1]).ok().map(|i| i as u32))
                    .flatten(),
                name,
                bytes: Some(bytes),
            })
            .collect();
        pending.sort_by(|a, b| (a.label, &a.name).cmp(&(b.label, &b.name)));
        Self::from_files(source, pending, class_names, channels)
    }

    /// List a folder's files: per-class subfolders (sorted) or the folder's own files.
    fn scan(dir: &Path, channels: u32, entries: Vec<PathBuf>) -> Result<Self, DataError> {
        let visible = |p: &PathBuf| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        };
        let classes: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
        let pending = |p: &Path, label| PendingFile {
            name: p.display().to_string(),
            label,
            bytes: None,
        };
        if classes.is_empty() {
            let files = entries
                .iter()
                .filter(|p| p.is_file() && visible(p))
                .map(|p| pending(p, None))
                .collect();
            return Ok(Self::from_files(
                &dir.display().to_string(),
                files,
                Vec::new(),
                channels,
            ));
        }
        let mut files = Vec::new();
        let mut names = Vec::new();
        for (ci, class_dir) in classes.iter().enumerate() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(class_dir)
                .map_err(|e| io(class_dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && visible(p))
                .collect();
            inner.sort();
            files.extend(inner.iter().map(|p| pending(p, Some(ci as u32))));
            names.push(
                class_dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("?")
                    .to_string(),
            );
        }
        Ok(Self::from_files(
            &dir.display().to_string(),
            files,
            names,
            channels,
        ))
    }

    /// Decode up to `max_files` more files; returns how many were handled.
    pub fn step(&mut self, max_files: usize) -> usize {
        let end = (self.next + max_files).min(self.files.len());
        for i in self.next..end {
            let f = &mut self.files[i];
            let decoded = match f.bytes.take() {
                Some(b) => decode_bytes(&b, self.channels),
                None => decode_file(Path::new(&f.name), self.channels),
            };
            match decoded {
                Ok(img) => {
                    self.dataset.images.push(img);
                    if let Some(l) = f.label {
                        self.labels.push(l);
                    }
                }
                Err(reason) => self.dataset.skipped.push((f.name.clone(), reason)),
            }
        }
        let n = end - self.next;
        self.next = end;
        n
    }

    /// (files handled, files in all).
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.files.len())
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.files.len()
    }

    /// The dataset, or a clear error for an empty one or a class without readable images.
    pub fn finish(mut self) -> Result<Dataset, DataError> {
        if self.labelled {
            for (ci, name) in self.dataset.class_names.iter().enumerate() {
                if !self.labels.contains(&(ci as u32)) {
                    return Err(DataError::Invalid(format!(
                        "class folder {}/{name} holds no readable images",
                        self.dataset.source
                    )));
                }
            }
            self.dataset.labels = Some(self.labels);
        }
        if self.dataset.images.is_empty() {
            let why = self
                .dataset
                .skipped_summary()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            return Err(DataError::Invalid(format!(
                "{} holds no readable images{why}",
                self.dataset.source
            )));
        }
        Ok(self.dataset)
    }
}

/// Load a dataset on a worker thread (native); the receiver yields it when done.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_in_background(
    spec: String,
    channels: u32,
) -> std::sync::mpsc::Receiver<Result<Dataset, DataError>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Dataset::open(&spec, channels));
    });
    rx
}
