//! The graph's top for semantic segmentation: a dense head on patch features, per-pixel logits upsampled
//! bilinearly to the image, per-pixel cross-entropy (ignored pixels count for nothing), and the backward down to
//! the hidden states the head read.
//!
//! Linear head: z = LayerNorm(hidden[L]) -> patch map (B, C, g, g) -> 1x1 conv -> (B, K, g, g) -> resize.
//! Pyramid head, on the hidden states after the blocks of `out_indices` (f0..f3, each a (B, C, g, g) map):
//!   P0 = convT2x2(f0) (2g), P1 = f1 (g), P2 = maxpool(f2) (g/2), P3 = maxpool(maxpool(f3)) (g/4);
//!   top-down: t3 = lat3(P3), t_i = lat_i(P_i) + resize(t_{i+1}) (1x1 lateral convs);
//!   o_i = GN(conv3x3(t_i)); u_i = resize(o_i) to 2g; fused = GN(Σ_i conv3x3_i(ReLU(u_i)) + b);
//!   logits (B, K, 2g, 2g) = 1x1 conv of ReLU(fused) -> resize to the image.
//! Shapes: logits (B, K, H, W); labels (B, H, W) u32 with IGNORE; stats (3) = (mean loss, pixel accuracy,
//! counted pixels / counted).

use super::builder::Builder;
use crate::gpu::{Dispatch, GpuSlice};
use crate::model::config::SegmentationHead;
use crate::model::error::ModelError;
use crate::ops::conv::{self, ConvEpilogue, ConvShape, TransposeShape};
use crate::ops::groupnorm::{self, GroupNormShape};
use crate::ops::pixel_loss::{self, PixelLoss};
use crate::ops::spatial::{self, ImageShape};
use crate::ops::tokens::{self, TokenShape};
use crate::ops::{elementwise, layernorm, reduce};

/// A group norm's saved statistics and output.
struct GroupNormed {
    y: GpuSlice,
    mean: GpuSlice,
    rstd: GpuSlice,
    shape: GroupNormShape,
}

/// One pyramid scale: the pooled / upsampled feature P, the top-down sum t, the fpn conv's output before and
/// after its norm, and that output resized to the finest scale.
struct Scale {
    side: u32,
    p: GpuSlice,
    t: GpuSlice,
    conv_out: GpuSlice,
    normed: GroupNormed,
    up: GpuSlice,
}

enum Dense {
    Linear { mean: GpuSlice, rstd: GpuSlice },
    Pyramid(Box<Pyramid>),
}

/// What the pyramid head's backward reads.
struct Pyramid {
    /// The feature maps f0..f3 and, for f3, the map after its first max-pool.
    features: Vec<GpuSlice>,
    pooled_once: GpuSlice,
    scales: Vec<Scale>,
    fused_pre: GpuSlice,
    fused: GroupNormed,
}

/// The head's forward, with what its backward reads.
pub(super) struct SegmentOut {
    dense: Dense,
    /// The map the classifier reads (linear: the normed patch map; pyramid: the fused map, read through ReLU).
    classifier_in: GpuSlice,
    /// Side of the classifier's map (g or 2g).
    side: u32,
    /// Classifier output (B, K, side, side) and the upsampled logits (B, K, H, W).
    pub logits: GpuSlice,
    pub labels: GpuSlice,
    pub stats: GpuSlice,
    pub loss: PixelLoss,
    dlogits: GpuSlice,
}

/// Groups of the head's group norms: 8 when the width allows, else the largest of 4, 2, 1 that divides it.
fn groups_for(c: u32) -> u32 {
    [8, 4, 2, 1]
        .into_iter()
        .find(|g| c.is_multiple_of(*g))
        .unwrap_or(1)
}

const GN_EPS: f32 = 1e-5;

impl Builder<'_> {
    /// The block outputs (indices into `hidden`) the head reads, finest scale first.
    pub fn segment_feature_indices(&self) -> Vec<u32> {
        match self.cfg.segmentation_head() {
            Some(SegmentationHead::Pyramid) => self.cfg.out_indices.clone(),
            _ => vec![self.dims.layers],
        }
    }

    fn token_shape(&self) -> TokenShape {
        TokenShape {
            batch: self.dims.b,
            patches: self.dims.n,
            dim: self.dims.c,
        }
    }

    fn map_shape(&self, channels: u32, side: u32) -> ImageShape {
        ImageShape {
            batch: self.dims.b,
            channels,
            height: side,
            width: side,
        }
    }

    fn conv_shape(&self, ci: u32, co: u32, side: u32, kernel: u32) -> ConvShape {
        ConvShape::same(self.dims.b, ci, co, (side, side), kernel)
    }

    fn group_norm(
        &mut self,
        x: &GpuSlice,
        prefix: &str,
        side: u32,
    ) -> Result<GroupNormed, ModelError> {
        let (b, c) = (self.dims.b, self.dims.c);
        let shape = GroupNormShape {
            batch: b,
            channels: c,
            pixels: side * side,
            groups: groups_for(c),
            eps: GN_EPS,
        };
        let p = self.p();
        let n = GroupNormed {
            y: self.buf(prefix, shape.len()),
            mean: self.buf(prefix, (b * shape.groups) as u64),
            rstd: self.buf(prefix, (b * shape.groups) as u64),
            shape,
        };
        self.fwd.extend(groupnorm::group_norm_forward(
            self.ctx,
            &n.y,
            &n.mean,
            &n.rstd,
            x,
            &p.t(&format!("{prefix}.weight"))?,
            &p.t(&format!("{prefix}.bias"))?,
            shape,
        )?);
        Ok(n)
    }

    /// `d` of a group norm's input from `dy`, its affine gradients accumulated.
    fn group_norm_backward(
        &self,
        v: &mut Vec<Dispatch>,
        dx: &GpuSlice,
        dy: &GpuSlice,
        x: &GpuSlice,
        n: &GroupNormed,
        prefix: &str,
    ) -> Result<(), ModelError> {
        let (p, gr) = (self.p(), self.gr());
        v.extend(groupnorm::group_norm_backward(
            self.ctx,
            dx,
            &gr.t(&format!("{prefix}.weight"))?,
            &gr.t(&format!("{prefix}.bias"))?,
            dy,
            x,
            &p.t(&format!("{prefix}.weight"))?,
            &n.mean,
            &n.rstd,
            n.shape,
            false,
        )?);
        Ok(())
    }

    /// A convolution's weight and bias gradients (accumulated).
    #[allow(clippy::too_many_arguments)]
    fn conv_param_grads(
        &self,
        v: &mut Vec<Dispatch>,
        prefix: &str,
        bias: Option<&str>,
        x: &GpuSlice,
        dy: &GpuSlice,
        shape: ConvShape,
        relu_input: bool,
    ) -> Result<(), ModelError> {
        let gr = self.gr();
        v.extend(conv::conv2d_weight_grad(
            self.ctx,
            &gr.t(&format!("{prefix}.weight"))?,
            x,
            dy,
            shape,
            relu_input,
            true,
        )?);
        if let Some(b) = bias {
            v.extend(conv::conv2d_bias_grad(
                self.ctx,
                &gr.t(b)?,
                dy,
                shape,
                true,
            )?);
        }
        Ok(())
    }

    /// The head, the upsampling and the loss on `hidden` (every hidden state of the backbone).
    pub fn segment_forward(&mut self, hidden: &[GpuSlice]) -> Result<SegmentOut, ModelError> {
        let (ctx, cfg, d) = (self.ctx, self.cfg, self.dims);
        let (b, c, g, k) = (d.b, d.c, cfg.grid(), cfg.labels());
        let head = cfg.segmentation_head().ok_or_else(|| {
            ModelError::Config(
                "a segmentation model needs segmentation_head \"linear\" or \"pyramid\"".into(),
            )
        })?;
        let p = self.p();
        let (dense, classifier_in, side) = match head {
            SegmentationHead::Linear => {
                let last = &hidden[d.layers as usize];
                let bt = d.bt();
                let (z, mean, rstd) = (
                    self.buf("decode_head.norm", d.btc()),
                    self.buf("decode_head.norm", bt as u64),
                    self.buf("decode_head.norm", bt as u64),
                );
                self.fwd.extend(layernorm::layernorm_forward(
                    ctx,
                    &z,
                    &mean,
                    &rstd,
                    last,
                    &p.t("decode_head.norm.weight")?,
                    &p.t("decode_head.norm.bias")?,
                    bt,
                    c,
                    d.eps,
                )?);
                let map = self.buf("patch map", (b * c * g * g) as u64);
                self.fwd
                    .extend(tokens::patch_map(ctx, &map, &z, self.token_shape())?);
                (Dense::Linear { mean, rstd }, map, g)
            }
            SegmentationHead::Pyramid => {
                let mut features = Vec::new();
                for &i in &self.segment_feature_indices() {
                    let f = self.buf("feature map", (b * c * g * g) as u64);
                    self.fwd.extend(tokens::patch_map(
                        ctx,
                        &f,
                        &hidden[i as usize],
                        self.token_shape(),
                    )?);
                    features.push(f);
                }
                let sides = [2 * g, g, g / 2, g / 4];
                // P0..P3.
                let p0 = self.buf("P0", (b * c * sides[0] * sides[0]) as u64);
                self.fwd.extend(conv::conv_transpose2(
                    ctx,
                    &p0,
                    &features[0],
                    &p.t("fpn1.weight")?,
                    Some(&p.t("fpn1.bias")?),
                    TransposeShape {
                        batch: b,
                        in_channels: c,
                        out_channels: c,
                        height: g,
                        width: g,
                    },
                    ConvEpilogue::default(),
                )?);
                let p2 = self.buf("P2", (b * c * sides[2] * sides[2]) as u64);
                self.fwd.extend(spatial::max_pool2(
                    ctx,
                    &p2,
                    &features[2],
                    self.map_shape(c, g),
                )?);
                let pooled_once = self.buf("f3 pooled", (b * c * sides[2] * sides[2]) as u64);
                self.fwd.extend(spatial::max_pool2(
                    ctx,
                    &pooled_once,
                    &features[3],
                    self.map_shape(c, g),
                )?);
                let p3 = self.buf("P3", (b * c * sides[3] * sides[3]) as u64);
                self.fwd.extend(spatial::max_pool2(
                    ctx,
                    &p3,
                    &pooled_once,
                    self.map_shape(c, sides[2]),
                )?);
                let ps = [p0, features[1].clone(), p2, p3];
                // Top-down: coarsest first, each scale's lateral added onto the coarser sum resized to it.
                let mut ts: Vec<GpuSlice> = Vec::new();
                for i in (0..4).rev() {
                    let s = sides[i];
                    let t = self.buf("top-down sum", (b * c * s * s) as u64);
                    let accumulate = !ts.is_empty();
                    if let Some(coarser) = ts.last() {
                        self.fwd.extend(spatial::resize_bilinear(
                            ctx,
                            &t,
                            coarser,
                            self.map_shape(c, sides[i + 1]),
                            (s, s),
                        )?);
                    }
                    let lat = format!("decode_head.lateral_convs.{i}");
                    self.fwd.extend(conv::conv2d(
                        ctx,
                        &t,
                        &ps[i],
                        &p.t(&format!("{lat}.weight"))?,
                        Some(&p.t(&format!("{lat}.bias"))?),
                        self.conv_shape(c, c, s, 1),
                        ConvEpilogue {
                            accumulate,
                            ..Default::default()
                        },
                    )?);
                    ts.push(t);
                }
                ts.reverse();
                let mut scales = Vec::new();
                for (i, (pi, ti)) in ps.into_iter().zip(ts).enumerate() {
                    let s = sides[i];
                    let fpn = format!("decode_head.fpn_convs.{i}");
                    let conv_out = self.buf("fpn conv", (b * c * s * s) as u64);
                    self.fwd.extend(conv::conv2d(
                        ctx,
                        &conv_out,
                        &ti,
                        &p.t(&format!("{fpn}.weight"))?,
                        Some(&p.t(&format!("{fpn}.bias"))?),
                        self.conv_shape(c, c, s, 3),
                        ConvEpilogue::default(),
                    )?);
                    let normed = self.group_norm(&conv_out, &format!("{fpn}.norm"), s)?;
                    let up = if i == 0 {
                        normed.y.clone()
                    } else {
                        let up = self.buf("fpn upsampled", (b * c * sides[0] * sides[0]) as u64);
                        self.fwd.extend(spatial::resize_bilinear(
                            ctx,
                            &up,
                            &normed.y,
                            self.map_shape(c, s),
                            (sides[0], sides[0]),
                        )?);
                        up
                    };
                    scales.push(Scale {
                        side: s,
                        p: pi,
                        t: ti,
                        conv_out,
                        normed,
                        up,
                    });
                }
                let fused_pre = self.buf("fused", (b * c * sides[0] * sides[0]) as u64);
                for (i, sc) in scales.iter().enumerate() {
                    self.fwd.extend(conv::conv2d(
                        ctx,
                        &fused_pre,
                        &sc.up,
                        &p.t(&format!("decode_head.fuse.{i}.weight"))?,
                        (i == 0)
                            .then(|| p.t("decode_head.fuse.bias"))
                            .transpose()?
                            .as_ref(),
                        self.conv_shape(c, c, sides[0], 3),
                        ConvEpilogue {
                            accumulate: i > 0,
                            relu_input: true,
                            ..Default::default()
                        },
                    )?);
                }
                let fused = self.group_norm(&fused_pre, "decode_head.fuse.norm", sides[0])?;
                let input = fused.y.clone();
                (
                    Dense::Pyramid(Box::new(Pyramid {
                        features,
                        pooled_once,
                        scales,
                        fused_pre,
                        fused,
                    })),
                    input,
                    sides[0],
                )
            }
        };
        let relu_input = matches!(dense, Dense::Pyramid(_));
        let coarse = self.buf("coarse logits", (b * k * side * side) as u64);
        self.fwd.extend(conv::conv2d(
            ctx,
            &coarse,
            &classifier_in,
            &p.t("decode_head.classifier.weight")?,
            Some(&p.t("decode_head.classifier.bias")?),
            self.conv_shape(c, k, side, 1),
            ConvEpilogue {
                relu_input,
                ..Default::default()
            },
        )?);
        let size = cfg.image_size;
        let pixels = size * size;
        let logits = self.buf("logits", (b * k * pixels) as u64);
        self.fwd.extend(spatial::resize_bilinear(
            ctx,
            &logits,
            &coarse,
            self.map_shape(k, side),
            (size, size),
        )?);
        // The loss and its gradient in one pass (a mean over the counted pixels: `scale` set per batch).
        let labels = GpuSlice::new(ctx, "pixel labels", (b * pixels) as u64);
        let per_pixel = self.buf("pixel loss stats", 3 * (b * pixels) as u64);
        let stats = self.buf("loss, accuracy, counted", 3);
        let dlogits = self.buf("d logits", (b * k * pixels) as u64);
        let loss = pixel_loss::pixel_cross_entropy(
            ctx,
            &per_pixel,
            Some(&dlogits),
            &logits,
            &labels,
            b,
            k,
            pixels,
            1.0,
            false,
        )?;
        self.fwd.extend(loss.dispatches.iter().cloned());
        self.fwd.extend(reduce::col_sum(
            ctx,
            &stats,
            &per_pixel,
            b * pixels,
            3,
            false,
        )?);
        Ok(SegmentOut {
            dense,
            classifier_in,
            side,

            logits,
            labels,
            stats,
            loss,
            dlogits,
        })
    }

    /// The head's backward (the loss's gradient was written by the forward): writes d hidden[L] into `dx` and
    /// returns the gradients of the other hidden states the head read, as (hidden index, d map (B, C, g, g)),
    /// to be added when the blocks' backward reaches them.
    pub fn segment_backward(
        &mut self,
        h: &SegmentOut,
        hidden: &[GpuSlice],
        dx: &GpuSlice,
    ) -> Result<Vec<(u32, GpuSlice)>, ModelError> {
        let (ctx, cfg, d) = (self.ctx, self.cfg, self.dims);
        let (b, c, g, k) = (d.b, d.c, cfg.grid(), cfg.labels());
        let (p, gr) = (self.p(), self.gr());
        let size = cfg.image_size;
        let mut v = Vec::new();
        let dcoarse = self.buf("d coarse logits", (b * k * h.side * h.side) as u64);
        v.extend(spatial::resize_bilinear_backward(
            ctx,
            &dcoarse,
            &h.dlogits,
            self.map_shape(k, h.side),
            (size, size),
            false,
        )?);
        let cls_shape = self.conv_shape(c, k, h.side, 1);
        let relu = matches!(h.dense, Dense::Pyramid(_));
        let dcls_in = self.buf("d classifier input", (b * c * h.side * h.side) as u64);
        v.extend(conv::conv2d_input_grad(
            ctx,
            &dcls_in,
            &dcoarse,
            &p.t("decode_head.classifier.weight")?,
            relu.then_some(&h.classifier_in),
            cls_shape,
            false,
        )?);
        self.conv_param_grads(
            &mut v,
            "decode_head.classifier",
            Some("decode_head.classifier.bias"),
            &h.classifier_in,
            &dcoarse,
            cls_shape,
            relu,
        )?;
        let mut inject = Vec::new();
        match &h.dense {
            Dense::Linear { mean, rstd } => {
                let dz = self.buf("d decode_head.norm", d.btc());
                v.extend(tokens::patch_map_backward(
                    ctx,
                    &dz,
                    &dcls_in,
                    self.token_shape(),
                    false,
                )?);
                v.extend(layernorm::layernorm_backward(
                    ctx,
                    dx,
                    &gr.t("decode_head.norm.weight")?,
                    &gr.t("decode_head.norm.bias")?,
                    &dz,
                    &hidden[d.layers as usize],
                    mean,
                    rstd,
                    &p.t("decode_head.norm.weight")?,
                    d.bt(),
                    c,
                    false,
                )?);
            }
            Dense::Pyramid(pyramid) => {
                let Pyramid {
                    features,
                    pooled_once,
                    scales,
                    fused_pre,
                    fused,
                } = pyramid.as_ref();
                let s0 = scales[0].side;
                let dfused = self.buf("d fused", (b * c * s0 * s0) as u64);
                self.group_norm_backward(
                    &mut v,
                    &dfused,
                    &dcls_in,
                    fused_pre,
                    fused,
                    "decode_head.fuse.norm",
                )?;
                v.extend(conv::conv2d_bias_grad(
                    ctx,
                    &gr.t("decode_head.fuse.bias")?,
                    &dfused,
                    self.conv_shape(c, c, s0, 3),
                    true,
                )?);
                // d t_i from its fpn conv, plus (i > 0) the finer sum's gradient resized back.
                let mut dts: Vec<GpuSlice> = Vec::new();
                for (i, sc) in scales.iter().enumerate() {
                    let s = sc.side;
                    let fuse_shape = self.conv_shape(c, c, s0, 3);
                    let fuse_w = format!("decode_head.fuse.{i}");
                    let dup = self.buf("d upsampled", (b * c * s0 * s0) as u64);
                    v.extend(conv::conv2d_input_grad(
                        ctx,
                        &dup,
                        &dfused,
                        &p.t(&format!("{fuse_w}.weight"))?,
                        Some(&sc.up),
                        fuse_shape,
                        false,
                    )?);
                    self.conv_param_grads(
                        &mut v, &fuse_w, None, &sc.up, &dfused, fuse_shape, true,
                    )?;
                    let dnormed = if i == 0 {
                        dup
                    } else {
                        let dn = self.buf("d fpn output", (b * c * s * s) as u64);
                        v.extend(spatial::resize_bilinear_backward(
                            ctx,
                            &dn,
                            &dup,
                            self.map_shape(c, s),
                            (s0, s0),
                            false,
                        )?);
                        dn
                    };
                    let fpn = format!("decode_head.fpn_convs.{i}");
                    let dconv = self.buf("d fpn conv", (b * c * s * s) as u64);
                    self.group_norm_backward(
                        &mut v,
                        &dconv,
                        &dnormed,
                        &sc.conv_out,
                        &sc.normed,
                        &format!("{fpn}.norm"),
                    )?;
                    let fpn_shape = self.conv_shape(c, c, s, 3);
                    let dt = self.buf("d top-down sum", (b * c * s * s) as u64);
                    v.extend(conv::conv2d_input_grad(
                        ctx,
                        &dt,
                        &dconv,
                        &p.t(&format!("{fpn}.weight"))?,
                        None,
                        fpn_shape,
                        false,
                    )?);
                    self.conv_param_grads(
                        &mut v,
                        &fpn,
                        Some(&format!("{fpn}.bias")),
                        &sc.t,
                        &dconv,
                        fpn_shape,
                        false,
                    )?;
                    if let Some(finer) = dts.last() {
                        v.extend(spatial::resize_bilinear_backward(
                            ctx,
                            &dt,
                            finer,
                            self.map_shape(c, s),
                            (scales[i - 1].side, scales[i - 1].side),
                            true,
                        )?);
                    }
                    dts.push(dt);
                }
                // Laterals: d P_i = the 1x1 conv's input gradient of d t_i; then down to the feature maps.
                let mut dfeatures = Vec::new();
                for (i, sc) in scales.iter().enumerate() {
                    let lat = format!("decode_head.lateral_convs.{i}");
                    let lat_shape = self.conv_shape(c, c, sc.side, 1);
                    let dp = self.buf("d P", (b * c * sc.side * sc.side) as u64);
                    v.extend(conv::conv2d_input_grad(
                        ctx,
                        &dp,
                        &dts[i],
                        &p.t(&format!("{lat}.weight"))?,
                        None,
                        lat_shape,
                        false,
                    )?);
                    self.conv_param_grads(
                        &mut v,
                        &lat,
                        Some(&format!("{lat}.bias")),
                        &sc.p,
                        &dts[i],
                        lat_shape,
                        false,
                    )?;
                    let df = match i {
                        1 => dp.clone(),
                        _ => self.buf("d feature map", (b * c * g * g) as u64),
                    };
                    match i {
                        0 => {
                            let ts = TransposeShape {
                                batch: b,
                                in_channels: c,
                                out_channels: c,
                                height: g,
                                width: g,
                            };
                            v.extend(conv::conv_transpose2_input_grad(
                                ctx,
                                &df,
                                &dp,
                                &p.t("fpn1.weight")?,
                                ts,
                                false,
                            )?);
                            v.extend(conv::conv_transpose2_param_grads(
                                ctx,
                                &gr.t("fpn1.weight")?,
                                Some(&gr.t("fpn1.bias")?),
                                &features[0],
                                &dp,
                                ts,
                                true,
                            )?);
                        }
                        2 => v.extend(spatial::max_pool2_backward(
                            ctx,
                            &df,
                            &dp,
                            &features[2],
                            self.map_shape(c, g),
                            false,
                        )?),
                        3 => {
                            let half = scales[2].side;
                            let donce = self.buf("d f3 pooled", (b * c * half * half) as u64);
                            v.extend(spatial::max_pool2_backward(
                                ctx,
                                &donce,
                                &dp,
                                pooled_once,
                                self.map_shape(c, half),
                                false,
                            )?);
                            v.extend(spatial::max_pool2_backward(
                                ctx,
                                &df,
                                &donce,
                                &features[3],
                                self.map_shape(c, g),
                                false,
                            )?);
                        }
                        _ => {}
                    }
                    dfeatures.push(df);
                }
                // d hidden[L] starts at zero; every feature's gradient joins its hidden state's.
                v.extend(elementwise::fill(ctx, dx, d.btc() as u32, 0.0)?);
                for (&i, df) in self.segment_feature_indices().iter().zip(dfeatures) {
                    if i == d.layers {
                        v.extend(tokens::patch_map_backward(
                            ctx,
                            dx,
                            &df,
                            self.token_shape(),
                            true,
                        )?);
                    } else {
                        inject.push((i, df));
                    }
                }
            }
        }
        self.bwd.extend(v);
        Ok(inject)
    }

    /// Add the gradient of the feature maps read from hidden[i] into `dx` (= d hidden[i] at that point of the
    /// backward).
    pub fn segment_inject(
        &mut self,
        dx: &GpuSlice,
        dmaps: &[(u32, GpuSlice)],
        i: u32,
    ) -> Result<(), ModelError> {
        for (_, dm) in dmaps.iter().filter(|(at, _)| *at == i) {
            let d = tokens::patch_map_backward(self.ctx, dx, dm, self.token_shape(), true)?;
            self.bwd.extend(d);
        }
        Ok(())
    }
}
