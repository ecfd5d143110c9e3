//! Launchers for `shaders/matmul.wgsl`: the strided batched product and the `nn.Linear` forward / backward
//! built on it. Layouts: `X (M, K)`, `W (N, K)` (PyTorch `nn.Linear`), `Y (M, N)`, `b (N)`.

use super::{fits_u32, gpu_params, launch_with, need, reduce};
use crate::gpu::{Dispatch, GpuContext, GpuError, GpuSlice};

gpu_params!(
    /// Mirrors `GemmParams` in matmul.wgsl.
    GemmParams in "matmul" as "GemmParams" {
        m: u32, n: u32, k: u32, batch_inner: u32, flags: u32, alpha: f32,
        a_off: u32, b_off: u32, c_off: u32,
        a_rs: u32, a_cs: u32, a_bo: u32, a_bi: u32,
        b_rs: u32, b_cs: u32, b_bo: u32, b_bi: u32,
        c_rs: u32, c_cs: u32, c_bo: u32, c_bi: u32,
        k_chunk: u32, splits: u32, _pad2: u32,
    }
);

/// How a matrix operand sits in its buffer: element (r, c) of batch item (outer, inner) is at
/// `off + outer·bo + inner·bi + r·rs + c·cs` (all in elements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatView {
    pub off: u32,
    pub rs: u32,
    pub cs: u32,
    pub bo: u32,
    pub bi: u32,
}

impl MatView {
    /// A dense row-major (rows, cols) matrix, batches packed one after another.
    pub fn row_major(rows: u32, cols: u32) -> Self {
        Self {
            off: 0,
            rs: cols,
            cs: 1,
            bo: rows * cols,
            bi: 0,
        }
    }

    /// The transpose of a dense row-major matrix stored as (cols, rows): element (r, c) = stored[c, r].
    pub fn transposed(rows: u32, cols: u32) -> Self {
        Self {
            off: 0,
            rs: 1,
            cs: rows,
            bo: rows * cols,
            bi: 0,
        }
    }

    /// One past the largest element index this view touches for a (rows, cols) matrix in `outer x inner` batches.
    pub fn extent(&self, rows: u32, cols: u32, outer: u32, inner: u32) -> u64 {
        if rows == 0 || cols == 0 || outer == 0 || inner == 0 {
            return 0;
        }
        self.off as u64
            + (outer as u64 - 1) * self.bo as u64
            + (inner as u64 - 1) * self.bi as u64
            + (rows as u64 - 1) * self.rs as u64
            + (cols as u64 - 1) * self.cs as u64
            + 1
    }
}

/// The sizes of a batched product `C (M, N) = alpha · A (M, K) · B (K, N)` over `batch` items,
/// item z split as (z / batch_inner, z % batch_inner) for the views' outer / inner strides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmShape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub batch_inner: u32,
    pub alpha: f32,
    /// Add `bias[n]` to every row.
    pub bias: bool,
    /// `C += ...` instead of `C = ...`.
    pub accumulate: bool,
}

impl GemmShape {
    pub fn new(m: u32, n: u32, k: u32) -> Self {
        Self {
            m,
            n,
            k,
            batch: 1,
            batch_inner: 1,
            alpha: 1.0,
            bias: false,
            accumulate: false,
        }
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}

/// `C = alpha · A · B (+ bias) (+ C)` with strided views. `bias` is read only when `shape.bias`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
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
    let kernel = GemmKernel::for_shape(ctx, shape.m, shape.n, shape.k, shape.batch);
    gemm_using(kernel, ctx, c, c_view, a, a_view, b, b_view, bias, shape)
}

/// [`gemm`] with an explicit choice of kernel (tests check both on every adapter).
#[allow(clippy::too_many_arguments)]
pub fn gemm_using(
    kernel: GemmKernel,
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
    const K: &str = "matmul::gemm";
    let GemmShape {
        m,
        n,
        k,
        batch,
        batch_inner,
        ..
    } = shape;
    if m == 0 || n == 0 || batch == 0 {
        return Ok(Vec::new());
    }
    if batch_inner == 0 || batch % batch_inner != 0 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("batch {batch} is not a multiple of batch_inner {batch_inner}"),
        });
    }
    if batch > crate::gpu::MAX_WORKGROUPS_PER_DIM {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("batch {batch} exceeds 65535"),
        });
    }
    let outer = batch / batch_inner;
    need(K, "C", c, c_view.extent(m, n, outer, batch_inner))?;
    need(K, "A", a, a_view.extent(m, k, outer, batch_inner))?;
    need(K, "B", b, b_view.extent(k, n, outer, batch_inner))?;
    fits_u32(K, c_view.extent(m, n, outer, batch_inner))?;
    let bias_slice = match (shape.bias, bias) {
        (true, Some(s)) => {
            need(K, "bias", s, n as u64)?;
            s
        }
        (true, None) => {
            return Err(GpuError::BadLaunch {
                kernel: K.into(),
                message: "bias requested but none given".into(),
            })
        }
        (false, _) => a,
    };
    let a_mode = vec4_mode(&a_view, a_view.cs, a_view.rs);
    let b_mode = vec4_mode(&b_view, b_view.rs, b_view.cs);
    let params = GemmParams {
        m,
        n,
        k,
        batch_inner,
        flags: shape.bias as u32 | ((shape.accumulate as u32) << 1) | (a_mode << 2) | (b_mode << 4),
        alpha: shape.alpha,
        a_off: a_view.off,
        b_off: b_view.off,
        c_off: c_view.off,
        a_rs: a_view.rs,
        a_cs: a_view.cs,
        a_bo: a_view.bo,
        a_bi: a_view.bi,
        b_rs: b_view.rs,
        b_cs: b_view.cs,
        b_bo: b_view.bo,
        b_bi: b_view.bi,
        c_rs: c_view.rs,
        c_cs: c_view.cs,
        c_bo: c_view.bo,
        c_bi: c_view.bi,
        ..Default::default()
    };
    let (a4, b4) = (vec4_view(ctx, a), vec4_view(ctx, b));
    let (tile_n, tile_m) = kernel.tile_for(m, n);
    let groups = [n.div_ceil(tile_n), m.div_ceil(tile_m), batch];
    if groups[0] > crate::gpu::MAX_WORKGROUPS_PER_DIM
        || groups[1] > crate::gpu::MAX_WORKGROUPS_PER_DIM
    {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "a {m} x {n} product needs more than 65535 tiles in one dimension; split it"
            ),
        });
    }
    if kernel == GemmKernel::Big {
        if let Some(split) = SplitK::for_shape(m, n, k, batch) {
            return split_k(ctx, c, a, b, bias_slice, &a4, &b4, params, split, groups);
        }
    }
    let u = GpuSlice::uniform(ctx, "GemmParams", &params);
    let args = [c, a, b, bias_slice, &u, &a4, &b4];
    let constants: Vec<(&str, f64)> = match kernel {
        GemmKernel::Direct => vec![
            ("DIRECT_X", (tile_n / 4) as f64),
            ("DIRECT_Y", (tile_m / 4) as f64),
        ],
        _ => Vec::new(),
    };
    Ok(vec![launch_with(
        ctx,
        "matmul",
        kernel.entry_point(),
        &constants,
        &args,
        groups,
    )?])
}

/// How a single product with few output tiles for the GPU and a long k is split: `splits` workgroups along k, each
/// `k_chunk` long (a multiple of the 16-wide k tile), their partial sums added by `gemm_splitk_sum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitK {
    pub splits: u32,
    pub k_chunk: u32,
}

/// The shortest k range one split-K workgroup takes (16 k tiles), so the partial sums stay a small cost.
const SPLIT_MIN_K: u32 = 256;
/// The most k ranges one product is split into.
const SPLIT_MAX: u32 = 64;
/// The most elements of partial sums one split-K product writes (128 MiB of f32).
const SPLIT_SCRATCH_MAX: u64 = 32 << 20;

impl SplitK {
    /// The split for one `m x n x k` product on 128 x 128 tiles, or `None` when it would not shorten the
    /// product or it is batched. The GPU takes the workgroups in waves of [`BIG_SLOTS`]; the split that
    /// minimises waves x k per workgroup wins (the fewest splits on a tie), and only if it saves at least a
    /// tenth: a 3072 x 768 weight gradient over 12608 rows has 144 tiles, half a wave that leaves most
    /// multiprocessors with one workgroup or none; split 11 ways it fills 6 waves.
    pub fn for_shape(m: u32, n: u32, k: u32, batch: u32) -> Option<Self> {
        if batch != 1 || k < 2 * SPLIT_MIN_K {
            return None;
        }
        let tiles = m.div_ceil(128) as u64 * n.div_ceil(128) as u64;
        let split = |wanted: u32| {
            let k_chunk = k.div_ceil(wanted).div_ceil(16) * 16;
            Self {
                splits: k.div_ceil(k_chunk),
                k_chunk,
            }
        };
        let cost = |s: Self| (tiles * s.splits as u64).div_ceil(BIG_SLOTS) * s.k_chunk as u64;
        let most = (k / SPLIT_MIN_K)
            .min(SPLIT_MAX)
            .min((SPLIT_SCRATCH_MAX / (m as u64 * n as u64).max(1)).max(1) as u32);
        let best = (1..=most).map(split).min_by_key(|&s| (cost(s), s.splits))?;
        (best.splits >= 2 && cost(best) * 10 <= cost(split(1)) * 9).then_some(best)
    }
}

/// A split-K product: `gemm_big` writes `splits` partial sums (splits, M, N) into the shared scratch buffer,
/// then `gemm_splitk_sum` adds them into C with alpha, bias and accumulation as `params` ask.
#[allow(clippy::too_many_arguments)]
fn split_k(
    ctx: &GpuContext,
    c: &GpuSlice,
    a: &GpuSlice,
    b: &GpuSlice,
    bias: &GpuSlice,
    a4: &GpuSlice,
    b4: &GpuSlice,
    params: GemmParams,
    split: SplitK,
    groups: [u32; 3],
) -> Result<Vec<Dispatch>, GpuError> {
    let (m, n) = (params.m, params.n);
    let partial_len = split.splits as u64 * m as u64 * n as u64;
    fits_u32("matmul::gemm (split-K)", partial_len)?;
    let partial = ctx.scratch(partial_len);
    let parts = GemmParams {
        batch_inner: 1,
        // Only the vec4 read modes: no bias, no accumulation, alpha 1 (the sum applies them).
        flags: params.flags & 0b11_1100,
        alpha: 1.0,
        a_bo: 0,
        a_bi: 0,
        b_bo: 0,
        b_bi: 0,
        c_off: 0,
        c_rs: n,
        c_cs: 1,
        c_bo: m * n,
        c_bi: 0,
        k_chunk: split.k_chunk,
        splits: split.splits,
        ..params
    };
    let u = GpuSlice::uniform(ctx, "GemmParams (split-K parts)", &parts);
    let first = launch_with(
        ctx,
        "matmul",
        "gemm_big",
        &[],
        &[&partial, a, b, bias, &u, a4, b4],
        [groups[0], groups[1], split.splits],
    )?;
    let sum = GemmParams {
        splits: split.splits,
        ..params
    };
    let u = GpuSlice::uniform(ctx, "GemmParams (split-K sum)", &sum);
    let second = launch_with(
        ctx,
        "matmul",
        "gemm_splitk_sum",
        &[],
        &[c, &partial, b, bias, &u, a4, b4],
        super::grid_for(m as u64 * n as u64, 256),
    )?;
    Ok(vec![first, second])
}

/// The gemm kernels: `gemm` (64 x 64 tiles, 8 x 8 per thread) for GPUs' smaller products, `gemm_big` (128 x 128
/// tiles, 256 threads, optional split-K) for GPUs' large ones, `gemm_wide` (128 x 128 tiles,
/// 16 x 16 per thread) for software adapters, where reads per multiply-add matter more than registers, and
/// `gemm_direct` (32 x 32 tiles, 4 x 4 per thread, no workgroup memory, no barriers) for products too small
/// or too narrow for a wide tile on software adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    Tiled,
    Big,
    Wide,
    Direct,
}

/// On a software adapter, how much more a multiply-add costs in `gemm_direct` than in `gemm_wide` (more reads
/// per multiply-add); measured on llvmpipe with `BEITLAB_GEMM=wide|direct beitlab bench kernels --preset tiny`:
/// 512^3 9.0 vs 3.5 GFLOP/s, tiny's linear layers 4.9-6.6 vs 2.8-3.6.
const DIRECT_COST: f64 = 2.0;

/// Streaming multiprocessors of the GPU the rules were set on (an H100 / H200 has 132); wgpu does not report it.
const GPU_UNITS: u64 = 132;

/// `gemm_big` workgroups resident at once on such a GPU: two per multiprocessor (256 threads of about 128
/// registers each).
const BIG_SLOTS: u64 = 2 * GPU_UNITS;

/// A GPU's time for `batch` products of `m x n`, in units of one round of a multiprocessor's resident work:
/// `Big` keeps 2 workgroups of 128 x 128 resident per multiprocessor, `Tiled` 8 of 64 x 64 (the same area), so
/// the time is the number of rounds times the kernel's cost per multiply-add (`Tiled` is slower per
/// multiply-add: a 64 x 64 tile reads its operands twice as often per output).
fn gpu_time(kernel: GemmKernel, m: u32, n: u32, batch: u32) -> f64 {
    let (resident, cost) = match kernel {
        GemmKernel::Big => (2, 1.0),
        _ => (8, TILED_COST),
    };
    let (tn, tm) = kernel.tile_for(m, n);
    let tiles = m.div_ceil(tm) as u64 * n.div_ceil(tn) as u64 * batch.max(1) as u64;
    tiles.div_ceil(GPU_UNITS * resident) as f64 * cost
}

/// How much more a multiply-add costs in `gemm` (64 x 64) than in `gemm_big` on a GPU.
const TILED_COST: f64 = 1.6;

/// The CPU threads a software adapter spreads workgroups over (one per core, as llvmpipe does).
fn cpu_cores() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
    }
    #[cfg(target_arch = "wasm32")]
    {
        1
    }
}

impl GemmKernel {
    /// The forced choice from `BEITLAB_GEMM=tiled|wide|direct`, if any.
    fn forced() -> Option<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        match std::env::var("BEITLAB_GEMM").as_deref() {
            Ok("tiled") => return Some(Self::Tiled),
            Ok("big") => return Some(Self::Big),
            Ok("wide") => return Some(Self::Wide),
            Ok("direct") => return Some(Self::Direct),
            _ => {}
        }
        None
    }

    /// `Wide` on CPU adapters (lavapipe, SwiftShader), `Big` elsewhere; `BEITLAB_GEMM=tiled|big|wide|direct`
    /// overrides (every product then takes that kernel).
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if let Some(k) = Self::forced() {
            return k;
        }
        if ctx.adapter_info.device_type == wgpu::DeviceType::Cpu {
            Self::Wide
        } else {
            Self::Big
        }
    }

    /// The kernel for `batch` products of `m x n`: on CPU adapters whichever of `Wide` and `Direct` takes less
    /// time by a simple model: workgroups run a core each, in rounds of as many as there are cores, and each
    /// costs its whole tile (padding included: a 17 x 17 attention product fills 2% of a 128-wide tile and 28%
    /// of a 32-wide one) times the kernel's cost per multiply-add.
    ///
    /// On GPUs, `Big` or `Tiled` by [`gpu_time`]: whole rounds of resident workgroups times the cost of a tile;
    /// single products with a long k go to `Big` with split-K.
    pub fn for_shape(ctx: &GpuContext, m: u32, n: u32, k: u32, batch: u32) -> Self {
        let base = Self::for_adapter(ctx);
        if Self::forced().is_some() {
            return base;
        }
        if base == Self::Big {
            if SplitK::for_shape(m, n, k, batch).is_some()
                || gpu_time(Self::Big, m, n, batch) <= gpu_time(Self::Tiled, m, n, batch)
            {
                return Self::Big;
            }
            return Self::Tiled;
        }
        let cores = cpu_cores();
        let time = |kernel: Self, cost: f64| {
            let (tn, tm) = kernel.tile_for(m, n);
            let tiles = m.div_ceil(tm) as u64 * n.div_ceil(tn) as u64 * batch.max(1) as u64;
            tiles.div_ceil(cores) as f64 * (tm * tn) as f64 * cost
        };
        if time(Self::Direct, DIRECT_COST) < time(Self::Wide, 1.0) {
            Self::Direct
        } else {
            Self::Wide
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Self::Tiled => "gemm",
            Self::Big => "gemm_big",
            Self::Wide => "gemm_wide",
            Self::Direct => "gemm_direct",
        }
    }

    /// Rows and columns of C per workgroup (the largest tile for `Direct`).
    pub fn tile(self) -> u32 {
        match self {
            Self::Tiled => 64,
            Self::Big | Self::Wide => 128,
            Self::Direct => 32,
        }
    }

    /// (columns, rows) of C per workgroup for an `m x n` product: `Direct` shrinks its 32 x 32 tile to the
    /// matrix in steps of 4 (its threads' 4 x 4 blocks).
    pub fn tile_for(self, m: u32, n: u32) -> (u32, u32) {
        match self {
            Self::Direct => {
                let fit = |x: u32| x.div_ceil(4).clamp(1, 8) * 4;
                (fit(n), fit(m))
            }
            other => (other.tile(), other.tile()),
        }
    }
}

/// Whether an operand can be read 4 elements at a time: 1 when contiguous along k (its k stride is 1),
/// 2 when contiguous along its other dimension, 0 otherwise. Every offset and the other strides must be
/// multiples of 4 so each vec4 read is aligned.
fn vec4_mode(v: &MatView, k_stride: u32, other_stride: u32) -> u32 {
    let aligned = |x: u32| x.is_multiple_of(4);
    if !(aligned(v.off) && aligned(v.bo) && aligned(v.bi)) {
        return 0;
    }
    if k_stride == 1 && aligned(other_stride) {
        1
    } else if other_stride == 1 && aligned(k_stride) {
        2
    } else {
        0
    }
}

/// The same buffer range viewed as vec4s (length rounded down to whole vec4s; a tiny stand-in when too short).
fn vec4_view(ctx: &GpuContext, s: &GpuSlice) -> GpuSlice {
    if s.len >= 4 {
        GpuSlice {
            buffer: s.buffer.clone(),
            offset: s.offset,
            len: s.len / 4 * 4,
        }
    } else {
        GpuSlice::new(ctx, "gemm vec4 stand-in", 4)
    }
}

/// `Y (M, N) = X (M, K) · W (N, K)ᵀ + b (N)`.
#[allow(clippy::too_many_arguments)]
pub fn linear_forward(
    ctx: &GpuContext,
    y: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    b: Option<&GpuSlice>,
    m: u32,
    n: u32,
    k: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    let shape = GemmShape {
        bias: b.is_some(),
        ..GemmShape::new(m, n, k)
    };
    gemm(
        ctx,
        y,
        MatView::row_major(m, n),
        x,
        MatView::row_major(m, k),
        w,
        MatView::transposed(k, n),
        b,
        shape,
    )
}

/// Backward of [`linear_forward`]: `dX (=|+=) dY · W`, `dW += dYᵀ · X`, `db += Σ_rows dY`.
/// `dx` is written (or accumulated when `accumulate_dx`); parameter gradients always accumulate.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    ctx: &GpuContext,
    dx: Option<&GpuSlice>,
    dw: &GpuSlice,
    db: Option<&GpuSlice>,
    dy: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    m: u32,
    n: u32,
    k: u32,
    accumulate_dx: bool,
) -> Result<Vec<Dispatch>, GpuError> {
    let mut out = Vec::new();
    if let Some(dx) = dx {
        let shape = GemmShape {
            accumulate: accumulate_dx,
            ..GemmShape::new(m, k, n)
        };
        out.extend(gemm(
            ctx,
            dx,
            MatView::row_major(m, k),
            dy,
            MatView::row_major(m, n),
            w,
            MatView::row_major(n, k),
            None,
            shape,
        )?);
    }
    let shape = GemmShape {
        accumulate: true,
        ..GemmShape::new(n, k, m)
    };
    out.extend(gemm(
        ctx,
        dw,
        MatView::row_major(n, k),
        dy,
        MatView::transposed(n, m),
        x,
        MatView::row_major(m, k),
        None,
        shape,
    )?);
    if let Some(db) = db {
        out.extend(reduce::col_sum(ctx, db, dy, m, n, true)?);
    }
    Ok(out)
}
