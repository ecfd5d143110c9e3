//! conv_columns.wgsl: the image's columns, the packed weights and the ReLU mask against their CPU twins
//! (exact: they copy values), and the chunks of a batch. The convolutions built on them are checked with the
//! other convolution kernels in conv.rs.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::conv::ConvShape;
use beitlab::ops::conv_columns::{self, chunks, Chunk};

fn columns_case(s: ConvShape, relu: bool, ones: bool, chunk: Chunk, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(s.input_len() as usize, 1.0);
    let rows = (s.in_channels * s.kernel * s.kernel) as usize + ones as usize;
    let n = chunk.images as usize * rows * chunk.pixels as usize;
    let cols = poisoned(n + 5);
    run(vec![conv_columns::image_to_columns(
        ctx(),
        &cols,
        &up(&x),
        s,
        relu,
        ones,
        chunk,
    )
    .unwrap()]);
    let mut want = vec![0.0f64; n];
    cpu::conv_columns::image_to_columns(&mut want, &f64s(&x), s, relu, ones, chunk);
    let got = read(&cols);
    assert_close(
        &format!("image_to_columns {s:?} {chunk:?}"),
        &got[..n],
        &want,
        0.0,
        0.0,
    );
    assert!(
        got[n..].iter().all(|v| v.is_nan()),
        "image_to_columns wrote past its chunk"
    );
}

fn whole(s: ConvShape) -> Chunk {
    let (oh, ow) = s.out_size();
    Chunk {
        b0: 0,
        images: s.batch,
        p0: 0,
        pixels: oh * ow,
    }
}

#[test]
fn image_to_columns_tiny_odd_and_large() {
    let tiny = ConvShape::same(1, 1, 1, (1, 1), 1);
    columns_case(tiny, false, false, whole(tiny), 1);
    columns_case(tiny, true, true, whole(tiny), 2);
    // Odd sides and kernels, ReLU and the ones row; pixels 99 (single values) and 8 x 4 = 32 (quads).
    for (i, k) in [1u32, 3, 5].into_iter().enumerate() {
        let s = ConvShape::same(3, 5, 7, (11, 9), k);
        columns_case(s, i != 1, i != 0, whole(s), 10 + i as u64);
        let s = ConvShape::same(2, 3, 7, (8, 4), k);
        columns_case(s, i == 1, true, whole(s), 20 + i as u64);
    }
    // Padding other than "same", and a chunk of the middle image's middle pixels (quads and not).
    let mut s = ConvShape::same(3, 4, 2, (9, 6), 4);
    s.pad = 3;
    let part = |p0, pixels| Chunk {
        b0: 1,
        images: 1,
        p0,
        pixels,
    };
    columns_case(s, true, true, part(8, 40), 30);
    columns_case(s, false, false, part(3, 13), 31);
    // Large: 24 channels x 3 x 3 = 216 rows of 40 x 40 pixels, two images of four.
    let s = ConvShape::same(4, 24, 8, (40, 40), 3);
    columns_case(
        s,
        true,
        true,
        Chunk {
            b0: 2,
            images: 2,
            p0: 0,
            pixels: 1600,
        },
        40,
    );
}

#[test]
fn image_to_columns_refuses_a_chunk_outside_the_batch() {
    let s = ConvShape::same(2, 1, 1, (4, 4), 3);
    let cols = poisoned(64);
    let x = up(&[0.0; 32]);
    for chunk in [
        Chunk {
            b0: 1,
            images: 2,
            p0: 0,
            pixels: 16,
        },
        Chunk {
            b0: 0,
            images: 1,
            p0: 8,
            pixels: 12,
        },
    ] {
        assert!(conv_columns::image_to_columns(ctx(), &cols, &x, s, false, false, chunk).is_err());
    }
}

#[test]
fn pack_weights_plain_biased_and_transposed() {
    for (co, ci, k, seed) in [
        (1usize, 1usize, 1usize, 50u64),
        (7, 5, 3, 51),
        (48, 48, 3, 52),
        (3, 2, 4, 53),
    ] {
        let mut rng = Rng::new(seed);
        let w = rng.vec(co * ci * k * k, 1.0);
        let b = rng.vec(co, 1.0);
        for (bias, transposed) in [(false, false), (true, false), (false, true)] {
            let n = co * ci * k * k + if bias { co } else { 0 };
            let wp = poisoned(n);
            run(vec![conv_columns::pack_weights(
                ctx(),
                &wp,
                &up(&w),
                bias.then(|| up(&b)).as_ref(),
                co as u32,
                ci as u32,
                k as u32,
                transposed,
            )
            .unwrap()]);
            let mut want = vec![0.0f64; n];
            let bf = f64s(&b);
            cpu::conv_columns::pack_weights(
                &mut want,
                &f64s(&w),
                bias.then_some(&bf[..]),
                co,
                ci,
                k,
                transposed,
            );
            assert_close(
                &format!("pack_weights {co} {ci} {k} bias {bias} transposed {transposed}"),
                &read(&wp),
                &want,
                0.0,
                0.0,
            );
        }
    }
    let w = up(&[1.0; 4]);
    assert!(conv_columns::pack_weights(ctx(), &poisoned(8), &w, Some(&w), 1, 1, 2, true).is_err());
}

#[test]
fn relu_mask_tiny_odd_and_large() {
    for (n, seed) in [(1usize, 60u64), (7, 61), (100_003, 62)] {
        let mut rng = Rng::new(seed);
        let (g, saved, start) = (rng.vec(n, 1.0), rng.vec(n, 1.0), rng.vec(n, 1.0));
        for accumulate in [false, true] {
            let dx = if accumulate {
                with(&start)
            } else {
                poisoned(n)
            };
            run(vec![conv_columns::relu_mask(
                ctx(),
                &dx,
                &up(&g),
                &up(&saved),
                n as u64,
                accumulate,
            )
            .unwrap()]);
            let mut want = if accumulate {
                f64s(&start)
            } else {
                vec![0.0; n]
            };
            cpu::conv_columns::relu_mask(&mut want, &f64s(&g), &f64s(&saved), accumulate);
            assert_close(
                &format!("relu_mask {n} {accumulate}"),
                &read(&dx),
                &want,
                1e-6,
                1e-6,
            );
        }
    }
}

#[test]
fn chunks_cover_every_pixel_once_within_the_budget() {
    for (batch, pixels, rows, budget) in [
        (16u32, 784u32, 433u32, 8u64 << 20),
        (16, 784, 433, 1_000_000),
        (3, 99, 45, 45 * 99),
        (2, 12544, 2304, 8 << 20),
        (2, 13, 7, 50),
        (1, 1, 1, 1),
        (1, 2100 * 2100, 1, 8 << 20),
    ] {
        let parts = chunks(batch, pixels, rows, budget, conv_columns::MAX_CHUNK_PIXELS);
        let mut seen = vec![0u32; (batch * pixels) as usize];
        for c in &parts {
            let elems = c.images as u64 * rows as u64 * c.pixels as u64;
            assert!(
                elems <= budget.max(4 * rows as u64) && c.pixels <= conv_columns::MAX_CHUNK_PIXELS,
                "{c:?} holds {elems} column elements, budget {budget}"
            );
            if c.images > 1 || c.pixels < pixels {
                assert!(c.images == 1 || c.pixels == pixels, "{c:?}");
            }
            if c.pixels < pixels && c.p0 + c.pixels < pixels {
                assert_eq!(c.pixels % 4, 0, "inner runs are whole quads: {c:?}");
            }
            for b in c.b0..c.b0 + c.images {
                for q in c.p0..c.p0 + c.pixels {
                    seen[(b * pixels + q) as usize] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "batch {batch} pixels {pixels} rows {rows} budget {budget}: {parts:?}"
        );
    }
}
