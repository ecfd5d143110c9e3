//! A DALL-E discrete VAE on the GPU: the encoder's (and optionally the decoder's) weights in one flat buffer each,
//! named as the `dall-e` package names them, with the architecture inferred from them. A tokenizer folder holds
//! `dalle_config.json` (what was inferred, for people), `dalle_encoder.safetensors` and, when imported,
//! `dalle_decoder.safetensors`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::arch::{Half, NetShape};
use crate::gpu::{FlatBuffer, FlatLayout, GpuContext};
use crate::model::ModelError;
use crate::tensorfile::{self, HostTensor};

pub const CONFIG_FILE: &str = "dalle_config.json";
pub const ENCODER_FILE: &str = "dalle_encoder.safetensors";
pub const DECODER_FILE: &str = "dalle_decoder.safetensors";

/// DALL-E's pixel mapping: the encoder sees `(1 − 2·eps)·x + eps` of pixels x in [0, 1]; the decoder's pixels
/// are unmapped with the same eps.
pub const LOGIT_LAPLACE_EPS: f32 = 0.1;

/// `dalle_config.json`: the kind of tokenizer and what was inferred from the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DalleConfig {
    /// Always "dalle": tells a DALL-E folder from a patch-tokenizer folder.
    pub kind: String,
    pub encoder: NetShape,
    pub decoder: Option<NetShape>,
}

impl DalleConfig {
    /// Read `dir/dalle_config.json` (what a folder holds, without loading the weights).
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            ModelError::Config(format!(
                "{}: not a valid DALL-E tokenizer config: {e}",
                path.display()
            ))
        })
    }
}

/// The device limits for DALL-E weights of `weight_bytes` in one buffer (each tensor is bound on its own, so
/// the binding limit stays WebGPU's default).
pub fn requirements(weight_bytes: u64) -> crate::gpu::Requirements {
    let mut r = crate::gpu::Requirements::kernels()
        .with_hint("the DALL-E weights need a device that allows larger buffers");
    r.max_buffer_size = r.max_buffer_size.max(weight_bytes);
    r
}

/// One half's weights on the GPU.
#[derive(Clone)]
pub struct DalleNet {
    pub shape: NetShape,
    pub weights: FlatBuffer,
}

/// A size for a message: MiB with one decimal from 1 MiB, KiB below.
pub(crate) fn byte_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{} KiB", bytes.div_ceil(1 << 10))
    }
}

impl DalleNet {
    /// Upload `t` after inferring and checking its architecture; non-finite values are refused by name.
    pub fn from_tensors(
        ctx: &GpuContext,
        t: &BTreeMap<String, HostTensor>,
        half: Half,
        source: &str,
    ) -> Result<Self, ModelError> {
        let shape = NetShape::infer(t, half, source)?;
        let mut layout = FlatLayout::new(ctx.storage_alignment());
        let specs = shape.tensor_specs();
        for (n, s) in &specs {
            layout.push(n, s);
        }
        let (bytes, max) = (layout.total * 4, ctx.limits.max_buffer_size);
        if bytes > max {
            return Err(ModelError::Config(format!(
                "{source}: the DALL-E {} needs {} of weights in one buffer but this device allows {}",
                half.name(),
                byte_size(bytes),
                byte_size(max)
            )));
        }
        let mut flat = vec![0.0f32; layout.total as usize];
        for ((name, _), e) in specs.iter().zip(&layout.entries) {
            let v = t[name].to_f32();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(ModelError::Checkpoint(format!(
                    "{source}: tensor {name} holds values that are not finite (NaN or infinite)"
                )));
            }
            flat[e.offset as usize..(e.offset + e.len) as usize].copy_from_slice(&v);
        }
        let weights = FlatBuffer::new(ctx, &format!("dall-e {} weights", half.name()), layout);
        weights.whole.write(ctx, &flat);
        Ok(Self { shape, weights })
    }

    /// The tensors of `flat` (this net's weights read back), by name.
    pub fn tensors(&self, flat: &[f32]) -> BTreeMap<String, HostTensor> {
        self.weights
            .layout
            .entries
            .iter()
            .map(|e| {
                let v = flat[e.offset as usize..(e.offset + e.len) as usize].to_vec();
                (e.name.clone(), HostTensor::f32(e.shape.clone(), v))
            })
            .collect()
    }

    /// Read a safetensors file of one half.
    pub fn load(ctx: &GpuContext, path: &Path, half: Half) -> Result<Self, ModelError> {
        let t = tensorfile::read(path)?;
        Self::from_tensors(ctx, &t, half, &path.display().to_string())
    }
}

/// The DALL-E tokenizer: encoder (pixels -> tokens) and optional decoder (tokens -> pixels).
#[derive(Clone)]
pub struct DalleTokenizer {
    pub encoder: DalleNet,
    pub decoder: Option<DalleNet>,
}

impl DalleTokenizer {
    /// Pair an encoder with an optional decoder; their vocabularies and image channels must agree.
    pub fn new(encoder: DalleNet, decoder: Option<DalleNet>) -> Result<Self, ModelError> {
        if let Some(d) = &decoder {
            let (e, d) = (&encoder.shape, &d.shape);
            if (e.vocab_size, e.image_channels) != (d.vocab_size, d.image_channels) {
                return Err(ModelError::Checkpoint(format!(
                    "the encoder has {} codes and {} image channels but the decoder {} and {}",
                    e.vocab_size, e.image_channels, d.vocab_size, d.image_channels
                )));
            }
            if e.downsampling() != d.downsampling() {
                return Err(ModelError::Checkpoint(format!(
                    "the encoder shrinks images {}x but the decoder grows tokens {}x",
                    e.downsampling(),
                    d.downsampling()
                )));
            }
        }
        Ok(Self { encoder, decoder })
    }

    pub fn config(&self) -> DalleConfig {
        DalleConfig {
            kind: "dalle".into(),
            encoder: self.encoder.shape.clone(),
            decoder: self.decoder.as_ref().map(|d| d.shape.clone()),
        }
    }
    pub fn vocab_size(&self) -> u32 {
        self.encoder.shape.vocab_size
    }
    pub fn image_channels(&self) -> u32 {
        self.encoder.shape.image_channels
    }
    /// Image side for a token grid of `grid` (112 for 14 with the public weights).
    pub fn input_size(&self, grid: u32) -> u32 {
        grid * self.encoder.shape.downsampling()
    }

    /// Is `dir` a DALL-E tokenizer folder?
    pub fn is_folder(dir: &Path) -> bool {
        dir.join(CONFIG_FILE).is_file()
    }

    /// Load a folder written by `tokenizer import-dalle`.
    pub fn load(ctx: &GpuContext, dir: &Path) -> Result<Self, ModelError> {
        let cfg = DalleConfig::read(dir)?;
        let encoder = DalleNet::load(ctx, &dir.join(ENCODER_FILE), Half::Encoder)?;
        let dec_path = dir.join(DECODER_FILE);
        let decoder = if dec_path.is_file() {
            Some(DalleNet::load(ctx, &dec_path, Half::Decoder)?)
        } else {
            None
        };
        let tk = Self::new(encoder, decoder)?;
        if tk.config() != cfg {
            return Err(ModelError::Checkpoint(format!(
                "{}: the weights do not match the architecture {CONFIG_FILE} describes",
                dir.display()
            )));
        }
        Ok(tk)
    }

    /// The text of `dalle_config.json`.
    pub fn config_json(&self) -> Result<String, ModelError> {
        serde_json::to_string_pretty(&self.config()).map_err(|e| ModelError::Config(e.to_string()))
    }

    /// A tokenizer from a config text and tensors named `encoder.<name>` / `decoder.<name>` (a one-file
    /// checkpoint's tokenizer entry); the architecture must be the one the config describes.
    pub fn from_prefixed(
        ctx: &GpuContext,
        config_json: &str,
        t: &BTreeMap<String, HostTensor>,
        source: &str,
    ) -> Result<Self, ModelError> {
        let cfg: DalleConfig = serde_json::from_str(config_json).map_err(|e| {
            ModelError::Config(format!(
                "{source}: not a valid DALL-E tokenizer config: {e}"
            ))
        })?;
        let half = |prefix: &str| -> BTreeMap<String, HostTensor> {
            t.iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone())))
                .collect()
        };
        let encoder = DalleNet::from_tensors(ctx, &half("encoder."), Half::Encoder, source)?;
        let dec = half("decoder.");
        let decoder = if dec.is_empty() {
            None
        } else {
            Some(DalleNet::from_tensors(ctx, &dec, Half::Decoder, source)?)
        };
        let tk = Self::new(encoder, decoder)?;
        if tk.config() != cfg {
            return Err(ModelError::Checkpoint(format!(
                "{source}: the weights do not match the architecture its config describes"
            )));
        }
        Ok(tk)
    }

    /// The GPU buffers of the weights: the encoder's, then the decoder's when there is one.
    pub fn state_slices(&self) -> Vec<&crate::gpu::GpuSlice> {
        let mut v = vec![&self.encoder.weights.whole];
        if let Some(d) = &self.decoder {
            v.push(&d.weights.whole);
        }
        v
    }

    /// The tensors of [`DalleTokenizer::state_slices`] read back, named `encoder.<name>` / `decoder.<name>`.
    pub fn prefixed_tensors(&self, values: &[Vec<f32>]) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        let nets = std::iter::once(("encoder.", &self.encoder))
            .chain(self.decoder.iter().map(|d| ("decoder.", d)));
        for ((prefix, net), flat) in nets.zip(values) {
            for (k, v) in net.tensors(flat) {
                out.insert(format!("{prefix}{k}"), v);
            }
        }
        out
    }

    /// Save the folder from the weights on the GPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, ctx: &GpuContext, dir: &Path) -> Result<(), ModelError> {
        let enc = self
            .encoder
            .tensors(&ctx.read_f32(&self.encoder.weights.whole)?);
        let dec = match &self.decoder {
            Some(d) => Some(d.tensors(&ctx.read_f32(&d.weights.whole)?)),
            None => None,
        };
        self.save_folder(dir, &enc, dec.as_ref())
    }

    /// Write a tokenizer folder: the weights as read (`encoder` / `decoder` tensors) and the config, each
    /// atomically; the config last, so a folder with a config is complete.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_folder(
        &self,
        dir: &Path,
        encoder: &BTreeMap<String, HostTensor>,
        decoder: Option<&BTreeMap<String, HostTensor>>,
    ) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let f32s = |t: &BTreeMap<String, HostTensor>| -> BTreeMap<String, HostTensor> {
            t.iter()
                .map(|(k, v)| (k.clone(), HostTensor::f32(v.shape.clone(), v.to_f32())))
                .collect()
        };
        tensorfile::write(&dir.join(ENCODER_FILE), &f32s(encoder))?;
        match decoder {
            Some(d) => tensorfile::write(&dir.join(DECODER_FILE), &f32s(d))?,
            None => match std::fs::remove_file(dir.join(DECODER_FILE)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ModelError::io(&dir.join(DECODER_FILE), e))
                }
                _ => {}
            },
        }
        tensorfile::write_atomic(&dir.join(CONFIG_FILE), self.config_json()?.as_bytes())
    }
}
