//! The model configuration: HuggingFace `BeitConfig` as it appears in `config.json` (unknown fields ignored),
//! named presets, validation with one clear sentence per refusal, and the dims derived from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ModelError;

/// Which head sits on the backbone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// `BeitForMaskedImageModeling`: LayerNorm -> Linear(C, V) on patch tokens.
    MaskedImageModeling,
    /// `BeitForImageClassification`: pooled (mean of patches or CLS) -> LayerNorm -> Linear(C, labels).
    ImageClassification,
    /// `BeitForSemanticSegmentation`: per-pixel class logits from patch features (beitlab's linear or pyramid
    /// head, [`SegmentationHead`]), upsampled bilinearly to the image.
    SemanticSegmentation,
}

/// The dense head of a segmentation model (`segmentation_head` in config.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentationHead {
    /// LayerNorm -> 1x1 conv (a linear classifier per patch) on the last block's patch tokens.
    Linear,
    /// Features of four evenly spaced blocks as a 4-scale pyramid (2x2 transposed conv / identity / 2x2 max-pool
    /// / two max-pools), 1x1 lateral convs, top-down fusion, 3x3 convs with group norm, a 3x3 fuse conv over all
    /// scales and a 1x1 classifier.
    Pyramid,
}

impl SegmentationHead {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "linear" => Some(Self::Linear),
            "pyramid" => Some(Self::Pyramid),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Pyramid => "pyramid",
        }
    }
}

impl Architecture {
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::MaskedImageModeling => "BeitForMaskedImageModeling",
            Self::ImageClassification => "BeitForImageClassification",
            Self::SemanticSegmentation => "BeitForSemanticSegmentation",
        }
    }
}

fn d_image_size() -> u32 {
    224
}
fn d_patch_size() -> u32 {
    16
}
fn d_channels() -> u32 {
    3
}
fn d_hidden() -> u32 {
    768
}
fn d_layers() -> u32 {
    12
}
fn d_heads() -> u32 {
    12
}
fn d_intermediate() -> u32 {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_eps() -> f64 {
    1e-12
}
fn d_layer_scale() -> f64 {
    0.1
}
fn d_drop_path() -> f64 {
    0.1
}
fn d_true() -> bool {
    true
}
fn d_vocab() -> u32 {
    8192
}
fn d_model_type() -> String {
    "beit".into()
}

/// HuggingFace `BeitConfig` fields beitlab reads and writes (defaults are transformers' defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BeitConfig {
    #[serde(default = "d_model_type")]
    pub model_type: String,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default = "d_image_size")]
    pub image_size: u32,
    #[serde(default = "d_patch_size")]
    pub patch_size: u32,
    #[serde(default = "d_channels")]
    pub num_channels: u32,
    #[serde(default = "d_hidden")]
    pub hidden_size: u32,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: u32,
    #[serde(default = "d_heads")]
    pub num_attention_heads: u32,
    #[serde(default = "d_intermediate")]
    pub intermediate_size: u32,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub use_mask_token: bool,
    #[serde(default)]
    pub use_absolute_position_embeddings: bool,
    #[serde(default)]
    pub use_relative_position_bias: bool,
    #[serde(default)]
    pub use_shared_relative_position_bias: bool,
    #[serde(default = "d_layer_scale")]
    pub layer_scale_init_value: f64,
    #[serde(default = "d_drop_path")]
    pub drop_path_rate: f64,
    #[serde(default = "d_true")]
    pub use_mean_pooling: bool,
    #[serde(default = "d_vocab")]
    pub vocab_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id2label: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label2id: BTreeMap<String, u32>,
    /// beitlab's own field (not transformers'): what the MIM head predicts, "tokens" (BEiT) or "pixels" (the
    /// normalised pixels of each masked patch, the paper's ablation). Omitted from config.json for tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mim_target: Option<String>,
    /// beitlab's own field: the dense head of a segmentation model, "linear" or "pyramid".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation_head: Option<String>,
    /// transformers' field: the blocks (1-based; block i's output) whose features the pyramid head reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_indices: Vec<u32>,
}

/// The largest configs beitlab accepts, checked before anything is allocated (a config.json with hidden_size 10^9
/// is refused, not attempted). Far above the paper's largest model (ViT-L/16: 1024 wide, 24 deep, 304M).
pub mod limits {
    pub const IMAGE_SIZE: u32 = 4096;
    /// Patch grid side (a 65,536-patch image).
    pub const GRID: u32 = 256;
    pub const HIDDEN_SIZE: u32 = 16384;
    pub const LAYERS: u32 = 256;
    pub const INTERMEDIATE_SIZE: u32 = 65536;
    /// Visual-token vocabulary and classes.
    pub const VOCABULARY: u32 = 1 << 20;
    /// 2^31 values, 8 GiB in f32.
    pub const PARAMETERS: u64 = 1 << 31;
}

impl BeitConfig {
    /// Parse `config.json` text and validate it.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| {
            ModelError::Config(format!("config.json is not a valid BeitConfig: {e}"))
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Refuse what beitlab does not implement, naming the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.model_type != "beit" {
            return bad(format!(
                "model_type is \"{}\" but only \"beit\" is supported",
                self.model_type
            ));
        }
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act \"{}\" is not supported; beitlab implements \"gelu\" (exact erf)",
                self.hidden_act
            ));
        }
        for (name, v) in [
            ("image_size", self.image_size),
            ("patch_size", self.patch_size),
            ("num_channels", self.num_channels),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if self.num_channels != 1 && self.num_channels != 3 {
            return bad(format!(
                "num_channels is {} but beitlab reads gray (1) or RGB (3) images",
                self.num_channels
            ));
        }
        for (name, v, max) in [
            ("image_size", self.image_size, limits::IMAGE_SIZE),
            ("hidden_size", self.hidden_size, limits::HIDDEN_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, limits::LAYERS),
            (
                "num_attention_heads",
                self.num_attention_heads,
                limits::HIDDEN_SIZE,
            ),
            (
                "intermediate_size",
                self.intermediate_size,
                limits::INTERMEDIATE_SIZE,
            ),
            ("vocab_size", self.vocab_size, limits::VOCABULARY),
            ("num_labels", self.labels(), limits::VOCABULARY),
        ] {
            if v > max {
                return bad(format!("{name} {v} is above beitlab's limit of {max}"));
            }
        }
        if !self.image_size.is_multiple_of(self.patch_size) {
            return bad(format!(
                "image_size {} is not divisible by patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.grid() > limits::GRID {
            return bad(format!(
                "image_size {} / patch_size {} is a {}-patch grid side, above beitlab's limit of {}",
                self.image_size,
                self.patch_size,
                self.grid(),
                limits::GRID
            ));
        }
        let params = self.parameter_estimate();
        if params > limits::PARAMETERS {
            return bad(format!(
                "this config has about {params} parameters, above beitlab's limit of {}",
                limits::PARAMETERS
            ));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return bad(format!(
                "drop_path_rate {} is outside [0, 1)",
                self.drop_path_rate
            ));
        }
        if let Some(t) = &self.mim_target {
            if t != "tokens" && t != "pixels" {
                return bad(format!(
                    "mim_target \"{t}\" is not supported; use \"tokens\" or \"pixels\""
                ));
            }
        }
        if self.architecture() == Architecture::MaskedImageModeling && self.vocab_size == 0 {
            return bad("vocab_size must be positive for masked image modeling".into());
        }
        if self.architecture() == Architecture::ImageClassification && self.labels() == 0 {
            return bad("num_labels must be positive for image classification".into());
        }
        if self.architecture() == Architecture::SemanticSegmentation {
            if self.labels() == 0 {
                return bad("num_labels must be positive for semantic segmentation".into());
            }
            let head = self.segmentation_head.as_deref().unwrap_or("");
            match SegmentationHead::parse(head) {
                None => {
                    return bad(format!(
                    "segmentation_head \"{head}\" is not supported; use \"linear\" or \"pyramid\""
                ))
                }
                Some(SegmentationHead::Pyramid) => {
                    if self.grid() < 4 {
                        return bad(format!(
                            "the pyramid head pools the {0}x{0} patch grid twice; it needs a grid of at least 4x4 (a larger image or smaller patches)",
                            self.grid()
                        ));
                    }
                    if self.out_indices.len() != 4 {
                        return bad(format!(
                            "the pyramid head reads 4 blocks but out_indices names {}",
                            self.out_indices.len()
                        ));
                    }
                    if let Some(&i) = self
                        .out_indices
                        .iter()
                        .find(|&&i| i == 0 || i > self.num_hidden_layers)
                    {
                        return bad(format!(
                            "out_indices names block {i} but the blocks are 1 to {}",
                            self.num_hidden_layers
                        ));
                    }
                }
                Some(SegmentationHead::Linear) => {}
            }
        }
        Ok(())
    }

    /// Parameters of the network in u64 (no overflow for any u32 fields): blocks, embeddings, heads, tables.
    pub fn parameter_estimate(&self) -> u64 {
        let (c, i, l) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.num_hidden_layers as u64,
        );
        let side = 2 * self.grid() as u64;
        let relpos = side * side * self.num_attention_heads as u64;
        let block = 4 * c * c + 2 * c * i + 12 * c + i + relpos;
        let embed = self.num_channels as u64 * (self.patch_size as u64).pow(2) * c
            + (self.grid() as u64).pow(2) * c;
        let heads = (self.vocab_size as u64 + self.labels() as u64 + 2) * c;
        l * block + embed + heads
    }

    /// The MIM head regresses pixels instead of predicting visual tokens.
    pub fn predicts_pixels(&self) -> bool {
        self.mim_target.as_deref() == Some("pixels")
    }

    /// From `architectures` when present (the first BEiT head named there), else masked image modeling.
    pub fn architecture(&self) -> Architecture {
        for a in &self.architectures {
            match a.as_str() {
                "BeitForImageClassification" => return Architecture::ImageClassification,
                "BeitForMaskedImageModeling" => return Architecture::MaskedImageModeling,
                "BeitForSemanticSegmentation" => return Architecture::SemanticSegmentation,
                _ => {}
            }
        }
        Architecture::MaskedImageModeling
    }

    pub fn set_architecture(&mut self, a: Architecture) {
        self.architectures = vec![a.hf_name().to_string()];
    }

    /// The segmentation head, `None` for other architectures (or an unknown name, refused by `validate`).
    pub fn segmentation_head(&self) -> Option<SegmentationHead> {
        (self.architecture() == Architecture::SemanticSegmentation)
            .then(|| SegmentationHead::parse(self.segmentation_head.as_deref()?))
            .flatten()
    }

    /// Number of classes (num_labels, else the size of id2label, else 2 as transformers does).
    pub fn labels(&self) -> u32 {
        self.num_labels.unwrap_or(if self.id2label.is_empty() {
            2
        } else {
            self.id2label.len() as u32
        })
    }

    /// The class names in label order (`id2label`), numbers where it has none.
    pub fn class_names(&self) -> Vec<String> {
        (0..self.labels())
            .map(|i| {
                self.id2label
                    .get(&i.to_string())
                    .cloned()
                    .unwrap_or_else(|| i.to_string())
            })
            .collect()
    }

    /// Patch grid side (image_size / patch_size).
    pub fn grid(&self) -> u32 {
        self.image_size / self.patch_size
    }
    /// N, patches per image.
    pub fn patches(&self) -> u32 {
        self.grid() * self.grid()
    }
    /// T = N + 1 tokens.
    pub fn tokens(&self) -> u32 {
        self.patches() + 1
    }
    /// D, head size.
    pub fn head_dim(&self) -> u32 {
        self.hidden_size / self.num_attention_heads
    }
    /// Values per flattened patch, C_in · p · p.
    pub fn patch_dim(&self) -> u32 {
        self.num_channels * self.patch_size * self.patch_size
    }
    /// Rows of a relative position bias table: (2G − 1)² + 3.
    pub fn relpos_rows(&self) -> u32 {
        (2 * self.grid() - 1) * (2 * self.grid() - 1) + 3
    }

    /// Bytes of the largest single buffer a batch of `batch` needs (parameters, attention maps, MLP activations,
    /// logits), which must fit one storage binding of the adapter.
    /// `head_rows_per_image`: patches the MIM head runs on (every patch for `forward`, the masking budget when
    /// training on masked rows only).
    pub fn largest_buffer_bytes(&self, batch: u32, head_rows_per_image: u32) -> u64 {
        let (b, t, c) = (batch as u64, self.tokens() as u64, self.hidden_size as u64);
        let params = super::params::ParamTable::new(self, 4).layout.total;
        let head = match self.architecture() {
            Architecture::MaskedImageModeling => {
                b * head_rows_per_image as u64 * super::params::mim_head(self).1 as u64
            }
            Architecture::ImageClassification => b * self.labels() as u64,
            // Per-pixel logits at the image's size.
            Architecture::SemanticSegmentation => {
                b * self.labels().max(3) as u64 * (self.image_size as u64).pow(2)
            }
        };
        let candidates = [
            params,
            b * self.num_attention_heads as u64 * t * t,
            b * t * self.intermediate_size as u64,
            b * t * 3 * c,
            head,
        ];
        4 * candidates.into_iter().max().unwrap_or(0)
    }

    /// A named preset: `micro` (tests), `tiny` (32 px, patch 4, dim 192, depth 12, heads 3), `base` (BEiT-B/16),
    /// `small` (32 px, patch 4, dim 384, depth 12, heads 6). All are MIM configs shaped like BEiT pretraining.
    pub fn preset(name: &str) -> Result<Self, ModelError> {
        let base = Self {
            model_type: "beit".into(),
            architectures: vec![Architecture::MaskedImageModeling.hf_name().into()],
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            layer_norm_eps: 1e-6,
            use_mask_token: true,
            use_absolute_position_embeddings: false,
            use_relative_position_bias: false,
            use_shared_relative_position_bias: true,
            layer_scale_init_value: 0.1,
            drop_path_rate: 0.1,
            use_mean_pooling: true,
            vocab_size: 8192,
            num_labels: None,
            id2label: BTreeMap::new(),
            label2id: BTreeMap::new(),
            mim_target: None,
            segmentation_head: None,
            out_indices: Vec::new(),
        };
        match name {
            "base" => Ok(base),
            "tiny" => Ok(Self {
                image_size: 32,
                patch_size: 4,
                hidden_size: 192,
                num_attention_heads: 3,
                intermediate_size: 768,
                ..base
            }),
            "small" => Ok(Self {
                image_size: 32,
                patch_size: 4,
                hidden_size: 384,
                num_attention_heads: 6,
                intermediate_size: 1536,
                ..base
            }),
            "micro" => Ok(Self {
                image_size: 28,
                patch_size: 7,
                num_channels: 1,
                hidden_size: 32,
                num_hidden_layers: 2,
                num_attention_heads: 2,
                intermediate_size: 64,
                vocab_size: 64,
                drop_path_rate: 0.0,
                ..base
            }),
            // The CPU default: Fashion-MNIST's 28 px at patch 4, a 7 x 7 grid on which blockwise masks look like
            // blocks, narrow enough that a step stays interactive on a 2-core software driver.
            "mini" => Ok(Self {
                image_size: 28,
                patch_size: 4,
                num_channels: 1,
                hidden_size: 48,
                num_hidden_layers: 3,
                num_attention_heads: 3,
                intermediate_size: 96,
                vocab_size: 64,
                drop_path_rate: 0.0,
                ..base
            }),
            // The GPU default: the paper's 14 x 14 patch grid (56 px at patch 4) with tiny's network.
            "tiny14" => Ok(Self {
                image_size: 56,
                patch_size: 4,
                hidden_size: 192,
                num_attention_heads: 3,
                intermediate_size: 768,
                ..base
            }),
            other => Err(ModelError::Config(format!(
                "unknown preset \"{other}\"; known presets: mini, micro, tiny, tiny14, small, base"
            ))),
        }
    }
}
