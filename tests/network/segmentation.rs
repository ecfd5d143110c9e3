//! The segmentation network (backbone + linear or pyramid head + per-pixel loss) on the GPU: every tensor's
//! gradient against a central finite difference of the network's own loss along a random direction in that
//! tensor (f32, so ε = 3e-3 and a 3% + 2e-3 tolerance), with ignored pixels in the labels.

use super::common::*;
use beitlab::data::segmentation::IGNORE;
use beitlab::gpu::Dispatch;
use beitlab::model::{BeitConfig, BeitGraph, BeitModel, GraphOptions, MimRows, SegmentationHead};
use beitlab::train::segment::segmentation_config;

fn check_head(head: SegmentationHead, image: u32, patch: u32) {
    let mut base = BeitConfig::preset("micro").unwrap();
    base.image_size = image;
    base.patch_size = patch;
    let names: Vec<String> = (0..5).map(|i| format!("class{i}")).collect();
    let cfg = segmentation_config(&base, &names, head, 0.0);
    let model = BeitModel::new_random(ctx(), &cfg, 7).unwrap();
    let batch = 2;
    let g = BeitGraph::new(
        ctx(),
        &cfg,
        &model.table,
        &model.params,
        GraphOptions {
            batch,
            mim_rows: MimRows::All,
            drop_path_seed: None,
            label_smoothing: 0.0,
            keep_block_outputs: None,
            fused_attention: None,
            mixed: None,
        },
    )
    .unwrap();
    let mut rng = Rng::new(11);
    let pixels = rng.vec((batch * cfg.num_channels * image * image) as usize, 1.0);
    let labels: Vec<u32> = (0..batch * image * image)
        .map(|_| {
            if rng.unit() < 0.2 {
                IGNORE
            } else {
                rng.below(5)
            }
        })
        .collect();
    // Away from the initialisation, whose tiny conv outputs make the group norms' 1 / σ so large that no f32
    // step is both above rounding and inside the linear regime.
    let theta: Vec<f32> = read(&model.params.whole)
        .iter()
        .zip(rng.vec(model.table.layout.total as usize, 0.1))
        .map(|(t, r)| t + r)
        .collect();
    model.params.whole.write(ctx(), &theta);
    g.write_batch(ctx(), &pixels, None, Some(&labels)).unwrap();
    let mut both = g.forward.clone();
    both.extend(g.backward.iter().cloned());
    Dispatch::submit(ctx(), "segmentation step", &both).unwrap();
    let grads = read(&g.grads.whole);
    let loss_at = |values: &[f32]| -> f64 {
        model.params.whole.write(ctx(), values);
        Dispatch::submit(ctx(), "segmentation forward", &g.forward).unwrap();
        read(&g.stats)[0] as f64
    };
    let eps = 3e-3f32;
    let mut checked = 0;
    for (spec, e) in model.table.specs.iter().zip(&model.table.layout.entries) {
        if !spec.trainable {
            continue;
        }
        let range = e.offset as usize..(e.offset + e.len) as usize;
        let dir = rng.vec(range.len(), 1.0);
        let analytic: f64 = grads[range.clone()]
            .iter()
            .zip(&dir)
            .map(|(g, v)| *g as f64 * *v as f64)
            .sum();
        let mut moved = theta.clone();
        for (i, v) in range.clone().zip(&dir) {
            moved[i] = theta[i] + eps * v;
        }
        let up = loss_at(&moved);
        for (i, v) in range.clone().zip(&dir) {
            moved[i] = theta[i] - eps * v;
        }
        let down = loss_at(&moved);
        let numeric = (up - down) / (2.0 * eps as f64);
        let err = (numeric - analytic).abs();
        assert!(
            err <= 2e-3 + 0.03 * numeric.abs().max(analytic.abs()),
            "{head:?} head, {}: analytic {analytic} vs numeric {numeric}",
            spec.name
        );
        checked += 1;
    }
    model.params.whole.write(ctx(), &theta);
    assert!(checked > 20, "only {checked} tensors checked");
}

#[test]
fn linear_head_gradients_match_finite_differences() {
    check_head(SegmentationHead::Linear, 28, 7);
}

#[test]
fn pyramid_head_gradients_match_finite_differences() {
    check_head(SegmentationHead::Pyramid, 32, 4);
}
