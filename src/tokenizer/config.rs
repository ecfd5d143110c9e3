//! The visual tokenizer's configuration (`tokenizer_config.json`): patch geometry equal to the ViT's, MLP widths,
//! code dimension, codebook size, loss weights and codebook update settings.

use serde::{Deserialize, Serialize};

use crate::model::{BeitConfig, ModelError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerConfig {
    pub image_size: u32,
    pub patch_size: u32,
    pub num_channels: u32,
    /// Width of the encoder's and decoder's hidden layer.
    pub hidden_size: u32,
    /// Dimension of a code (codes and encoder outputs are L2-normalised).
    pub code_dim: u32,
    pub codebook_size: u32,
    /// Weight of the commitment loss ‖ẑ − sg(q)‖².
    pub commitment: f32,
    /// EMA decay of the codebook.
    pub ema_decay: f32,
    /// A code whose EMA count (expected uses per step) falls below this restarts at an encoder output.
    pub dead_threshold: f32,
    /// Pixel normalisation (BEiT: 0.5 / 0.5).
    pub mean: f32,
    pub std: f32,
}

impl TokenizerConfig {
    /// A tokenizer whose token grid equals the patch grid of `beit`.
    pub fn for_model(beit: &BeitConfig, codebook_size: u32) -> Self {
        Self {
            image_size: beit.image_size,
            patch_size: beit.patch_size,
            num_channels: beit.num_channels,
            hidden_size: 256,
            code_dim: 32,
            codebook_size,
            commitment: 0.25,
            ema_decay: 0.99,
            dead_threshold: 0.03,
            mean: 0.5,
            std: 0.5,
        }
    }

    /// The tokenizer for a BEiT preset, with the preset's codebook size ([`Self::preset_codebook_size`]).
    pub fn preset(name: &str) -> Result<Self, ModelError> {
        let beit = BeitConfig::preset(name)?;
        Ok(Self::for_model(&beit, Self::preset_codebook_size(name)))
    }

    /// Codes of the tokenizer trained for a preset: 8192 for base (DALL-E's count), 64 for mini (few enough that a
    /// few hundred pretraining steps learn to predict them on the built-in data), 512 otherwise.
    pub fn preset_codebook_size(name: &str) -> u32 {
        match name {
            "base" => 8192,
            "mini" => 64,
            _ => 512,
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return bad(format!(
                "image_size {} is not divisible by patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        for (n, v) in [
            ("num_channels", self.num_channels),
            ("hidden_size", self.hidden_size),
            ("code_dim", self.code_dim),
            ("codebook_size", self.codebook_size),
        ] {
            if v == 0 {
                return bad(format!("{n} must be positive"));
            }
        }
        if self.num_channels != 1 && self.num_channels != 3 {
            return bad(format!(
                "num_channels is {} but beitlab reads gray (1) or RGB (3) images",
                self.num_channels
            ));
        }
        use crate::model::config::limits;
        for (n, v, max) in [
            ("image_size", self.image_size, limits::IMAGE_SIZE),
            ("hidden_size", self.hidden_size, limits::HIDDEN_SIZE),
            ("code_dim", self.code_dim, limits::HIDDEN_SIZE),
            ("codebook_size", self.codebook_size, limits::VOCABULARY),
            ("patch grid side", self.grid(), limits::GRID),
        ] {
            if v > max {
                return bad(format!("{n} {v} is above beitlab's limit of {max}"));
            }
        }
        for (n, v) in [
            ("commitment", self.commitment),
            ("dead_threshold", self.dead_threshold),
            ("mean", self.mean),
        ] {
            if !v.is_finite() {
                return bad(format!("{n} must be a finite number, not {v}"));
            }
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad(format!("ema_decay {} is outside [0, 1)", self.ema_decay));
        }
        if !(self.std > 0.0 && self.std.is_finite()) {
            return bad("std must be positive".into());
        }
        Ok(())
    }

    pub fn grid(&self) -> u32 {
        self.image_size / self.patch_size
    }
    pub fn tokens(&self) -> u32 {
        self.grid() * self.grid()
    }
    /// Values per patch, C·p·p.
    pub fn patch_dim(&self) -> u32 {
        self.num_channels * self.patch_size * self.patch_size
    }
}
