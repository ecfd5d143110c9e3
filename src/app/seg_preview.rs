//! The segmentation view's prediction: one image through a batch-1 evaluation graph of the segmentation model
//! (the live weights while the phase trains), its logits back through a readback ring a frame or more later,
//! turned into class probabilities and the predicted class per pixel. Never waits on the GPU.

use super::time::{Duration, Instant};
use crate::gpu::{Dispatch, GpuContext, ReadbackRing, ReadbackTicket};
use crate::model::{BeitGraph, BeitModel, ModelError};
use crate::train::segment::graph_for;

/// What came back for one image.
#[derive(Clone, Debug)]
pub struct SegPrediction {
    /// What it was computed for (the caller's key: image and model version).
    pub key: (u64, u64),
    /// Class probabilities (K, S, S) and the most probable class per pixel (S, S).
    pub probs: Vec<f32>,
    pub predicted: Vec<u32>,
    pub classes: usize,
    pub side: usize,
}

impl SegPrediction {
    /// The probability of every class at pixel (x, y).
    pub fn at(&self, x: usize, y: usize) -> Vec<f32> {
        let s = self.side;
        (0..self.classes)
            .map(|k| self.probs[k * s * s + y.min(s - 1) * s + x.min(s - 1)])
            .collect()
    }
}

pub struct SegPreview {
    graph: BeitGraph,
    ring: ReadbackRing,
    pending: Option<(ReadbackTicket, (u64, u64))>,
    requested: Option<((u64, u64), Instant)>,
    pub result: Option<SegPrediction>,
    classes: usize,
    side: usize,
    /// Shortest time between two refreshes of the same image while the weights change.
    interval: Duration,
}

impl SegPreview {
    pub fn new(ctx: &GpuContext, model: &BeitModel) -> Result<Self, ModelError> {
        let graph = graph_for(ctx, model, 1, None)?;
        let (classes, side) = (model.cfg.labels() as usize, model.cfg.image_size as usize);
        Ok(Self {
            ring: ReadbackRing::new(ctx, 2, 4 * (classes * side * side) as u64),
            graph,
            pending: None,
            requested: None,
            result: None,
            classes,
            side,
            interval: Duration::from_millis(700),
        })
    }

    /// The model's input: (channels · side · side) values.
    pub fn input_len(&self) -> usize {
        (self.graph.cfg.num_channels as usize) * self.side * self.side
    }

    /// Collect what came back; then, when nothing is in flight and `key` is new (or the same image's weights
    /// changed and the interval passed), submit `pixels` (C, S, S).
    pub fn tick(
        &mut self,
        ctx: &GpuContext,
        pixels: &[f32],
        key: (u64, u64),
    ) -> Result<(), ModelError> {
        for (ticket, bytes) in self.ring.collect(ctx) {
            if let Some((t, k)) = self.pending {
                if t == ticket {
                    self.pending = None;
                    self.result = Some(self.prediction(k, bytemuck::pod_collect_to_vec(&bytes)));
                }
            }
        }
        if self.pending.is_some() || pixels.len() != self.input_len() {
            return Ok(());
        }
        let due = match self.requested {
            None => true,
            Some((k, _)) if k.0 != key.0 => true,
            Some((k, at)) => k != key && at.elapsed() >= self.interval,
        };
        if !due {
            return Ok(());
        }
        self.graph.write_batch(ctx, pixels, None, None)?;
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("segmentation preview"),
            });
        Dispatch::record_all(&mut enc, "segmentation preview", &self.graph.forward);
        if let Some(ticket) = self.ring.record(&mut enc, &self.graph.logits) {
            ctx.queue.submit([enc.finish()]);
            self.ring.after_submit();
            self.pending = Some((ticket, key));
            self.requested = Some((key, Instant::now()));
        }
        Ok(())
    }

    /// Softmax over classes and argmax per pixel of logits (K, S, S).
    fn prediction(&self, key: (u64, u64), logits: Vec<f32>) -> SegPrediction {
        let (k, n) = (self.classes, self.side * self.side);
        let mut probs = logits;
        let mut predicted = vec![0u32; n];
        for (p, best) in predicted.iter_mut().enumerate() {
            let max = (0..k)
                .map(|c| probs[c * n + p])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for c in 0..k {
                let e = (probs[c * n + p] - max).exp();
                probs[c * n + p] = e;
                sum += e;
            }
            let mut top = 0;
            for c in 0..k {
                probs[c * n + p] /= sum.max(f32::MIN_POSITIVE);
                if probs[c * n + p] > probs[top * n + p] {
                    top = c;
                }
            }
            *best = top as u32;
        }
        SegPrediction {
            key,
            probs,
            predicted,
            classes: k,
            side: self.side,
        }
    }
}
