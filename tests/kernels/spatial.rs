//! spatial.wgsl: max-pooling, nearest upsampling, argmax over channels and sigmoid-unmap against their CPU
//! twins. Pooling, upsampling and argmax move values unchanged (exact); sigmoid-unmap: atol 1e-6 (f32 exp).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::spatial::{self, ImageShape};

fn shape(batch: u32, channels: u32, height: u32, width: u32) -> ImageShape {
    ImageShape {
        batch,
        channels,
        height,
        width,
    }
}

fn pool_and_upsample(s: ImageShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(s.len() as usize, 3.0);
    let xg = up(&x);
    let pooled = shape(s.batch, s.channels, s.height / 2, s.width / 2);
    let out = poisoned(pooled.len() as usize);
    run(spatial::max_pool2(ctx(), &out, &xg, s).unwrap());
    let mut want = vec![0.0f64; pooled.len() as usize];
    cpu::spatial::max_pool2(&mut want, &f64s(&x), s);
    assert_close("max_pool2", &read(&out), &want, 0.0, 0.0);

    let out = poisoned(4 * s.len() as usize);
    run(spatial::upsample_nearest2(ctx(), &out, &xg, s).unwrap());
    let mut want = vec![0.0f64; 4 * s.len() as usize];
    cpu::spatial::upsample_nearest2(&mut want, &f64s(&x), s);
    assert_close("upsample_nearest2", &read(&out), &want, 0.0, 0.0);
}

fn argmax_and_unmap(s: ImageShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut x = rng.vec(s.len() as usize, 4.0);
    // Ties: the lowest channel wins on both sides.
    if s.channels > 2 {
        let hw = (s.height * s.width) as usize;
        x[0] = 9.0;
        x[2 * hw] = 9.0;
    }
    let xg = up(&x);
    let n = (s.batch * s.height * s.width) as usize;
    let tokens = up_u32(&vec![u32::MAX; n]);
    run(spatial::argmax_channels(ctx(), &tokens, 0, &xg, s).unwrap());
    let mut want = vec![0u32; n];
    cpu::spatial::argmax_channels(&mut want, &f64s(&x), s);
    assert_eq!(
        ctx().read_u32(&tokens).unwrap(),
        want,
        "argmax_channels {s:?}"
    );

    let c = s.channels.div_ceil(2);
    let half = ImageShape { channels: c, ..s };
    let out = poisoned(half.len() as usize);
    run(spatial::sigmoid_unmap(ctx(), &out, &xg, half, s.channels, 0.1, 2.0, -1.0).unwrap());
    let mut want = vec![0.0f64; half.len() as usize];
    cpu::spatial::sigmoid_unmap(
        &mut want,
        &f64s(&x),
        half,
        s.channels as usize,
        0.1,
        2.0,
        -1.0,
    );
    assert_close("sigmoid_unmap", &read(&out), &want, 1e-6, 0.0);
}

#[test]
fn spatial_tiny() {
    pool_and_upsample(shape(1, 1, 2, 2), 1);
    pool_and_upsample(shape(1, 1, 1, 1), 2);
    argmax_and_unmap(shape(1, 1, 1, 1), 3);
    argmax_and_unmap(shape(1, 3, 1, 2), 4);
}

#[test]
fn spatial_odd() {
    // Odd sides: pooling drops the last row and column, as PyTorch's MaxPool2d(2).
    pool_and_upsample(shape(3, 5, 13, 7), 10);
    argmax_and_unmap(shape(3, 37, 5, 7), 11);
}

#[test]
fn spatial_past_65535_workgroups() {
    // Upsampling writes 4 x 2050² outputs, over 65535 x 256 (pooling as many would need an input past the
    // 256 MiB storage binding; its launch folds its grid through the same helper).
    pool_and_upsample(shape(1, 1, 2050, 2050), 20);
    argmax_and_unmap(shape(1, 1, 4097, 4097), 21);
}

fn resize(s: ImageShape, out_side: (u32, u32), seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(s.len() as usize, 2.0);
    let o = ImageShape {
        height: out_side.0,
        width: out_side.1,
        ..s
    };
    let out = poisoned(o.len() as usize);
    run(spatial::resize_bilinear(ctx(), &out, &up(&x), s, out_side).unwrap());
    let mut want = vec![0.0f64; o.len() as usize];
    cpu::spatial::resize_bilinear(
        &mut want,
        &f64s(&x),
        s,
        (out_side.0 as usize, out_side.1 as usize),
    );
    // Convex combinations of four inputs in f32: a few ulps.
    assert_close(
        &format!("resize_bilinear {s:?} -> {out_side:?}"),
        &read(&out),
        &want,
        1e-6,
        1e-6,
    );
}

#[test]
fn resize_bilinear_down_up_and_odd() {
    resize(shape(1, 1, 1, 1), (1, 1), 30);
    resize(shape(1, 1, 1, 1), (3, 2), 31);
    resize(shape(2, 3, 112, 112), (224, 224), 32);
    resize(shape(2, 3, 56, 56), (28, 28), 33);
    resize(shape(3, 5, 13, 7), (5, 19), 34);
}

#[test]
fn resize_bilinear_past_65535_workgroups() {
    resize(shape(1, 1, 1000, 1000), (4100, 4100), 35);
}

#[test]
fn resize_twin_matches_the_position_table_interpolation() {
    // The twin and the f32 helper that resizes relative position tables (as PyTorch) agree.
    let mut rng = Rng::new(36);
    let x = rng.vec(7 * 5, 1.0);
    let want = beitlab::cpu::interpolate::bilinear(&x, 7, 5, 11, 3);
    let mut got = vec![0.0f32; 33];
    cpu::spatial::resize_bilinear(&mut got, &x, shape(1, 1, 7, 5), (11, 3));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

fn resize_back(s: ImageShape, out_side: (u32, u32), accumulate: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let o = ImageShape {
        height: out_side.0,
        width: out_side.1,
        ..s
    };
    let dy = rng.vec(o.len() as usize, 1.0);
    let start = rng.vec(s.len() as usize, 1.0);
    let dx = if accumulate {
        with(&start)
    } else {
        poisoned(s.len() as usize)
    };
    run(spatial::resize_bilinear_backward(ctx(), &dx, &up(&dy), s, out_side, accumulate).unwrap());
    let mut want = f64s(&start);
    cpu::spatial::resize_bilinear_backward(
        &mut want,
        &f64s(&dy),
        s,
        (out_side.0 as usize, out_side.1 as usize),
        accumulate,
    );
    // Sums of a few (upsampling) to a few dozen (downsampling) weighted terms.
    assert_close(
        &format!("resize_bilinear_backward {s:?} -> {out_side:?}"),
        &read(&dx),
        &want,
        1e-5,
        1e-5,
    );
}

#[test]
fn resize_bilinear_backward_is_the_adjoint() {
    resize_back(shape(1, 1, 1, 1), (1, 1), false, 40);
    resize_back(shape(1, 1, 1, 1), (3, 2), true, 41);
    resize_back(shape(2, 3, 14, 14), (56, 56), false, 42);
    resize_back(shape(2, 3, 56, 56), (14, 14), false, 43);
    resize_back(shape(3, 5, 13, 7), (5, 19), true, 44);
    resize_back(shape(1, 2, 7, 7), (224, 224), false, 45);
    // <dy, resize(x)> = <resize_backward(dy), x> for the twins.
    let s = shape(2, 2, 9, 5);
    let mut rng = Rng::new(46);
    let (x, dy) = (
        f64s(&rng.vec(s.len() as usize, 1.0)),
        f64s(&rng.vec(2 * 2 * 4 * 11, 1.0)),
    );
    let mut y = vec![0.0; dy.len()];
    cpu::spatial::resize_bilinear(&mut y, &x, s, (4, 11));
    let mut dx = vec![0.0; x.len()];
    cpu::spatial::resize_bilinear_backward(&mut dx, &dy, s, (4, 11), false);
    let (a, b): (f64, f64) = (
        y.iter().zip(&dy).map(|(p, q)| p * q).sum(),
        dx.iter().zip(&x).map(|(p, q)| p * q).sum(),
    );
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn resize_bilinear_backward_past_65535_workgroups() {
    resize_back(shape(1, 1, 4100, 4100), (1000, 1000), false, 47);
}

fn pool_upsample_back(s: ImageShape, accumulate: bool, seed: u64, upsample: bool) {
    let mut rng = Rng::new(seed);
    // Few distinct values, so 2x2 blocks hold ties that must go to the first maximum.
    let x: Vec<f32> = (0..s.len()).map(|_| rng.below(4) as f32).collect();
    let pooled = shape(s.batch, s.channels, s.height / 2, s.width / 2);
    let dy = rng.vec(pooled.len() as usize, 1.0);
    let start = rng.vec(s.len() as usize, 1.0);
    let fresh = || {
        if accumulate {
            with(&start)
        } else {
            poisoned(s.len() as usize)
        }
    };
    let want0 = if accumulate {
        f64s(&start)
    } else {
        vec![0.0; s.len() as usize]
    };
    let dx = fresh();
    run(spatial::max_pool2_backward(ctx(), &dx, &up(&dy), &up(&x), s, accumulate).unwrap());
    let mut want = want0.clone();
    cpu::spatial::max_pool2_backward(&mut want, &f64s(&dy), &f64s(&x), s, accumulate);
    assert_close(
        &format!("max_pool2_backward {s:?}"),
        &read(&dx),
        &want,
        1e-6,
        0.0,
    );
    if !upsample {
        return;
    }
    let dy4 = rng.vec(4 * s.len() as usize, 1.0);
    let dx = fresh();
    run(spatial::upsample_nearest2_backward(ctx(), &dx, &up(&dy4), s, accumulate).unwrap());
    let mut want = want0;
    cpu::spatial::upsample_nearest2_backward(&mut want, &f64s(&dy4), s, accumulate);
    assert_close(
        &format!("upsample_nearest2_backward {s:?}"),
        &read(&dx),
        &want,
        1e-6,
        0.0,
    );
}

#[test]
fn pool_and_upsample_backward() {
    pool_upsample_back(shape(1, 1, 2, 2), false, 50, true);
    pool_upsample_back(shape(1, 1, 1, 1), true, 51, true);
    pool_upsample_back(shape(3, 5, 13, 7), false, 52, true);
    pool_upsample_back(shape(2, 3, 56, 56), true, 53, true);
    // Past 65535 workgroups of dx for pooling (upsampling's dy would pass the 256 MiB buffer limit).
    pool_upsample_back(shape(1, 1, 4100, 4100), false, 54, false);
}
