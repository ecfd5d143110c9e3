//! `beitlab bench soak`: a long pretraining run through the same loop as `beitlab pretrain` (augmentation,
//! blockwise masking, the tokenizer's targets, one submit per step, metrics through the readback ring) that
//! samples memory as it goes: beitlab's GPU buffers, wgpu's own count of buffers, bind groups and command
//! encoders, and the process's resident memory. A long run must stay flat: every sample after the warm-up
//! equals the first one, up to the allocator's noise in resident memory.

use std::time::Instant;

use crate::data::augment::Augment;
use crate::data::dataset::{Dataset, Split};
use crate::data::masking::BlockMasking;
use crate::gpu::GpuContext;
use crate::model::{BeitConfig, BeitModel, ModelError};
use crate::tokenizer::{Tokenizer, TokenizerConfig, VisualTokenizer};
use crate::train::pretrain::{pretrain, Masking, PretrainOptions};

/// Memory at one step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MemorySample {
    pub step: u32,
    /// Bytes in beitlab's own GPU buffers.
    pub gpu_buffer_bytes: u64,
    /// wgpu's live objects (its internal counters; zero where a backend does not count them).
    pub wgpu_buffers: i64,
    pub wgpu_buffer_memory: i64,
    pub wgpu_bind_groups: i64,
    pub wgpu_command_encoders: i64,
    /// The process's resident memory (Linux; zero elsewhere).
    pub resident_bytes: u64,
}

/// A soak run's result: the sample after the warm-up, the last one, and every one in between.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SoakReport {
    pub preset: String,
    pub batch: u32,
    pub steps: u32,
    pub seconds: f64,
    pub first: MemorySample,
    pub last: MemorySample,
    pub samples: Vec<MemorySample>,
    pub final_loss: f32,
    pub adapter: String,
}

impl SoakReport {
    /// Resident memory growth from the first sample to the last, in bytes (negative: shrank).
    pub fn resident_growth(&self) -> i64 {
        self.last.resident_bytes as i64 - self.first.resident_bytes as i64
    }

    /// What grew between the first sample and the last, one phrase each (empty: flat). Resident memory may
    /// move by `resident_slack` bytes (the allocator's and the driver's noise).
    pub fn growth(&self, resident_slack: u64) -> Vec<String> {
        let (a, b) = (&self.first, &self.last);
        let mut out = Vec::new();
        for (what, x, y) in [
            (
                "beitlab's GPU buffer bytes",
                a.gpu_buffer_bytes as i64,
                b.gpu_buffer_bytes as i64,
            ),
            ("wgpu buffers", a.wgpu_buffers, b.wgpu_buffers),
            (
                "wgpu buffer memory",
                a.wgpu_buffer_memory,
                b.wgpu_buffer_memory,
            ),
            ("wgpu bind groups", a.wgpu_bind_groups, b.wgpu_bind_groups),
            (
                "wgpu command encoders",
                a.wgpu_command_encoders,
                b.wgpu_command_encoders,
            ),
        ] {
            if y > x {
                out.push(format!("{what} {x} -> {y}"));
            }
        }
        if self.resident_growth() > resident_slack as i64 {
            out.push(format!(
                "resident memory {:.1} -> {:.1} MiB",
                a.resident_bytes as f64 / 1048576.0,
                b.resident_bytes as f64 / 1048576.0
            ));
        }
        out
    }
}

/// The process's resident memory in bytes (Linux's /proc/self/statm; 0 where it is not there).
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn sample(ctx: &GpuContext, step: u32) -> MemorySample {
    let c = ctx.device.get_internal_counters();
    MemorySample {
        step,
        gpu_buffer_bytes: crate::gpu::allocated_bytes(),
        wgpu_buffers: c.hal.buffers.read() as i64,
        wgpu_buffer_memory: c.hal.buffer_memory.read() as i64,
        wgpu_bind_groups: c.hal.bind_groups.read() as i64,
        wgpu_command_encoders: c.hal.command_encoders.read() as i64,
        resident_bytes: resident_bytes(),
    }
}

/// Pretrain `cfg` for `steps` steps of `batch` built-in images (a fresh tokenizer gives the targets), sampling
/// memory every `steps / 20` steps; the first sample is taken after `warmup` steps.
pub fn soak(
    ctx: &GpuContext,
    cfg: &BeitConfig,
    preset: &str,
    batch: u32,
    steps: u32,
    warmup: u32,
) -> Result<SoakReport, ModelError> {
    let data = Dataset::builtin(Split::Train, cfg.num_channels)
        .map_err(|e| ModelError::Input(e.to_string()))?;
    let tk = VisualTokenizer::Patch(Tokenizer::new_random(
        ctx,
        &TokenizerConfig::for_model(cfg, cfg.vocab_size),
        0,
    )?);
    let model = BeitModel::new_random(ctx, cfg, 0)?;
    let block = BlockMasking::scaled(cfg.grid());
    let opts = PretrainOptions {
        steps,
        batch,
        lr: 1.5e-3,
        min_lr: 1.5e-5,
        warmup: (steps / 10).max(1),
        weight_decay: 0.05,
        clip: 3.0,
        seed: 0,
        masking: Masking::Blockwise(block),
        augment: Augment::beit(cfg.image_size, cfg.num_channels),
        checkpoint_every: 0,
        out: None,
        resume: None,
        stop_after: None,
        mixed: None,
    };
    let every = (steps / 20).max(1);
    let warmup = warmup.min(steps);
    let mut samples = Vec::new();
    let mut final_loss = f32::NAN;
    let t0 = Instant::now();
    pretrain(ctx, &model, Some(&tk), &data, &opts, |m| {
        final_loss = m.loss;
        if m.step == warmup || (m.step > warmup && (m.step % every == 0 || m.step == steps)) {
            samples.push(sample(ctx, m.step));
        }
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    let first = samples
        .first()
        .cloned()
        .unwrap_or_else(|| sample(ctx, steps));
    let last = samples.last().cloned().unwrap_or_else(|| first.clone());
    Ok(SoakReport {
        preset: preset.to_string(),
        batch,
        steps,
        seconds,
        first,
        last,
        samples,
        final_loss,
        adapter: ctx.adapter_info.name.clone(),
    })
}
