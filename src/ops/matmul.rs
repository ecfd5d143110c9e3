//! Launchers for `shaders/matmul.wgsl`: the strided batched product and the `nn.Linear` forward / backward
//! built on it. Layouts: `X (M, K)`, `W (N, K)` (PyTorch `nn.Linear`), `Y (M, N)`, `b (N)`.

pub use super::gemm_choice::{
    lanes_tile_rows, lanes_wide_edge, GemmKernel, GemmPlan, SplitK, ALL_GEMM_KERNELS,
};
use super::precision::ProductInputs;
use super::{fits_u32, gpu_params, launch_with, need, reduce, vec4_view};
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

/// What a product does with each element of C besides alpha, the bias and accumulation: an MLP's GELU in the
/// launch of the product next to it (bits 6-7 of `GemmParams::flags`, `GELU_EPILOGUE` of `gemm_lanes`), on every
/// f32 kernel. The buffer is laid out as C (C's view applies to it).
#[derive(Clone, Copy, Debug, Default)]
pub enum Epilogue<'a> {
    #[default]
    None,
    /// Also `out = gelu(C)` for every element of C written: the activation with its pre-activation (fc1).
    Gelu(&'a GpuSlice),
    /// C = (alpha · A · B + bias) times GELU's slope `gelu'(pre)`: the pre-activation's gradient from the
    /// activation's (the input gradient of fc2). Not with accumulation (`gemm_lanes` applies it to C as
    /// stored).
    GeluGrad(&'a GpuSlice),
}

impl<'a> Epilogue<'a> {
    /// Its code in `GemmParams::flags` bits 6-7 and `GELU_EPILOGUE`.
    fn code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Gelu(_) => 1,
            Self::GeluGrad(_) => 2,
        }
    }

    fn buffer(self) -> Option<&'a GpuSlice> {
        match self {
            Self::None => None,
            Self::Gelu(s) | Self::GeluGrad(s) => Some(s),
        }
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
    gemm_with_epilogue(
        ctx,
        c,
        c_view,
        a,
        a_view,
        b,
        b_view,
        bias,
        shape,
        Epilogue::None,
    )
}

/// [`gemm`] with an [`Epilogue`] on each element of C.
#[allow(clippy::too_many_arguments)]
pub fn gemm_with_epilogue(
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    a: &GpuSlice,
    a_view: MatView,
    b: &GpuSlice,
    b_view: MatView,
    bias: Option<&GpuSlice>,
    shape: GemmShape,
    epilogue: Epilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    let plan = plan_product(ctx, c_view, a_view, b_view, shape)?;
    gemm_inner(
        plan,
        ctx,
        c,
        c_view,
        a,
        a_view,
        b,
        b_view,
        bias,
        shape,
        Extra::Epilogue(epilogue),
    )
}

/// What a product writes or reads through its extra bindings (8 and 9) besides C: row sums (`gemm_lanes`
/// only) or an [`Epilogue`]'s buffer, never both.
#[derive(Clone, Copy)]
enum Extra<'a> {
    Epilogue(Epilogue<'a>),
    RowSums(&'a GpuSlice),
}

/// The plan of one product: the tuner's fastest for its shape and layouts where the context tunes (timed on
/// temporaries the first time, `gpu::tune`), else the rules'.
fn plan_product(
    ctx: &GpuContext,
    c_view: MatView,
    a_view: MatView,
    b_view: MatView,
    shape: GemmShape,
) -> Result<GemmPlan, GpuError> {
    let GemmShape {
        m,
        n,
        k,
        batch,
        batch_inner,
        ..
    } = shape;
    let rules = GemmPlan::rules(ctx, m, n, k, batch);
    if !ctx.tunes()
        || GemmKernel::forced().is_some()
        || m == 0
        || n == 0
        || batch == 0
        || batch_inner == 0
        || batch % batch_inner != 0
    {
        return Ok(rules);
    }
    let candidates = GemmPlan::candidates(ctx, m, n, k, batch);
    if candidates.len() < 2 {
        return Ok(rules);
    }
    let names: Vec<String> = candidates.iter().map(GemmPlan::name).collect();
    let key = format!(
        "gemm {m}x{n}x{k} batch {batch} {}",
        layouts_key(c_view, a_view, b_view, n)
    );
    let mut temps: Option<[GpuSlice; 4]> = None;
    let choice = ctx.tuned_choice(
        &key,
        &names,
        |name| {
            let plan = candidates
                .iter()
                .find(|p| p.name() == name)
                .copied()
                .unwrap_or(rules);
            let [c, a, b, bias] =
                temps.get_or_insert_with(|| tuning_operands(ctx, c_view, a_view, b_view, shape));
            gemm_inner(
                plan,
                ctx,
                c,
                c_view,
                a,
                a_view,
                b,
                b_view,
                Some(bias),
                shape,
                Extra::Epilogue(Epilogue::None),
            )
        },
        None,
    )?;
    Ok(choice
        .and_then(|name| candidates.into_iter().find(|p| p.name() == name))
        .unwrap_or(rules))
}

/// [`gemm_with_epilogue`] with an explicit choice of kernel (tests check every kernel on every adapter).
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
    epilogue: Epilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    let plan = GemmPlan::with_kernel(kernel, shape.m, shape.n, shape.k, shape.batch);
    gemm_inner(
        plan,
        ctx,
        c,
        c_view,
        a,
        a_view,
        b,
        b_view,
        bias,
        shape,
        Extra::Epilogue(epilogue),
    )
}

/// A single product on `gemm_lanes` that also adds each row's sum of A over k into `row_sums (M)`
/// (`ROW_SUMS` of `shaders/matmul_lanes.wgsl`): a linear layer's bias gradient from its weight-gradient product.
#[allow(clippy::too_many_arguments)]
pub fn gemm_lanes_with_row_sums(
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    a: &GpuSlice,
    a_view: MatView,
    b: &GpuSlice,
    b_view: MatView,
    shape: GemmShape,
    row_sums: &GpuSlice,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "matmul::gemm_lanes_with_row_sums";
    if shape.batch != 1 {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!("row sums take one product, not a batch of {}", shape.batch),
        });
    }
    need(K, "row_sums", row_sums, shape.m as u64)?;
    gemm_inner(
        GemmPlan {
            kernel: GemmKernel::Lanes,
            split: None,
        },
        ctx,
        c,
        c_view,
        a,
        a_view,
        b,
        b_view,
        None,
        shape,
        Extra::RowSums(row_sums),
    )
}

#[allow(clippy::too_many_arguments)]
fn gemm_inner(
    plan: GemmPlan,
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    a: &GpuSlice,
    a_view: MatView,
    b: &GpuSlice,
    b_view: MatView,
    bias: Option<&GpuSlice>,
    shape: GemmShape,
    extra: Extra,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "matmul::gemm";
    let (row_sums, epilogue) = match extra {
        Extra::RowSums(s) => (Some(s), Epilogue::None),
        Extra::Epilogue(e) => (None, e),
    };
    let kernel = plan.kernel;
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
    if !kernel.runs_on(ctx) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "{} needs subgroups of 8 lanes, which this device does not offer",
                kernel.entry_point()
            ),
        });
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
    if let Some(act) = epilogue.buffer() {
        need(
            K,
            "the GELU epilogue's buffer",
            act,
            c_view.extent(m, n, outer, batch_inner),
        )?;
    }
    if matches!(epilogue, Epilogue::GeluGrad(_)) && shape.accumulate {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "GELU's slope applies to a product that is written, not accumulated".into(),
        });
    }
    if k > SOFTWARE_MAX_K && crate::gpu::is_software_adapter(&ctx.adapter_info) {
        return long_k_runs(
            plan, ctx, c, c_view, a, a_view, b, b_view, bias, shape, row_sums, epilogue,
        );
    }
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
        flags: shape.bias as u32
            | ((shape.accumulate as u32) << 1)
            | (a_mode << 2)
            | (b_mode << 4)
            | (epilogue.code() << 6),
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
    let [tiles_n, tiles_m] = kernel.tiles_for_batch(m, n, batch);
    let groups = [tiles_n, tiles_m, batch];
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
    // Bindings 8 and 9: the row sums or the epilogue's buffer, and its vec4 view (a stand-in where neither is
    // used: the browser refuses two writable bindings over one buffer).
    let unused = ctx.unused_storage();
    let aux = row_sums.or(epilogue.buffer()).unwrap_or(&unused);
    if let (GemmKernel::Big, Some(split)) = (kernel, plan.split) {
        return split_k(
            ctx, c, a, b, bias_slice, &a4, &b4, aux, params, split, groups,
        );
    }
    let u = GpuSlice::uniform(ctx, "GemmParams", &params);
    let c4 = vec4_view(ctx, c);
    let aux4 = vec4_view(ctx, aux);
    let args = [c, a, b, bias_slice, &u, &a4, &b4, &c4, aux, &aux4];
    let constants: Vec<(&str, f64)> = match kernel {
        GemmKernel::Direct => {
            let (tile_n, tile_m) = kernel.tile_for(m, n);
            vec![
                ("DIRECT_X", (tile_n / 4) as f64),
                ("DIRECT_Y", (tile_m / 4) as f64),
            ]
        }
        GemmKernel::Regs => {
            let (tile_n, tile_m) = kernel.tile_for(m, n);
            vec![
                ("REGS_X", (tile_n / 8) as f64),
                ("REGS_Y", (tile_m / 8) as f64),
            ]
        }
        GemmKernel::Lanes => vec![
            ("WIDE_EDGE", lanes_wide_edge(m, n) as u32 as f64),
            ("ACCUMULATE", shape.accumulate as u32 as f64),
            ("C_VEC4", c_vec4(&c_view, n) as u32 as f64),
            ("TILE_ROWS", lanes_tile_rows(m, n, batch) as f64),
            ("ROW_SUMS", row_sums.is_some() as u32 as f64),
            ("GELU_EPILOGUE", epilogue.code() as f64),
            ("A_VEC4", lanes_a_vec4(a_mode, m) as f64),
            ("B_VEC4", lanes_b_vec4(b_mode, c_vec4(&c_view, n)) as f64),
        ],
        _ => Vec::new(),
    };
    Ok(vec![launch_with(
        ctx,
        kernel.shader(),
        kernel.entry_point(),
        &constants,
        &args,
        groups,
    )?])
}

/// The longest k one launch takes on a software adapter (a multiple of 8, so that runs keep vec4
/// offsets). llvmpipe ends loops after about 65535 iterations, silently: a product of ones with k = 600,000
/// gave 524,280 on `gemm_lanes` (8 k per iteration) and 65,534 on `gemm_regs` and `gemm_direct`, `gemm` gave
/// 58,255 for k = 65,000 (exact at 40,000), and an accumulating `gemm_lanes` with k = 65,528 left rows unstored
/// (exact at 65,000). A quarter of that leaves room.
pub const SOFTWARE_MAX_K: u32 = 16384;

/// A product with more k than [`SOFTWARE_MAX_K`] on a software adapter, as launches over runs of k that
/// accumulate. The bias joins the first run, the GELU epilogue the last; row sums add up over the runs.
#[allow(clippy::too_many_arguments)]
fn long_k_runs(
    plan: GemmPlan,
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    a: &GpuSlice,
    a_view: MatView,
    b: &GpuSlice,
    b_view: MatView,
    bias: Option<&GpuSlice>,
    shape: GemmShape,
    row_sums: Option<&GpuSlice>,
    epilogue: Epilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "matmul::gemm";
    if matches!(epilogue, Epilogue::GeluGrad(_)) {
        return Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: format!(
                "GELU's slope needs the whole product in one launch, but k = {} passes the {SOFTWARE_MAX_K} a software adapter's loops allow",
                shape.k
            ),
        });
    }
    let mut d = Vec::new();
    let mut k0 = 0u32;
    while k0 < shape.k {
        let run = SOFTWARE_MAX_K.min(shape.k - k0);
        let last = k0 + run == shape.k;
        let a_run = MatView {
            off: fits_u32(K, a_view.off as u64 + k0 as u64 * a_view.cs as u64)?,
            ..a_view
        };
        let b_run = MatView {
            off: fits_u32(K, b_view.off as u64 + k0 as u64 * b_view.rs as u64)?,
            ..b_view
        };
        let run_shape = GemmShape {
            k: run,
            bias: shape.bias && k0 == 0,
            accumulate: shape.accumulate || k0 > 0,
            ..shape
        };
        let extra = match row_sums {
            Some(s) => Extra::RowSums(s),
            None if last => Extra::Epilogue(epilogue),
            None => Extra::Epilogue(Epilogue::None),
        };
        let run_plan = GemmPlan::with_kernel(plan.kernel, shape.m, shape.n, run, shape.batch);
        d.extend(gemm_inner(
            run_plan, ctx, c, c_view, a, a_run, b, b_run, bias, run_shape, extra,
        )?);
        k0 += run;
    }
    Ok(d)
}

/// A split-K product: `gemm_big` writes `splits` partial sums (splits, M, N) into the shared scratch buffer,
/// then `gemm_splitk_sum` adds them into C with alpha, bias, accumulation and the epilogue (its buffer `act`) as
/// `params` ask.
#[allow(clippy::too_many_arguments)]
fn split_k(
    ctx: &GpuContext,
    c: &GpuSlice,
    a: &GpuSlice,
    b: &GpuSlice,
    bias: &GpuSlice,
    a4: &GpuSlice,
    b4: &GpuSlice,
    act: &GpuSlice,
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
        // Only the vec4 read modes: no bias, no accumulation, no epilogue, alpha 1 (the sum applies them).
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
        &[
            &partial,
            a,
            b,
            bias,
            &u,
            a4,
            b4,
            &partial,
            &ctx.unused_storage(),
        ],
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
        &[c, &partial, b, bias, &u, a4, b4, c, act],
        super::grid_for(m as u64 * n as u64, 256),
    )?;
    Ok(vec![first, second])
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

/// How `gemm_lanes` reads A in its steps of four k (`A_VEC4` of `shaders/matmul_lanes.wgsl`): as
/// [`vec4_mode`] says, except that along m (mode 2) M must be a multiple of 4, so that the vec4 holding the
/// last rows lies inside A.
fn lanes_a_vec4(a_mode: u32, m: u32) -> u32 {
    if a_mode == 2 && !m.is_multiple_of(4) {
        0
    } else {
        a_mode
    }
}

/// How `gemm_lanes` reads B in its steps of four k (`B_VEC4`): as [`vec4_mode`] says, except that along n
/// (mode 2) its lanes must own adjacent columns, which they do only with `C_VEC4`.
fn lanes_b_vec4(b_mode: u32, c_vec4: bool) -> u32 {
    if b_mode == 2 && !c_vec4 {
        0
    } else {
        b_mode
    }
}

/// Whether C can be written 4 elements at a time (`C_VEC4` of `shaders/matmul_lanes.wgsl`): contiguous along
/// n, with N, the row stride and every offset multiples of 4, so each aligned group of 4 columns of a row lies
/// wholly inside C or wholly past its edge.
fn c_vec4(c: &MatView, n: u32) -> bool {
    c.cs == 1
        && [c.off, c.rs, c.bo, c.bi, n]
            .iter()
            .all(|x| x.is_multiple_of(4))
}

/// [`gemm_with_epilogue`] for a product whose operands were prepared as `inputs` says: on cooperative matrices
/// (`ops::matmul_f16`) for `F16Coop`, else on the f32 kernels. The epilogue runs in the product's launch on the
/// f32 kernels; after the cooperative-matrix product (whose write-back has none), C dense (M, N), as GELU
/// launches: `Gelu` from C, and `GeluGrad` with the product written to `unfused` (M·N elements, needed only
/// then) first.
#[allow(clippy::too_many_arguments)]
fn gemm_as(
    inputs: ProductInputs,
    ctx: &GpuContext,
    c: &GpuSlice,
    c_view: MatView,
    a: &GpuSlice,
    a_view: MatView,
    b: &GpuSlice,
    b_view: MatView,
    bias: Option<&GpuSlice>,
    shape: GemmShape,
    epilogue: Epilogue,
    unfused: Option<&GpuSlice>,
) -> Result<Vec<Dispatch>, GpuError> {
    const K: &str = "matmul::gemm (f16, GELU after it)";
    if inputs != ProductInputs::F16Coop || !coop_pays(ctx, c_view, a_view, b_view, shape)? {
        return gemm_with_epilogue(ctx, c, c_view, a, a_view, b, b_view, bias, shape, epilogue);
    }
    let f16 = |c: &GpuSlice, shape: GemmShape| {
        super::matmul_f16::gemm_f16(ctx, c, c_view, a, a_view, b, b_view, bias, shape)
    };
    let len = fits_u32(K, shape.m as u64 * shape.n as u64)?;
    let dense = c_view == MatView::row_major(shape.m, shape.n) && shape.batch == 1;
    match epilogue {
        Epilogue::None => f16(c, shape),
        _ if !dense => Err(GpuError::BadLaunch {
            kernel: K.into(),
            message: "a GELU epilogue after the f16 product needs a dense C".into(),
        }),
        Epilogue::Gelu(out) => {
            let mut v = f16(c, shape)?;
            v.extend(super::gelu::gelu_forward(ctx, out, c, len)?);
            Ok(v)
        }
        Epilogue::GeluGrad(pre) => {
            let unfused = unfused.ok_or_else(|| GpuError::BadLaunch {
                kernel: K.into(),
                message: "GELU's slope after the f16 product needs a buffer for the product".into(),
            })?;
            need(K, "the product before GELU's slope", unfused, len as u64)?;
            let mut v = f16(unfused, shape)?;
            v.extend(super::gelu::gelu_backward(
                ctx, c, unfused, pre, len, false,
            )?);
            Ok(v)
        }
    }
}

/// The part of a tuning key that says how a product reads and writes: each operand's vec4 mode and C's.
fn layouts_key(c_view: MatView, a_view: MatView, b_view: MatView, n: u32) -> String {
    format!(
        "vec4 a{} b{} c{}",
        vec4_mode(&a_view, a_view.cs, a_view.rs),
        vec4_mode(&b_view, b_view.rs, b_view.cs),
        c_vec4(&c_view, n) as u8
    )
}

/// Temporary C, A, B and bias as long as a product's views reach, for the tuner to time candidates on.
fn tuning_operands(
    ctx: &GpuContext,
    c_view: MatView,
    a_view: MatView,
    b_view: MatView,
    shape: GemmShape,
) -> [GpuSlice; 4] {
    let GemmShape {
        m,
        n,
        k,
        batch,
        batch_inner,
        ..
    } = shape;
    let outer = batch / batch_inner.max(1);
    [
        c_view.extent(m, n, outer, batch_inner),
        a_view.extent(m, k, outer, batch_inner),
        b_view.extent(k, n, outer, batch_inner),
        n as u64,
    ]
    .map(|len| GpuSlice::temporary(ctx, "tuning operand", len))
}

/// Whether a mixed-precision product takes the cooperative-matrix kernel: yes, unless the tuner measured the
/// f32 product faster for this shape (a small product, where packing the operands to f16 and writing C back
/// cost more than the tensor cores save; the product is then exact in f32, which mixed precision allows).
fn coop_pays(
    ctx: &GpuContext,
    c_view: MatView,
    a_view: MatView,
    b_view: MatView,
    shape: GemmShape,
) -> Result<bool, GpuError> {
    let GemmShape { m, n, k, batch, .. } = shape;
    if !ctx.tunes() || batch != 1 || m == 0 || n == 0 {
        return Ok(true);
    }
    let key = format!(
        "gemm_f16 {m}x{n}x{k} {}",
        layouts_key(c_view, a_view, b_view, n)
    );
    let names = ["coop".to_string(), "f32".to_string()];
    let mut temps: Option<[GpuSlice; 4]> = None;
    let choice = ctx.tuned_choice(
        &key,
        &names,
        |name| {
            let [c, a, b, bias] =
                temps.get_or_insert_with(|| tuning_operands(ctx, c_view, a_view, b_view, shape));
            if name == "coop" {
                super::matmul_f16::gemm_f16(ctx, c, c_view, a, a_view, b, b_view, Some(bias), shape)
            } else {
                gemm(ctx, c, c_view, a, a_view, b, b_view, Some(bias), shape)
            }
        },
        None,
    )?;
    Ok(choice.is_none_or(|c| c == "coop"))
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
    linear_forward_as(ProductInputs::F32, ctx, y, x, w, b, m, n, k)
}

/// [`linear_forward`] with the product reading its operands as `inputs` says (f16 for mixed precision).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_as(
    inputs: ProductInputs,
    ctx: &GpuContext,
    y: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    b: Option<&GpuSlice>,
    m: u32,
    n: u32,
    k: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    linear_forward_with(inputs, ctx, y, x, w, b, m, n, k, Epilogue::None)
}

/// An MLP's first layer with its GELU: `H (M, N) = X · Wᵀ + b` and `F (M, N) = gelu(H)`, F written by the
/// product's launch (its [`Epilogue::Gelu`]; a GELU launch after a cooperative-matrix product).
#[allow(clippy::too_many_arguments)]
pub fn linear_gelu_forward_as(
    inputs: ProductInputs,
    ctx: &GpuContext,
    h: &GpuSlice,
    f: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    b: Option<&GpuSlice>,
    m: u32,
    n: u32,
    k: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    linear_forward_with(inputs, ctx, h, x, w, b, m, n, k, Epilogue::Gelu(f))
}

#[allow(clippy::too_many_arguments)]
fn linear_forward_with(
    inputs: ProductInputs,
    ctx: &GpuContext,
    y: &GpuSlice,
    x: &GpuSlice,
    w: &GpuSlice,
    b: Option<&GpuSlice>,
    m: u32,
    n: u32,
    k: u32,
    epilogue: Epilogue,
) -> Result<Vec<Dispatch>, GpuError> {
    let shape = GemmShape {
        bias: b.is_some(),
        ..GemmShape::new(m, n, k)
    };
    let mut out = Vec::new();
    let x = inputs.operand(ctx, x, m as u64 * k as u64, &mut out)?;
    let w = inputs.operand(ctx, w, n as u64 * k as u64, &mut out)?;
    out.extend(gemm_as(
        inputs,
        ctx,
        y,
        MatView::row_major(m, n),
        &x,
        MatView::row_major(m, k),
        &w,
        MatView::transposed(k, n),
        b,
        shape,
        epilogue,
        None,
    )?);
    Ok(out)
}

/// Backward of [`linear_forward`]: `dX (=|+=) dY · W`, `dW += dYᵀ · X`, `db += Σ_rows dY` (on `gemm_lanes` in
/// the same launch as dW).
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
    linear_backward_as(
        ProductInputs::F32,
        ctx,
        dx,
        dw,
        db,
        dy,
        x,
        w,
        m,
        n,
        k,
        accumulate_dx,
    )
}

/// [`linear_backward`] with both products reading their operands as `inputs` says (the bias gradient sums
/// the same `dY` the products read).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_as(
    inputs: ProductInputs,
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
    let dx = dx.map(|dx| (dx, Epilogue::None, None));
    linear_backward_with(inputs, ctx, dx, dw, db, dy, x, w, m, n, k, accumulate_dx)
}

/// Backward of an MLP's second layer through the GELU before it: `dH (M, K) = (dY · W) ⊙ gelu'(pre)`, with
/// GELU's slope in the launch of the product (its [`Epilogue::GeluGrad`]), `dW += dYᵀ · X`, `db += Σ_rows dY`.
/// `pre (M, K)` is the first layer's output H and `x` = gelu(H). `unfused (M, K)` holds dY · W before the
/// slope where the product runs on cooperative matrices (no epilogue there); elsewhere it is not touched.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_gelu_as(
    inputs: ProductInputs,
    ctx: &GpuContext,
    dh: &GpuSlice,
    unfused: &GpuSlice,
    dw: &GpuSlice,
    db: Option<&GpuSlice>,
    dy: &GpuSlice,
    x: &GpuSlice,
    pre: &GpuSlice,
    w: &GpuSlice,
    m: u32,
    n: u32,
    k: u32,
) -> Result<Vec<Dispatch>, GpuError> {
    let dx = Some((dh, Epilogue::GeluGrad(pre), Some(unfused)));
    linear_backward_with(inputs, ctx, dx, dw, db, dy, x, w, m, n, k, false)
}

/// [`linear_backward_as`] with an epilogue on the dX product (`dx`: the gradient, the epilogue, where the
/// product goes before it when it cannot run in the launch).
#[allow(clippy::too_many_arguments)]
fn linear_backward_with(
    inputs: ProductInputs,
    ctx: &GpuContext,
    dx: Option<(&GpuSlice, Epilogue, Option<&GpuSlice>)>,
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
    let dy = &inputs.operand(ctx, dy, m as u64 * n as u64, &mut out)?;
    let x = &inputs.operand(ctx, x, m as u64 * k as u64, &mut out)?;
    if let Some((dx, epilogue, unfused)) = dx {
        let w = &inputs.operand(ctx, w, n as u64 * k as u64, &mut out)?;
        let shape = GemmShape {
            accumulate: accumulate_dx,
            ..GemmShape::new(m, k, n)
        };
        out.extend(gemm_as(
            inputs,
            ctx,
            dx,
            MatView::row_major(m, k),
            dy,
            MatView::row_major(m, n),
            w,
            MatView::row_major(n, k),
            None,
            shape,
            epilogue,
            unfused,
        )?);
    }
    let shape = GemmShape {
        accumulate: true,
        ..GemmShape::new(n, k, m)
    };
    let (dw_view, dyt_view, x_view) = (
        MatView::row_major(n, k),
        MatView::transposed(n, m),
        MatView::row_major(m, k),
    );
    // On gemm_lanes the bias gradient Σ_rows dY comes with dW = dYᵀ·X (the rows of dYᵀ summed over k).
    match db {
        Some(db)
            if inputs != ProductInputs::F16Coop
                && GemmKernel::for_shape(ctx, n, k, m, 1) == GemmKernel::Lanes =>
        {
            out.extend(gemm_lanes_with_row_sums(
                ctx, dw, dw_view, dy, dyt_view, x, x_view, shape, db,
            )?);
        }
        _ => {
            out.extend(gemm_as(
                inputs,
                ctx,
                dw,
                dw_view,
                dy,
                dyt_view,
                x,
                x_view,
                None,
                shape,
                Epilogue::None,
                None,
            )?);
            if let Some(db) = db {
                out.extend(reduce::col_sum(ctx, db, dy, m, n, true)?);
            }
        }
    }
    Ok(out)
}
