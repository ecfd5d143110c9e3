//! Segmentation data: image + label-map pairs. Folders in the ADE20K layout (`images/{training,validation}/NAME.jpg
//! |png` with `annotations/{training,validation}/NAME.png` holding class indices, 0 = "other" and ignored as in
//! ADE20K's reduce-zero-label convention, so stored value v is class v − 1; optional `classes.txt`, one name per
//! line), and a built-in set made reproducibly from the built-in Fashion-MNIST images (items placed on a larger
//! black canvas, every pixel labelled with its item's class or "background"). Joint augmentation: one random
//! resized crop and flip for both, bilinear for the image, nearest for the labels. Bad pairs (a missing or
//! unreadable mask, a mask of another size, a class past `classes.txt`) are skipped and counted.

use std::path::Path;

use super::augment::{resample, Augment};
use super::dataset::{
    decode_bytes, DataError, Dataset, Decode, Image, Split, FASHION_CLASSES, MAX_IMAGE_PIXELS,
};
use crate::rng::Rng;

/// The label of pixels that count towards nothing (the same value the per-pixel loss ignores).
pub const IGNORE: u32 = crate::ops::pixel_loss::IGNORE;

/// Class indices per pixel, row-major, [`IGNORE`] where unlabelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    pub width: u32,
    pub height: u32,
    pub labels: Vec<u32>,
}

impl LabelMap {
    /// Nearest-neighbour resize (labels are never blended).
    pub fn resized(&self, width: u32, height: u32) -> Self {
        let mut labels = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            let sy = ((y as u64 * self.height as u64) / height.max(1) as u64) as u32;
            for x in 0..width {
                let sx = ((x as u64 * self.width as u64) / width.max(1) as u64) as u32;
                labels.push(self.labels[(sy * self.width + sx) as usize]);
            }
        }
        Self {
            width,
            height,
            labels,
        }
    }
}

/// Image / label-map pairs with their class names.
#[derive(Clone, Debug, Default)]
pub struct SegDataset {
    pub images: Vec<Image>,
    /// One per image, the same size as it.
    pub masks: Vec<LabelMap>,
    pub class_names: Vec<String>,
    /// Pairs left out: (path, reason).
    pub skipped: Vec<(String, String)>,
    pub source: String,
}

/// Built-in set: items per canvas and the smallest item pixel (of 255) that belongs to the item.
const ITEMS_PER_CANVAS: usize = 3;
const ITEM_THRESHOLD: u8 = 32;

impl SegDataset {
    pub fn len(&self) -> usize {
        self.images.len()
    }
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
    pub fn classes(&self) -> u32 {
        self.class_names.len() as u32
    }

    /// One line about skipped pairs, if any.
    pub fn skipped_summary(&self) -> Option<String> {
        let (path, why) = self.skipped.first()?;
        Some(format!(
            "skipped {} image/label pairs (first: {path}: {why})",
            self.skipped.len()
        ))
    }

    /// `builtin-seg` (the built-in set) or an ADE20K-layout folder, the training or validation part.
    pub fn open(spec: &str, split: Split, decode: Decode, canvas: u32) -> Result<Self, DataError> {
        if spec == "builtin-seg" {
            Self::builtin(split, decode.channels, canvas)
        } else {
            Self::folder(Path::new(spec), split, decode)
        }
    }

    /// The built-in set: the split's Fashion-MNIST images in order, three per `canvas` x `canvas` black canvas at
    /// seeded positions (later items on top); an item's pixels of at least 32 / 255 take its class (1..=10),
    /// the rest is class 0, "background". The same every time.
    pub fn builtin(split: Split, channels: u32, canvas: u32) -> Result<Self, DataError> {
        if canvas < 28 {
            return Err(DataError::Invalid(format!(
                "the built-in segmentation canvas must be at least 28 pixels (the items' size), not {canvas}"
            )));
        }
        let items = Dataset::builtin(split, 1)?;
        let labels = items
            .labels
            .as_ref()
            .ok_or_else(|| DataError::Invalid("the built-in data has no labels".into()))?;
        let mut rng = Rng::new(if split == Split::Train {
            0x5E6_0001
        } else {
            0x5E6_0002
        });
        let (mut images, mut masks) = (Vec::new(), Vec::new());
        let side = canvas as usize;
        for group in (0..items.len())
            .collect::<Vec<_>>()
            .chunks(ITEMS_PER_CANVAS)
        {
            let mut px = vec![0u8; side * side];
            let mut lab = vec![0u32; side * side];
            for &i in group {
                let (ox, oy) = (
                    (rng.uniform() * (side - 27) as f64) as usize,
                    (rng.uniform() * (side - 27) as f64) as usize,
                );
                let item = &items.images[i].data;
                for y in 0..28 {
                    for x in 0..28 {
                        let v = item[y * 28 + x];
                        if v >= ITEM_THRESHOLD {
                            px[(oy + y) * side + ox + x] = v;
                            lab[(oy + y) * side + ox + x] = labels[i] + 1;
                        }
                    }
                }
            }
            let data = if channels == 3 {
                px.iter().flat_map(|&v| [v, v, v]).collect()
            } else {
                px
            };
            images.push(Image {
                width: canvas,
                height: canvas,
                channels,
                data,
            });
            masks.push(LabelMap {
                width: canvas,
                height: canvas,
                labels: lab,
            });
        }
        let mut class_names = vec!["background".to_string()];
        class_names.extend(FASHION_CLASSES.iter().map(|s| s.to_string()));
        Ok(Self {
            images,
            masks,
            class_names,
            skipped: Vec::new(),
            source: format!(
                "built-in segmentation set ({}, {canvas} x {canvas})",
                if split == Split::Train {
                    "train"
                } else {
                    "val"
                }
            ),
        })
    }

    /// An ADE20K-layout folder's `training` or `validation` part.
    pub fn folder(root: &Path, split: Split, decode: Decode) -> Result<Self, DataError> {
        let part = if split == Split::Train {
            "training"
        } else {
            "validation"
        };
        let (img_dir, ann_dir) = (
            root.join("images").join(part),
            root.join("annotations").join(part),
        );
        if !img_dir.is_dir() {
            return Err(DataError::Invalid(format!(
                "{} has no images/{part} folder (a segmentation folder holds images/{{training,validation}} and annotations/{{training,validation}})",
                root.display()
            )));
        }
        let listed: Option<Vec<String>> = match std::fs::read_to_string(root.join("classes.txt")) {
            Ok(t) => Some(
                t.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(DataError::Io {
                    path: root.join("classes.txt").display().to_string(),
                    source: e,
                })
            }
        };
        let mut names: Vec<_> = std::fs::read_dir(&img_dir)
            .map_err(|e| DataError::Io {
                path: img_dir.display().to_string(),
                source: e,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                    })
            })
            .collect();
        names.sort();
        let mut out = Self {
            source: format!("{} ({part})", root.display()),
            ..Default::default()
        };
        let mut max_class = 0u32;
        for path in names {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mask_path = ann_dir.join(format!("{stem}.png"));
            let shown = path.display().to_string();
            match load_pair(&path, &mask_path, decode, listed.as_ref().map(Vec::len)) {
                Ok((img, mask)) => {
                    max_class = mask
                        .labels
                        .iter()
                        .filter(|&&l| l != IGNORE)
                        .fold(max_class, |m, &l| m.max(l + 1));
                    out.images.push(img);
                    out.masks.push(mask);
                }
                Err(why) => out.skipped.push((shown, why)),
            }
        }
        out.class_names =
            listed.unwrap_or_else(|| (1..=max_class).map(|c| format!("class {c}")).collect());
        if out.images.is_empty() {
            return Err(DataError::Invalid(format!(
                "{} holds no readable image/label pairs{}",
                img_dir.display(),
                out.skipped_summary()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            )));
        }
        Ok(out)
    }
}

/// One image and its label map, the map resized (nearest) to the decoded image's size. `classes`: the count from
/// classes.txt, when there is one (a larger stored class is an error).
fn load_pair(
    image: &Path,
    mask: &Path,
    decode: Decode,
    classes: Option<usize>,
) -> Result<(Image, LabelMap), String> {
    let bytes = std::fs::read(image).map_err(|e| e.to_string())?;
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    let img = decode_bytes(&bytes, decode)?;
    if !mask.is_file() {
        return Err(format!("no label map {}", mask.display()));
    }
    let mb = std::fs::read(mask).map_err(|e| format!("label map: {e}"))?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&mb))
        .with_guessed_format()
        .map_err(|e| format!("label map: {e}"))?;
    let (mw, mh) = reader
        .into_dimensions()
        .map_err(|e| format!("label map: {e}"))?;
    if (mw, mh) != (w, h) {
        return Err(format!(
            "the label map is {mw} x {mh} but the image {w} x {h}"
        ));
    }
    if mw as u64 * mh as u64 > MAX_IMAGE_PIXELS {
        return Err("the label map is too large".into());
    }
    // Class indices: the gray value of 8- or 16-bit gray maps, the red channel of colour ones.
    let values: Vec<u32> = match image::load_from_memory(&mb)
        .map_err(|e| format!("label map: {e}"))?
    {
        image::DynamicImage::ImageLuma8(g) => g.into_raw().into_iter().map(u32::from).collect(),
        image::DynamicImage::ImageLuma16(g) => g.into_raw().into_iter().map(u32::from).collect(),
        other => other.to_rgb8().pixels().map(|p| p.0[0] as u32).collect(),
    };
    let mut labels = Vec::with_capacity((w * h) as usize);
    for v in values {
        let l = if v == 0 { IGNORE } else { v - 1 };
        if let Some(k) = classes {
            if l != IGNORE && l as usize >= k {
                return Err(format!("class {v} is past the {k} classes of classes.txt"));
            }
        }
        labels.push(l);
    }
    let map = LabelMap {
        width: w,
        height: h,
        labels,
    };
    let (iw, ih) = (img.width, img.height);
    Ok((img, map.resized(iw, ih)))
}

/// One augmented pair: `pixels` (C, S, S) normalised and `labels` (S·S), from the same random resized crop and
/// flip (bilinear for the image, nearest for the labels); the same random numbers as [`Augment::apply`].
pub fn augment_pair(
    aug: &Augment,
    img: &Image,
    mask: &LabelMap,
    rng: &mut Rng,
    pixels: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) {
    let crop = aug.crop_box(img.width, img.height, rng);
    let flip = aug.flip && rng.uniform() < 0.5;
    resample(img, crop, aug.size, flip, &aug.mean, &aug.std, pixels);
    nearest_labels(mask, crop, aug.size, flip, labels);
}

/// The evaluation pair: the whole image resized to S x S (no crop, so every labelled pixel is scored).
pub fn eval_pair(
    aug: &Augment,
    img: &Image,
    mask: &LabelMap,
    pixels: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) {
    let crop = (0.0, 0.0, img.width as f64, img.height as f64);
    resample(img, crop, aug.size, false, &aug.mean, &aug.std, pixels);
    nearest_labels(mask, crop, aug.size, false, labels);
}

/// Labels of the crop (x, y, w, h) at size x size, nearest to each output pixel's centre, as [`resample`] places
/// them (half-pixel centres, the same flip).
fn nearest_labels(
    mask: &LabelMap,
    crop: (f64, f64, f64, f64),
    size: u32,
    flip: bool,
    out: &mut Vec<u32>,
) {
    let (cx, cy, cw, ch) = crop;
    let base = out.len();
    out.resize(base + (size * size) as usize, IGNORE);
    for oy in 0..size {
        let sy = (cy + (oy as f64 + 0.5) * ch / size as f64)
            .floor()
            .clamp(0.0, mask.height as f64 - 1.0) as u32;
        for ox in 0..size {
            let sx = (cx + (ox as f64 + 0.5) * cw / size as f64)
                .floor()
                .clamp(0.0, mask.width as f64 - 1.0) as u32;
            let dst = if flip { size - 1 - ox } else { ox };
            out[base + (oy * size + dst) as usize] = mask.labels[(sy * mask.width + sx) as usize];
        }
    }
}
