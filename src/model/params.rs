//! The parameter table of a BEiT model: every tensor by its HuggingFace (transformers 4.x) name, with shape,
//! initialisation, weight-decay flag and layer id (for layer-wise lr decay), laid out in one flat buffer.
//! Query, key and value weights sit back to back so they bind as one fused (3C, C) matrix; the biases likewise,
//! with a non-trainable zero key bias between them (BEiT's key has no bias).

use super::config::{Architecture, BeitConfig};
use crate::gpu::FlatLayout;
use crate::rng::Rng;

/// How a tensor starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Truncated normal, std 0.02, cut at ±1 std, times a scale (depth rescaling, head scaling).
    TruncNormal(f32),
    Zeros,
    Ones,
    Const(f32),
}

/// One tensor of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// transformers 4.x name, as on the hub.
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    /// Receives weight decay (weights of two or more dimensions, not tokens or position tables).
    pub decay: bool,
    /// 0 embeddings, i + 1 block i, L + 1 final norms and heads.
    pub layer_id: u32,
    /// False only for the zero key bias that completes the fused qkv bias.
    pub trainable: bool,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Name of the pseudo-parameter holding the key's zero bias (never saved, never updated).
pub const KEY_BIAS_SUFFIX: &str = "attention.attention.key.bias";

/// The table and its flat layout.
#[derive(Clone, Debug)]
pub struct ParamTable {
    pub specs: Vec<ParamSpec>,
    pub layout: FlatLayout,
}

/// Name and output width of the MIM head: `lm_head` over the vocabulary, or `pixel_head` over a patch's values.
pub fn mim_head(cfg: &BeitConfig) -> (&'static str, usize) {
    if cfg.predicts_pixels() {
        ("pixel_head", cfg.patch_dim() as usize)
    } else {
        ("lm_head", cfg.vocab_size as usize)
    }
}

/// The tensors of a segmentation head (name, shape, initialisation); C channels everywhere inside the head, K
/// classes. Linear: `decode_head.norm.{weight,bias}` (C), `decode_head.classifier.weight` (K, C, 1, 1) and
/// `.bias` (K). Pyramid: `fpn1.{weight (C, C, 2, 2), bias}` (the transposed conv of the finest scale),
/// `decode_head.lateral_convs.{i}.{weight (C, C, 1, 1), bias}`, `decode_head.fpn_convs.{i}.{weight (C, C, 3, 3),
/// bias}` and `.norm.{weight,bias}` (group norm) for the 4 scales i, `decode_head.fuse.{i}.weight (C, C, 3, 3)`
/// (the fuse conv's slice over scale i's channels), `decode_head.fuse.{bias,norm.weight,norm.bias}`, and the
/// classifier as for the linear head.
pub fn segmentation_head(cfg: &BeitConfig) -> Vec<(String, Vec<usize>, Init)> {
    use super::config::SegmentationHead;
    let (c, k) = (cfg.hidden_size as usize, cfg.labels() as usize);
    let tn = Init::TruncNormal(1.0);
    let mut out: Vec<(String, Vec<usize>, Init)> = Vec::new();
    let norm = |out: &mut Vec<_>, prefix: &str| {
        out.push((format!("{prefix}.weight"), vec![c], Init::Ones));
        out.push((format!("{prefix}.bias"), vec![c], Init::Zeros));
    };
    match cfg.segmentation_head() {
        Some(SegmentationHead::Pyramid) => {
            out.push(("fpn1.weight".into(), vec![c, c, 2, 2], tn));
            out.push(("fpn1.bias".into(), vec![c], Init::Zeros));
            for i in 0..4 {
                let lat = format!("decode_head.lateral_convs.{i}");
                out.push((format!("{lat}.weight"), vec![c, c, 1, 1], tn));
                out.push((format!("{lat}.bias"), vec![c], Init::Zeros));
                let fpn = format!("decode_head.fpn_convs.{i}");
                out.push((format!("{fpn}.weight"), vec![c, c, 3, 3], tn));
                out.push((format!("{fpn}.bias"), vec![c], Init::Zeros));
                norm(&mut out, &format!("{fpn}.norm"));
            }
            for i in 0..4 {
                out.push((format!("decode_head.fuse.{i}.weight"), vec![c, c, 3, 3], tn));
            }
            out.push(("decode_head.fuse.bias".into(), vec![c], Init::Zeros));
            norm(&mut out, "decode_head.fuse.norm");
        }
        _ => norm(&mut out, "decode_head.norm"),
    }
    out.push(("decode_head.classifier.weight".into(), vec![k, c, 1, 1], tn));
    out.push(("decode_head.classifier.bias".into(), vec![k], Init::Zeros));
    out
}

/// Prefix of block i.
pub fn block(i: u32) -> String {
    format!("beit.encoder.layer.{i}.")
}

impl ParamTable {
    /// Build the table for `cfg`, aligned to `align_bytes` (the device's storage-offset alignment).
    pub fn new(cfg: &BeitConfig, align_bytes: u64) -> Self {
        let c = cfg.hidden_size as usize;
        let i_sz = cfg.intermediate_size as usize;
        let l = cfg.num_hidden_layers;
        let heads = cfg.num_attention_heads as usize;
        let rel = cfg.relpos_rows() as usize;
        let mut specs: Vec<(ParamSpec, bool)> = Vec::new();
        let mut add = |name: String, shape: Vec<usize>, init: Init, layer_id: u32, packed: bool| {
            let decay = name.ends_with(".weight") && shape.len() >= 2;
            let trainable = !name.ends_with(KEY_BIAS_SUFFIX);
            specs.push((
                ParamSpec {
                    name,
                    shape,
                    init,
                    decay,
                    layer_id,
                    trainable,
                },
                packed,
            ));
        };
        let tn = Init::TruncNormal(1.0);
        add(
            "beit.embeddings.cls_token".into(),
            vec![1, 1, c],
            tn,
            0,
            false,
        );
        if cfg.use_mask_token {
            add(
                "beit.embeddings.mask_token".into(),
                vec![1, 1, c],
                tn,
                0,
                false,
            );
        }
        if cfg.use_absolute_position_embeddings {
            add(
                "beit.embeddings.position_embeddings".into(),
                vec![1, cfg.tokens() as usize, c],
                tn,
                0,
                false,
            );
        }
        let (cin, p) = (cfg.num_channels as usize, cfg.patch_size as usize);
        add(
            "beit.embeddings.patch_embeddings.projection.weight".into(),
            vec![c, cin, p, p],
            tn,
            0,
            false,
        );
        add(
            "beit.embeddings.patch_embeddings.projection.bias".into(),
            vec![c],
            Init::Zeros,
            0,
            false,
        );
        if cfg.use_shared_relative_position_bias {
            add(
                "beit.encoder.relative_position_bias.relative_position_bias_table".into(),
                vec![rel, heads],
                Init::Zeros,
                l + 1,
                false,
            );
        }
        for li in 0..l {
            let b = block(li);
            let id = li + 1;
            let depth_scale = 1.0 / (2.0 * (li + 1) as f32).sqrt();
            add(
                format!("{b}layernorm_before.weight"),
                vec![c],
                Init::Ones,
                id,
                false,
            );
            add(
                format!("{b}layernorm_before.bias"),
                vec![c],
                Init::Zeros,
                id,
                false,
            );
            add(
                format!("{b}attention.attention.query.weight"),
                vec![c, c],
                tn,
                id,
                false,
            );
            add(
                format!("{b}attention.attention.key.weight"),
                vec![c, c],
                tn,
                id,
                true,
            );
            add(
                format!("{b}attention.attention.value.weight"),
                vec![c, c],
                tn,
                id,
                true,
            );
            add(
                format!("{b}attention.attention.query.bias"),
                vec![c],
                Init::Zeros,
                id,
                false,
            );
            add(
                format!("{b}{KEY_BIAS_SUFFIX}"),
                vec![c],
                Init::Zeros,
                id,
                true,
            );
            add(
                format!("{b}attention.attention.value.bias"),
                vec![c],
                Init::Zeros,
                id,
                true,
            );
            if cfg.use_relative_position_bias {
                add(format!("{b}attention.attention.relative_position_bias.relative_position_bias_table"), vec![rel, heads], Init::Zeros, id, false);
            }
            add(
                format!("{b}attention.output.dense.weight"),
                vec![c, c],
                Init::TruncNormal(depth_scale),
                id,
                false,
            );
            add(
                format!("{b}attention.output.dense.bias"),
                vec![c],
                Init::Zeros,
                id,
                false,
            );
            add(
                format!("{b}layernorm_after.weight"),
                vec![c],
                Init::Ones,
                id,
                false,
            );
            add(
                format!("{b}layernorm_after.bias"),
                vec![c],
                Init::Zeros,
                id,
                false,
            );
            add(
                format!("{b}intermediate.dense.weight"),
                vec![i_sz, c],
                tn,
                id,
                false,
            );
            add(
                format!("{b}intermediate.dense.bias"),
                vec![i_sz],
                Init::Zeros,
                id,
                false,
            );
            add(
                format!("{b}output.dense.weight"),
                vec![c, i_sz],
                Init::TruncNormal(depth_scale),
                id,
                false,
            );
            add(
                format!("{b}output.dense.bias"),
                vec![c],
                Init::Zeros,
                id,
                false,
            );
            if cfg.layer_scale_init_value > 0.0 {
                let v = Init::Const(cfg.layer_scale_init_value as f32);
                add(format!("{b}lambda_1"), vec![c], v, id, false);
                add(format!("{b}lambda_2"), vec![c], v, id, false);
            }
        }
        if !cfg.use_mean_pooling {
            add(
                "beit.layernorm.weight".into(),
                vec![c],
                Init::Ones,
                l + 1,
                false,
            );
            add(
                "beit.layernorm.bias".into(),
                vec![c],
                Init::Zeros,
                l + 1,
                false,
            );
        }
        match cfg.architecture() {
            Architecture::MaskedImageModeling => {
                add("layernorm.weight".into(), vec![c], Init::Ones, l + 1, false);
                add("layernorm.bias".into(), vec![c], Init::Zeros, l + 1, false);
                let (head, width) = mim_head(cfg);
                add(format!("{head}.weight"), vec![width, c], tn, l + 1, false);
                add(
                    format!("{head}.bias"),
                    vec![width],
                    Init::Zeros,
                    l + 1,
                    false,
                );
            }
            Architecture::SemanticSegmentation => {
                for (name, shape, init) in segmentation_head(cfg) {
                    add(name, shape, init, l + 1, false);
                }
            }
            Architecture::ImageClassification => {
                if cfg.use_mean_pooling {
                    add(
                        "beit.pooler.layernorm.weight".into(),
                        vec![c],
                        Init::Ones,
                        l + 1,
                        false,
                    );
                    add(
                        "beit.pooler.layernorm.bias".into(),
                        vec![c],
                        Init::Zeros,
                        l + 1,
                        false,
                    );
                }
                // The official fine-tuning code scales the head's initial weights by 0.001.
                add(
                    "classifier.weight".into(),
                    vec![cfg.labels() as usize, c],
                    Init::TruncNormal(0.001),
                    l + 1,
                    false,
                );
                add(
                    "classifier.bias".into(),
                    vec![cfg.labels() as usize],
                    Init::Zeros,
                    l + 1,
                    false,
                );
            }
        }
        let mut layout = FlatLayout::new(align_bytes);
        for (s, packed) in &specs {
            if *packed {
                layout.push_packed(&s.name, &s.shape);
            } else {
                layout.push(&s.name, &s.shape);
            }
        }
        Self {
            specs: specs.into_iter().map(|(s, _)| s).collect(),
            layout,
        }
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    /// Number of trainable values.
    pub fn trainable_count(&self) -> usize {
        self.specs
            .iter()
            .filter(|s| s.trainable)
            .map(|s| s.len())
            .sum()
    }

    /// Initial values of the whole flat buffer (padding zero), drawn in table order from `seed`.
    pub fn init_values(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut out = vec![0.0f32; self.layout.total as usize];
        for (s, e) in self.specs.iter().zip(&self.layout.entries) {
            let dst = &mut out[e.offset as usize..(e.offset + e.len) as usize];
            match s.init {
                Init::TruncNormal(scale) => dst
                    .iter_mut()
                    .for_each(|v| *v = rng.trunc_normal(0.02, 1.0) as f32 * scale),
                Init::Zeros => {}
                Init::Ones => dst.fill(1.0),
                Init::Const(c) => dst.fill(c),
            }
        }
        out
    }

    /// (lr multiplier, weight decay) per tensor for AdamW, with layer-wise decay `lr_decay` (1.0 for none).
    pub fn optimizer_groups(
        &self,
        weight_decay: f32,
        lr_decay: f32,
        layers: u32,
    ) -> Vec<(f32, f32)> {
        self.specs
            .iter()
            .map(|s| {
                if !s.trainable {
                    return (0.0, 0.0);
                }
                let mult = lr_decay.powi((layers + 1 - s.layer_id) as i32);
                (mult, if s.decay { weight_decay } else { 0.0 })
            })
            .collect()
    }
}
