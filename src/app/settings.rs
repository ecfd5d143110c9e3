//! What the person sets in the app: the preset and batch (fixed once a phase starts), steps and learning rate
//! per phase, and the mask ratio and masking mode (these two and the learning rates take effect at the next step).

use super::phases::PhaseKind;
use crate::train::precision::Precision;

/// Blockwise masking (BEiT's) or uniform random masking (the paper's ablation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskMode {
    Blockwise,
    Random,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `mini` (28 px grey, 7 x 7 patches), `micro` (28 px grey, 4 x 4), `tiny` (32 px, 8 x 8, 12 layers) or
    /// `tiny14` (56 px, the paper's 14 x 14 grid, 12 layers).
    pub preset: String,
    pub batch: u32,
    /// Steps of each phase, indexed by [`PhaseKind::index`].
    pub steps: [u32; 4],
    /// Peak learning rate of each phase (warm-up over a tenth, then cosine to 1%).
    pub lr: [f32; 4],
    /// Fraction of the patches masked in each pretraining image (BEiT: 0.4).
    pub mask_ratio: f32,
    pub masking: MaskMode,
    /// After fine-tuning the pretrained model, fine-tune a randomly initialised one the same way.
    pub compare_scratch: bool,
    pub seed: u64,
    /// f32, or mixed precision for pretraining and fine-tuning (taken at the phase's start; where it cannot
    /// run, the phase trains in f32 and the settings say why).
    pub precision: Precision,
}

impl Settings {
    /// The settings the app opens with: the built-in data's main job on the adapter's default preset, `mini` on a
    /// CPU adapter (a 7 x 7 patch grid, about 3 minutes to a pretrained model on 2 cores) and `tiny14` on a GPU
    /// (the paper's 14 x 14 grid, at full length).
    pub fn for_adapter(cpu: bool) -> Self {
        Self::for_preset(if cpu { "mini" } else { "tiny14" })
    }

    /// A preset with its own batch, steps and learning rates. mini: 400 tokenizer and 600 pretraining steps of 16
    /// images at a pretraining peak of 3e-3 reach about 43% masked-token accuracy on the built-in data (tested in
    /// `tests/app.rs`; always answering the most common token gets about 25-35%). On a GPU, batch 16 keeps a step short, so a frame never waits long
    /// behind training; a larger batch trains faster per image but makes frames wait for longer steps.
    pub fn for_preset(preset: &str) -> Self {
        let (batch, steps, pretrain_lr) = match preset {
            "mini" => (16, [400, 600, 300, 300], 3e-3),
            "micro" => (32, [200, 300, 300, 300], 1.5e-3),
            _ => (16, [1000, 4000, 2000, 2000], 1.5e-3),
        };
        Self {
            preset: preset.into(),
            batch,
            steps,
            lr: [2e-3, pretrain_lr, 3e-3, 2e-3],
            mask_ratio: 0.4,
            masking: MaskMode::Blockwise,
            compare_scratch: false,
            seed: 0,
            precision: Precision::F32,
        }
    }

    /// The opening settings with a preset and batch chosen on the command line or in the page's address: a named
    /// preset takes its own defaults, then the batch is overridden.
    pub fn chosen(small_adapter: bool, preset: Option<&str>, batch: Option<u32>) -> Self {
        let mut s = match preset {
            Some(p) => Self::for_preset(p),
            None => Self::for_adapter(small_adapter),
        };
        if let Some(b) = batch {
            s.batch = b.max(1);
        }
        s
    }

    /// Patches masked per image out of `n`: the ratio rounded, at least one, at most all but one.
    pub fn masked_patches(&self, n: u32) -> u32 {
        ((self.mask_ratio as f64 * n as f64).round() as u32).clamp(1, n.saturating_sub(1).max(1))
    }

    pub fn steps_of(&self, phase: PhaseKind) -> u32 {
        self.steps[phase.index()].max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_patches_round_and_clamp() {
        let mut s = Settings::for_preset("micro");
        assert_eq!(s.masked_patches(16), 6);
        s.mask_ratio = 0.0;
        assert_eq!(s.masked_patches(16), 1);
        s.mask_ratio = 1.0;
        assert_eq!(s.masked_patches(16), 15);
    }

    #[test]
    fn a_named_preset_brings_its_defaults_and_the_batch_wins() {
        let s = Settings::chosen(false, Some("micro"), Some(8));
        assert_eq!(
            (s.preset.as_str(), s.batch, s.steps),
            ("micro", 8, [200, 300, 300, 300])
        );
        let g = Settings::chosen(false, None, None);
        assert_eq!((g.preset.as_str(), g.batch), ("tiny14", 16));
        let c = Settings::chosen(true, None, None);
        assert_eq!((c.preset.as_str(), c.batch), ("mini", 16));
        let grid = |p: &str| crate::model::BeitConfig::preset(p).map(|c| c.grid());
        assert_eq!(grid(&c.preset).ok(), Some(7), "the CPU default's grid");
        assert_eq!(grid(&g.preset).ok(), Some(14), "the GPU default's grid");
    }
}
