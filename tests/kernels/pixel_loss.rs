//! pixel_loss.wgsl: per-pixel cross-entropy with an ignored label against its CPU twin. atol 1e-5, rtol 1e-5:
//! a logsumexp over at most a few hundred classes in f32. (Past 65535 workgroups the stats alone, 3 floats per
//! pixel, would exceed the 128 MiB storage binding; the grid folds through the helper the other kernels test.)

use super::common::*;
use beitlab::cpu;
use beitlab::ops::pixel_loss::{self, IGNORE};

fn case(batch: u32, classes: u32, pixels: u32, accumulate: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let n = (batch * pixels) as usize;
    let logits = rng.vec(n * classes as usize, 4.0);
    // Every fifth pixel ignored, one label past the classes (also ignored).
    let labels: Vec<u32> = (0..n)
        .map(|i| match i % 5 {
            0 => IGNORE,
            3 if i % 7 == 0 => classes + 2,
            _ => rng.below(classes),
        })
        .collect();
    let counted = labels.iter().filter(|&&l| l < classes).count();
    let scale = 1.0 / counted.max(1) as f32;
    let stats = poisoned(3 * n);
    let start = rng.vec(n * classes as usize, 1.0);
    let dl = if accumulate {
        with(&start)
    } else {
        poisoned(n * classes as usize)
    };
    let built = pixel_loss::pixel_cross_entropy(
        ctx(),
        &stats,
        Some(&dl),
        &up(&logits),
        &up_u32(&labels),
        batch,
        classes,
        pixels,
        2.0,
        accumulate,
    )
    .unwrap();
    // The scale is rewritten after building, as a training step does.
    pixel_loss::set_scale(ctx(), &built, scale);
    run(built.dispatches);
    let mut want_stats = vec![0.0f64; 3 * n];
    let mut want_grad = if accumulate {
        f64s(&start)
    } else {
        vec![0.0; n * classes as usize]
    };
    cpu::pixel_loss::pixel_cross_entropy(
        &mut want_stats,
        Some(&mut want_grad),
        &f64s(&logits),
        &labels,
        batch as usize,
        classes as usize,
        pixels as usize,
        IGNORE,
        scale as f64,
        accumulate,
    );
    assert_close("pixel stats", &read(&stats), &want_stats, 1e-5, 1e-5);
    assert_close("pixel dlogits", &read(&dl), &want_grad, 1e-5, 1e-5);
    let got_counted: f32 = read(&stats).chunks(3).map(|c| c[2]).sum();
    assert_eq!(got_counted as usize, counted);
}

#[test]
fn pixel_cross_entropy_tiny_odd_and_large() {
    case(1, 1, 1, false, 1);
    case(2, 3, 7, true, 2);
    case(3, 21, 97, false, 3);
    case(2, 150, 56 * 56, false, 4);
}
