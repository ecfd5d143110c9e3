//! Checkpoint folders as HuggingFace writes them: `config.json` + `model.safetensors`. Reads the parameter
//! names of transformers 4.x (the hub) and 5.x, in f32, f16 or bf16; writes 4.x names in f32, atomically.
//! A folder with a missing, unexpected or wrongly shaped tensor is refused, naming the first offender.
//! Loading at another image size interpolates the relative position tables (bilinear) and absolute position
//! embeddings (bicubic) as transformers does.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::BeitConfig;
use super::error::ModelError;
use super::params::{ParamTable, KEY_BIAS_SUFFIX};
use crate::gpu::{FlatBuffer, GpuContext};
use crate::tensorfile::{self, HostTensor};

/// The transformers 4.x name of a parameter given either spelling; `None` for known non-parameter buffers.
pub fn canonical_name(name: &str) -> Option<String> {
    if name.ends_with("relative_position_index") {
        return None;
    }
    if let Some(rest) = name.strip_prefix("beit.shared_position_bias.") {
        return Some(format!("beit.encoder.relative_position_bias.{rest}"));
    }
    if let Some(rest) = name.strip_prefix("beit.layers.") {
        let (idx, tail) = rest.split_once('.')?;
        let tail = [
            ("attention.q_proj.", "attention.attention.query."),
            ("attention.k_proj.", "attention.attention.key."),
            ("attention.v_proj.", "attention.attention.value."),
            ("attention.o_proj.", "attention.output.dense."),
            ("mlp.fc1.", "intermediate.dense."),
            ("mlp.fc2.", "output.dense."),
            (
                "relative_position_bias.",
                "attention.attention.relative_position_bias.",
            ),
        ]
        .iter()
        .find_map(|(new, old)| tail.strip_prefix(new).map(|t| format!("{old}{t}")))
        .unwrap_or_else(|| tail.to_string());
        return Some(format!("beit.encoder.layer.{idx}.{tail}"));
    }
    Some(name.to_string())
}

/// A parsed checkpoint folder.
pub struct Checkpoint {
    pub config: BeitConfig,
    /// Tensors by 4.x name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// 4.x name -> the name in the file (to report gradients in the file's spelling).
    pub file_names: BTreeMap<String, String>,
}

/// Read `dir/config.json` and `dir/model.safetensors`.
pub fn read_folder(dir: &Path) -> Result<Checkpoint, ModelError> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
    let cfg_source = cfg_path.display().to_string();
    let config = parse_config(&text, &cfg_source)?;
    let st_path = dir.join("model.safetensors");
    let raw = tensorfile::read(&st_path)?;
    parse_checkpoint(config, raw, &cfg_source, &st_path.display().to_string())
}

/// A validated config from the text of a config.json; `source` names it in messages.
pub fn parse_config(config_json: &str, source: &str) -> Result<BeitConfig, ModelError> {
    let config: BeitConfig = serde_json::from_str(config_json)
        .map_err(|e| ModelError::Config(format!("{source}: not a valid BeitConfig: {e}")))?;
    config
        .validate()
        .map_err(|e| ModelError::Config(format!("{source}: {e}")))?;
    Ok(config)
}

/// A checkpoint from its config and its tensors (as a file holds them); `cfg_source` and `tensor_source` name
/// where they came from in messages.
pub fn parse_checkpoint(
    mut config: BeitConfig,
    raw: BTreeMap<String, HostTensor>,
    cfg_source: &str,
    tensor_source: &str,
) -> Result<Checkpoint, ModelError> {
    let mut tensors = BTreeMap::new();
    let mut file_names = BTreeMap::new();
    for (name, t) in raw {
        if let Some(canon) = canonical_name(&name) {
            if !matches!(t.data, tensorfile::TensorData::F32(_)) {
                return Err(ModelError::Checkpoint(format!(
                    "{tensor_source}: tensor {name} is {} but parameters must be floating point",
                    t.file_dtype
                )));
            }
            file_names.insert(canon.clone(), name);
            tensors.insert(canon, t);
        }
    }
    if config.architectures.is_empty() {
        // No `architectures` in config.json: the head's tensors say which model this is.
        if tensors.contains_key("classifier.weight") {
            config.set_architecture(super::config::Architecture::ImageClassification);
        } else if tensors.contains_key("lm_head.weight") {
            config.set_architecture(super::config::Architecture::MaskedImageModeling);
        }
        config
            .validate()
            .map_err(|e| ModelError::Config(format!("{cfg_source}: {e}")))?;
    }
    Ok(Checkpoint {
        config,
        tensors,
        file_names,
    })
}

/// Fill a flat parameter vector (laid out by `table` for `cfg`) from checkpoint tensors. When `cfg.image_size`
/// differs from `from_image_size`, position tables are interpolated to the new grid.
pub fn flat_from_tensors(
    cfg: &BeitConfig,
    table: &ParamTable,
    tensors: &BTreeMap<String, HostTensor>,
    from_image_size: u32,
) -> Result<Vec<f32>, ModelError> {
    let mut flat = vec![0.0f32; table.layout.total as usize];
    for (spec, entry) in table.specs.iter().zip(&table.layout.entries) {
        if !spec.trainable {
            continue; // the zero key bias
        }
        let Some(t) = tensors.get(&spec.name) else {
            return Err(ModelError::Checkpoint(format!(
                "tensor {} is missing from the checkpoint (expected shape {:?})",
                spec.name, spec.shape
            )));
        };
        let values = if t.shape == spec.shape {
            t.to_f32()
        } else {
            resize_position_tensor(cfg, &spec.name, t, &spec.shape, from_image_size).ok_or_else(
                || {
                    ModelError::Checkpoint(format!(
                        "tensor {} has shape {:?} in the checkpoint but the config needs {:?}",
                        spec.name, t.shape, spec.shape
                    ))
                },
            )?
        };
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(ModelError::Checkpoint(format!(
                "tensor {} holds {bad} values that are not finite (NaN or infinite)",
                spec.name
            )));
        }
        flat[entry.offset as usize..(entry.offset + entry.len) as usize].copy_from_slice(&values);
    }
    let known: std::collections::BTreeSet<&str> =
        table.specs.iter().map(|s| s.name.as_str()).collect();
    if let Some(extra) = tensors.keys().find(|k| !known.contains(k.as_str())) {
        return Err(ModelError::Checkpoint(format!("tensor {extra} in the checkpoint is not part of this model (check architectures and the use_* fields of config.json)")));
    }
    Ok(flat)
}

/// Interpolate a relative position table or absolute position embeddings to the grid of `cfg`.
fn resize_position_tensor(
    cfg: &BeitConfig,
    name: &str,
    t: &HostTensor,
    want: &[usize],
    from_image_size: u32,
) -> Option<Vec<f32>> {
    let old_grid = (from_image_size / cfg.patch_size) as usize;
    let new_grid = cfg.grid() as usize;
    if old_grid == new_grid {
        return None;
    }
    let v = t.to_f32();
    if name.ends_with("relative_position_bias_table") {
        let (old_side, new_side) = (2 * old_grid - 1, 2 * new_grid - 1);
        let heads = *t.shape.get(1)?;
        if t.shape != [old_side * old_side + 3, heads] || want != [new_side * new_side + 3, heads] {
            return None;
        }
        let mut out = vec![0.0f32; want[0] * heads];
        for h in 0..heads {
            let plane: Vec<f32> = (0..old_side * old_side).map(|i| v[i * heads + h]).collect();
            let resized =
                crate::cpu::interpolate::bilinear(&plane, old_side, old_side, new_side, new_side);
            for (i, r) in resized.iter().enumerate() {
                out[i * heads + h] = *r;
            }
        }
        out[new_side * new_side * heads..].copy_from_slice(&v[old_side * old_side * heads..]);
        Some(out)
    } else if name == "beit.embeddings.position_embeddings" {
        let c = *t.shape.get(2)?;
        if t.shape != [1, old_grid * old_grid + 1, c] || want != [1, new_grid * new_grid + 1, c] {
            return None;
        }
        let mut out = vec![0.0f32; (new_grid * new_grid + 1) * c];
        out[..c].copy_from_slice(&v[..c]);
        for ch in 0..c {
            let plane: Vec<f32> = (0..old_grid * old_grid)
                .map(|i| v[(1 + i) * c + ch])
                .collect();
            let resized =
                crate::cpu::interpolate::bicubic(&plane, old_grid, old_grid, new_grid, new_grid);
            for (i, r) in resized.iter().enumerate() {
                out[(1 + i) * c + ch] = *r;
            }
        }
        Some(out)
    } else {
        None
    }
}

/// Tensors by 4.x name from a flat vector (the zero key bias left out).
pub fn tensors_from_flat(table: &ParamTable, flat: &[f32]) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    for (spec, e) in table.specs.iter().zip(&table.layout.entries) {
        if spec.name.ends_with(KEY_BIAS_SUFFIX) {
            continue;
        }
        let v = flat[e.offset as usize..(e.offset + e.len) as usize].to_vec();
        out.insert(spec.name.clone(), HostTensor::f32(spec.shape.clone(), v));
    }
    out
}

/// Write `dir/config.json` and `dir/model.safetensors` (4.x names, f32), each atomically.
pub fn write_folder(
    dir: &Path,
    cfg: &BeitConfig,
    table: &ParamTable,
    flat: &[f32],
) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    tensorfile::write(
        &dir.join("model.safetensors"),
        &tensors_from_flat(table, flat),
    )?;
    tensorfile::write_atomic(&dir.join("config.json"), cfg.to_json().as_bytes())
}

/// A model's parameters on the GPU with their table and config. A clone shares the buffers.
#[derive(Clone)]
pub struct BeitModel {
    pub cfg: BeitConfig,
    pub table: ParamTable,
    pub params: FlatBuffer,
    /// 4.x name -> the spelling in the folder it was loaded from (4.x names for a new model).
    pub file_names: BTreeMap<String, String>,
}

impl BeitModel {
    /// Parameters initialised as BEiT's official code, from `seed`.
    pub fn new_random(ctx: &GpuContext, cfg: &BeitConfig, seed: u64) -> Result<Self, ModelError> {
        cfg.validate()?;
        let table = ParamTable::new(cfg, ctx.storage_alignment());
        let flat = table.init_values(seed);
        Ok(Self::from_flat(
            ctx,
            cfg.clone(),
            table,
            &flat,
            BTreeMap::new(),
        ))
    }

    fn from_flat(
        ctx: &GpuContext,
        cfg: BeitConfig,
        table: ParamTable,
        flat: &[f32],
        file_names: BTreeMap<String, String>,
    ) -> Self {
        let params = FlatBuffer::new(ctx, "parameters", table.layout.clone());
        params.whole.write(ctx, flat);
        Self {
            cfg,
            table,
            params,
            file_names,
        }
    }

    /// Load a checkpoint folder, optionally at another image size (position tables interpolated).
    pub fn load(ctx: &GpuContext, dir: &Path, image_size: Option<u32>) -> Result<Self, ModelError> {
        Self::from_checkpoint(
            ctx,
            read_folder(dir)?,
            image_size,
            &dir.display().to_string(),
        )
    }

    /// Put a parsed checkpoint on the GPU, optionally at another image size; `source` names it in messages.
    pub fn from_checkpoint(
        ctx: &GpuContext,
        ck: Checkpoint,
        image_size: Option<u32>,
        source: &str,
    ) -> Result<Self, ModelError> {
        let from = ck.config.image_size;
        let mut cfg = ck.config.clone();
        if let Some(s) = image_size {
            cfg.image_size = s;
            cfg.validate()?;
        }
        let table = ParamTable::new(&cfg, ctx.storage_alignment());
        let flat = flat_from_tensors(&cfg, &table, &ck.tensors, from)
            .map_err(|e| ModelError::Checkpoint(format!("{source}: {e}")))?;
        Ok(Self::from_flat(ctx, cfg, table, &flat, ck.file_names))
    }

    /// The parameters, read back from the GPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn flat(&self, ctx: &GpuContext) -> Result<Vec<f32>, ModelError> {
        Ok(ctx.read_f32(&self.params.whole)?)
    }

    /// Save as a HuggingFace folder (4.x names, f32).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, ctx: &GpuContext, dir: &Path) -> Result<(), ModelError> {
        write_folder(dir, &self.cfg, &self.table, &self.flat(ctx)?)
    }

    /// The name a tensor had in the loaded file (4.x name otherwise).
    pub fn file_name(&self, canonical: &str) -> String {
        self.file_names
            .get(canonical)
            .cloned()
            .unwrap_or_else(|| canonical.to_string())
    }
}
