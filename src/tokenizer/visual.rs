//! A visual tokenizer as pretraining, encoding and the app use it: beitlab's own patch tokenizer (trained on the
//! user's images, one token per ViT patch, reading the ViT's own view) or DALL-E's discrete VAE (the paper's,
//! frozen, reading its own view at 8 pixels per token with pixels mapped as 0.8x + 0.1).

use std::path::Path;

use super::dalle::{DalleGraph, DalleTokenizer, PixelOut};
use super::{Tokenizer, TokenizerGraph};
use crate::gpu::{Dispatch, GpuContext, GpuSlice};
use crate::model::{BeitConfig, ModelError};
use crate::ops::spatial::{self, ImageShape};

/// Either kind of tokenizer. A clone shares the GPU buffers.
#[derive(Clone)]
pub enum VisualTokenizer {
    Patch(Tokenizer),
    Dalle(DalleTokenizer),
}

/// The picture a tokenizer reads: side, channels and per-channel normalisation `(v − mean) / std` of pixels v in
/// [0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenizerView {
    pub size: u32,
    pub channels: u32,
    pub mean: f32,
    pub std: f32,
}

impl TokenizerView {
    /// The augmentation that produces this view (same crop and flip ranges as `base`).
    pub fn augment(&self, base: &crate::data::augment::Augment) -> crate::data::augment::Augment {
        crate::data::augment::Augment {
            size: self.size,
            mean: vec![self.mean; self.channels as usize],
            std: vec![self.std; self.channels as usize],
            ..base.clone()
        }
    }
}

impl VisualTokenizer {
    /// Load a tokenizer folder of either kind (a DALL-E folder holds `dalle_config.json`).
    pub fn load(ctx: &GpuContext, dir: &Path) -> Result<Self, ModelError> {
        if DalleTokenizer::is_folder(dir) {
            Ok(Self::Dalle(DalleTokenizer::load(ctx, dir)?))
        } else if dir.join("tokenizer_config.json").is_file() {
            Ok(Self::Patch(Tokenizer::load(ctx, dir)?))
        } else {
            Err(ModelError::Checkpoint(format!(
                "{} holds no tokenizer (neither tokenizer_config.json nor dalle_config.json)",
                dir.display()
            )))
        }
    }

    /// The files of the tokenizer folder `dir` (what a run folder copies to keep its own).
    pub fn files_in(dir: &Path) -> Vec<&'static str> {
        use super::dalle::model::{CONFIG_FILE, DECODER_FILE, ENCODER_FILE};
        let files: &[&'static str] = if DalleTokenizer::is_folder(dir) {
            &[ENCODER_FILE, DECODER_FILE, CONFIG_FILE]
        } else {
            &["tokenizer.safetensors", "tokenizer_config.json"]
        };
        files
            .iter()
            .copied()
            .filter(|f| dir.join(f).is_file())
            .collect()
    }

    /// A tokenizer from a config text and tensors (a one-file checkpoint's entry): a DALL-E config (`"kind":
    /// "dalle"`) with `encoder.` / `decoder.` tensors, or a patch tokenizer's.
    pub fn from_tensors(
        ctx: &GpuContext,
        config_json: &str,
        t: &std::collections::BTreeMap<String, crate::tensorfile::HostTensor>,
        source: &str,
    ) -> Result<Self, ModelError> {
        let kind = serde_json::from_str::<serde_json::Value>(config_json)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string));
        match kind.as_deref() {
            Some("dalle") => Ok(Self::Dalle(DalleTokenizer::from_prefixed(
                ctx,
                config_json,
                t,
                source,
            )?)),
            _ => Ok(Self::Patch(Tokenizer::from_tensors(
                ctx,
                config_json,
                t,
                source,
            )?)),
        }
    }

    /// The GPU buffers a saved copy is read from (see [`VisualTokenizer::tensors`]).
    pub fn state_slices(&self) -> Vec<&GpuSlice> {
        match self {
            Self::Patch(t) => t.state_slices().to_vec(),
            Self::Dalle(t) => t.state_slices(),
        }
    }

    /// The tensors of [`VisualTokenizer::state_slices`] read back.
    pub fn tensors(
        &self,
        values: &[Vec<f32>],
    ) -> Result<std::collections::BTreeMap<String, crate::tensorfile::HostTensor>, ModelError> {
        match self {
            Self::Patch(t) => match values {
                [a, b, c, d, ..] => Ok(t.tensors([a, b, c, d])),
                _ => Err(ModelError::Checkpoint(
                    "the tokenizer's state was not read back whole".into(),
                )),
            },
            Self::Dalle(t) => Ok(t.prefixed_tensors(values)),
        }
    }

    /// The text of its config file.
    pub fn config_json(&self) -> Result<String, ModelError> {
        match self {
            Self::Patch(t) => t.config_json(),
            Self::Dalle(t) => t.config_json(),
        }
    }

    /// Save as a tokenizer folder.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, ctx: &GpuContext, dir: &Path) -> Result<(), ModelError> {
        match self {
            Self::Patch(t) => t.save(ctx, dir),
            Self::Dalle(t) => t.save(ctx, dir),
        }
    }

    pub fn codebook_size(&self) -> u32 {
        match self {
            Self::Patch(t) => t.cfg.codebook_size,
            Self::Dalle(t) => t.vocab_size(),
        }
    }

    /// The patch tokenizer, when it is one.
    pub fn as_patch(&self) -> Option<&Tokenizer> {
        match self {
            Self::Patch(t) => Some(t),
            Self::Dalle(_) => None,
        }
    }

    pub fn is_dalle(&self) -> bool {
        matches!(self, Self::Dalle(_))
    }

    /// Can it turn tokens back into pixels?
    pub fn has_decoder(&self) -> bool {
        match self {
            Self::Patch(_) => true,
            Self::Dalle(t) => t.decoder.is_some(),
        }
    }

    /// The view it reads for a model with `grid` x `grid` patches.
    pub fn view(&self, grid: u32) -> TokenizerView {
        match self {
            Self::Patch(t) => TokenizerView {
                size: t.cfg.image_size,
                channels: t.cfg.num_channels,
                mean: t.cfg.mean,
                std: t.cfg.std,
            },
            // (1 − 2·eps)·v + eps = (v − mean) / std with std = 1 / (1 − 2·eps), mean = −eps · std.
            Self::Dalle(t) => {
                let std = 1.0 / (1.0 - 2.0 * super::dalle::model::LOGIT_LAPLACE_EPS);
                TokenizerView {
                    size: t.input_size(grid),
                    channels: t.image_channels(),
                    mean: -super::dalle::model::LOGIT_LAPLACE_EPS * std,
                    std,
                }
            }
        }
    }

    /// Refuse a model whose targets this tokenizer cannot give, with one sentence.
    pub fn check_model(&self, cfg: &BeitConfig) -> Result<(), ModelError> {
        match self {
            Self::Patch(t) => {
                let tc = &t.cfg;
                if (tc.image_size, tc.patch_size, tc.num_channels)
                    != (cfg.image_size, cfg.patch_size, cfg.num_channels)
                {
                    return Err(ModelError::Config(format!(
                        "the tokenizer works on {}-pixel images in {}-pixel patches with {} channels but the model on {} / {} / {}",
                        tc.image_size, tc.patch_size, tc.num_channels, cfg.image_size, cfg.patch_size, cfg.num_channels
                    )));
                }
            }
            Self::Dalle(t) => {
                if t.image_channels() != cfg.num_channels {
                    return Err(ModelError::Config(format!(
                        "the DALL-E tokenizer reads {}-channel images but the model {}-channel ones",
                        t.image_channels(),
                        cfg.num_channels
                    )));
                }
            }
        }
        if self.codebook_size() > cfg.vocab_size {
            return Err(ModelError::Config(format!(
                "the tokenizer has {} codes but the model's vocabulary is {}",
                self.codebook_size(),
                cfg.vocab_size
            )));
        }
        Ok(())
    }

    /// One line for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Patch(t) => format!(
                "patch tokenizer, {} codes, {}-pixel patches",
                t.cfg.codebook_size, t.cfg.patch_size
            ),
            Self::Dalle(t) => format!(
                "DALL-E tokenizer, {} codes, {}x downsampling, {}",
                t.vocab_size(),
                t.encoder.shape.downsampling(),
                if t.decoder.is_some() {
                    "with decoder"
                } else {
                    "no decoder"
                }
            ),
        }
    }

    /// The buffer that identifies this tokenizer's weights (a replaced tokenizer has another).
    pub fn weights_buffer(&self) -> &wgpu::Buffer {
        match self {
            Self::Patch(t) => &t.params.whole.buffer,
            Self::Dalle(t) => &t.encoder.weights.whole.buffer,
        }
    }

    /// Encode / decode passes for `batch` images of the model `cfg`; decoded pixels come out at the model's
    /// image size (DALL-E's resized bilinearly from its own), normalised as the ViT's (mean = std = 0.5).
    pub fn graph(
        &self,
        ctx: &GpuContext,
        batch: u32,
        cfg: &BeitConfig,
    ) -> Result<VisualGraph, ModelError> {
        let grid = cfg.grid();
        let view = self.view(grid);
        Ok(match self {
            Self::Patch(t) => {
                let g = TokenizerGraph::new(ctx, t, batch)?;
                VisualGraph {
                    view,
                    pixels: g.pixels.clone(),
                    tokens: g.tokens.clone(),
                    recon_pixels: g.recon_pixels.clone(),
                    encode: g.encode.clone(),
                    decode: g.decode.clone(),
                }
            }
            Self::Dalle(t) => {
                let g = DalleGraph::new(ctx, t, batch, grid, PixelOut::normalised(0.5, 0.5))?;
                let side = cfg.image_size;
                let out = ImageShape {
                    batch,
                    channels: view.channels,
                    height: side,
                    width: side,
                };
                // Zeros (mid-gray) when there is no decoder.
                let recon_pixels =
                    GpuSlice::new(ctx, "dall-e decoded pixels at the model's size", out.len());
                let mut decode = g.decode;
                if let Some(px) = &g.recon_pixels {
                    let own = ImageShape {
                        height: g.side,
                        width: g.side,
                        ..out
                    };
                    decode.extend(spatial::resize_bilinear(
                        ctx,
                        &recon_pixels,
                        px,
                        own,
                        (side, side),
                    )?);
                }
                VisualGraph {
                    view,
                    pixels: g.pixels,
                    tokens: g.tokens,
                    recon_pixels,
                    encode: g.encode,
                    decode,
                }
            }
        })
    }
}

/// A tokenizer's passes for one batch: `encode` reads `pixels` (its view) and writes `tokens` (B, g, g) u32;
/// `decode` reads `tokens` and writes `recon_pixels` (B, C, S, S) at the model's side, normalised as the ViT's.
pub struct VisualGraph {
    pub view: TokenizerView,
    pub pixels: GpuSlice,
    pub tokens: GpuSlice,
    pub recon_pixels: GpuSlice,
    pub encode: Vec<Dispatch>,
    pub decode: Vec<Dispatch>,
}
