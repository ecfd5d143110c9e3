//! Linear probing: the encoder stays frozen; the average-pooled patch tokens of a chosen block are computed on
//! the GPU once per image (evaluation view), standardised, and a softmax-regression head is trained on them
//! (Adam, mini-batches, on the CPU: a few thousand vectors of C values).

use crate::data::augment::Augment;
use crate::data::dataset::Dataset;
use crate::gpu::{Dispatch, GpuContext};
use crate::model::{BeitGraph, BeitModel, GraphOptions, MimRows, ModelError};
use crate::rng::Rng;

/// Mean of the patch tokens at the output of block `layer` (1..=L; 0 = the embeddings), one row per image.
pub fn extract_features(
    ctx: &GpuContext,
    model: &BeitModel,
    data: &Dataset,
    layer: u32,
    batch: u32,
) -> Result<Vec<f32>, ModelError> {
    let cfg = &model.cfg;
    if layer > cfg.num_hidden_layers {
        return Err(ModelError::Input(format!(
            "layer {layer} does not exist: the model has {} blocks",
            cfg.num_hidden_layers
        )));
    }
    let graph = BeitGraph::new(
        ctx,
        cfg,
        &model.table,
        &model.params,
        GraphOptions {
            batch,
            // The features come before any head; a pixel-regression head only exists on masked rows, so it
            // gets one nominal row per image (no mask is written, its output is never read).
            mim_rows: if cfg.predicts_pixels() {
                MimRows::Masked(batch)
            } else {
                MimRows::All
            },
            drop_path_seed: None,
            label_smoothing: 0.0,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: None,
        },
    )?;
    let aug = Augment::beit(cfg.image_size, cfg.num_channels);
    let (t, c) = (cfg.tokens() as usize, cfg.hidden_size as usize);
    // Only the blocks up to `layer` are needed, but the whole forward is cheap next to the readback.
    let mut out = Vec::with_capacity(data.len() * c);
    for start in (0..data.len()).step_by(batch as usize) {
        let end = (start + batch as usize).min(data.len());
        let px = aug.eval_batch(&data.images[start..end], batch as usize);
        graph.write_batch(ctx, &px, None, None)?;
        Dispatch::submit(ctx, "linear probe features", &graph.forward)?;
        let h = ctx.read_f32(&graph.hidden[layer as usize])?;
        for b in 0..end - start {
            for d in 0..c {
                let s: f32 = (1..t).map(|tok| h[(b * t + tok) * c + d]).sum();
                out.push(s / (t - 1) as f32);
            }
        }
    }
    Ok(out)
}

/// A trained linear head over standardised features.
pub struct LinearHead {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// (classes, dim) row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub classes: usize,
}

impl LinearHead {
    fn logits(&self, x: &[f32], out: &mut [f32]) {
        let dim = self.mean.len();
        for (k, o) in out.iter_mut().enumerate().take(self.classes) {
            let w = &self.weight[k * dim..(k + 1) * dim];
            *o = self.bias[k]
                + w.iter()
                    .zip(x)
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|((w, x), (m, s))| w * (x - m) / s)
                    .sum::<f32>();
        }
    }

    pub fn predict(&self, x: &[f32]) -> usize {
        let mut l = vec![0.0; self.classes];
        self.logits(x, &mut l);
        (0..self.classes).fold(0, |b, k| if l[k] > l[b] { k } else { b })
    }

    /// Top-1 accuracy over `features` (rows of `dim`).
    pub fn accuracy(&self, features: &[f32], labels: &[u32]) -> f64 {
        let dim = self.mean.len();
        let ok = labels
            .iter()
            .enumerate()
            .filter(|(i, &y)| self.predict(&features[i * dim..(i + 1) * dim]) == y as usize)
            .count();
        ok as f64 / labels.len().max(1) as f64
    }
}

/// Softmax regression with Adam (lr, β 0.9 / 0.999), mini-batches of 256, `epochs` passes, seeded shuffling.
pub fn train_linear(
    features: &[f32],
    labels: &[u32],
    classes: usize,
    epochs: u32,
    lr: f32,
    seed: u64,
) -> LinearHead {
    let n = labels.len();
    let dim = features.len() / n.max(1);
    let mut mean = vec![0.0f32; dim];
    let mut var = vec![0.0f32; dim];
    for i in 0..n {
        for d in 0..dim {
            mean[d] += features[i * dim + d] / n as f32;
        }
    }
    for i in 0..n {
        for d in 0..dim {
            var[d] += (features[i * dim + d] - mean[d]).powi(2) / n as f32;
        }
    }
    let std: Vec<f32> = var.iter().map(|v| v.sqrt().max(1e-6)).collect();
    let mut head = LinearHead {
        mean,
        std,
        weight: vec![0.0; classes * dim],
        bias: vec![0.0; classes],
        classes,
    };
    let (mut mw, mut vw) = (vec![0.0f32; classes * dim], vec![0.0f32; classes * dim]);
    let (mut mb, mut vb) = (vec![0.0f32; classes], vec![0.0f32; classes]);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    let mut step = 0i32;
    let mut logits = vec![0.0f32; classes];
    for _ in 0..epochs {
        for i in (1..n).rev() {
            order.swap(i, ((rng.uniform() * (i + 1) as f64) as usize).min(i));
        }
        for chunk in order.chunks(256) {
            let (mut gw, mut gb) = (vec![0.0f32; classes * dim], vec![0.0f32; classes]);
            for &i in chunk {
                let x = &features[i * dim..(i + 1) * dim];
                head.logits(x, &mut logits);
                let mx = logits.iter().cloned().fold(f32::MIN, f32::max);
                let z: f32 = logits.iter().map(|l| (l - mx).exp()).sum();
                for k in 0..classes {
                    let p = (logits[k] - mx).exp() / z
                        - if k == labels[i] as usize { 1.0 } else { 0.0 };
                    gb[k] += p / chunk.len() as f32;
                    for d in 0..dim {
                        gw[k * dim + d] +=
                            p * (x[d] - head.mean[d]) / head.std[d] / chunk.len() as f32;
                    }
                }
            }
            step += 1;
            let (bc1, bc2) = (1.0 - 0.9f32.powi(step), 1.0 - 0.999f32.powi(step));
            for (j, g) in gw.iter().enumerate() {
                mw[j] = 0.9 * mw[j] + 0.1 * g;
                vw[j] = 0.999 * vw[j] + 0.001 * g * g;
                head.weight[j] -= lr * (mw[j] / bc1) / ((vw[j] / bc2).sqrt() + 1e-8);
            }
            for (k, g) in gb.iter().enumerate() {
                mb[k] = 0.9 * mb[k] + 0.1 * g;
                vb[k] = 0.999 * vb[k] + 0.001 * g * g;
                head.bias[k] -= lr * (mb[k] / bc1) / ((vb[k] / bc2).sqrt() + 1e-8);
            }
        }
    }
    head
}
