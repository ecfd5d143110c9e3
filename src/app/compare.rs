//! A run kept beside the live one, so that two settings can be compared in the app (blockwise vs random masking,
//! two mask ratios or learning rates): GPU copies of its tokenizer and BEiT model, a label naming its settings,
//! and its pretraining curves kept under "kept: ..." names next to the live run's.

use super::settings::{MaskMode, Settings};
use crate::gpu::{GpuContext, GpuSlice};
use crate::model::{BeitModel, ModelError};
use crate::tokenizer::{Tokenizer, VisualTokenizer};

/// Prefix of the kept run's curve names.
pub const KEPT: &str = "kept: ";

/// The kept run.
pub struct KeptRun {
    /// Its settings in words, e.g. "blockwise masking, ratio 0.40, 600 steps".
    pub label: String,
    pub tokenizer: VisualTokenizer,
    pub mim: BeitModel,
}

/// A run's settings in words.
pub fn describe(settings: &Settings, steps: u32) -> String {
    let mode = match settings.masking {
        MaskMode::Blockwise => "blockwise",
        MaskMode::Random => "random",
    };
    format!(
        "{mode} masking, ratio {:.2}, lr {:.0e}, {steps} steps",
        settings.mask_ratio, settings.lr[1]
    )
}

/// Queue a copy of `from` into `to` (same size) on `enc`.
fn copy(enc: &mut wgpu::CommandEncoder, from: &GpuSlice, to: &GpuSlice) {
    enc.copy_buffer_to_buffer(
        &from.buffer,
        from.offset,
        &to.buffer,
        to.offset,
        from.size_bytes(),
    );
}

impl KeptRun {
    /// Copies of `tokenizer` (a DALL-E tokenizer is frozen, so it is shared) and `mim`, made in one submit without
    /// waiting: training either live network afterwards leaves the kept ones as they are.
    pub fn copy_of(
        ctx: &GpuContext,
        label: String,
        tokenizer: &VisualTokenizer,
        mim: &BeitModel,
    ) -> Result<Self, ModelError> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        let tokenizer = match tokenizer {
            VisualTokenizer::Patch(t) => {
                let copy_tk = Tokenizer::new_random(ctx, &t.cfg, 0)?;
                copy(&mut enc, &t.params.whole, &copy_tk.params.whole);
                copy(&mut enc, &t.codebook, &copy_tk.codebook);
                copy(&mut enc, &t.ema_sum, &copy_tk.ema_sum);
                copy(&mut enc, &t.ema_count, &copy_tk.ema_count);
                VisualTokenizer::Patch(copy_tk)
            }
            VisualTokenizer::Dalle(d) => VisualTokenizer::Dalle(d.clone()),
        };
        let copy_mim = BeitModel::new_random(ctx, &mim.cfg, 0)?;
        copy(&mut enc, &mim.params.whole, &copy_mim.params.whole);
        ctx.queue.submit([enc.finish()]);
        Ok(Self {
            label,
            tokenizer,
            mim: copy_mim,
        })
    }
}
