//! What the tokenizer trains on, shared by the command line and the app: its augmented views (random resized
//! crops, flips, its own normalisation), a batch of them, and its AdamW groups.

use super::config::TokenizerConfig;
use crate::data::augment::Augment;
use crate::data::dataset::Dataset;
use crate::rng::Rng;

/// The tokenizer's training views: random resized crops of `crop_scale`, optional flips, its normalisation.
pub fn augmentation(cfg: &TokenizerConfig, crop_scale: (f64, f64), flip: bool) -> Augment {
    let mut a = Augment::beit(cfg.image_size, cfg.num_channels);
    a.scale = crop_scale;
    a.flip = flip;
    a.mean = vec![cfg.mean; cfg.num_channels as usize];
    a.std = vec![cfg.std; cfg.num_channels as usize];
    a
}

/// AdamW groups of the tokenizer: weight decay 1e-4 on matrices only, no lr multipliers.
pub fn optimizer_groups(layout: &crate::gpu::FlatLayout) -> Vec<(f32, f32)> {
    layout
        .entries
        .iter()
        .map(|e| (1.0, if e.shape.len() >= 2 { 1e-4 } else { 0.0 }))
        .collect()
}

/// A batch of augmented views of random images.
pub fn make_batch(data: &Dataset, aug: &Augment, batch: u32, rng: &mut Rng) -> Vec<f32> {
    let mut out = Vec::new();
    for _ in 0..batch {
        let i = (rng.uniform() * data.len() as f64) as usize;
        aug.apply(&data.images[i.min(data.len() - 1)], rng, &mut out);
    }
    out
}
