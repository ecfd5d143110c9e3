//! The f16-input product of mixed precision on cooperative matrices (tensor cores): `shaders/matmul_coop.wgsl`
//! with `shaders/precision.wgsl`'s packing around it. A and B are rounded to f16 into dense, zero-padded
//! row-major copies (any strided view, so transposes cost nothing extra), multiplied into a padded f32 result
//! with f32 sums, and that result goes into C's view with alpha, bias and accumulation. The three temporaries
//! live in the context's shared scratch buffer. It runs only where [`available`] holds and [`self_check`]
//! passed. CPU twin: `cpu::precision::{pack_f16, gemm_f16}`.
//!
//! Shapes: A (M, K), B (K, N), C (M, N) through their views; padded Mp, Np to multiples of [`TILE_MN`], Kp to a
//! multiple of [`TILE_K`].

use super::matmul::{GemmShape, MatView};
use super::{fits_u32, gpu_params, grid_for, launch, need, ELEMENT_WG};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `CoopParams` in matmul_coop.wgsl.
    CoopParams in "matmul_coop" as "CoopParams" {
        mp: u32, np: u32, kp: u32, _pad0: u32,
    }
);

gpu_params!(
    /// Mirrors `PadParams` in precision.wgsl.
    PadParams in "precision" as "PadParams" {
        rows: u32, cols: u32, rows_p: u32, cols_p: u32, off: u32, rs: u32, cs: u32, flags: u32,
        alpha: f32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
);

/// Rows and columns of C one workgroup computes (4 x 4 cooperative matrices of 16 x 16).
pub const TILE_MN: u32 = 64;
/// Depth of one slice of k.
pub const TILE_K: u32 = 16;
/// The subgroup size the kernel is written for: one workgroup is one subgroup.
const SUBGROUP: u32 = 32;

/// Whether this device can run the kernel: cooperative matrices and f16 granted, subgroups of exactly 32 lanes.
pub fn available(ctx: &GpuContext) -> bool {
    ctx.features
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16)
        && ctx.adapter_info.subgroup_min_size == SUBGROUP
        && ctx.adapter_info.subgroup_max_size == SUBGROUP
}

/// `x` rounded up to a multiple of `m`.
fn round_up(x: u32, m: u32) -> u32 {
    x.div_ceil(m) * m
}

/// Where a product's temporaries sit in the shared scratch buffer (in 4-byte elements): A16 (Mp·Kp/2 words),
/// B16 (Kp·Np/2), C32 (Mp·Np), each on a binding-aligned offset.
struct ScratchLayout {
    a_words: u64,
    b_at: u64,
    b_words: u64,
    c_at: u64,
    c_len: u64,
}

impl ScratchLayout {
    fn new(ctx: &GpuContext, m: u32, n: u32, k: u32) -> Self {
        let (mp, np, kp) = (
            round_up(m, TILE_MN) as u64,
            round_up(n, TILE_MN) as u64,
            round_up(k.max(1), TILE_K) as u64,
        );
        let align = (ctx.storage_alignment() / 4).max(1);
        let (a_words, b_words, c_len) = (mp * kp / 2, kp * np / 2, mp * np);
        let b_at = a_words.div_ceil(align) * align;
        let c_at = (b_at + b_words).div_ceil(align) * align;
        Self {
            a_words,
            b_at,
            b_words,
            c_at,
            c_len,
        }
    }

    fn len(&self) -> u64 {
        self.c_at + self.c_len
    }
}

/// Grow the shared scratch buffer once to what the largest of these products `(M, N, K)` needs, before a graph
/// records them: it only grows, and every launch recorded before a growth keeps the smaller buffer alive, so
/// growing product by product would hold several.
pub fn reserve_scratch(ctx: &GpuContext, products: &[(u32, u32, u32)]) {
    let most = products
        .iter()
        .map(|&(m, n, k)| ScratchLayout::new(ctx, m, n, k).len())
        .max()
        .unwrap_or(0);
    if most > 0 && most <= u32::MAX as u64 {
        ctx.scratch(most);
    }
}

/// `packed` (rows_p · cols_p / 2 words) = the view `(rows, cols)` of `x` as dense row-major f16, zero-padded
/// (`pack_f16_columns` for a view contiguous down its columns, `pack_f16` for any other).
#[allow(clippy::too_many_arguments)]
pub fn pack_f16(
    ctx: &GpuContext,
    packed: &GpuSlice,
    x: &GpuSlice,
    view: MatView,
    rows: u32,
    cols: u32,
    rows_p: u32,
    cols_p: u32,
) -> Result<Dispatch, GpuError> {
    const K: &str = "precision::pack_f16";
    if rows_p < rows || cols_p < cols || !cols_p.is_multiple_of(2) || rows_p == 0 || cols_p == 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "cannot pad ({rows}, {cols}) to ({rows_p}, {cols_p}) with an even width"
            ),
        });
    }
    let words = fits_u32(K, rows_p as u64 * cols_p as u64 / 2)?;
    need(K, "packed", packed, words as u64)?;
    need(K, "x", x, view.extent(rows, cols, 1, 1))?;
    let u = GpuSlice::uniform(
        ctx,
        "PadParams (pack)",
        &PadParams {
            rows,
            cols,
            rows_p,
            cols_p,
            off: view.off,
            rs: view.rs,
            cs: view.cs,
            ..Default::default()
        },
    );
    let args = [x, x, x, x, x, packed, &u, x];
    let column_tiles = [cols_p.div_ceil(32), rows_p.div_ceil(64), 1];
    if view.rs == 1 && view.cs != 1 && column_tiles[1] <= crate::gpu::MAX_WORKGROUPS_PER_DIM {
        // Contiguous down the columns (a transposed operand): the tiled kernel keeps reads and writes contiguous.
        launch(ctx, "precision", "pack_f16_columns", &args, column_tiles)
    } else {
        launch(
            ctx,
            "precision",
            "pack_f16",
            &args,
            grid_for(words as u64, ELEMENT_WG),
        )
    }
}

/// C's view `(m, n)` (=|+=) `alpha · c32[.., ..n] (+ bias)` from the padded product `c32 (rows, np)`.
#[allow(clippy::too_many_arguments)]
pub fn unpad_product(
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    c32: &GpuSlice,
    np: u32,
    bias: Option<&GpuSlice>,
    shape: GemmShape,
) -> Result<Dispatch, GpuError> {
    const K: &str = "precision::unpad_product";
    let (m, n) = (shape.m, shape.n);
    let items = fits_u32(K, m as u64 * n as u64)?;
    need(K, "C", c, c_view.extent(m, n, 1, 1))?;
    need(K, "product", c32, m as u64 * np as u64)?;
    if let Some(b) = bias {
        need(K, "bias", b, n as u64)?;
    }
    let flags = (shape.bias && bias.is_some()) as u32 | ((shape.accumulate as u32) << 1);
    let u = GpuSlice::uniform(
        ctx,
        "PadParams (unpad)",
        &PadParams {
            rows: m,
            cols: n,
            cols_p: np,
            off: c_view.off,
            rs: c_view.rs,
            cs: c_view.cs,
            flags,
            alpha: shape.alpha,
            ..Default::default()
        },
    );
    launch(
        ctx,
        "precision",
        "unpad_product",
        &[c, c32, c32, c32, c32, c32, &u, bias.unwrap_or(c32)],
        grid_for(items as u64, ELEMENT_WG),
    )
}

/// `C = alpha · f16(A) · f16(B) (+ bias) (+ C)` on cooperative matrices, f32 sums; one item (`shape.batch`
/// 1). Four launches: pack A, pack B, the product, the write into C.
#[allow(clippy::too_many_arguments)]
pub fn gemm_f16(
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    a: &GpuSlice,
    a_view: MatView,
    b: &GpuSlice,
    b_view: MatView,
    bias: Option<&GpuSlice>,
    shape: GemmShape,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "matmul_f16::gemm_f16";
    let GemmShape { m, n, k, batch, .. } = shape;
    if batch != 1 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("the f16 product takes one item, not a batch of {batch}"),
        });
    }
    if !available(ctx) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "this device has no f16 cooperative matrices with 32-lane subgroups".into(),
        });
    }
    if m == 0 || n == 0 {
        return Ok(Vec::new());
    }
    let (mp, np, kp) = (
        round_up(m, TILE_MN),
        round_up(n, TILE_MN),
        round_up(k.max(1), TILE_K),
    );
    if mp / TILE_MN > crate::gpu::MAX_WORKGROUPS_PER_DIM
        || np / TILE_MN > crate::gpu::MAX_WORKGROUPS_PER_DIM
    {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "a {m} x {n} product needs more than 65535 tiles in one dimension; split it"
            ),
        });
    }
    let layout = ScratchLayout::new(ctx, m, n, k);
    fits_u32(K, layout.len())?;
    let scratch = ctx.scratch(layout.len());
    let (a16, b16, c32) = (
        scratch.sub(0, layout.a_words),
        scratch.sub(layout.b_at, layout.b_words),
        scratch.sub(layout.c_at, layout.c_len),
    );
    let u = GpuSlice::uniform(
        ctx,
        "CoopParams",
        &CoopParams {
            mp,
            np,
            kp,
            ..Default::default()
        },
    );
    Ok(vec![
        pack_f16(ctx, &a16, a, a_view, m, k, mp, kp)?,
        pack_f16(ctx, &b16, b, b_view, k, n, kp, np)?,
        launch(
            ctx,
            "matmul_coop",
            "gemm_coop",
            &[&c32, &a16, &b16, &u],
            [np / TILE_MN, mp / TILE_MN, 1],
        )?,
        unpad_product(ctx, c, c_view, &c32, np, bias, shape)?,
    ])
}

/// Run [`gemm_f16`] on random products (odd sizes, a transposed operand, bias, alpha, accumulation) and compare
/// each with its CPU twin: the kernel is used only where this passes, as it cannot be tested on an adapter
/// without cooperative matrices. An `Err` says what went wrong in one sentence.
#[cfg(not(target_arch = "wasm32"))]
pub fn self_check(ctx: &GpuContext) -> Result<(), String> {
    if !available(ctx) {
        return Err("this device has no f16 cooperative matrices with 32-lane subgroups".into());
    }
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let checked = [(70, 50, 40), (130, 200, 300), (64, 64, 16)]
        .iter()
        .try_for_each(|&(m, n, k)| check_one(ctx, m, n, k));
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(format!(
            "the device rejected it: {}",
            e.to_string().lines().next().unwrap_or("")
        ));
    }
    checked
}

#[cfg(not(target_arch = "wasm32"))]
fn check_one(ctx: &GpuContext, m: u32, n: u32, k: u32) -> Result<(), String> {
    use crate::rng::Rng;
    let mut rng = Rng::new(0x5eed ^ (m * 31 + n * 7 + k) as u64);
    let mut random = |len: u32| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
    let (a, b, bias, c0) = (random(m * k), random(n * k), random(n), random(m * n));
    // A (m, k) row-major; B = Wᵀ with W (n, k) row-major, as a linear layer reads its weight.
    let (av, bv, cv) = (
        MatView::row_major(m, k),
        MatView::transposed(k, n),
        MatView::row_major(m, n),
    );
    let shape = GemmShape {
        alpha: 0.5,
        bias: true,
        accumulate: true,
        ..GemmShape::new(m, n, k)
    };
    let upload = |v: &[f32]| GpuSlice::from_slice(ctx, "self-check", v);
    let (ga, gb, gbias, gc) = (upload(&a), upload(&b), upload(&bias), upload(&c0));
    let launches =
        gemm_f16(ctx, &gc, cv, &ga, av, &gb, bv, Some(&gbias), shape).map_err(|e| e.to_string())?;
    Dispatch::submit(ctx, "f16 product self-check", &launches).map_err(|e| e.to_string())?;
    let got = ctx.read_f32(&gc).map_err(|e| e.to_string())?;
    let mut want = c0;
    crate::cpu::precision::gemm_f16(&mut want, cv, &a, av, &b, bv, Some(&bias), shape);
    // Same f16 operands, f32 sums in another order: agreement to a few f32 ulps of the terms' magnitude.
    let tolerance = 1e-5 * k as f32 + 1e-5;
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| {
            if g.is_finite() {
                (g - w).abs() / (1.0 + w.abs())
            } else {
                f32::INFINITY
            }
        })
        .fold(0.0f32, f32::max);
    if worst > tolerance {
        return Err(format!(
            "its {m} x {n} x {k} product is off its CPU twin by {worst:.2e} (allowed {tolerance:.1e})"
        ));
    }
    Ok(())
}
