//! matmul.wgsl: gemm (plain, transposed, batched with inner/outer strides, accumulate, bias) and nn.Linear
//! forward / backward. Tolerance atol = 1e-6·K, rtol = 1e-5: f32 accumulation of K products of inputs in
//! [-1, 1], whose rounding error grows at most linearly in K (typically as √K).

use super::common::*;
use beitlab::cpu;
use beitlab::ops::matmul::{
    self, Epilogue, GemmKernel, GemmShape, MatView, SplitK, ALL_GEMM_KERNELS,
};

/// llvmpipe with its default 256-bit vectors (subgroups of 8 lanes); with `LP_NATIVE_VECTOR_WIDTH=128` it has
/// 4-lane subgroups and is treated like SwiftShader.
fn llvmpipe_8_lanes(c: &beitlab::GpuContext) -> bool {
    let name = &c.adapter_info.name;
    name.contains("llvmpipe") && name.contains("256 bits")
}

/// Every gemm kernel this device runs. On llvmpipe on 256-bit vectors (the test driver) that is all of them:
/// `gemm_lanes` needs its 8-lane subgroups, and a device that lost them would silently skip the software
/// adapters' main kernel.
fn kernels_here() -> Vec<GemmKernel> {
    let c = ctx();
    if llvmpipe_8_lanes(c) {
        assert!(
            GemmKernel::Lanes.runs_on(c),
            "llvmpipe on 256-bit vectors offers 8-lane subgroups; the device was created without them"
        );
    }
    ALL_GEMM_KERNELS
        .into_iter()
        .filter(|k| k.runs_on(c))
        .collect()
}

fn linear_case(m: usize, n: usize, k: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(m * k, 1.0);
    let w = rng.vec(n * k, 1.0);
    let b = rng.vec(n, 1.0);
    let y = poisoned(m * n);
    run(matmul::linear_forward(
        ctx(),
        &y,
        &up(&x),
        &up(&w),
        Some(&up(&b)),
        m as u32,
        n as u32,
        k as u32,
    )
    .unwrap());
    let mut want = vec![0.0f64; m * n];
    cpu::matmul::linear_forward(&mut want, &f64s(&x), &f64s(&w), Some(&f64s(&b)), m, n, k);
    assert_close(
        &format!("linear_forward {m}x{n}x{k}"),
        &read(&y),
        &want,
        1e-6 * k as f64,
        1e-5,
    );

    // Backward: dx written, dw and db accumulated onto existing values.
    let dy = rng.vec(m * n, 1.0);
    let dw0 = rng.vec(n * k, 1.0);
    let db0 = rng.vec(n, 1.0);
    let (dx, dw, db) = (poisoned(m * k), with(&dw0), with(&db0));
    let (xg, wg) = (up(&x), up(&w));
    run(matmul::linear_backward(
        ctx(),
        Some(&dx),
        &dw,
        Some(&db),
        &up(&dy),
        &xg,
        &wg,
        m as u32,
        n as u32,
        k as u32,
        false,
    )
    .unwrap());
    let (mut wdx, mut wdw, mut wdb) = (vec![0.0f64; m * k], f64s(&dw0), f64s(&db0));
    cpu::matmul::linear_backward(
        Some(&mut wdx),
        &mut wdw,
        Some(&mut wdb),
        &f64s(&dy),
        &f64s(&x),
        &f64s(&w),
        m,
        n,
        k,
        false,
    );
    assert_close("linear dx", &read(&dx), &wdx, 1e-6 * n as f64, 1e-5);
    assert_close("linear dw", &read(&dw), &wdw, 1e-6 * m as f64, 1e-5);
    assert_close("linear db", &read(&db), &wdb, 1e-6 * m as f64, 1e-5);
}

#[test]
fn linear_tiny() {
    linear_case(1, 1, 1, 1);
    linear_case(3, 5, 7, 2);
}

#[test]
fn linear_odd() {
    linear_case(67, 131, 97, 3);
}

#[test]
fn linear_tile_multiple() {
    linear_case(128, 64, 256, 4);
}

#[test]
fn linear_many_rows() {
    // More row tiles than one tile row, long K: the shapes of a BEiT MLP on a small batch.
    linear_case(1300, 48, 200, 5);
}

#[test]
fn gemm_batched_strided_accumulate() {
    // 2 x 3 batch items, A read transposed from a padded layout, C accumulated with alpha, on every kernel;
    // the others take gemm_lanes' wide edges, the third and fourth with C written 4 at a time (its offsets and
    // strides multiples of 4), the fourth with full tiles beside them and k in steps of eight and four.
    for kernel in kernels_here() {
        for (m, n, k, c_off) in [
            (19u32, 23u32, 29u32, 2u32),
            (66, 70, 5, 2),
            (66, 72, 5, 4),
            (130, 136, 20, 4),
        ] {
            batched_strided_accumulate_case(kernel, m, n, k, c_off);
        }
    }
}

fn batched_strided_accumulate_case(kernel: GemmKernel, m: u32, n: u32, k: u32, c_off: u32) {
    let (outer, inner) = (2u32, 3u32);
    let mut rng = Rng::new(7);
    let a_view = MatView {
        off: 5,
        rs: 1,
        cs: m + 2,
        bo: inner * k * (m + 2) + 3,
        bi: k * (m + 2),
    };
    let b_view = MatView {
        off: 1,
        rs: n,
        cs: 1,
        bo: inner * k * n,
        bi: k * n,
    };
    let c_view = MatView {
        off: c_off,
        rs: n * inner,
        cs: 1,
        bo: m * n * inner,
        bi: n,
    };
    let a = rng.vec(a_view.extent(m, k, outer, inner) as usize, 1.0);
    let b = rng.vec(b_view.extent(k, n, outer, inner) as usize, 1.0);
    let c0 = rng.vec(c_view.extent(m, n, outer, inner) as usize, 1.0);
    let shape = GemmShape {
        batch: outer * inner,
        batch_inner: inner,
        alpha: 0.37,
        accumulate: true,
        ..GemmShape::new(m, n, k)
    };
    let c = with(&c0);
    run(matmul::gemm_using(
        kernel,
        ctx(),
        &c,
        c_view,
        &up(&a),
        a_view,
        &up(&b),
        b_view,
        None,
        shape,
        Epilogue::None,
    )
    .unwrap());
    let mut want = f64s(&c0);
    cpu::matmul::gemm(
        &mut want,
        c_view,
        &f64s(&a),
        a_view,
        &f64s(&b),
        b_view,
        None,
        shape,
    );
    assert_close(
        &format!("gemm batched strided {kernel:?} {m}x{n}x{k}"),
        &read(&c),
        &want,
        1e-6 * k as f64,
        1e-5,
    );
}

/// Every kernel (the GPU one, the software-adapter ones for large and small products) on the same strided problems,
/// interior tiles (vec4 reads) and edges (scalar reads), every operand layout the vec4 paths distinguish.
#[test]
fn gemm_every_kernel_all_layouts() {
    let mut rng = Rng::new(11);
    for kernel in kernels_here() {
        for &(m, n, k) in &[
            (128u32, 128u32, 32u32),
            (131, 257, 45),
            (132, 260, 48),
            (256, 64, 16),
            (17, 19, 17),
            (1, 5, 3),
            (65, 65, 64),
            (72, 73, 9),
            (200, 64, 3),
            (68, 72, 20),
            (132, 197, 13),
        ] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a_view, b_view) = operand_views(m, n, k, ta, tb);
                let c_view = MatView::row_major(m, n);
                let shape = GemmShape {
                    bias: true,
                    alpha: 0.5,
                    ..GemmShape::new(m, n, k)
                };
                let what = format!("{kernel:?} {m}x{n}x{k} transposed A {ta} B {tb}");
                let c = poisoned((m * n) as usize);
                let start = vec![0.0f64; (m * n) as usize];
                compare_gemm(
                    &mut rng,
                    kernel,
                    (a_view, b_view, c_view),
                    shape,
                    &c,
                    start,
                    &what,
                );
            }
        }
    }
}

/// A (M, K) and B (K, N) views: row-major, or the transpose of a row-major matrix.
fn operand_views(m: u32, n: u32, k: u32, ta: bool, tb: bool) -> (MatView, MatView) {
    let a = if ta {
        MatView::transposed(m, k)
    } else {
        MatView::row_major(m, k)
    };
    let b = if tb {
        MatView::transposed(k, n)
    } else {
        MatView::row_major(k, n)
    };
    (a, b)
}

/// `kernel` on random A, B and bias through dense `(a_view, b_view)` and `c_view` against the CPU twin: `c`
/// holds C's start on the GPU (poisoned, or the values an accumulating product adds to) and `want` the same
/// start for the twin. Returns how many launches the product took.
fn compare_gemm(
    rng: &mut Rng,
    kernel: GemmKernel,
    (a_view, b_view, c_view): (MatView, MatView, MatView),
    shape: GemmShape,
    c: &beitlab::gpu::GpuSlice,
    mut want: Vec<f64>,
    what: &str,
) -> usize {
    let (m, n, k) = (shape.m, shape.n, shape.k);
    let a = rng.vec((m * k) as usize, 1.0);
    let b = rng.vec((k * n) as usize, 1.0);
    let bias = rng.vec(n as usize, 1.0);
    let d = matmul::gemm_using(
        kernel,
        ctx(),
        c,
        c_view,
        &up(&a),
        a_view,
        &up(&b),
        b_view,
        Some(&up(&bias)),
        shape,
        Epilogue::None,
    )
    .unwrap();
    let launches = d.len();
    run(d);
    cpu::matmul::gemm(
        &mut want,
        c_view,
        &f64s(&a),
        a_view,
        &f64s(&b),
        b_view,
        Some(&f64s(&bias)),
        shape,
    );
    assert_close(what, &read(c), &want, 1e-6 * k as f64, 1e-5);
    launches
}

#[test]
fn products_past_a_software_adapters_loop_limit_sum_every_k() {
    // llvmpipe ends a loop after 65535 iterations: k = 150,000 is ten launches there (one elsewhere),
    // with the bias in the first and accumulation into C; every kernel that runs here, both operand layouts.
    let (m, n, k) = (5u32, 6u32, 150_000u32);
    let mut rng = Rng::new(77);
    for kernel in kernels_here() {
        for (ta, tb) in [(false, false), (true, true)] {
            let (a_view, b_view) = operand_views(m, n, k, ta, tb);
            let start = rng.vec((m * n) as usize, 1.0);
            let shape = GemmShape {
                bias: true,
                accumulate: true,
                alpha: 0.5,
                ..GemmShape::new(m, n, k)
            };
            compare_gemm(
                &mut rng,
                kernel,
                (a_view, b_view, MatView::row_major(m, n)),
                shape,
                &with(&start),
                f64s(&start),
                &format!("{kernel:?} k {k} transposed {ta}/{tb}"),
            );
        }
    }
}

#[test]
fn gemm_rejects_short_buffers() {
    let a = up(&[0.0; 4]);
    let shape = GemmShape::new(3, 3, 3);
    let err = matmul::gemm(
        ctx(),
        &a,
        MatView::row_major(3, 3),
        &a,
        MatView::row_major(3, 3),
        &a,
        MatView::row_major(3, 3),
        None,
        shape,
    )
    .err()
    .expect("a 4-element buffer cannot hold a 3x3 matrix");
    assert!(err.to_string().contains("holds 4 elements"), "{err}");
}

/// On a software adapter with 8-lane subgroups the linear layers, their weight gradients and tiny's 65 x 65
/// attention products take `gemm_lanes`; micro's batched 17 x 17 attention products, where its start per
/// workgroup outweighs the work, take `gemm_direct` (both measured faster that way on llvmpipe). Without them
/// (SwiftShader, the browser's fallback adapter) the same products take `gemm_regs`, and only products too
/// small for its 8 x 8 blocks take `gemm_direct`.
#[test]
fn software_adapters_choose_by_start_and_work() {
    let c = ctx();
    if c.adapter_info.device_type != wgpu::DeviceType::Cpu || std::env::var("BEITLAB_GEMM").is_ok()
    {
        return;
    }
    let large = if llvmpipe_8_lanes(c) {
        assert!(
            GemmKernel::Lanes.runs_on(c),
            "llvmpipe on 256-bit vectors has 8-lane subgroups"
        );
        assert_eq!(GemmKernel::for_shape(c, 17, 17, 16, 64), GemmKernel::Direct);
        assert_eq!(GemmKernel::for_shape(c, 17, 16, 17, 64), GemmKernel::Direct);
        GemmKernel::Lanes
    } else {
        assert!(!GemmKernel::Lanes.runs_on(c));
        assert_eq!(GemmKernel::for_shape(c, 17, 17, 16, 64), GemmKernel::Regs);
        assert_eq!(GemmKernel::for_shape(c, 4, 4, 8, 64), GemmKernel::Direct);
        GemmKernel::Regs
    };
    assert_eq!(GemmKernel::for_shape(c, 65, 65, 64, 48), large);
    assert_eq!(GemmKernel::for_shape(c, 544, 96, 32, 1), large);
    assert_eq!(GemmKernel::for_shape(c, 96, 32, 544, 1), large);
    assert_eq!(GemmKernel::for_shape(c, 1040, 576, 192, 1), large);
}

/// gemm_lanes' grid: 64 x 64 tiles, and where a side passes a multiple of 64 by 1 to 8 the last tile takes
/// that edge (up to 72) instead of a tile of its own.
#[test]
fn lanes_tiles_take_small_edges_into_the_last_tile() {
    use beitlab::ops::matmul::lanes_wide_edge;
    let lanes = GemmKernel::Lanes;
    assert!(lanes_wide_edge(65, 64) && lanes_wide_edge(64, 197) && lanes_wide_edge(72, 1));
    assert!(!lanes_wide_edge(64, 64) && !lanes_wide_edge(1040, 192) && !lanes_wide_edge(73, 8));
    assert_eq!(lanes.tiles(65, 65), [1, 1]);
    assert_eq!(lanes.tiles(65, 64), [1, 1]);
    assert_eq!(lanes.tiles(197, 197), [3, 3]);
    assert_eq!(lanes.tiles(72, 73), [2, 1]);
    assert_eq!(lanes.tiles(131, 257), [4, 2]);
    assert_eq!(lanes.tiles(1040, 192), [3, 17]);
    assert_eq!(lanes.tiles(1, 5), [1, 1]);
    assert_eq!(GemmKernel::Direct.tiles(17, 40), [2, 1]);
    assert_eq!(GemmKernel::Regs.tile_for(17, 40), (32, 24));
    assert_eq!(GemmKernel::Regs.tiles(17, 40), [2, 1]);
    assert_eq!(GemmKernel::Regs.tile_for(3, 9), (16, 8));
}

/// Every kernel on batched operands that are contiguous along k with padded, aligned rows and a K that is not
/// a multiple of 4 (the four-at-a-time path and its tail), the layout of Q·Kᵀ inside a fused qkv activation.
#[test]
fn gemm_every_kernel_k_contiguous_with_a_tail() {
    let (m, n, k, batch) = (9u32, 11u32, 7u32, 3u32);
    let mut rng = Rng::new(17);
    let a_view = MatView {
        off: 4,
        rs: 12,
        cs: 1,
        bo: 12 * m,
        bi: 0,
    };
    let b_view = MatView {
        off: 8,
        rs: 1,
        cs: 8,
        bo: 8 * n,
        bi: 0,
    };
    let c_view = MatView::row_major(m, n);
    let a = rng.vec(a_view.extent(m, k, batch, 1) as usize, 1.0);
    let b = rng.vec(b_view.extent(k, n, batch, 1) as usize, 1.0);
    let shape = GemmShape {
        batch,
        ..GemmShape::new(m, n, k)
    };
    let mut want = vec![0.0f64; c_view.extent(m, n, batch, 1) as usize];
    cpu::matmul::gemm(
        &mut want,
        c_view,
        &f64s(&a),
        a_view,
        &f64s(&b),
        b_view,
        None,
        shape,
    );
    for kernel in kernels_here() {
        let c = poisoned(want.len());
        run(matmul::gemm_using(
            kernel,
            ctx(),
            &c,
            c_view,
            &up(&a),
            a_view,
            &up(&b),
            b_view,
            None,
            shape,
            Epilogue::None,
        )
        .unwrap());
        assert_close(
            &format!("{kernel:?} k-contiguous"),
            &read(&c),
            &want,
            1e-5,
            1e-5,
        );
    }
}

/// Split-K (single products with few output tiles and a long k, the weight gradients): the partial sums and
/// their sum with alpha, bias and accumulation, every operand layout, a k that ends inside a k tile, a C with
/// padded rows.
#[test]
fn gemm_big_split_k_all_layouts() {
    let mut rng = Rng::new(23);
    for &(m, n, k) in &[(40u32, 36u32, 1000u32), (200, 130, 2048), (5, 3, 600)] {
        let split = SplitK::for_shape(m, n, k, 1).expect("a long k with one tile splits");
        assert!(
            split.splits >= 2
                && split.k_chunk.is_multiple_of(16)
                && split.splits * split.k_chunk >= k
        );
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (a_view, b_view) = operand_views(m, n, k, ta, tb);
            let c_view = MatView {
                rs: n + 3,
                ..MatView::row_major(m, n)
            };
            let shape = GemmShape {
                bias: true,
                accumulate: true,
                alpha: 0.5,
                ..GemmShape::new(m, n, k)
            };
            let what = format!("split-K {m}x{n}x{k} transposed A {ta} B {tb}");
            let before = rng.vec(c_view.extent(m, n, 1, 1) as usize, 1.0);
            let views = (a_view, b_view, c_view);
            let launches = compare_gemm(
                &mut rng,
                GemmKernel::Big,
                views,
                shape,
                &up(&before),
                f64s(&before),
                &what,
            );
            assert_eq!(launches, 2, "{what}: parts and their sum");
        }
    }
}

/// Which products split: weight gradients over a long batch whose tiles leave the GPU's waves uneven do; a
/// product whose tiles already fill the waves evenly, a short k or a batched product does not.
#[test]
fn split_k_rules() {
    let s = SplitK::for_shape(192, 576, 8320, 1).expect("qkv weight gradient of tiny at batch 128");
    assert!(s.splits * s.k_chunk >= 8320 && (s.splits - 1) * s.k_chunk < 8320);
    let s =
        SplitK::for_shape(3072, 768, 12608, 1).expect("fc1 weight gradient of base at batch 64");
    assert!(s.splits >= 2, "{s:?}");
    let s = SplitK::for_shape(8192, 768, 5018, 1).expect("lm_head weight gradient of base");
    assert!(
        s.splits as u64 * 8192 * 768 <= 32 << 20,
        "partial sums capped at 128 MiB: {s:?}"
    );
    assert_eq!(
        SplitK::for_shape(8192, 768, 256, 1),
        None,
        "k too short to share"
    );
    assert_eq!(SplitK::for_shape(8320, 576, 192, 1), None);
    assert_eq!(SplitK::for_shape(192, 192, 300, 1), None);
    assert_eq!(SplitK::for_shape(192, 192, 8320, 4), None);
}

#[test]
fn lanes_shorter_row_tiles_below_one_tile_per_core() {
    // Below one 64-row tile per core, gemm_lanes takes 32- or 16-row tiles (more workgroups for the same
    // product); these shapes take each on a machine of 2 or more cores, and every kernel must agree with the
    // CPU twin there (long k: a small model's weight gradients).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 {
        assert_eq!(matmul::lanes_tile_rows(64, 32, 1), 32);
        assert_eq!(matmul::lanes_tile_rows(30, 30, 1), 16);
        assert_eq!(matmul::lanes_tile_rows(30, 30, 64), 64);
        assert_eq!(matmul::lanes_tile_rows(65, 65, 1), 64);
        assert_eq!(matmul::lanes_tile_rows(8, 30, 1), 64);
        assert_eq!(GemmKernel::Lanes.tiles_for_batch(64, 32, 1), [1, 2]);
    }
    let mut rng = Rng::new(12);
    for kernel in kernels_here() {
        for &(m, n, k) in &[
            (64u32, 32u32, 544u32),
            (30, 30, 300),
            (48, 96, 257),
            (17, 5, 99),
        ] {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a_view, b_view) = operand_views(m, n, k, ta, tb);
                let shape = GemmShape {
                    bias: true,
                    accumulate: true,
                    alpha: 0.5,
                    ..GemmShape::new(m, n, k)
                };
                let start = rng.vec((m * n) as usize, 1.0);
                compare_gemm(
                    &mut rng,
                    kernel,
                    (a_view, b_view, MatView::row_major(m, n)),
                    shape,
                    &with(&start),
                    f64s(&start),
                    &format!("{kernel:?} {m}x{n}x{k} transposed A {ta} B {tb}, accumulated"),
                );
            }
        }
    }
}

#[test]
fn lanes_row_sums_every_layout() {
    // gemm_lanes with ROW_SUMS (a linear layer's bias gradient from its weight-gradient product): C as without
    // it, plus Σ_k A[m, k] added to the row sums, on full and edge tiles, wide edges, short row tiles, the
    // 32-column path and an odd k (the single-k tail of the k-pair loop).
    if !GemmKernel::Lanes.runs_on(ctx()) {
        return;
    }
    let mut rng = Rng::new(13);
    for &(m, n, k) in &[
        (96u32, 32u32, 544u32),
        (65, 65, 64),
        (68, 70, 24),
        (30, 30, 300),
        (17, 5, 99),
        (200, 64, 3),
        (131, 257, 45),
    ] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (a_view, b_view) = operand_views(m, n, k, ta, tb);
            let c_view = MatView::row_major(m, n);
            let shape = GemmShape {
                accumulate: true,
                ..GemmShape::new(m, n, k)
            };
            let a = rng.vec((m * k) as usize, 1.0);
            let b = rng.vec((k * n) as usize, 1.0);
            let c0 = rng.vec((m * n) as usize, 1.0);
            let s0 = rng.vec(m as usize, 1.0);
            let (c, sums) = (with(&c0), with(&s0));
            run(matmul::gemm_lanes_with_row_sums(
                ctx(),
                &c,
                c_view,
                &up(&a),
                a_view,
                &up(&b),
                b_view,
                shape,
                &sums,
            )
            .unwrap());
            let (fa, mut want) = (f64s(&a), f64s(&c0));
            cpu::matmul::gemm(
                &mut want,
                c_view,
                &fa,
                a_view,
                &f64s(&b),
                b_view,
                None,
                shape,
            );
            let what = format!("{m}x{n}x{k} transposed A {ta} B {tb}");
            assert_close(
                &format!("C {what}"),
                &read(&c),
                &want,
                1e-6 * k as f64,
                1e-5,
            );
            let want_sums: Vec<f64> = (0..m)
                .map(|r| {
                    s0[r as usize] as f64
                        + (0..k)
                            .map(|j| fa[(a_view.off + r * a_view.rs + j * a_view.cs) as usize])
                            .sum::<f64>()
                })
                .collect();
            assert_close(
                &format!("row sums {what}"),
                &read(&sums),
                &want_sums,
                1e-6 * k as f64,
                1e-5,
            );
        }
    }
}

/// The GELU epilogues (an MLP's activation written with its pre-activation; the pre-activation's gradient from
/// the activation's) on every kernel against the CPU twin: full, edge and wide-edge tiles, C written as vec4s or
/// not, a strided batch, with and without accumulation (the activation); split-K applies them in its sum.
/// Outputs poisoned. GELU's slope on an accumulating product is refused.
#[test]
fn gemm_gelu_epilogues_every_kernel() {
    let one = up(&[1.0]);
    let err = matmul::gemm_with_epilogue(
        ctx(),
        &poisoned(1),
        MatView::row_major(1, 1),
        &one,
        MatView::row_major(1, 1),
        &one,
        MatView::row_major(1, 1),
        None,
        GemmShape {
            accumulate: true,
            ..GemmShape::new(1, 1, 1)
        },
        Epilogue::GeluGrad(&one),
    )
    .err()
    .expect("GELU's slope on an accumulating product is refused")
    .to_string();
    assert!(err.contains("not accumulated"), "{err}");
    let mut rng = Rng::new(29);
    let mut cases: Vec<(GemmKernel, u32, u32, u32, u32)> = Vec::new();
    for kernel in kernels_here() {
        for &(m, n, k, batch) in &[
            (130u32, 192u32, 64u32, 1u32),
            (65, 65, 64, 3),
            (17, 19, 17, 1),
            (72, 8, 9, 2),
        ] {
            cases.push((kernel, m, n, k, batch));
        }
    }
    cases.push((GemmKernel::Big, 40, 36, 1000, 1));
    for (kernel, m, n, k, batch) in cases {
        for (ta, tb) in [(false, true), (true, false)] {
            for accumulate in [false, true] {
                // GELU's slope takes a written product only (checked below).
                for grad in [false, true].into_iter().filter(|&g| !(g && accumulate)) {
                    let (mut a_view, mut b_view) = operand_views(m, n, k, ta, tb);
                    let c_view = MatView::row_major(m, n);
                    a_view.bo = m * k;
                    b_view.bo = k * n;
                    let shape = GemmShape {
                        bias: true,
                        alpha: 0.75,
                        accumulate,
                        batch,
                        ..GemmShape::new(m, n, k)
                    };
                    let len = (m * n * batch) as usize;
                    let a = rng.vec((m * k * batch) as usize, 1.0);
                    let b = rng.vec((k * n * batch) as usize, 1.0);
                    let bias = rng.vec(n as usize, 1.0);
                    let c0 = rng.vec(len, 1.0);
                    let pre = rng.vec(len, 3.0);
                    let c = if accumulate { with(&c0) } else { poisoned(len) };
                    let act = if grad { up(&pre) } else { poisoned(len) };
                    let epilogue = if grad {
                        Epilogue::GeluGrad(&act)
                    } else {
                        Epilogue::Gelu(&act)
                    };
                    run(matmul::gemm_using(
                        kernel,
                        ctx(),
                        &c,
                        c_view,
                        &up(&a),
                        a_view,
                        &up(&b),
                        b_view,
                        Some(&up(&bias)),
                        shape,
                        epilogue,
                    )
                    .unwrap());
                    let mut want = f64s(&c0);
                    let mut want_act = vec![0.0f64; len];
                    let fpre = f64s(&pre);
                    cpu::matmul::gemm_with_epilogue(
                        &mut want,
                        c_view,
                        &f64s(&a),
                        a_view,
                        &f64s(&b),
                        b_view,
                        Some(&f64s(&bias)),
                        shape,
                        if grad {
                            cpu::matmul::Epilogue::GeluGrad(&fpre)
                        } else {
                            cpu::matmul::Epilogue::Gelu(&mut want_act)
                        },
                    );
                    let what = format!(
                        "{kernel:?} {m}x{n}x{k} batch {batch} transposed A {ta} B {tb} accumulate \
                         {accumulate} GELU {}",
                        if grad { "slope" } else { "output" }
                    );
                    assert_close(&what, &read(&c), &want, 1e-6 * k as f64, 1e-5);
                    if !grad {
                        assert_close(
                            &format!("{what}: activation"),
                            &read(&act),
                            &want_act,
                            1e-6 * k as f64,
                            1e-5,
                        );
                    }
                }
            }
        }
    }
}

/// An MLP's two layers with GELU's epilogues (`linear_gelu_forward_as`, `linear_backward_gelu_as`) against the
/// CPU twin in f32, and, with f16-rounded operands, against the same products followed by GELU launches.
#[test]
fn linear_layers_with_gelu_epilogues() {
    use beitlab::ops::gelu;
    use beitlab::ops::precision::ProductInputs;
    let mut rng = Rng::new(31);
    for &(m, n, k) in &[(67usize, 132usize, 45usize), (130, 36, 96), (3, 5, 7)] {
        let (mu, nu, ku) = (m as u32, n as u32, k as u32);
        let x = rng.vec(m * k, 1.0);
        let w1 = rng.vec(n * k, 1.0);
        let b1 = rng.vec(n, 1.0);
        // fc2 maps the n activations back to k; its output gradient dY (m, k).
        let w2 = rng.vec(k * n, 1.0);
        let dy = rng.vec(m * k, 1.0);
        let (dw0, db0) = (rng.vec(k * n, 1.0), rng.vec(k, 1.0));
        for inputs in [ProductInputs::F32, ProductInputs::F16Emulated] {
            let what = format!("{m}x{n}x{k} {inputs:?}");
            let (h, f) = (poisoned(m * n), poisoned(m * n));
            run(matmul::linear_gelu_forward_as(
                inputs,
                ctx(),
                &h,
                &f,
                &up(&x),
                &up(&w1),
                Some(&up(&b1)),
                mu,
                nu,
                ku,
            )
            .unwrap());
            let (dh, dw, db) = (poisoned(m * n), with(&dw0), with(&db0));
            run(matmul::linear_backward_gelu_as(
                inputs,
                ctx(),
                &dh,
                &poisoned(1),
                &dw,
                Some(&db),
                &up(&dy),
                &f,
                &h,
                &up(&w2),
                mu,
                ku,
                nu,
            )
            .unwrap());
            let (want_h, want_f, want_dh, want_dw, want_db) = if inputs == ProductInputs::F32 {
                let mut h = vec![0.0f64; m * n];
                cpu::matmul::linear_forward(
                    &mut h,
                    &f64s(&x),
                    &f64s(&w1),
                    Some(&f64s(&b1)),
                    m,
                    n,
                    k,
                );
                let mut f = vec![0.0f64; m * n];
                cpu::gelu::gelu_forward(&mut f, &h, m * n);
                let (mut dg, mut dw, mut db) = (vec![0.0f64; m * n], f64s(&dw0), f64s(&db0));
                cpu::matmul::linear_backward(
                    Some(&mut dg),
                    &mut dw,
                    Some(&mut db),
                    &f64s(&dy),
                    &f,
                    &f64s(&w2),
                    m,
                    k,
                    n,
                    false,
                );
                let mut dh = vec![0.0f64; m * n];
                cpu::gelu::gelu_backward(&mut dh, &dg, &h, m * n, false);
                (h, f, dh, dw, db)
            } else {
                // The same products without the epilogues, GELU in launches of its own.
                let (h2, f2, dg2, dh2) = (
                    poisoned(m * n),
                    poisoned(m * n),
                    poisoned(m * n),
                    poisoned(m * n),
                );
                let (dw2, db2) = (with(&dw0), with(&db0));
                let mut v = matmul::linear_forward_as(
                    inputs,
                    ctx(),
                    &h2,
                    &up(&x),
                    &up(&w1),
                    Some(&up(&b1)),
                    mu,
                    nu,
                    ku,
                )
                .unwrap();
                v.extend(gelu::gelu_forward(ctx(), &f2, &h2, (m * n) as u32).unwrap());
                v.extend(
                    matmul::linear_backward_as(
                        inputs,
                        ctx(),
                        Some(&dg2),
                        &dw2,
                        Some(&db2),
                        &up(&dy),
                        &f2,
                        &up(&w2),
                        mu,
                        ku,
                        nu,
                        false,
                    )
                    .unwrap(),
                );
                v.extend(
                    gelu::gelu_backward(ctx(), &dh2, &dg2, &h2, (m * n) as u32, false).unwrap(),
                );
                run(v);
                let r = |s: &beitlab::gpu::GpuSlice| f64s(&read(s));
                (r(&h2), r(&f2), r(&dh2), r(&dw2), r(&db2))
            };
            assert_close(
                &format!("H {what}"),
                &read(&h),
                &want_h,
                1e-6 * k as f64,
                1e-5,
            );
            assert_close(
                &format!("gelu(H) {what}"),
                &read(&f),
                &want_f,
                1e-6 * k as f64,
                1e-5,
            );
            assert_close(
                &format!("dH {what}"),
                &read(&dh),
                &want_dh,
                1e-6 * n as f64,
                1e-5,
            );
            assert_close(
                &format!("dW {what}"),
                &read(&dw),
                &want_dw,
                1e-6 * m as f64,
                1e-5,
            );
            assert_close(
                &format!("db {what}"),
                &read(&db),
                &want_db,
                1e-6 * m as f64,
                1e-5,
            );
        }
    }
}
