//! The visual tokenizer on a micro configuration: training lowers the loss, encoding is deterministic, the
//! decoder turns tokens back into images, and a saved tokenizer loads back identical.

#[allow(dead_code)]
#[path = "kernels/common.rs"]
mod common;

use beitlab::data::dataset::{Dataset, Split};
use beitlab::gpu::Dispatch;
use beitlab::tokenizer::train::{encode_dataset, evaluate, train, TrainOptions};
use beitlab::tokenizer::{Tokenizer, TokenizerConfig, TokenizerGraph};
use common::ctx;

fn micro_cfg() -> TokenizerConfig {
    let mut c = TokenizerConfig::preset("micro").unwrap();
    c.hidden_size = 32;
    c.code_dim = 8;
    c.codebook_size = 32;
    c
}

fn small_data(n: usize) -> Dataset {
    let mut d = Dataset::builtin(Split::Val, 1).unwrap();
    d.images.truncate(n);
    d.labels.as_mut().unwrap().truncate(n);
    d
}

#[test]
fn training_lowers_the_reconstruction_loss() {
    let cfg = micro_cfg();
    let tk = Tokenizer::new_random(ctx(), &cfg, 1).unwrap();
    let data = small_data(200);
    let before = evaluate(ctx(), &tk, &data, 16).unwrap();
    let mut losses = Vec::new();
    let opts = TrainOptions {
        steps: 60,
        batch: 16,
        lr: 3e-3,
        seed: 2,
        crop_scale: (0.5, 1.0),
        flip: true,
    };
    train(ctx(), &tk, &data, &opts, |r| losses.push(r.reconstruction)).unwrap();
    assert_eq!(
        losses.len(),
        60,
        "every step's loss comes back through the readback ring"
    );
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[55..].iter().sum::<f32>() / 5.0;
    assert!(last < 0.6 * first, "reconstruction loss {first} -> {last}");
    let after = evaluate(ctx(), &tk, &data, 16).unwrap();
    assert!(
        after.psnr > before.psnr + 3.0,
        "PSNR {:.2} -> {:.2} dB",
        before.psnr,
        after.psnr
    );
    assert!(after.usage > 0.3, "codebook usage {}", after.usage);
}

#[test]
fn encoding_is_deterministic_and_save_load_round_trips() {
    let cfg = micro_cfg();
    let tk = Tokenizer::new_random(ctx(), &cfg, 3).unwrap();
    let data = small_data(40);
    // One training step so the codebook holds data-dependent codes.
    let opts = TrainOptions {
        steps: 3,
        batch: 8,
        lr: 1e-3,
        seed: 4,
        crop_scale: (1.0, 1.0),
        flip: false,
    };
    train(ctx(), &tk, &data, &opts, |_| {}).unwrap();
    let a = encode_dataset(ctx(), &tk, &data, 8).unwrap();
    let b = encode_dataset(ctx(), &tk, &data, 16).unwrap();
    assert_eq!(a, b, "same tokens whatever the batch size");
    assert_eq!(a.len(), 40 * cfg.tokens() as usize);
    assert!(a.iter().all(|&t| t < cfg.codebook_size));
    let dir = std::env::temp_dir().join(format!("beitlab-tok-{}", std::process::id()));
    tk.save(ctx(), &dir).unwrap();
    let back = Tokenizer::load(ctx(), &dir).unwrap();
    assert_eq!(encode_dataset(ctx(), &back, &data, 8).unwrap(), a);
    assert_eq!(
        evaluate(ctx(), &back, &data, 8).unwrap(),
        evaluate(ctx(), &tk, &data, 8).unwrap()
    );
    // A damaged folder names the tensor.
    let mut t = beitlab::tensorfile::read(&dir.join("tokenizer.safetensors")).unwrap();
    t.remove("codebook");
    beitlab::tensorfile::write(&dir.join("tokenizer.safetensors"), &t).unwrap();
    let e = Tokenizer::load(ctx(), &dir).err().unwrap().to_string();
    assert!(e.contains("tensor codebook is missing"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn decoder_turns_any_token_grid_into_pixels() {
    let cfg = micro_cfg();
    let tk = Tokenizer::new_random(ctx(), &cfg, 5).unwrap();
    let g = TokenizerGraph::new(ctx(), &tk, 2).unwrap();
    let n = cfg.tokens() as usize;
    // Hand-written tokens (say, a BEiT prediction), including the last code.
    let toks: Vec<u32> = (0..2 * n as u32)
        .map(|i| (i * 7) % cfg.codebook_size)
        .collect();
    g.tokens.write(ctx(), &toks);
    Dispatch::submit(ctx(), "decode", &g.decode).unwrap();
    let px = ctx().read_f32(&g.recon_pixels).unwrap();
    assert_eq!(px.len(), 2 * (cfg.image_size * cfg.image_size) as usize);
    assert!(px.iter().all(|v| v.is_finite()));
    // Equal tokens decode to equal patches.
    let p = cfg.patch_size as usize;
    let s = cfg.image_size as usize;
    let patch = |img: usize, t: usize| -> Vec<f32> {
        let (gy, gx) = (t / (s / p), t % (s / p));
        (0..p * p)
            .map(|i| px[img * s * s + (gy * p + i / p) * s + gx * p + i % p])
            .collect()
    };
    let same: Vec<(usize, usize)> = (0..2 * n)
        .flat_map(|i| (0..2 * n).map(move |j| (i, j)))
        .filter(|&(i, j)| i < j && toks[i] == toks[j])
        .collect();
    for (i, j) in same.into_iter().take(5) {
        assert_eq!(patch(i / n, i % n), patch(j / n, j % n));
    }
}
