//! One-file checkpoints, the way the browser saves and loads a run: the tokenizer, the pretrained BEiT and the
//! fine-tuned classifier in one safetensors file, tensors prefixed `tokenizer/`, `pretrained/` and `finetuned/`,
//! each network's config (the text of its config.json) in the file's metadata. Loading also takes the files of
//! HuggingFace-style folders chosen together: `config.json` + `model.safetensors` (a BEiT) and / or
//! `tokenizer_config.json` + `tokenizer.safetensors` (a tokenizer), or `dalle_config.json` +
//! `dalle_encoder.safetensors` (+ `dalle_decoder.safetensors`) (a DALL-E tokenizer, its tensors prefixed
//! `encoder.` / `decoder.` in the tokenizer entry).

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::checkpoint::{parse_checkpoint, parse_config, Checkpoint};
use crate::model::ModelError;
use crate::tensorfile::{self, HostTensor};

/// Metadata key (and value) that marks a one-file checkpoint.
const FORMAT_KEY: &str = "beitlab_checkpoint";
const FORMAT_VERSION: &str = "1";
/// The name a saved one-file checkpoint gets.
pub const FILE_NAME: &str = "beitlab-checkpoint.safetensors";

/// One network of a one-file checkpoint: its role (`tokenizer`, `pretrained`, `finetuned`), config text, tensors.
pub struct Entry {
    pub role: &'static str,
    pub config_json: String,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Checkpoints read from files, not yet on the GPU.
#[derive(Default)]
pub struct HostCheckpoints {
    /// The tokenizer's config text and tensors.
    pub tokenizer: Option<(String, BTreeMap<String, HostTensor>)>,
    /// BEiT models (masked image modeling and / or classification).
    pub models: Vec<Checkpoint>,
}

/// The bytes of a one-file checkpoint.
pub fn encode(entries: Vec<Entry>) -> Result<Vec<u8>, ModelError> {
    let mut meta = BTreeMap::from([(FORMAT_KEY.to_string(), FORMAT_VERSION.to_string())]);
    let mut all = BTreeMap::new();
    for e in entries {
        meta.insert(format!("{}_config", e.role), e.config_json);
        for (name, t) in e.tensors {
            all.insert(format!("{}/{name}", e.role), t);
        }
    }
    tensorfile::serialize_with_metadata(&all, meta)
}

/// The base name of a path as a browser or a file system gives it.
fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Read checkpoint files chosen together: one-file checkpoints and / or the files of HuggingFace-style folders.
/// Every file must be part of a checkpoint; the message names the first that is not, or what is missing.
pub fn parse_files(files: &[(String, Vec<u8>)]) -> Result<HostCheckpoints, ModelError> {
    let mut out = HostCheckpoints::default();
    let text = |name: &str, bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ModelError::Config(format!("{name} is not a text file")))
    };
    let (mut config, mut tokenizer_config) = (None, None);
    let (mut model_tensors, mut tokenizer_tensors) = (None, None);
    let mut dalle_config = None;
    let mut dalle_tensors: BTreeMap<String, HostTensor> = BTreeMap::new();
    for (name, bytes) in files {
        let base = base_name(name);
        let dalle_half = match base {
            "dalle_encoder.safetensors" => Some("encoder."),
            "dalle_decoder.safetensors" => Some("decoder."),
            _ => None,
        };
        if let Some(prefix) = dalle_half {
            for (k, v) in tensorfile::parse(Path::new(name), bytes)? {
                dalle_tensors.insert(format!("{prefix}{k}"), v);
            }
        } else if base == "dalle_config.json" {
            dalle_config = Some((name, text(name, bytes)?));
        } else if base == "config.json" {
            config = Some((name, text(name, bytes)?));
        } else if base == "tokenizer_config.json" {
            tokenizer_config = Some((name, text(name, bytes)?));
        } else if base.ends_with(".safetensors") {
            let meta = tensorfile::metadata(Path::new(name), bytes)?;
            if meta.contains_key(FORMAT_KEY) {
                read_one_file(name, bytes, &meta, &mut out)?;
            } else if base == "tokenizer.safetensors" {
                tokenizer_tensors = Some((name, bytes));
            } else if model_tensors.replace((name, bytes)).is_some() {
                return Err(ModelError::Checkpoint(format!(
                    "{name}: choose one model's safetensors file at a time (with its config.json)"
                )));
            }
        } else {
            return Err(ModelError::Checkpoint(format!(
                "{name} is not part of a checkpoint (expected .safetensors files and their config.json or \
                 tokenizer_config.json)"
            )));
        }
    }
    match (dalle_config, dalle_tensors.is_empty()) {
        (Some((_, cfg)), false) => {
            if !dalle_tensors.keys().any(|k| k.starts_with("encoder.")) {
                return Err(ModelError::Checkpoint(
                    "a DALL-E tokenizer needs its dalle_encoder.safetensors: choose it too".into(),
                ));
            }
            out.tokenizer = Some((cfg, dalle_tensors));
        }
        (Some((name, _)), true) => {
            return Err(ModelError::Checkpoint(format!(
                "{name} needs its dalle_encoder.safetensors: choose the files together"
            )))
        }
        (None, false) => {
            return Err(ModelError::Checkpoint(
                "DALL-E weights need their dalle_config.json: choose the files together".into(),
            ))
        }
        (None, true) => {}
    }
    if let Some(p) = pair(tokenizer_config, tokenizer_tensors, "tokenizer")? {
        if out.tokenizer.replace((p.config, p.tensors)).is_some() {
            return Err(ModelError::Checkpoint(
                "two tokenizers were chosen; choose one".into(),
            ));
        }
    }
    if let Some(p) = pair(config, model_tensors, "model")? {
        out.models.push(parse_checkpoint(
            parse_config(&p.config, p.config_name)?,
            p.tensors,
            p.config_name,
            p.tensor_name,
        )?);
    }
    if out.tokenizer.is_none() && out.models.is_empty() {
        return Err(ModelError::Checkpoint(
            "no checkpoint files were chosen".into(),
        ));
    }
    Ok(out)
}

/// The two files of one HuggingFace-style folder, read.
struct Pair<'a> {
    config_name: &'a str,
    config: String,
    tensor_name: &'a str,
    tensors: BTreeMap<String, HostTensor>,
}

/// A config file and a tensor file of one HuggingFace-style folder: both or neither must be there.
fn pair<'a>(
    config: Option<(&'a String, String)>,
    tensors: Option<(&'a String, &'a Vec<u8>)>,
    what: &str,
) -> Result<Option<Pair<'a>>, ModelError> {
    let (cfg_file, tensor_file) = match what {
        "tokenizer" => ("tokenizer_config.json", "tokenizer.safetensors"),
        _ => ("config.json", "model.safetensors"),
    };
    match (config, tensors) {
        (Some((cfg_name, cfg)), Some((name, bytes))) => Ok(Some(Pair {
            config_name: cfg_name,
            config: cfg,
            tensor_name: name,
            tensors: tensorfile::parse(Path::new(name), bytes)?,
        })),
        (None, Some((name, _))) => Err(ModelError::Checkpoint(format!(
            "{name} needs its {cfg_file}: choose both files together"
        ))),
        (Some((name, _)), None) => Err(ModelError::Checkpoint(format!(
            "{name} needs its {tensor_file}: choose both files together"
        ))),
        (None, None) => Ok(None),
    }
}

/// Split a one-file checkpoint into its networks.
fn read_one_file(
    name: &str,
    bytes: &[u8],
    meta: &BTreeMap<String, String>,
    out: &mut HostCheckpoints,
) -> Result<(), ModelError> {
    if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_VERSION) {
        return Err(ModelError::Checkpoint(format!(
            "{name} was written by a newer beitlab (checkpoint format {})",
            meta[FORMAT_KEY]
        )));
    }
    let mut by_role: BTreeMap<String, BTreeMap<String, HostTensor>> = BTreeMap::new();
    for (full, t) in tensorfile::parse(Path::new(name), bytes)? {
        let Some((role, tensor)) = full.split_once('/') else {
            return Err(ModelError::Checkpoint(format!(
                "{name}: tensor {full} belongs to no network"
            )));
        };
        by_role
            .entry(role.to_string())
            .or_default()
            .insert(tensor.to_string(), t);
    }
    for (role, tensors) in by_role {
        let Some(cfg) = meta.get(&format!("{role}_config")) else {
            return Err(ModelError::Checkpoint(format!(
                "{name}: the {role} tensors come without their config"
            )));
        };
        let source = format!("{name} ({role})");
        match role.as_str() {
            "tokenizer" => {
                if out.tokenizer.replace((cfg.clone(), tensors)).is_some() {
                    return Err(ModelError::Checkpoint(
                        "two tokenizers were chosen; choose one".into(),
                    ));
                }
            }
            "pretrained" | "finetuned" => out.models.push(parse_checkpoint(
                parse_config(cfg, &source)?,
                tensors,
                &source,
                &source,
            )?),
            other => {
                return Err(ModelError::Checkpoint(format!(
                    "{name}: unknown network {other}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer_entry() -> Entry {
        Entry {
            role: "tokenizer",
            config_json: "{}".into(),
            tensors: BTreeMap::from([(
                "codebook".to_string(),
                HostTensor::f32(vec![2], vec![1.0, 2.0]),
            )]),
        }
    }

    #[test]
    fn a_one_file_checkpoint_splits_into_its_networks() {
        let bytes = encode(vec![tokenizer_entry()]).unwrap();
        let read = parse_files(&[("run.safetensors".into(), bytes)]).unwrap();
        let (cfg, tensors) = read.tokenizer.unwrap();
        assert_eq!(cfg, "{}");
        assert_eq!(tensors["codebook"].to_f32(), vec![1.0, 2.0]);
        assert!(read.models.is_empty());
    }

    #[test]
    fn a_newer_format_and_an_unknown_network_are_refused() {
        let mut t = tokenizer_entry().tensors;
        let meta = |version: &str, role: &str| {
            BTreeMap::from([
                (FORMAT_KEY.to_string(), version.to_string()),
                (format!("{role}_config"), "{}".to_string()),
            ])
        };
        let bytes = tensorfile::serialize_with_metadata(
            &BTreeMap::from([(
                "tokenizer/codebook".to_string(),
                t.remove("codebook").unwrap(),
            )]),
            meta("2", "tokenizer"),
        )
        .unwrap();
        let err = parse_files(&[("new.safetensors".into(), bytes)])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("written by a newer beitlab (checkpoint format 2)"),
            "{err}"
        );

        let tensor = HostTensor::f32(vec![1], vec![0.0]);
        let bytes = tensorfile::serialize_with_metadata(
            &BTreeMap::from([("decoder/w".to_string(), tensor)]),
            meta("1", "decoder"),
        )
        .unwrap();
        let err = parse_files(&[("odd.safetensors".into(), bytes)])
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown network decoder"), "{err}");
    }
}
