//! Every output and gradient of `beitlab forward` against transformers' BEiT, tensor by tensor.
//! Tolerance per element: atol·max|ref| + 1e-5·|ref|, with atol 1e-5 for logits, loss, hidden states and
//! attention maps (f32 through a few layers of f32 sums: ~1e-6 observed) and 3e-5 for gradients (which go
//! through every layer twice and sum over the batch).

use std::path::{Path, PathBuf};

use super::common::ctx;
use beitlab::model::io_forward::forward_files;
use beitlab::tensorfile;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Run one fixture; returns the worst normwise error per kind of output.
fn check(name: &str, grads: bool) {
    let dir = fixture(name);
    let out = std::env::temp_dir().join(format!(
        "beitlab-test-{name}-{}.safetensors",
        std::process::id()
    ));
    forward_files(
        ctx(),
        &dir.join("model"),
        &dir.join("inputs.safetensors"),
        &out,
        grads,
    )
    .unwrap();
    let got = tensorfile::read(&out).unwrap();
    let want = tensorfile::read(&dir.join("outputs.safetensors")).unwrap();
    std::fs::remove_file(&out).ok();
    let mut kinds: std::collections::BTreeMap<String, f64> = Default::default();
    for (key, w) in &want {
        if key.starts_with("grad.") && !grads {
            continue;
        }
        let g = got
            .get(key)
            .unwrap_or_else(|| panic!("{name}: beitlab wrote no {key}"));
        assert_eq!(g.shape, w.shape, "{name}: {key} shape");
        let (gv, wv) = (g.to_f32(), w.to_f32());
        let scale = wv
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs() as f64))
            .max(1e-30);
        let atol = if key.starts_with("grad.") { 3e-5 } else { 1e-5 };
        let mut worst = 0.0f64;
        for (i, (a, b)) in gv.iter().zip(&wv).enumerate() {
            let err = (*a as f64 - *b as f64).abs();
            assert!(a.is_finite(), "{name}: {key}[{i}] is {a}");
            assert!(err <= atol * scale + 1e-5 * (*b as f64).abs(), "{name}: {key}[{i}] = {a}, transformers {b} (error {err:.3e}, tensor scale {scale:.3e})");
            worst = worst.max(err / scale);
        }
        let kind = key.split('.').next().unwrap_or("").to_string();
        let e = kinds.entry(kind).or_default();
        *e = e.max(worst);
    }
    if grads {
        let n_grads = got.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(
            n_grads,
            want.keys().filter(|k| k.starts_with("grad.")).count(),
            "{name}: one gradient per parameter"
        );
    }
    eprintln!("{name}: worst error relative to each tensor's largest value: {kinds:?}");
}

#[test]
fn mim_with_shared_relative_position_bias() {
    check("mim_shared", true);
}

#[test]
fn classification_per_layer_bias_mean_pooling_v5_names() {
    check("cls_perlayer_meanpool", true);
}

#[test]
fn classification_absolute_positions_cls_pooling_bf16() {
    check("cls_abs_cls_bf16", true);
}

#[test]
fn mim_odd_sizes_one_channel_f16_v5_names() {
    check("mim_odd_1ch_f16", true);
}

#[test]
fn classification_at_another_image_size_interpolates_positions() {
    check("cls_interp", false);
}
