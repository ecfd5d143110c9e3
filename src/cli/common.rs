//! What the commands share: the GPU device, a model's adapter requirements, the training / validation data
//! options and the line that states the split, progress bars, epochs to steps, run-folder paths.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::data::dataset::{Dataset, Decode};
use crate::gpu;

/// The one device of a command (headless; errors recorded, not panicking).
pub fn device(req: &gpu::Requirements) -> Result<gpu::GpuContext, String> {
    gpu::GpuContext::new_headless_blocking(req, gpu::ErrorPolicy::Record).map_err(|e| e.to_string())
}

/// What a model of `cfg` needs from the adapter at `batch`: its largest buffer must fit one binding.
pub fn model_requirements(cfg: &crate::model::BeitConfig, batch: u32) -> gpu::Requirements {
    // Training runs the MIM head on masked patches only (at most the masking budget per image).
    let rows = crate::data::masking::BlockMasking::scaled(cfg.grid()).num_masking_patches;
    gpu::Requirements::kernels().with_buffer_bytes(cfg.largest_buffer_bytes(batch, rows))
}

/// `--data` and `--val-data`: where training images come from and what they are judged on.
#[derive(Args, Debug, Clone)]
pub struct TrainValData {
    /// `builtin` (the built-in Fashion-MNIST subset), a folder of images (one sub-folder per class for labels),
    /// or an IDX images file (labels read from the matching labels file beside it).
    #[arg(long, default_value = "builtin")]
    pub data: String,
    /// Validation images (same forms as --data; class folders matched by name). Default: the built-in
    /// validation split, or every 10th image of each class of --data, held out from training.
    #[arg(long)]
    pub val_data: Option<String>,
}

impl TrainValData {
    /// Load both sets (skipped files reported on stderr) and print the line that states the split.
    pub fn load(&self, decode: Decode) -> Result<(Dataset, Dataset), String> {
        load_train_val(&self.data, self.val_data.as_deref(), decode)
    }
}

/// Load training and validation sets and say what each is.
pub fn load_train_val(
    data: &str,
    val_data: Option<&str>,
    decode: Decode,
) -> Result<(Dataset, Dataset), String> {
    let (train, val) =
        Dataset::open_train_val(data, val_data, decode).map_err(|e| e.to_string())?;
    for set in [&train, &val] {
        if let Some(s) = set.skipped_summary() {
            eprintln!("note: {}: {s}", set.source);
        }
    }
    println!("data: {}", describe_split(&train, &val));
    Ok((train, val))
}

/// A training set a classifier can learn from: labelled (one sub-folder per class, or IDX with labels) and
/// with at least two classes; `what` says who needs it ("fine-tuning needs").
pub fn require_classes(set: &Dataset, what: &str) -> Result<(), String> {
    if set.labels.is_none() {
        return Err(format!(
            "{} has no labels: {what} one sub-folder per class (FOLDER/CLASS/IMAGE.png) or IDX images with their labels file",
            set.source
        ));
    }
    if set.class_names.len() < 2 {
        return Err(format!(
            "{} has only one class ({}): {what} at least two class folders",
            set.source,
            set.class_names.join("")
        ));
    }
    Ok(())
}

/// "9000 training images from X (10 classes: a, b, ...); 1000 validation images from Y".
pub fn describe_split(train: &Dataset, val: &Dataset) -> String {
    let classes = if train.labels.is_some() {
        let names = &train.class_names;
        let shown: Vec<&str> = names.iter().take(12).map(String::as_str).collect();
        format!(
            " ({} classes: {}{})",
            names.len(),
            shown.join(", "),
            if names.len() > 12 { ", ..." } else { "" }
        )
    } else {
        " (no labels)".to_string()
    };
    format!(
        "{} training images from {}{classes}; {} validation images from {}",
        train.len(),
        train.source,
        val.len(),
        val.source
    )
}

/// A 20-character progress bar.
pub fn bar(done: u32, total: u32) -> String {
    let filled = ((done as f64 / total.max(1) as f64) * 20.0).round() as usize;
    format!(
        "[{}{}]",
        "#".repeat(filled.min(20)),
        ".".repeat(20 - filled.min(20))
    )
}

/// Steps for `epochs` passes over `images` in batches of `batch` (at least one).
pub fn steps_for_epochs(epochs: f64, images: usize, batch: u32) -> u32 {
    ((epochs * images as f64) / batch.max(1) as f64)
        .ceil()
        .max(1.0) as u32
}

/// A model folder: the folder itself, or the `checkpoint/` of a run folder.
pub fn model_folder(dir: &Path) -> PathBuf {
    let ck = dir.join("checkpoint");
    if ck.join("config.json").exists() {
        ck
    } else {
        dir.to_path_buf()
    }
}

/// The run folder of a command: `--out`, else the `--resume` folder.
pub fn run_folder(out: &Option<PathBuf>, resume: &Option<PathBuf>) -> Result<PathBuf, String> {
    out.clone()
        .or_else(|| resume.clone())
        .ok_or_else(|| "give --out DIR or --resume DIR".to_string())
}

/// Open a run's `metrics.jsonl`: appended to when resuming, started afresh otherwise.
pub fn metrics_log(out: &Path, resume: bool) -> Result<(PathBuf, std::fs::File), String> {
    let path = out.join("metrics.jsonl");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, file))
}

/// Estimated seconds for `total` steps after `done` took `elapsed` (the first step, which builds the
/// pipelines, counted once: `first` seconds).
pub fn estimate_seconds(first: f64, elapsed: f64, done: u32, total: u32) -> f64 {
    if done <= 1 {
        return first * total as f64;
    }
    let per = (elapsed - first).max(0.0) / (done - 1) as f64;
    first + per * (total - 1) as f64
}

/// A run's settings file (`run.json`, `finetune.json`) read back for `--resume`; `what` names the kind of run
/// folder in the error.
pub fn read_settings<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
    what: &str,
) -> Result<T, String> {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| format!("{}: {e} (is this a {what} run folder?)", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

/// Write a run's settings file atomically.
pub fn write_settings<T: serde::Serialize>(
    dir: &Path,
    file: &str,
    settings: &T,
) -> Result<(), String> {
    let text = serde_json::to_string_pretty(settings).map_err(|e| e.to_string())?;
    crate::tensorfile::write_atomic(&dir.join(file), text.as_bytes()).map_err(|e| e.to_string())
}

/// `--precision` resolved on the command's device, its note (a fallback, an emulation) printed.
pub fn resolve_precision(
    asked: crate::train::precision::Precision,
    ctx: &gpu::GpuContext,
) -> crate::train::precision::Resolved {
    let r = asked.resolve(ctx);
    if let Some(note) = &r.note {
        println!("{note}");
    }
    r
}

/// A step's metrics line gains the loss scale and whether AdamW skipped the step, in mixed precision.
pub fn add_mixed_fields(
    line: &mut serde_json::Value,
    m: &crate::train::metrics::StepMetrics,
    mixed: bool,
) {
    if let (true, Some(obj)) = (mixed, line.as_object_mut()) {
        obj.insert("loss_scale".into(), m.loss_scale.into());
        obj.insert("skipped".into(), m.skipped.into());
    }
}

/// What a progress line adds for a step AdamW skipped (its scaled gradients overflowed f16).
pub fn skipped_note(m: &crate::train::metrics::StepMetrics) -> String {
    if m.skipped {
        format!("  skipped: f16 overflow at loss scale {}", m.loss_scale)
    } else {
        String::new()
    }
}
