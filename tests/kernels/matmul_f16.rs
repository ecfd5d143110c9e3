//! The cooperative-matrix product's parts (ops::matmul_f16). Packing a strided f32 matrix into dense, padded
//! f16 words (both kernels: any view, and the tiled one for transposed views) is exact (the same bit operations as the CPU twin), and so is writing the padded product back into
//! C's view (one multiply and two adds in the twin's order). The product itself runs only where the adapter
//! has f16 cooperative matrices with 32-lane subgroups (not lavapipe): there it is compared with its twin at
//! tiny, odd and large sizes; elsewhere the launcher and the self-check must refuse with a reason.

use super::common::*;
use beitlab::cpu;
use beitlab::ops::matmul::{GemmShape, MatView};
use beitlab::ops::matmul_f16::{self, TILE_K, TILE_MN};

/// Random values with f16's edge cases mixed in (ties, overflow, subnormals, signed zero).
fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    let edges = [
        0.0,
        -0.0,
        1.0 + 2f32.powi(-11),
        65519.99,
        65520.0,
        -1e6,
        2f32.powi(-24),
        3.0 * 2f32.powi(-25),
        -2f32.powi(-15),
        f32::INFINITY,
    ];
    let mut v = rng.vec(n, 3.0);
    for (i, e) in edges.iter().enumerate().take(n) {
        v[(i * 7919) % n] = *e;
    }
    v
}

#[test]
fn the_twins_f16_bits_are_ieee_binary16s() {
    // Expected bits from Python's struct 'e' format (IEEE binary16, round to nearest even).
    for (x, bits) in [
        (1.0f32, 0x3c00u16),
        (65504.0, 0x7bff),
        (65519.99, 0x7bff),
        (65520.0, 0x7c00),
        (f32::NEG_INFINITY, 0xfc00),
        (2f32.powi(-24), 0x0001),
        (2f32.powi(-14), 0x0400),
        (-2.0, 0xc000),
        (0.1, 0x2e66),
        (-0.0, 0x8000),
        (3.0 * 2f32.powi(-25), 0x0002),
        (5.0 * 2f32.powi(-25), 0x0002),
        (1e-7, 0x0002),
        (1.0 + 2f32.powi(-11), 0x3c00),
        (1.0 + 3.0 * 2f32.powi(-11), 0x3c02),
    ] {
        assert_eq!(cpu::precision::f16_bits(x), bits, "f16_bits({x:e})");
    }
}

/// How the packed view sits in its buffer: row-major and any-strided take `pack_f16`, transposed (contiguous
/// down the columns) `pack_f16_columns`.
#[derive(Clone, Copy, Debug)]
enum Layout {
    RowMajor,
    Transposed,
    Strided,
}

fn pack_case(rows: u32, cols: u32, layout: Layout, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = values(&mut rng, (4 * rows * cols) as usize + 3);
    let view = match layout {
        Layout::RowMajor => MatView::row_major(rows, cols),
        Layout::Transposed => MatView::transposed(rows, cols),
        Layout::Strided => MatView {
            rs: 4 * cols,
            cs: 2,
            ..MatView::default()
        },
    };
    let view = MatView { off: 3, ..view };
    let transposed = format!("{layout:?}");
    let (rows_p, cols_p) = (
        rows.div_ceil(TILE_MN) * TILE_MN,
        cols.div_ceil(TILE_K) * TILE_K,
    );
    let words = (rows_p * cols_p / 2) as usize;
    let packed = poisoned(words);
    let d =
        matmul_f16::pack_f16(ctx(), &packed, &up(&x), view, rows, cols, rows_p, cols_p).unwrap();
    run(vec![d]);
    let got = ctx().read_u32(&packed).unwrap();
    let want = cpu::precision::pack_f16(&x, view, rows, cols, (rows_p, cols_p));
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g, w,
            "pack ({rows}, {cols}) {transposed}: word {i} = {g:#010x}, twin {w:#010x}"
        );
    }
}

#[test]
fn packing_to_padded_f16_matches_the_twin_bit_for_bit() {
    pack_case(1, 1, Layout::RowMajor, 1);
    pack_case(1, 1, Layout::Transposed, 1);
    pack_case(37, 23, Layout::Transposed, 2);
    pack_case(300, 200, Layout::RowMajor, 3);
    pack_case(130, 70, Layout::Transposed, 4);
    pack_case(77, 45, Layout::Strided, 5);
    pack_case(200, 300, Layout::Transposed, 6);
}

fn unpad_case(m: u32, n: u32, bias: bool, accumulate: bool, transposed: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let np = n.div_ceil(TILE_MN) * TILE_MN;
    let c32 = rng.vec((m.div_ceil(TILE_MN) * TILE_MN * np) as usize, 2.0);
    let b = rng.vec(n as usize, 1.0);
    let cv = if transposed {
        MatView::transposed(m, n)
    } else {
        MatView::row_major(m, n)
    };
    let shape = GemmShape {
        alpha: 0.75,
        bias,
        accumulate,
        ..GemmShape::new(m, n, 1)
    };
    let start = rng.vec((m * n) as usize, 1.0);
    let c = if accumulate {
        with(&start)
    } else {
        poisoned(start.len())
    };
    let bias_slice = up(&b);
    let d = matmul_f16::unpad_product(
        ctx(),
        &c,
        cv,
        &up(&c32),
        np,
        bias.then_some(&bias_slice),
        shape,
    )
    .unwrap();
    run(vec![d]);
    let mut want = start;
    cpu::precision::unpad_product(&mut want, cv, &c32, np, bias.then_some(&b[..]), shape);
    let got = read(&c);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "unpad ({m}, {n}) element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn writing_the_padded_product_back_matches_the_twin_exactly() {
    unpad_case(1, 1, false, false, false, 5);
    unpad_case(37, 23, true, true, true, 6);
    unpad_case(200, 300, true, false, false, 7);
    unpad_case(65, 130, false, true, false, 8);
}

fn product_case(m: u32, n: u32, k: u32, seed: u64) {
    let mut rng = Rng::new(seed);
    let (a, w, b) = (
        rng.vec((m * k) as usize, 1.0),
        rng.vec((n * k) as usize, 1.0),
        rng.vec(n as usize, 1.0),
    );
    let (av, bv, cv) = (
        MatView::row_major(m, k),
        MatView::transposed(k, n),
        MatView::row_major(m, n),
    );
    let shape = GemmShape {
        bias: true,
        ..GemmShape::new(m, n, k)
    };
    let c = poisoned((m * n) as usize);
    let bias = up(&b);
    run(matmul_f16::gemm_f16(ctx(), &c, cv, &up(&a), av, &up(&w), bv, Some(&bias), shape).unwrap());
    let mut want = vec![0.0; (m * n) as usize];
    cpu::precision::gemm_f16(&mut want, cv, &a, av, &w, bv, Some(&b), shape);
    // The same f16 operands on both sides; only the f32 sums' order differs (as matmul.rs).
    assert_close("gemm_f16", &read(&c), &f64s(&want), 1e-6 * k as f64, 1e-5);
}

#[test]
fn the_cooperative_matrix_product_matches_the_twin_or_is_refused_with_a_reason() {
    if !matmul_f16::available(ctx()) {
        eprintln!(
            "{} has no f16 cooperative matrices with 32-lane subgroups: checking the refusals",
            ctx().adapter_info.name
        );
        let s = up(&[0.0; 4]);
        let v = MatView::row_major(2, 2);
        let err = matmul_f16::gemm_f16(ctx(), &s, v, &s, v, &s, v, None, GemmShape::new(2, 2, 2))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("cooperative matrices"), "{err}");
        let why = matmul_f16::self_check(ctx()).expect_err("refused");
        assert!(why.contains("cooperative matrices"), "{why}");
        return;
    }
    matmul_f16::self_check(ctx()).unwrap();
    product_case(1, 1, 1, 9);
    product_case(70, 50, 40, 10);
    product_case(1000, 384, 192, 11);
}
