//! Mixed precision on the micro preset (f16-input products emulated, so it runs on lavapipe): the gradients
//! follow f32's within f16 rounding when the loss is scaled; a power-of-two scale is exact while the products'
//! operands stay in f16's normal range, and a scale that pushes them below it (into the subnormals, where deep
//! networks' small gradients live unscaled) loses precision: why the scale exists. A step whose scaled
//! gradients overflow leaves the weights alone, halves the scale and comes back as skipped, and later steps
//! train.

use super::common::{ctx, read};
use super::training::{batch, Batch};
use beitlab::cpu::precision::{initial_state, state};
use beitlab::gpu::Dispatch;
use beitlab::model::{BeitConfig, BeitGraph, BeitModel, GraphOptions, MimRows};
use beitlab::ops::precision::ProductInputs;
use beitlab::train::runner::StepRunner;

fn graph(model: &BeitModel, b: &Batch, mixed: Option<ProductInputs>, train: bool) -> BeitGraph {
    let opts = GraphOptions {
        batch: 3,
        mim_rows: MimRows::Masked(b.labels.len() as u32),
        drop_path_seed: train.then_some(5),
        label_smoothing: 0.0,
        keep_block_outputs: None,
        fused_attention: None,
        mixed,
    };
    let g = BeitGraph::new(ctx(), &model.cfg, &model.table, &model.params, opts).unwrap();
    g.write_batch(ctx(), &b.pixels, Some(&b.mask), Some(&b.labels))
        .unwrap();
    g
}

/// (loss, gradients divided by `scale`) of one forward and backward.
fn loss_and_grads(g: &BeitGraph, scale: Option<f32>) -> (f32, Vec<f32>) {
    if let (Some(s), Some(scaler)) = (scale, &g.loss_scaler) {
        scaler.restore(ctx(), &initial_state(s));
    }
    let mut d = g.forward.clone();
    d.extend(g.backward.iter().cloned());
    Dispatch::submit(ctx(), "mixed", &d).unwrap();
    let s = scale.unwrap_or(1.0);
    let grads = read(&g.grads.whole).iter().map(|v| v / s).collect();
    (g.metrics(&read(&g.stats)).0, grads)
}

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

#[test]
fn scaled_f16_products_follow_f32_and_a_scale_below_f16s_normal_range_loses_precision() {
    let cfg = BeitConfig::preset("micro").unwrap();
    let model = BeitModel::new_random(ctx(), &cfg, 3).unwrap();
    let b = batch(&cfg, 3, 4);
    let (loss32, g32) = loss_and_grads(&graph(&model, &b, None, false), None);
    let mixed = graph(&model, &b, Some(ProductInputs::F16Emulated), false);
    let (loss_scaled, g_scaled) = loss_and_grads(&mixed, Some(1024.0));
    let (loss_unit, g_unit) = loss_and_grads(&mixed, Some(1.0));
    // 2^-18 takes this model's gradients (1e-1 .. 1e-4) to 4e-7 .. 4e-10: f16 subnormals or zero.
    let (_, g_tiny) = loss_and_grads(&mixed, Some(2f32.powi(-18)));
    // The forward reads f16 operands: the loss moves by about f16's relative precision (2^-11), no more.
    assert!(
        ((loss_scaled - loss32) / loss32).abs() < 2e-3,
        "{loss_scaled} vs f32 {loss32}"
    );
    assert_eq!(
        loss_scaled, loss_unit,
        "the scale only touches the backward"
    );
    assert!(g_scaled.iter().all(|v| v.is_finite()));
    let (scaled, unit, tiny) = (
        relative_error(&g_scaled, &g32),
        relative_error(&g_unit, &g32),
        relative_error(&g_tiny, &g32),
    );
    eprintln!("gradient error against f32: scale 1024 {scaled:.2e}, scale 1 {unit:.2e}, scale 2^-18 {tiny:.2e}");
    assert!(scaled > 0.0, "the f16 rounding must show");
    assert!(
        scaled < 1e-2,
        "scaled mixed gradients: {scaled:.2e} off f32"
    );
    assert!(
        (unit - scaled).abs() < 0.1 * scaled,
        "a power-of-two scale inside f16's normal range rounds alike: {unit:.2e} vs {scaled:.2e}"
    );
    assert!(
        tiny > 10.0 * scaled,
        "gradients scaled into f16's subnormals lose precision: {tiny:.2e} vs {scaled:.2e}"
    );
}

#[test]
fn an_overflowed_step_is_skipped_and_the_scale_comes_down_until_steps_apply() {
    let cfg = BeitConfig::preset("micro").unwrap();
    let model = BeitModel::new_random(ctx(), &cfg, 6).unwrap();
    let b = batch(&cfg, 3, 7);
    let g = graph(&model, &b, Some(ProductInputs::F16Emulated), true);
    let groups = model
        .table
        .optimizer_groups(0.05, 1.0, cfg.num_hidden_layers);
    let mut runner = StepRunner::new(ctx(), &model, &g, Vec::new(), &groups, "mixed test").unwrap();
    // Far too large: the scaled loss gradient itself rounds to infinity in the first f16 operand.
    let huge = 2f32.powi(24);
    runner
        .scaler
        .as_ref()
        .unwrap()
        .restore(ctx(), &initial_state(huge));
    let start = model.flat(ctx()).unwrap();
    let counted = b.labels.len() as u32;
    let mut metrics = Vec::new();
    runner.submit(1, 1e-3, Some(3.0), counted);
    runner.sync(&mut |m| metrics.push(m)).unwrap();
    assert_eq!(
        model.flat(ctx()).unwrap(),
        start,
        "a skipped step leaves the weights alone"
    );
    for step in 2..=40 {
        runner.submit(step, 1e-3, Some(3.0), counted);
        runner.settle(&mut |m| metrics.push(m)).unwrap();
    }
    runner.sync(&mut |m| metrics.push(m)).unwrap();
    assert_eq!(metrics.len(), 40);
    assert!(
        metrics[0].skipped && metrics[0].loss_scale == huge,
        "{:?}",
        metrics[0]
    );
    let first_applied = metrics
        .iter()
        .position(|m| !m.skipped)
        .expect("the scale comes down until a step applies");
    // Each skip halves the scale; applied steps report an unscaled, finite gradient norm.
    for (i, m) in metrics.iter().enumerate().take(first_applied) {
        assert!(m.skipped);
        assert_eq!(m.loss_scale, huge / 2f32.powi(i as i32));
    }
    let applied: Vec<_> = metrics.iter().filter(|m| !m.skipped).collect();
    assert!(applied.len() >= 30, "{} of 40 steps applied", applied.len());
    assert!(applied
        .iter()
        .all(|m| m.grad_norm.is_finite() && m.grad_norm < 1e3));
    assert_ne!(model.flat(ctx()).unwrap(), start, "applied steps train");
    let st = read(&runner.scaler.as_ref().unwrap().state);
    assert_eq!(st[state::APPLIED] as usize, applied.len());
    assert!(
        applied.last().unwrap().loss < metrics[first_applied].loss,
        "the loss falls on a fixed batch: {} -> {}",
        metrics[first_applied].loss,
        applied.last().unwrap().loss
    );
}
