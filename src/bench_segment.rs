//! `beitlab bench segment`: full semantic-segmentation fine-tuning steps (backbone over every token, the dense
//! head, per-pixel cross-entropy, backward, clip, AdamW) on random images and label maps, timed as `bench
//! train` times pretraining steps, with the same per-kernel profile.
//!
//! Shapes: pixels (B, C, S, S), labels (B, S, S) class indices with about 1 in 16 pixels unlabelled.

use crate::bench::{KernelTime, Profile, StepWork};
use crate::data::segmentation::IGNORE;
use crate::gpu::GpuContext;
use crate::model::{BeitConfig, BeitModel, ModelError, SegmentationHead};

/// One `bench segment` result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SegmentBench {
    pub preset: String,
    pub head: String,
    pub image_size: u32,
    pub patch_size: u32,
    pub classes: u32,
    pub batch: u32,
    pub steps: u32,
    pub images_per_s: f64,
    pub step_ms_median: f64,
    pub gpu_buffer_mib: f64,
    /// Kernel launches in one step (all in one compute pass, one submit).
    pub dispatches_per_step: usize,
    pub adapter: String,
    /// With a profile: per kernel entry point (and grid), launches per step and milliseconds per step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<KernelTime>,
}

/// Time segmentation steps of `base` (a preset's config) made into a `classes`-way segmentation model with
/// `head`, random weights; median over `steps` after two warm-up steps.
#[allow(clippy::too_many_arguments)]
pub fn bench_segment(
    ctx: &GpuContext,
    base: &BeitConfig,
    preset: &str,
    head: SegmentationHead,
    classes: u32,
    batch: u32,
    steps: u32,
    profile: Profile,
) -> Result<SegmentBench, ModelError> {
    let names: Vec<String> = (0..classes).map(|c| format!("class {c}")).collect();
    let cfg = crate::train::segment::segmentation_config(base, &names, head, 0.1);
    let before = crate::gpu::allocated_bytes();
    let model = BeitModel::new_random(ctx, &cfg, 0)?;
    let graph = crate::train::segment::graph_for(ctx, &model, batch, Some(1))?;
    let mut step = StepWork::new(ctx, &model, &graph)?;
    let held = crate::gpu::allocated_bytes() - before;
    let mut rng = crate::rng::Rng::new(5);
    let side = (cfg.image_size * cfg.image_size) as usize;
    let pixels: Vec<f32> = (0..batch as usize * cfg.num_channels as usize * side)
        .map(|_| rng.range(-1.0, 1.0) as f32)
        .collect();
    let median = step.median_seconds(ctx, steps, |_| {
        let labels: Vec<u32> = (0..batch as usize * side)
            .map(|_| match (rng.uniform() * (16 * classes) as f64) as u32 {
                0 => IGNORE,
                v => (v / 16).min(classes - 1),
            })
            .collect();
        graph.write_batch(ctx, &pixels, None, Some(&labels))
    })?;
    Ok(SegmentBench {
        preset: preset.to_string(),
        head: head.name().to_string(),
        image_size: cfg.image_size,
        patch_size: cfg.patch_size,
        classes,
        batch,
        steps,
        images_per_s: batch as f64 / median,
        step_ms_median: median * 1e3,
        gpu_buffer_mib: held as f64 / (1 << 20) as f64,
        dispatches_per_step: step.work.len(),
        adapter: ctx.adapter_info.name.clone(),
        profile: step.profile(ctx, profile)?,
    })
}
