//! Datasets: the built-in Fashion-MNIST subset (embedded in the binary), IDX files (the MNIST distribution
//! format, `/usr/share/datasets/fashion-mnist` as is), and image folders (one subfolder per class, labels from
//! the sorted subfolder names, or a flat folder without labels). Images keep their own size; every image is
//! converted to the requested channel count (1: luma, 3: RGB). Unreadable files are skipped and counted.
//!
//! Limits, checked before the memory is taken: an image file may hold at most [`MAX_IMAGE_PIXELS`] pixels (a
//! decompression bomb is refused by its header); a decoded image is downscaled at once so that its shorter side is
//! at most [`Decode::max_short_side`] (twice the model's image size on the command line), so a folder of camera
//! photos costs a few kilobytes per image; IDX files (raw or gzip) may hold at most [`MAX_IDX_BYTES`].

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

/// At most this many pixels in one image file (64 megapixels, e.g. 8000 x 8000).
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;
/// At most this many bytes of IDX data (after gzip), checked against the file's own header first.
pub const MAX_IDX_BYTES: u64 = 4 << 30;

/// How files become images: the channel count and the largest shorter side kept (larger images are
/// downscaled, bilinear with antialiasing, keeping their aspect ratio). A bare channel count converts to
/// `Decode` with a 512-pixel cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decode {
    pub channels: u32,
    pub max_short_side: u32,
}

impl Decode {
    /// Shorter side kept when no model size is known (enough for 224-pixel models with crops).
    pub const DEFAULT_SHORT_SIDE: u32 = 512;

    /// For a model of `image_size` pixels: twice its size kept, so random crops still see full detail.
    pub fn for_model(channels: u32, image_size: u32) -> Self {
        Self {
            channels,
            max_short_side: (2 * image_size).max(32),
        }
    }
}

impl From<u32> for Decode {
    fn from(channels: u32) -> Self {
        Self {
            channels,
            max_short_side: Self::DEFAULT_SHORT_SIDE,
        }
    }
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

/// Decompress gzip data up to `limit` bytes: more is an error when `strict`, else cut off there.
fn gunzip_bounded(
    bytes: &[u8],
    what: &str,
    limit: u64,
    strict: bool,
) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit.saturating_add(strict as u64))
        .read_to_end(&mut out)
        .map_err(|e| DataError::Invalid(format!("{what} is not valid gzip data ({e})")))?;
    if out.len() as u64 > limit {
        return Err(DataError::Invalid(format!(
            "{what} decompresses to more than {} MiB, beitlab's limit for IDX data",
            limit >> 20
        )));
    }
    Ok(out)
}

fn gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    gunzip_bounded(bytes, what, MAX_IDX_BYTES, true)
}

/// The big-endian u32 at byte `i` of `b` (IDX headers), as u64.
fn be_u32(b: &[u8], i: usize) -> u64 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64
}

/// Bytes of an IDX image file announcing `n` images of `h` x `w`: header and pixels, saturating (three u32 sides
/// can exceed u64).
fn idx_image_bytes(n: u64, h: u64, w: u64) -> u64 {
    n.saturating_mul(h).saturating_mul(w).saturating_add(16)
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
        // The file's bytes; gzip data is decompressed only as far as its header announces (a stream that goes
        // on is cut there, so a gzip bomb costs nothing), and an announcement past the limit is refused first.
        let read =
            |p: &Path, header: usize, announced: fn(&[u8]) -> u64| -> Result<Vec<u8>, DataError> {
                let size = std::fs::metadata(p).map_err(|e| io(p, e))?.len();
                let limit = |bytes: u64| {
                    DataError::Invalid(format!(
                        "{}: {} MiB of IDX data is above beitlab's limit of {} MiB",
                        p.display(),
                        bytes >> 20,
                        MAX_IDX_BYTES >> 20
                    ))
                };
                if size > MAX_IDX_BYTES {
                    return Err(limit(size));
                }
                let raw = std::fs::read(p).map_err(|e| io(p, e))?;
                if !raw.starts_with(&[0x1f, 0x8b]) {
                    return Ok(raw);
                }
                let what = p.display().to_string();
                let head = gunzip_bounded(&raw, &what, header as u64, false)?;
                if head.len() < header {
                    return Ok(head);
                }
                let need = announced(&head);
                if need > MAX_IDX_BYTES {
                    return Err(limit(need));
                }
                gunzip_bounded(&raw, &what, need, false)
            };
        let raw = read(images, 16, |h| {
            idx_image_bytes(be_u32(h, 4), be_u32(h, 8), be_u32(h, 12))
        })?;
        let bad = |m: &str| DataError::Invalid(format!("{}: {m}", images.display()));
        if raw.len() < 16 || raw[..4] != [0, 0, 8, 3] {
            return Err(bad("not an IDX image file (magic 0x00000803 expected)"));
        }
        let be = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let (n, h, w) = (be(4) as usize, be(8), be(12));
        if h == 0 || w == 0 {
            return Err(bad(&format!("announces images of {h} x {w} pixels")));
        }
        // The data must be in the file (a size past u64 saturates, so it never is).
        let need = idx_image_bytes(n as u64, h as u64, w as u64);
        if (raw.len() as u64) < need {
            return Err(bad(&format!(
                "truncated: {n} images of {h} x {w} announced, {} bytes present",
                raw.len()
            )));
        }
        let images_v: Vec<Image> = raw[16..need as usize]
            .chunks_exact((h * w) as usize)
            .map(|px| to_channels(w, h, 1, px, channels))
            .collect();
        let name = images.file_name().and_then(|s| s.to_str()).unwrap_or("");
        let label_path = images.with_file_name(name.replace("images-idx3", "labels-idx1"));
        let labels = if label_path != images && label_path.exists() {
            let l = read(&label_path, 8, |h| 8 + be_u32(h, 4))?;
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
    pub fn folder(
        dir: &Path,
        decode: impl Into<Decode>,
        test_split: bool,
    ) -> Result<Self, DataError> {
        let decode = decode.into();
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
            return Self::idx(idx, decode.channels);
        }
        let mut loader = FolderLoader::scan(dir, decode, entries)?;
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
        decode: impl Into<Decode>,
    ) -> Result<(Dataset, Dataset), DataError> {
        let decode = decode.into();
        let channels = decode.channels;
        if spec == "builtin" || spec == "builtin:train" {
            let val = match val_spec {
                None => Self::builtin(Split::Val, channels)?,
                Some(v) => {
                    Self::open(v, decode)?.with_classes_of(&FASHION_CLASSES.map(String::from))?
                }
            };
            return Ok((Self::builtin(Split::Train, channels)?, val));
        }
        let all = Self::open(spec, decode)?;
        match val_spec {
            None => Ok(all.split(10)),
            Some(v) => {
                let val = Self::open(v, decode)?.with_classes_of(&all.class_names)?;
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
    pub fn open(spec: &str, decode: impl Into<Decode>) -> Result<Self, DataError> {
        let decode = decode.into();
        let channels = decode.channels;
        match spec {
            "builtin" | "builtin:train" => Self::builtin(Split::Train, channels),
            "builtin:val" => Self::builtin(Split::Val, channels),
            path => {
                let p = Path::new(path);
                if p.is_dir() {
                    Self::folder(p, decode, false)
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

/// Decode one image file (PNG, JPEG, BMP, GIF first frame, WebP, TIFF; gray, RGB, RGBA, 16-bit, palette, CMYK).
pub fn decode_file(path: &Path, decode: impl Into<Decode>) -> Result<Image, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode_bytes(&bytes, decode)
}

/// Decode image bytes to `decode.channels` (1 or 3), refusing more than [`MAX_IMAGE_PIXELS`] pixels before
/// decoding and downscaling to `decode.max_short_side`.
pub fn decode_bytes(bytes: &[u8], decode: impl Into<Decode>) -> Result<Image, String> {
    let decode = decode.into();
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())
    };
    let (w, h) = reader()?.into_dimensions().map_err(|e| e.to_string())?;
    if w == 0 || h == 0 {
        return Err("image has no pixels".into());
    }
    let pixels = w as u64 * h as u64;
    if pixels > MAX_IMAGE_PIXELS {
        return Err(format!(
            "{w} x {h} pixels ({} megapixels) is above beitlab's limit of {} megapixels per image",
            pixels >> 20,
            MAX_IMAGE_PIXELS >> 20
        ));
    }
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // The decoder's own buffers: 16-bit RGBA of the announced size and some room.
    limits.max_alloc = Some(pixels * 8 + (16 << 20));
    r.limits(limits);
    let img = r.decode().map_err(|e| e.to_string())?;
    let img = shrink_to(img, decode.max_short_side);
    let (w, h) = (img.width(), img.height());
    Ok(if decode.channels == 1 {
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

/// `img` with its shorter side at most `max_short_side` (aspect kept; converted to 8 bits first, so the copy
/// is small), or unchanged.
fn shrink_to(img: image::DynamicImage, max_short_side: u32) -> image::DynamicImage {
    let (w, h) = (img.width(), img.height());
    let short = w.min(h);
    if max_short_side == 0 || short <= max_short_side {
        return img;
    }
    let scale = max_short_side as f64 / short as f64;
    let nw = ((w as f64 * scale).round() as u32).max(1);
    let nh = ((h as f64 * scale).round() as u32).max(1);
    let img = match img.color().has_color() {
        true => image::DynamicImage::ImageRgb8(img.into_rgb8()),
        false => image::DynamicImage::ImageLuma8(img.into_luma8()),
    };
    img.resize_exact(nw, nh, image::imageops::FilterType::Triangle)
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
    decode: Decode,
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
        decode: impl Into<Decode>,
    ) -> Self {
        let labelled = !class_names.is_empty();
        Self {
            files,
            next: 0,
            decode: decode.into(),
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
    pub fn from_relative_paths(
        source: &str,
        files: Vec<(String, Vec<u8>)>,
        decode: impl Into<Decode>,
    ) -> Self {
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
        Self::from_files(source, pending, class_names, decode)
    }

    /// List a folder's files: per-class subfolders (sorted) or the folder's own files.
    fn scan(dir: &Path, decode: Decode, entries: Vec<PathBuf>) -> Result<Self, DataError> {
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
                .filter(|p| listed_file(p) && visible(p))
                .map(|p| pending(p, None))
                .collect();
            return Ok(Self::from_files(
                &dir.display().to_string(),
                files,
                Vec::new(),
                decode,
            ));
        }
        let mut files = Vec::new();
        let mut names = Vec::new();
        let mut loops = Vec::new();
        let classes: Vec<&PathBuf> = classes
            .into_iter()
            .filter(|c| {
                let back = leads_back(c, dir);
                if back {
                    loops.push((
                        c.display().to_string(),
                        "a folder link that leads back to the data folder (a loop), left out"
                            .to_string(),
                    ));
                }
                !back
            })
            .collect();
        for (ci, class_dir) in classes.iter().enumerate() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(class_dir)
                .map_err(|e| io(class_dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| listed_file(p) && visible(p))
                .collect();
            inner.sort();
            files.extend(inner.iter().map(|p| pending(p, Some(ci as u32))));
            names.push(
                class_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
        }
        let mut loader = Self::from_files(&dir.display().to_string(), files, names, decode);
        loader.dataset.skipped = loops;
        Ok(loader)
    }

    /// Decode up to `max_files` more files; returns how many were handled.
    pub fn step(&mut self, max_files: usize) -> usize {
        let end = (self.next + max_files).min(self.files.len());
        for i in self.next..end {
            let f = &mut self.files[i];
            let decoded = match f.bytes.take() {
                Some(b) => decode_bytes(&b, self.decode),
                None => decode_file(Path::new(&f.name), self.decode),
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

/// Whether a folder entry is listed as a file: anything that is not a folder (following links). A dangling
/// link, a link loop, a FIFO or a device is listed and then skipped with its reason, never read.
fn listed_file(p: &Path) -> bool {
    !p.is_dir()
}

/// Whether `class_dir` (a link, say) leads back to `dir` or a folder above it: a loop, left out.
fn leads_back(class_dir: &Path, dir: &Path) -> bool {
    match (std::fs::canonicalize(class_dir), std::fs::canonicalize(dir)) {
        (Ok(c), Ok(d)) => d.starts_with(&c),
        _ => false,
    }
}

/// Load a dataset on a worker thread (native); the receiver yields it when done.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_in_background(
    spec: String,
    decode: impl Into<Decode>,
) -> std::sync::mpsc::Receiver<Result<Dataset, DataError>> {
    let decode = decode.into();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Dataset::open(&spec, decode));
    });
    rx
}
