//! Checkpoint folders: save -> load gives identical outputs; 4.x and 5.x names; refusals name the offender.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::common::ctx;
use beitlab::model::checkpoint::{canonical_name, read_folder, BeitModel};
use beitlab::model::io_forward::forward_files;
use beitlab::model::BeitConfig;
use beitlab::tensorfile::{self, HostTensor};

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("beitlab-ck-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&p).ok();
    p
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn names_of_both_transformers_versions_map_to_hub_names() {
    let pairs = [
        ("beit.layers.3.attention.q_proj.weight", "beit.encoder.layer.3.attention.attention.query.weight"),
        ("beit.layers.0.attention.o_proj.bias", "beit.encoder.layer.0.attention.output.dense.bias"),
        ("beit.layers.11.mlp.fc1.weight", "beit.encoder.layer.11.intermediate.dense.weight"),
        ("beit.layers.2.mlp.fc2.bias", "beit.encoder.layer.2.output.dense.bias"),
        ("beit.layers.1.relative_position_bias.relative_position_bias_table", "beit.encoder.layer.1.attention.attention.relative_position_bias.relative_position_bias_table"),
        ("beit.shared_position_bias.relative_position_bias_table", "beit.encoder.relative_position_bias.relative_position_bias_table"),
        ("beit.layers.4.lambda_1", "beit.encoder.layer.4.lambda_1"),
        ("beit.encoder.layer.4.lambda_1", "beit.encoder.layer.4.lambda_1"),
        ("lm_head.weight", "lm_head.weight"),
    ];
    for (from, to) in pairs {
        assert_eq!(canonical_name(from).as_deref(), Some(to), "{from}");
    }
    assert_eq!(
        canonical_name("beit.encoder.relative_position_bias.relative_position_index"),
        None
    );
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let src = fixture("mim_shared");
    let model = BeitModel::load(ctx(), &src.join("model"), None).unwrap();
    let dir = tmp("roundtrip");
    model.save(ctx(), &dir).unwrap();
    // Saved with hub (4.x) names in f32.
    let saved = tensorfile::read(&dir.join("model.safetensors")).unwrap();
    assert!(
        saved.keys().all(|k| !k.starts_with("beit.layers.")),
        "4.x names only"
    );
    assert!(saved.values().all(|t| t.file_dtype == "F32"));
    assert!(
        !saved.keys().any(|k| k.ends_with("key.bias")),
        "the key has no bias"
    );
    let (a, b) = (
        tmp("out-a").with_extension("safetensors"),
        tmp("out-b").with_extension("safetensors"),
    );
    forward_files(
        ctx(),
        &src.join("model"),
        &src.join("inputs.safetensors"),
        &a,
        true,
    )
    .unwrap();
    forward_files(ctx(), &dir, &src.join("inputs.safetensors"), &b, true).unwrap();
    let (ta, tb) = (tensorfile::read(&a).unwrap(), tensorfile::read(&b).unwrap());
    assert_eq!(ta.len(), tb.len());
    for (k, v) in &ta {
        assert_eq!(Some(v), tb.get(k), "{k} differs after save -> load");
    }
    for p in [a, b] {
        std::fs::remove_file(p).ok();
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Copy a fixture's model folder with its tensors edited.
fn edited(name: &str, edit: impl FnOnce(&mut BTreeMap<String, HostTensor>)) -> PathBuf {
    let src = fixture("mim_shared").join("model");
    let dir = tmp(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    let mut t = tensorfile::read(&src.join("model.safetensors")).unwrap();
    edit(&mut t);
    tensorfile::write(&dir.join("model.safetensors"), &t).unwrap();
    dir
}

fn load_error(dir: &PathBuf) -> String {
    let e = BeitModel::load(ctx(), dir, None)
        .err()
        .expect("the folder must be refused")
        .to_string();
    std::fs::remove_dir_all(dir).ok();
    e
}

#[test]
fn missing_tensor_is_refused_by_name() {
    let dir = edited("missing", |t| {
        t.remove("lm_head.bias");
    });
    let e = load_error(&dir);
    assert!(
        e.contains("tensor lm_head.bias is missing") && e.contains("[37]"),
        "{e}"
    );
}

#[test]
fn unexpected_tensor_is_refused_by_name() {
    let dir = edited("unexpected", |t| {
        t.insert(
            "classifier.weight".into(),
            HostTensor::f32(vec![2, 24], vec![0.0; 48]),
        );
    });
    let e = load_error(&dir);
    assert!(
        e.contains("tensor classifier.weight in the checkpoint is not part of this model"),
        "{e}"
    );
}

#[test]
fn wrongly_shaped_tensor_names_both_shapes() {
    let dir = edited("shape", |t| {
        t.insert(
            "lm_head.weight".into(),
            HostTensor::f32(vec![36, 24], vec![0.0; 36 * 24]),
        );
    });
    let e = load_error(&dir);
    assert!(
        e.contains(
            "lm_head.weight has shape [36, 24] in the checkpoint but the config needs [37, 24]"
        ),
        "{e}"
    );
}

#[test]
fn bad_config_and_corrupt_weights_are_clear_errors() {
    let dir = tmp("badcfg");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "beit", "hidden_act": "relu"}"#,
    )
    .unwrap();
    let e = read_folder(&dir).err().unwrap().to_string();
    assert!(e.contains("hidden_act \"relu\" is not supported"), "{e}");
    std::fs::write(
        dir.join("config.json"),
        r#"{"image_size": 30, "patch_size": 16}"#,
    )
    .unwrap();
    let e = read_folder(&dir).err().unwrap().to_string();
    assert!(
        e.contains("image_size 30 is not divisible by patch_size 16"),
        "{e}"
    );
    std::fs::write(
        dir.join("config.json"),
        BeitConfig::preset("micro").unwrap().to_json(),
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), b"definitely not safetensors").unwrap();
    let e = read_folder(&dir).err().unwrap().to_string();
    assert!(e.contains("not a valid safetensors file"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn presets_are_valid_and_unknown_ones_refused() {
    for p in ["micro", "tiny", "small", "base"] {
        BeitConfig::preset(p).unwrap().validate().unwrap();
    }
    let tiny = BeitConfig::preset("tiny").unwrap();
    assert_eq!(
        (
            tiny.image_size,
            tiny.patch_size,
            tiny.hidden_size,
            tiny.num_hidden_layers,
            tiny.num_attention_heads,
            tiny.vocab_size
        ),
        (32, 4, 192, 12, 3, 8192)
    );
    assert!(BeitConfig::preset("huge")
        .unwrap_err()
        .to_string()
        .contains("unknown preset"));
}

#[test]
fn architecture_comes_from_the_tensors_when_config_json_does_not_say() {
    let src = fixture("cls_abs_cls_bf16").join("model");
    let dir = tmp("noarch");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("architectures");
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let ck = read_folder(&dir).unwrap();
    assert_eq!(
        ck.config.architecture(),
        beitlab::model::Architecture::ImageClassification
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn initialisation_follows_beit() {
    use beitlab::model::params::{Init, ParamTable};
    let cfg = BeitConfig::preset("tiny").unwrap();
    let table = ParamTable::new(&cfg, 256);
    let flat = table.init_values(9);
    let values = |name: &str| {
        let e = table.layout.find(name).unwrap();
        flat[e.offset as usize..(e.offset + e.len) as usize].to_vec()
    };
    let q = values("beit.encoder.layer.0.attention.attention.query.weight");
    let std = (q.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / q.len() as f64).sqrt();
    assert!(q.iter().all(|v| v.abs() <= 0.02), "truncated at ±1 std");
    assert!(
        (0.010..0.013).contains(&std),
        "a normal truncated at ±1σ has std 0.54σ: {std}"
    );
    // Output projections of block l (1-based) are divided by sqrt(2l).
    let o = values("beit.encoder.layer.3.attention.output.dense.weight");
    assert!(o.iter().all(|v| v.abs() <= 0.02 / 8f32.sqrt() + 1e-9));
    assert!(values("beit.encoder.layer.5.lambda_1")
        .iter()
        .all(|&v| v == 0.1));
    assert!(values("beit.encoder.layer.5.output.dense.bias")
        .iter()
        .all(|&v| v == 0.0));
    assert!(values("beit.encoder.layer.5.layernorm_after.weight")
        .iter()
        .all(|&v| v == 1.0));
    assert!(
        values("beit.encoder.relative_position_bias.relative_position_bias_table")
            .iter()
            .all(|&v| v == 0.0)
    );
    assert_eq!(
        table
            .specs
            .iter()
            .find(|s| s.name == "lm_head.weight")
            .unwrap()
            .init,
        Init::TruncNormal(1.0)
    );
    // Weight decay only on matrices; layer ids for layer-wise lr decay.
    let spec = |n: &str| table.specs.iter().find(|s| s.name == n).unwrap().clone();
    assert!(spec("beit.encoder.layer.0.intermediate.dense.weight").decay);
    assert!(!spec("beit.encoder.layer.0.intermediate.dense.bias").decay);
    assert!(
        !spec("beit.embeddings.cls_token").decay && !spec("beit.encoder.layer.0.lambda_1").decay
    );
    assert_eq!(spec("beit.embeddings.cls_token").layer_id, 0);
    assert_eq!(spec("beit.encoder.layer.11.lambda_2").layer_id, 12);
    assert_eq!(spec("lm_head.weight").layer_id, 13);
    // Same seed, same values.
    assert_eq!(flat, table.init_values(9));
    assert_ne!(flat, table.init_values(10));
}
