//! conv.wgsl: stride-1 convolution (implicit matrix product) and the token convolution against their CPU twins.
//! Tolerance atol = 1e-5, rtol = 1e-4: sums of at most a few hundred products of values in [-1, 1] in f32, in a
//! different order than the twin's.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::conv::{self, ConvEpilogue, ConvKernel, ConvShape};
use beitlab::ops::conv_columns::COLUMN_BUDGET;

/// Every way a convolution runs, on any adapter: the tiled kernel (GPUs) and the products on columns (software
/// adapters) with the default budget, one image per chunk and runs of a third of an image (`rows` column rows of
/// `pixels` output pixels per image).
fn kernels(rows: u32, pixels: u32) -> Vec<ConvKernel> {
    let image = rows as u64 * pixels as u64;
    let mut k = vec![
        ConvKernel::Tiled,
        ConvKernel::Columns {
            budget: COLUMN_BUDGET,
        },
    ];
    if image <= 1 << 20 {
        k.push(ConvKernel::Columns {
            budget: image.max(1),
        });
        k.push(ConvKernel::Columns {
            budget: (image / 3).max(1),
        });
    }
    k
}

fn out_pixels(s: ConvShape) -> u32 {
    let (oh, ow) = s.out_size();
    oh * ow
}

fn case(s: ConvShape, e: ConvEpilogue, bias: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(s.input_len() as usize, 1.0);
    let w = rng.vec(s.weight_len() as usize, 1.0);
    let b = rng.vec(s.out_channels as usize, 1.0);
    let n = s.output_len() as usize;
    let start = rng.vec(n, 1.0);
    let mut want = f64s(&start);
    let bf = f64s(&b);
    cpu::conv::conv2d(
        &mut want,
        &f64s(&x),
        &f64s(&w),
        bias.then_some(&bf[..]),
        s,
        e,
    );
    let (xg, wg, bg) = (up(&x), up(&w), up(&b));
    let rows = s.in_channels * s.kernel * s.kernel + bias as u32;
    for kernel in kernels(rows, out_pixels(s)) {
        let out = if e.accumulate {
            with(&start)
        } else {
            poisoned(n)
        };
        run(conv::conv2d_with(ctx(), kernel, &out, &xg, &wg, bias.then_some(&bg), s, e).unwrap());
        assert_close(
            &format!("conv2d {kernel:?} {s:?} {e:?}"),
            &read(&out),
            &want,
            1e-5,
            1e-4,
        );
    }
}

fn same(batch: u32, ci: u32, co: u32, side: (u32, u32), k: u32) -> ConvShape {
    ConvShape::same(batch, ci, co, side, k)
}

#[test]
fn conv_tiny() {
    case(same(1, 1, 1, (1, 1), 1), ConvEpilogue::default(), true, 1);
    case(same(1, 1, 1, (1, 1), 3), ConvEpilogue::default(), false, 2);
    case(same(1, 2, 3, (2, 2), 3), ConvEpilogue::default(), true, 3);
}

#[test]
fn conv_odd_sizes_and_kernels() {
    for (i, k) in [1u32, 3, 5, 7].into_iter().enumerate() {
        case(
            same(3, 5, 7, (11, 9), k),
            ConvEpilogue::default(),
            true,
            10 + i as u64,
        );
    }
    // Even kernels and padding other than "same": the output is smaller or larger than the input.
    let mut s = same(2, 3, 5, (9, 6), 2);
    s.pad = 0;
    case(s, ConvEpilogue::default(), true, 20);
    s.kernel = 4;
    s.pad = 3;
    case(s, ConvEpilogue::default(), false, 21);
    // A kernel larger than the padded image: no output.
    s.kernel = 12;
    s.pad = 0;
    assert_eq!(s.out_size(), (0, 0));
    case(s, ConvEpilogue::default(), true, 22);
}

#[test]
fn conv_relu_input_scale_and_accumulate() {
    let e = ConvEpilogue {
        scale: 0.0625,
        accumulate: true,
        relu_input: true,
    };
    case(same(2, 6, 10, (7, 13), 3), e, true, 30);
    let e = ConvEpilogue {
        scale: -2.5,
        accumulate: false,
        relu_input: true,
    };
    case(same(1, 4, 3, (5, 5), 1), e, false, 31);
}

#[test]
fn conv_several_tiles_each_way() {
    // 70 output channels (two channel tiles), 3·3·20 = 180 reduction steps (12 k tiles), 2·15·15 = 450 pixels.
    case(
        same(2, 20, 70, (15, 15), 3),
        ConvEpilogue::default(),
        true,
        40,
    );
}

#[test]
fn conv_past_65535_workgroups() {
    // 2100 x 2100 pixels = 68,907 pixel tiles of 64: the grid folds into two dimensions.
    case(
        same(1, 1, 2, (2100, 2100), 1),
        ConvEpilogue::default(),
        true,
        50,
    );
}

#[test]
fn token_conv_matches_one_hot_convolution() {
    let mut rng = Rng::new(60);
    for (batch, vocab, co, side) in [
        (1u32, 1u32, 1u32, (1u32, 1u32)),
        (3, 37, 5, (5, 3)),
        (2, 300, 70, (4, 4)),
    ] {
        let hw = (side.0 * side.1) as usize;
        let toks: Vec<u32> = (0..batch as usize * hw).map(|_| rng.below(vocab)).collect();
        // Read from an offset (a chunk of a larger batch): 3 tokens before it that must not be read.
        let mut stored = vec![vocab + 7; 3];
        stored.extend(&toks);
        let w = rng.vec((co * vocab) as usize, 1.0);
        let b = rng.vec(co as usize, 1.0);
        let n = batch as usize * co as usize * hw;
        let out = poisoned(n);
        let bg = up(&b);
        run(conv::token_conv(
            ctx(),
            &out,
            &up_u32(&stored),
            3,
            &up(&w),
            Some(&bg),
            batch,
            vocab,
            co,
            side,
        )
        .unwrap());
        // The same as a 1x1 convolution of the one-hot image.
        let mut onehot = vec![0.0f64; batch as usize * vocab as usize * hw];
        for bi in 0..batch as usize {
            for q in 0..hw {
                onehot[(bi * vocab as usize + toks[bi * hw + q] as usize) * hw + q] = 1.0;
            }
        }
        let mut want = vec![0.0f64; n];
        let s = ConvShape::same(batch, vocab, co, side, 1);
        cpu::conv::conv2d(
            &mut want,
            &onehot,
            &f64s(&w),
            Some(&f64s(&b)),
            s,
            ConvEpilogue::default(),
        );
        let mut twin = vec![0.0f64; n];
        cpu::conv::token_conv(
            &mut twin,
            &toks,
            &f64s(&w),
            Some(&f64s(&b)),
            batch as usize,
            vocab as usize,
            co as usize,
            (side.0 as usize, side.1 as usize),
        );
        assert_close(
            "token_conv twin vs one-hot conv",
            &twin.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &want,
            1e-6,
            1e-6,
        );
        assert_close("token_conv", &read(&out), &want, 1e-6, 1e-6);
    }
}

#[test]
fn conv_twin_matches_a_hand_computed_case() {
    // 3x3 image, 3x3 kernel of ones, pad 1: each output is the sum of its in-image neighbourhood.
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut out = vec![0.0; 9];
    cpu::conv::conv2d(
        &mut out,
        &x,
        &[1.0; 9],
        None,
        ConvShape::same(1, 1, 1, (3, 3), 3),
        ConvEpilogue::default(),
    );
    assert_eq!(
        out,
        vec![12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]
    );
}

fn backward_case(s: ConvShape, relu: bool, accumulate: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(s.input_len() as usize, 1.0);
    let w = rng.vec(s.weight_len() as usize, 1.0);
    let dy = rng.vec(s.output_len() as usize, 1.0);
    let (xg, wg, dyg) = (up(&x), up(&w), up(&dy));
    let start = |n: usize, seed: u64| Rng::new(seed).vec(n, 1.0);
    let out = |n: usize, seed: u64| {
        if accumulate {
            with(&start(n, seed))
        } else {
            poisoned(n)
        }
    };
    let want_start = |n: usize, seed: u64| {
        if accumulate {
            f64s(&start(n, seed))
        } else {
            vec![0.0; n]
        }
    };
    let (nx, nw, nb) = (x.len(), w.len(), s.out_channels as usize);
    let xf = f64s(&x);

    let k2 = s.kernel * s.kernel;
    for kernel in kernels(s.out_channels * k2, s.height * s.width) {
        let dx = out(nx, seed + 1);
        run(conv::conv2d_input_grad_with(
            ctx(),
            kernel,
            &dx,
            &dyg,
            &wg,
            relu.then_some(&xg),
            s,
            accumulate,
        )
        .unwrap());
        let mut want = want_start(nx, seed + 1);
        cpu::conv::conv2d_input_grad(
            &mut want,
            &f64s(&dy),
            &f64s(&w),
            relu.then_some(&xf[..]),
            s,
            accumulate,
        );
        assert_close(
            &format!("conv2d_input_grad {kernel:?} {s:?}"),
            &read(&dx),
            &want,
            1e-5,
            1e-4,
        );
    }

    for kernel in kernels(s.in_channels * k2, out_pixels(s)) {
        let dw = out(nw, seed + 2);
        run(
            conv::conv2d_weight_grad_with(ctx(), kernel, &dw, &xg, &dyg, s, relu, accumulate)
                .unwrap(),
        );
        let mut want = want_start(nw, seed + 2);
        cpu::conv::conv2d_weight_grad(&mut want, &xf, &f64s(&dy), s, relu, accumulate);
        // Sums over every pixel of the batch: more terms than the forward's.
        assert_close(
            &format!("conv2d_weight_grad {kernel:?} {s:?}"),
            &read(&dw),
            &want,
            1e-4,
            1e-4,
        );
    }

    let db = out(nb, seed + 3);
    run(conv::conv2d_bias_grad(ctx(), &db, &dyg, s, accumulate).unwrap());
    let mut want = want_start(nb, seed + 3);
    cpu::conv::conv2d_bias_grad(&mut want, &f64s(&dy), s, accumulate);
    assert_close(
        &format!("conv2d_bias_grad {s:?}"),
        &read(&db),
        &want,
        1e-4,
        1e-4,
    );
}

#[test]
fn conv_backward_tiny_odd_and_several_tiles() {
    backward_case(same(1, 1, 1, (1, 1), 1), false, false, 70);
    backward_case(same(1, 2, 3, (2, 2), 3), true, false, 71);
    for (i, k) in [1u32, 3, 5, 7].into_iter().enumerate() {
        backward_case(same(3, 5, 7, (11, 9), k), i % 2 == 0, i == 1, 72 + i as u64);
    }
    // A kernel wider than "same" padding: pad 0 (the output is smaller than the input).
    let mut s = same(2, 3, 5, (9, 6), 3);
    s.pad = 0;
    backward_case(s, false, true, 80);
    // Several tiles each way: 70 channels out, 20 · 9 = 180 columns of dW, 2 · 15 · 15 = 450 pixels.
    backward_case(same(2, 20, 70, (15, 15), 3), true, false, 81);
}

#[test]
fn conv_backward_past_65535_workgroups() {
    // 2100² pixels of dX (68,907 tiles of 64).
    backward_case(same(1, 1, 2, (2100, 2100), 1), false, false, 90);
}

fn transpose_case(s: conv::TransposeShape, accumulate: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(s.input_len() as usize, 1.0);
    let w = rng.vec(s.weight_len() as usize, 1.0);
    let b = rng.vec(s.out_channels as usize, 1.0);
    let dy = rng.vec(s.output_len() as usize, 1.0);
    let (xg, wg, bg, dyg) = (up(&x), up(&w), up(&b), up(&dy));
    let starting = |n: usize, seed: u64| Rng::new(seed).vec(n, 1.0);
    let out = |n: usize, seed: u64| {
        if accumulate {
            with(&starting(n, seed))
        } else {
            poisoned(n)
        }
    };
    let want0 = |n: usize, seed: u64| {
        if accumulate {
            f64s(&starting(n, seed))
        } else {
            vec![0.0; n]
        }
    };
    let e = ConvEpilogue {
        scale: 0.5,
        accumulate,
        relu_input: false,
    };
    let (no, ni, nw, nb) = (dy.len(), x.len(), w.len(), b.len());
    let y = out(no, seed + 1);
    run(conv::conv_transpose2(ctx(), &y, &xg, &wg, Some(&bg), s, e).unwrap());
    let mut want = want0(no, seed + 1);
    cpu::conv::conv_transpose2(&mut want, &f64s(&x), &f64s(&w), Some(&f64s(&b)), s, e);
    assert_close(
        &format!("conv_transpose2 {s:?}"),
        &read(&y),
        &want,
        1e-5,
        1e-4,
    );
    let dx = out(ni, seed + 2);
    run(conv::conv_transpose2_input_grad(ctx(), &dx, &dyg, &wg, s, accumulate).unwrap());
    let mut want = want0(ni, seed + 2);
    cpu::conv::conv_transpose2_input_grad(&mut want, &f64s(&dy), &f64s(&w), s, accumulate);
    assert_close(
        &format!("conv_transpose2_input_grad {s:?}"),
        &read(&dx),
        &want,
        1e-5,
        1e-4,
    );
    let (dw, db) = (out(nw, seed + 3), out(nb, seed + 4));
    run(
        conv::conv_transpose2_param_grads(ctx(), &dw, Some(&db), &xg, &dyg, s, accumulate).unwrap(),
    );
    let mut want = want0(nw, seed + 3);
    cpu::conv::conv_transpose2_weight_grad(&mut want, &f64s(&x), &f64s(&dy), s, accumulate);
    assert_close(
        &format!("conv_transpose2 dw {s:?}"),
        &read(&dw),
        &want,
        1e-4,
        1e-4,
    );
    let mut want = want0(nb, seed + 4);
    let out_shape = ConvShape {
        batch: s.batch,
        in_channels: s.out_channels,
        out_channels: s.out_channels,
        height: 2 * s.height,
        width: 2 * s.width,
        kernel: 1,
        pad: 0,
    };
    cpu::conv::conv2d_bias_grad(&mut want, &f64s(&dy), out_shape, accumulate);
    assert_close(
        &format!("conv_transpose2 dbias {s:?}"),
        &read(&db),
        &want,
        1e-4,
        1e-4,
    );
}

#[test]
fn transposed_conv_2x2_stride_2_and_its_gradients() {
    let t = |batch, in_channels, out_channels, height, width| conv::TransposeShape {
        batch,
        in_channels,
        out_channels,
        height,
        width,
    };
    transpose_case(t(1, 1, 1, 1, 1), false, 100);
    transpose_case(t(2, 3, 5, 7, 4), true, 101);
    transpose_case(t(3, 16, 8, 14, 14), false, 102);
    // 2 x 700 x 700 input pixels: several weight-gradient splits; 3.9 M outputs.
    transpose_case(t(2, 1, 1, 700, 700), false, 103);
}
