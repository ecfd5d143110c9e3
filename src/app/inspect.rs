//! What the views show, computed on the GPU from the live weights without waiting: a row of sample images with
//! their masks goes through the tokenizer (true tokens, reconstruction) and the BEiT model (logits for every
//! patch, attention maps); the predicted tokens at masked positions are then decoded by the tokenizer. The
//! codebook atlas decodes every code and counts code usage over validation images. Results come back through a
//! readback ring a frame or more later; the attention maps stay on the GPU and are drawn from there.

use super::time::{Duration, Instant};
use crate::data::augment::Augment;
use crate::data::dataset::{Dataset, Image};
use crate::gpu::{Dispatch, GpuContext, GpuSlice, ReadbackRing, ReadbackTicket};
use crate::model::{BeitGraph, BeitModel, GraphOptions, MimRows, ModelError};
use crate::rng::Rng;
use crate::tokenizer::{VisualGraph, VisualTokenizer};

/// Sample images shown side by side.
pub const SAMPLES: usize = 6;
/// Validation images whose tokens count towards code usage in the atlas.
const USAGE_IMAGES: usize = 64;

/// One sample: the image, its evaluation view (normalised, (C, S, S)) and its mask (N, 1 = masked).
#[derive(Clone, Debug)]
pub struct Sample {
    pub image: Image,
    pub pixels: Vec<f32>,
    pub mask: Vec<u8>,
    /// Class name when the image has a label.
    pub label: Option<String>,
}

/// The top predictions of one patch: (token, probability), best first.
pub type Top5 = [(u32, f32); 5];

/// The masked image modeling view's totals over its samples ([`Results::summary`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub right: usize,
    pub top5: usize,
    pub masked: usize,
    /// Masked patches whose true token is the most common one among the samples' patches.
    pub common_right: usize,
    pub samples: usize,
    pub samples_with_some_right: usize,
}

impl Summary {
    fn percent(part: usize, whole: usize) -> f64 {
        100.0 * part as f64 / whole.max(1) as f64
    }

    /// One line for the view: accuracy, top-5, the most-common-token baseline and the samples with a patch right.
    pub fn line(&self) -> String {
        format!(
            "All samples: {:.0}% of {} masked patches right ({:.0}% in the top 5); always guessing the most common \
             token would get {:.0}%. {} of {} samples have some patches right.",
            Self::percent(self.right, self.masked),
            self.masked,
            Self::percent(self.top5, self.masked),
            Self::percent(self.common_right, self.masked),
            self.samples_with_some_right,
            self.samples
        )
    }
}

/// Everything one refresh computed, for all samples (patch-major within each sample).
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// True tokens (K·N) from the tokenizer.
    pub tokens: Vec<u32>,
    /// Most probable token per patch (K·N) and its top five.
    pub predicted: Vec<u32>,
    pub top5: Vec<Top5>,
    /// Tokenizer reconstructions (K, C, S, S), normalised: from the true tokens, and from the true tokens with
    /// the predicted ones at the masked positions.
    pub recon_true: Vec<f32>,
    pub recon_pred: Vec<f32>,
    /// The masks the results were computed with.
    pub masks: Vec<Vec<u8>>,
    /// Increases with every completed refresh.
    pub generation: u64,
}

impl Results {
    /// Whether patch `i` of sample `k` was masked in these results.
    pub fn is_masked(&self, k: usize, i: usize) -> bool {
        self.masks
            .get(k)
            .and_then(|m| m.get(i))
            .copied()
            .unwrap_or(0)
            != 0
    }

    /// For a masked patch, whether BEiT predicted its true token; `None` for a visible patch.
    pub fn prediction_right(&self, k: usize, i: usize, n: usize) -> Option<bool> {
        self.is_masked(k, i)
            .then(|| self.predicted.get(k * n + i) == self.tokens.get(k * n + i))
    }

    /// Masked patches whose predicted token is the true one, and masked patches, of sample `k`.
    pub fn correct(&self, k: usize, n: usize) -> (usize, usize) {
        (0..n)
            .filter_map(|i| self.prediction_right(k, i, n))
            .fold((0, 0), |(r, m), ok| (r + ok as usize, m + 1))
    }

    /// Masked patches of sample `k` whose true token is among BEiT's five most probable ones.
    pub fn correct_top5(&self, k: usize, n: usize) -> usize {
        (0..n)
            .filter(|&i| self.is_masked(k, i))
            .filter(|&i| {
                let truth = self.tokens.get(k * n + i);
                self.top5
                    .get(k * n + i)
                    .is_some_and(|t| t.iter().any(|(tok, _)| Some(tok) == truth))
            })
            .count()
    }

    /// Over every shown sample: masked patches predicted right, in the top five, masked patches, and how many a
    /// guesser that always answers the most common token of these samples' patches (masked or not) gets right,
    /// the baseline that tells learning from guessing the background.
    pub fn summary(&self, n: usize) -> Summary {
        let samples = self.masks.len();
        let mut counts = std::collections::HashMap::<u32, usize>::new();
        for t in self.tokens.iter().take(samples * n) {
            *counts.entry(*t).or_default() += 1;
        }
        // Ties go to the smaller token, so the baseline does not depend on the map's order.
        let common = counts
            .iter()
            .max_by_key(|(t, c)| (**c, std::cmp::Reverse(**t)))
            .map(|(t, _)| *t);
        let mut out = Summary::default();
        for k in 0..samples {
            let (right, masked) = self.correct(k, n);
            out.right += right;
            out.masked += masked;
            out.top5 += self.correct_top5(k, n);
            out.common_right += (0..n)
                .filter(|&i| self.is_masked(k, i) && self.tokens.get(k * n + i) == common.as_ref())
                .count();
            out.samples_with_some_right += (right > 0) as usize;
        }
        out.samples = samples;
        out
    }

    /// How far the decoded prediction is from the tokenizer's own reconstruction over sample `k`'s masked
    /// patches: the mean absolute difference in [0, 1] pixel units (reconstructions are normalised to
    /// [-1, 1]), so a near miss (a similar token) reads as small. `None` before the reconstructions arrive or
    /// without masked patches. `channels`, `size` (S) and `patch` (p) are the model's.
    pub fn masked_pixel_error(
        &self,
        k: usize,
        channels: usize,
        size: usize,
        patch: usize,
    ) -> Option<f32> {
        let per = channels * size * size;
        let (t, p) = (
            self.recon_true.get(k * per..(k + 1) * per)?,
            self.recon_pred.get(k * per..(k + 1) * per)?,
        );
        let grid = size / patch.max(1);
        let (mut sum, mut count) = (0.0f32, 0usize);
        for i in (0..grid * grid).filter(|&i| self.is_masked(k, i)) {
            let (py, px) = (i / grid * patch, i % grid * patch);
            for c in 0..channels {
                for y in py..py + patch {
                    let row = c * size * size + y * size;
                    for x in px..px + patch {
                        sum += (t[row + x] - p[row + x]).abs() / 2.0;
                        count += 1;
                    }
                }
            }
        }
        (count > 0).then(|| sum / count as f32)
    }
}

/// Every code decoded to a patch, and how often each is used.
#[derive(Clone, Debug, Default)]
pub struct Atlas {
    /// V patches, each (C, P, P) normalised.
    pub patches: Vec<Vec<f32>>,
    /// Uses of each code over the validation images.
    pub usage: Vec<u32>,
    pub generation: u64,
}

/// The GPU side, built for one tokenizer and one BEiT model (rebuilt when either is replaced).
struct Graphs {
    beit: BeitGraph,
    tk: VisualGraph,
    atlas_tk: VisualGraph,
    usage_tk: VisualGraph,
    ring: ReadbackRing,
    params_of: (wgpu::Buffer, wgpu::Buffer),
    usage_pixels: Vec<f32>,
    /// The tokenizer's own evaluation view when it reads one (DALL-E), else it reads the samples' pixels.
    tokenizer_view: Option<Augment>,
    /// Codes in the codebook (the atlas decodes ceil(V / N) images of N codes).
    atlas_codes: u32,
    /// Reconstructions (K, C, S, S) from the true tokens and with the predicted ones, kept on the GPU for drawing;
    /// both change in the same submit (the true one waits in `recon_next` until the predicted one is decoded).
    recon_true: GpuSlice,
    recon_pred: GpuSlice,
    recon_next: GpuSlice,
}

/// Copy a whole slice into another of the same length.
fn copy(enc: &mut wgpu::CommandEncoder, from: &GpuSlice, to: &GpuSlice) {
    enc.copy_buffer_to_buffer(
        &from.buffer,
        from.offset,
        &to.buffer,
        to.offset,
        from.size_bytes(),
    );
}

enum Stage {
    Idle,
    /// Waiting for (tokens, true reconstruction, logits).
    First([ReadbackTicket; 3], Vec<Vec<u8>>),
    /// Waiting for the reconstruction from predicted tokens.
    Second(ReadbackTicket, Box<Results>),
}

pub struct Inspector {
    pub samples: Vec<Sample>,
    /// Increases whenever a sample's image changes (for texture caches).
    pub sample_generation: u64,
    pub results: Option<Results>,
    pub atlas: Option<Atlas>,
    /// Set by the views that need the atlas.
    pub want_atlas: bool,
    /// Sample masks changed: refresh as soon as possible.
    pub dirty: bool,
    graphs: Option<Graphs>,
    stage: Stage,
    atlas_wait: Option<([ReadbackTicket; 2], u64)>,
    seen: (u64, u64),
    atlas_seen: u64,
    last: Option<Instant>,
    atlas_last: Option<Instant>,
    generation: u64,
    /// Least time between refreshes while training.
    pub interval: Duration,
}

impl Inspector {
    pub fn new(interval: Duration) -> Self {
        Self {
            samples: Vec::new(),
            sample_generation: 0,
            results: None,
            atlas: None,
            want_atlas: false,
            dirty: true,
            graphs: None,
            stage: Stage::Idle,
            atlas_wait: None,
            seen: (u64::MAX, u64::MAX),
            atlas_seen: u64::MAX,
            last: None,
            atlas_last: None,
            generation: 0,
            interval,
        }
    }

    /// Draw new samples from `data` (the validation set) with masks from `make_mask`.
    pub fn reshuffle(
        &mut self,
        model: &BeitModel,
        data: &Dataset,
        rng: &mut Rng,
        make_mask: &mut dyn FnMut(&mut Rng) -> Vec<u8>,
    ) {
        if data.is_empty() {
            return;
        }
        let aug = Augment::beit(model.cfg.image_size, model.cfg.num_channels);
        self.samples = (0..SAMPLES)
            .map(|_| {
                let i = ((rng.uniform() * data.len() as f64) as usize).min(data.len() - 1);
                let mut pixels = Vec::new();
                aug.eval(&data.images[i], &mut pixels);
                Sample {
                    image: data.images[i].clone(),
                    pixels,
                    mask: make_mask(rng),
                    label: data
                        .labels
                        .as_ref()
                        .and_then(|l| data.class_names.get(l[i] as usize).cloned()),
                }
            })
            .collect();
        self.sample_generation += 1;
        self.dirty = true;
    }

    /// Put an image (e.g. dropped on the window) in place of sample `k`, keeping its mask.
    pub fn replace_image(&mut self, model: &BeitModel, k: usize, image: Image) {
        let aug = Augment::beit(model.cfg.image_size, model.cfg.num_channels);
        if let Some(s) = self.samples.get_mut(k) {
            s.pixels.clear();
            aug.eval(&image, &mut s.pixels);
            s.image = image;
            s.label = None;
            self.sample_generation += 1;
            self.dirty = true;
        }
    }

    /// The reconstructions (K, C, S, S) from the true tokens and with the predicted ones, on the GPU.
    pub fn reconstructions(&self) -> Option<(&GpuSlice, &GpuSlice)> {
        let g = self.graphs.as_ref()?;
        Some((&g.recon_true, &g.recon_pred))
    }

    /// The attention probabilities of block `layer` for the samples, (K, H, T, T), on the GPU.
    pub fn attention(&self, layer: usize) -> Option<&crate::gpu::GpuSlice> {
        self.graphs.as_ref()?.beit.attentions.get(layer)
    }

    /// One frame: collect finished readbacks, start a refresh when the weights or masks changed.
    pub fn tick(
        &mut self,
        ctx: &GpuContext,
        tk: &VisualTokenizer,
        model: &BeitModel,
        versions: (u64, u64),
        val: &Dataset,
    ) -> Result<(), ModelError> {
        if self.samples.is_empty() {
            return Ok(());
        }
        let key = (
            tk.weights_buffer().clone(),
            model.params.whole.buffer.clone(),
        );
        if self.graphs.as_ref().is_none_or(|g| g.params_of != key) {
            self.graphs = Some(self.build(ctx, tk, model, val, key)?);
            self.stage = Stage::Idle;
            self.atlas_wait = None;
            self.dirty = true;
            self.atlas_seen = u64::MAX;
        }
        self.collect(ctx, model)?;
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.interval);
        if matches!(self.stage, Stage::Idle) && (self.dirty || (versions != self.seen && due)) {
            self.start(ctx)?;
            self.seen = versions;
            self.last = Some(now);
            self.dirty = false;
        }
        let atlas_due = self
            .atlas_last
            .is_none_or(|t| now.duration_since(t) >= self.interval * 2);
        if self.want_atlas
            && self.atlas_wait.is_none()
            && self.atlas_seen != versions.0
            && atlas_due
        {
            self.start_atlas(ctx, versions.0)?;
            self.atlas_last = Some(now);
        }
        Ok(())
    }

    fn build(
        &self,
        ctx: &GpuContext,
        tk: &VisualTokenizer,
        model: &BeitModel,
        val: &Dataset,
        key: (wgpu::Buffer, wgpu::Buffer),
    ) -> Result<Graphs, ModelError> {
        let k = SAMPLES as u32;
        let cfg = &model.cfg;
        let beit = BeitGraph::new(
            ctx,
            cfg,
            &model.table,
            &model.params,
            GraphOptions {
                batch: k,
                mim_rows: MimRows::All,
                drop_path_seed: None,
                label_smoothing: 0.0,
                keep_block_outputs: None,
                // The attention view reads the probabilities.
                fused_attention: Some(false),
                mixed: None,
            },
        )?;
        let n = cfg.patches();
        let atlas_images = tk.codebook_size().div_ceil(n);
        let usage_images = USAGE_IMAGES.min(val.len()).max(1);
        let aug = Augment::beit(cfg.image_size, cfg.num_channels);
        let imgs: Vec<Image> = (0..usage_images)
            .filter_map(|i| val.images.get(i).cloned())
            .collect();
        let bytes = [
            beit.logits.size_bytes(),
            (k as u64 * (cfg.num_channels * cfg.image_size * cfg.image_size) as u64 * 4),
            (atlas_images as u64 * (cfg.num_channels * cfg.image_size * cfg.image_size) as u64 * 4),
            (usage_images as u64 * n as u64 * 4),
        ]
        .into_iter()
        .max()
        .unwrap_or(4);
        let recon = |label: &str| {
            GpuSlice::new(
                ctx,
                label,
                k as u64 * cfg.image_size as u64 * cfg.image_size as u64 * cfg.num_channels as u64,
            )
        };
        Ok(Graphs {
            recon_true: recon("reconstruction from true tokens"),
            recon_pred: recon("reconstruction with predicted tokens"),
            recon_next: recon("next reconstruction from true tokens"),
            tk: tk.graph(ctx, k, cfg)?,
            atlas_tk: tk.graph(ctx, atlas_images, cfg)?,
            usage_tk: tk.graph(ctx, usage_images as u32, cfg)?,
            usage_pixels: tk
                .view(cfg.grid())
                .augment(&aug)
                .eval_batch(&imgs, usage_images),
            tokenizer_view: tk.is_dalle().then(|| tk.view(cfg.grid()).augment(&aug)),
            beit,
            ring: ReadbackRing::new(ctx, 6, bytes),
            params_of: key,
            atlas_codes: tk.codebook_size(),
        })
    }

    fn start(&mut self, ctx: &GpuContext) -> Result<(), ModelError> {
        let Some(g) = self.graphs.as_mut() else {
            return Ok(());
        };
        let pixels: Vec<f32> = self
            .samples
            .iter()
            .flat_map(|s| s.pixels.iter().copied())
            .collect();
        let masks: Vec<Vec<u8>> = self.samples.iter().map(|s| s.mask.clone()).collect();
        let flat_mask: Vec<u8> = masks.concat();
        match &g.tokenizer_view {
            Some(aug) => {
                let mut own = Vec::new();
                for s in &self.samples {
                    aug.eval(&s.image, &mut own);
                }
                g.tk.pixels.write(ctx, &own);
            }
            None => g.tk.pixels.write(ctx, &pixels),
        }
        g.beit.write_batch(ctx, &pixels, Some(&flat_mask), None)?;
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("inspect"),
            });
        Dispatch::record_all(&mut enc, "inspect tokenizer", &g.tk.encode);
        Dispatch::record_all(&mut enc, "inspect decode", &g.tk.decode);
        Dispatch::record_all(&mut enc, "inspect beit", &g.beit.forward);
        copy(&mut enc, &g.tk.recon_pixels, &g.recon_next);
        let tickets = (
            g.ring.record(&mut enc, &g.tk.tokens),
            g.ring.record(&mut enc, &g.tk.recon_pixels),
            g.ring.record(&mut enc, &g.beit.logits),
        );
        ctx.queue.submit([enc.finish()]);
        g.ring.after_submit();
        if let (Some(a), Some(b), Some(c)) = tickets {
            self.stage = Stage::First([a, b, c], masks);
        }
        Ok(())
    }

    fn start_atlas(&mut self, ctx: &GpuContext, version: u64) -> Result<(), ModelError> {
        let Some(g) = self.graphs.as_mut() else {
            return Ok(());
        };
        // Codes 0..V in order, the last image padded with the last code.
        let codes: Vec<u32> = (0..g.atlas_tk.tokens.len as u32)
            .map(|i| i.min(g.atlas_codes.saturating_sub(1)))
            .collect();
        g.atlas_tk.tokens.write(ctx, &codes);
        g.usage_tk.pixels.write(ctx, &g.usage_pixels);
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("atlas"),
            });
        Dispatch::record_all(&mut enc, "atlas decode", &g.atlas_tk.decode);
        Dispatch::record_all(&mut enc, "usage encode", &g.usage_tk.encode);
        let tickets = (
            g.ring.record(&mut enc, &g.atlas_tk.recon_pixels),
            g.ring.record(&mut enc, &g.usage_tk.tokens),
        );
        ctx.queue.submit([enc.finish()]);
        g.ring.after_submit();
        if let (Some(a), Some(b)) = tickets {
            self.atlas_wait = Some(([a, b], version));
        }
        Ok(())
    }

    fn collect(&mut self, ctx: &GpuContext, model: &BeitModel) -> Result<(), ModelError> {
        let Some(g) = self.graphs.as_mut() else {
            return Ok(());
        };
        let done = g.ring.collect(ctx);
        let take = |t: ReadbackTicket| done.iter().find(|(x, _)| *x == t).map(|(_, b)| b.clone());
        let cfg = &model.cfg;
        let (n, v) = (cfg.patches() as usize, cfg.vocab_size as usize);
        if let Some(([a, b], version)) = self.atlas_wait {
            if let (Some(px), Some(tok)) = (take(a), take(b)) {
                let px: Vec<f32> = bytemuck::pod_collect_to_vec(&px);
                let tok: Vec<u32> = bytemuck::pod_collect_to_vec(&tok);
                let codes = g.atlas_codes as usize;
                let mut usage = vec![0u32; codes];
                for t in tok {
                    if let Some(u) = usage.get_mut(t as usize) {
                        *u += 1;
                    }
                }
                let patches = (0..codes)
                    .map(|c| super::picture::patch_of(&px, cfg, c / n, c % n))
                    .collect();
                self.generation += 1;
                self.atlas = Some(Atlas {
                    patches,
                    usage,
                    generation: self.generation,
                });
                self.atlas_wait = None;
                self.atlas_seen = version;
            }
        }
        match std::mem::replace(&mut self.stage, Stage::Idle) {
            Stage::First([a, b, c], masks) => match (take(a), take(b), take(c)) {
                (Some(tok), Some(recon), Some(logits)) => {
                    let tokens: Vec<u32> = bytemuck::pod_collect_to_vec(&tok);
                    let logits: Vec<f32> = bytemuck::pod_collect_to_vec(&logits);
                    let mut predicted = Vec::with_capacity(tokens.len());
                    let mut top5 = Vec::with_capacity(tokens.len());
                    for row in logits.chunks(v).take(tokens.len()) {
                        let t = top_five(row);
                        predicted.push(t[0].0);
                        top5.push(t);
                    }
                    let flat: Vec<u8> = masks.concat();
                    let mixed: Vec<u32> = (0..tokens.len())
                        .map(|i| {
                            if flat[i] != 0 {
                                predicted[i]
                            } else {
                                tokens[i]
                            }
                        })
                        .collect();
                    g.tk.tokens.write(ctx, &mixed);
                    let mut enc =
                        ctx.device
                            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                                label: Some("inspect predicted decode"),
                            });
                    Dispatch::record_all(&mut enc, "inspect predicted decode", &g.tk.decode);
                    copy(&mut enc, &g.tk.recon_pixels, &g.recon_pred);
                    copy(&mut enc, &g.recon_next, &g.recon_true);
                    let t = g.ring.record(&mut enc, &g.tk.recon_pixels);
                    ctx.queue.submit([enc.finish()]);
                    g.ring.after_submit();
                    let partial = Results {
                        tokens,
                        predicted,
                        top5,
                        recon_true: bytemuck::pod_collect_to_vec(&recon),
                        recon_pred: Vec::new(),
                        masks,
                        generation: 0,
                    };
                    if let Some(t) = t {
                        self.stage = Stage::Second(t, Box::new(partial));
                    }
                }
                _ => self.stage = Stage::First([a, b, c], masks),
            },
            Stage::Second(t, mut partial) => match take(t) {
                Some(px) => {
                    partial.recon_pred = bytemuck::pod_collect_to_vec(&px);
                    self.generation += 1;
                    partial.generation = self.generation;
                    self.results = Some(*partial);
                }
                None => self.stage = Stage::Second(t, partial),
            },
            Stage::Idle => {}
        }
        Ok(())
    }
}

/// The five largest softmax probabilities of a row of logits, best first.
pub fn top_five(logits: &[f32]) -> Top5 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    let mut best: Top5 = [(0, f32::NEG_INFINITY); 5];
    for (i, &x) in logits.iter().enumerate() {
        if x > best[4].1 {
            best[4] = (i as u32, x);
            best.sort_by(|a, b| b.1.total_cmp(&a.1));
        }
    }
    best.map(|(i, x)| {
        (
            i,
            if sum > 0.0 {
                (x - max).exp() / sum
            } else {
                0.0
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_five_is_sorted_softmax() {
        let logits = [0.0, 3.0, 1.0, 2.0, -1.0, 2.5, 0.5];
        let t = top_five(&logits);
        assert_eq!(t.map(|x| x.0), [1, 5, 3, 2, 6]);
        let z: f32 = logits.iter().map(|&x| (x - 3.0f32).exp()).sum();
        assert!((t[0].1 - 1.0 / z).abs() < 1e-6);
        assert!(t.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn top5_and_pixel_error_count_masked_patches_only() {
        // One sample, a 2 x 2 grid of 1-pixel patches; patches 1 and 3 masked.
        let mut r = super::Results {
            tokens: vec![4, 5, 6, 7],
            predicted: vec![4, 9, 6, 7],
            masks: vec![vec![0, 1, 0, 1]],
            recon_true: vec![0.0, 0.0, 0.0, 1.0],
            recon_pred: vec![1.0, 0.5, 1.0, 0.0],
            ..Default::default()
        };
        r.top5 = vec![[(4, 0.9), (1, 0.0), (2, 0.0), (3, 0.0), (8, 0.0)]; 4];
        r.top5[1] = [(9, 0.5), (5, 0.3), (1, 0.1), (2, 0.05), (3, 0.05)];
        r.top5[3] = [(7, 0.9), (1, 0.0), (2, 0.0), (3, 0.0), (8, 0.0)];
        assert_eq!(r.correct(0, 4), (1, 2));
        assert_eq!(r.correct_top5(0, 4), 2);
        // |0 - 0.5| / 2 and |1 - 0| / 2 averaged: visible patches do not count.
        assert_eq!(r.masked_pixel_error(0, 1, 2, 1), Some(0.375));
    }

    #[test]
    fn the_summary_counts_all_samples_against_the_most_common_token() {
        // Two samples, 4 patches each; token 0 is the most common (5 of 8 patches).
        let mut r = super::Results {
            tokens: vec![0, 0, 3, 0, 0, 2, 0, 1],
            predicted: vec![0, 1, 3, 0, 9, 9, 9, 9],
            masks: vec![vec![1, 1, 1, 0], vec![1, 1, 0, 0]],
            ..Default::default()
        };
        r.top5 = vec![[(0, 0.5), (1, 0.1), (2, 0.1), (3, 0.1), (4, 0.1)]; 8];
        let s = r.summary(4);
        // Sample 0: patches 0 and 2 right of 3; sample 1: none of 2.
        assert_eq!((s.right, s.masked), (2, 5));
        // Every true token (0, 2 or 3) is among the five guesses.
        assert_eq!(s.top5, 5);
        assert_eq!(s.common_right, 3);
        assert_eq!((s.samples_with_some_right, s.samples), (1, 2));
        assert!(
            s.line().contains("40% of 5 masked patches right"),
            "{}",
            s.line()
        );
        assert!(s.line().contains("would get 60%"), "{}", s.line());
    }
}
