//! Which gemm kernel a product takes, and whether a GPU product is split along k: the kernels of
//! `shaders/matmul.wgsl` and `shaders/matmul_lanes.wgsl` and the rules that pick one per shape (a cost model per
//! adapter kind, measured on llvmpipe, SwiftShader and an H200), used by the launchers in [`super::matmul`].

use crate::gpu::GpuContext;

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
    /// product or it is batched. The GPU takes the workgroups in waves of `BIG_SLOTS`; the split that
    /// minimises waves x k per workgroup wins (the fewest splits on a tie), and only if it saves at least a
    /// tenth: a 3072 x 768 weight gradient over 12608 rows has 144 tiles, half a wave that leaves most
    /// multiprocessors with one workgroup or none; split 11 ways it fills 6 waves.
    pub fn for_shape(m: u32, n: u32, k: u32, batch: u32) -> Option<Self> {
        if batch != 1 || k < 2 * SPLIT_MIN_K {
            return None;
        }
        let tiles = m.div_ceil(128) as u64 * n.div_ceil(128) as u64;
        let split = |wanted: u32| Self::ways(k, wanted);
        let cost = |s: Self| (tiles * s.splits as u64).div_ceil(BIG_SLOTS) * s.k_chunk as u64;
        let most = (k / SPLIT_MIN_K)
            .min(SPLIT_MAX)
            .min((SPLIT_SCRATCH_MAX / (m as u64 * n as u64).max(1)).max(1) as u32);
        let best = (1..=most).map(split).min_by_key(|&s| (cost(s), s.splits))?;
        (best.splits >= 2 && cost(best) * 10 <= cost(split(1)) * 9).then_some(best)
    }

    /// k cut into about `wanted` ranges, each a multiple of the 16-wide k tile.
    fn ways(k: u32, wanted: u32) -> Self {
        let k_chunk = k.div_ceil(wanted.max(1)).div_ceil(16).max(1) * 16;
        Self {
            splits: k.div_ceil(k_chunk),
            k_chunk,
        }
    }
}

/// A product's kernel and, for `Big`, how it is split along k: what the rules pick ([`GemmPlan::rules`]) or
/// the tuner measured fastest among [`GemmPlan::candidates`] (`gpu::tune`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    pub kernel: GemmKernel,
    pub split: Option<SplitK>,
}

impl GemmPlan {
    /// `kernel`, split along k where it is `Big` and [`SplitK::for_shape`] splits.
    pub fn with_kernel(kernel: GemmKernel, m: u32, n: u32, k: u32, batch: u32) -> Self {
        let split = if kernel == GemmKernel::Big {
            SplitK::for_shape(m, n, k, batch)
        } else {
            None
        };
        Self { kernel, split }
    }

    /// The rules' plan: [`GemmKernel::for_shape`] and its split.
    pub fn rules(ctx: &GpuContext, m: u32, n: u32, k: u32, batch: u32) -> Self {
        Self::with_kernel(GemmKernel::for_shape(ctx, m, n, k, batch), m, n, k, batch)
    }

    /// What the tuner times for a shape: on GPUs `Tiled`, `Big` unsplit and, for a single product with a long
    /// k, `Big` split 2 to 32 ways (and the rules' split); on software adapters their large kernel (`Lanes` or
    /// `Regs`), `Regs` and `Direct`. Every candidate computes the same product with the same tested kernels.
    pub fn candidates(ctx: &GpuContext, m: u32, n: u32, k: u32, batch: u32) -> Vec<Self> {
        let plain = |kernel| Self {
            kernel,
            split: None,
        };
        let mut out = Vec::new();
        if GemmKernel::for_adapter(ctx) == GemmKernel::Big {
            out.push(plain(GemmKernel::Tiled));
            out.push(plain(GemmKernel::Big));
            if batch == 1 && k >= 2 * SPLIT_MIN_K {
                let rule = SplitK::for_shape(m, n, k, batch);
                for split in [2, 4, 8, 16, 32]
                    .map(|w| SplitK::ways(k, w))
                    .into_iter()
                    .chain(rule)
                {
                    let fits = split.splits as u64 * m as u64 * n as u64 <= SPLIT_SCRATCH_MAX;
                    let plan = Self {
                        kernel: GemmKernel::Big,
                        split: Some(split),
                    };
                    if split.splits >= 2 && fits && !out.contains(&plan) {
                        out.push(plan);
                    }
                }
            }
        } else {
            for kernel in [
                GemmKernel::for_adapter(ctx),
                GemmKernel::Regs,
                GemmKernel::Direct,
            ] {
                if !out.contains(&plain(kernel)) {
                    out.push(plain(kernel));
                }
            }
        }
        out
    }

    /// The plan's name in the tuning table: the entry point, and the split.
    pub fn name(&self) -> String {
        match self.split {
            None => self.kernel.entry_point().to_string(),
            Some(s) => format!(
                "{} split {} x {}",
                self.kernel.entry_point(),
                s.splits,
                s.k_chunk
            ),
        }
    }
}

/// The gemm kernels: `gemm` (64 x 64 tiles, 8 x 8 per thread) for GPUs' smaller products, `gemm_big` (128 x 128
/// tiles, 256 threads, optional split-K) for GPUs' large ones; on software adapters `gemm_lanes` (64 x 64 tiles
/// on one 8-lane subgroup, A shared by subgroup broadcasts; `shaders/matmul_lanes.wgsl`) where the device has
/// subgroups of 8, else `gemm_regs` (32 x 32 tiles, 8 x 8 per thread, no workgroup memory, no barriers), where
/// reads per multiply-add matter more than registers, and `gemm_direct` (32 x 32 tiles, 4 x 4 per thread) for
/// products too small for 8 x 8 blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    Tiled,
    Big,
    Direct,
    Regs,
    Lanes,
}

/// Every kernel, for tests and benchmarks that try each one (see [`GemmKernel::runs_on`]).
pub const ALL_GEMM_KERNELS: [GemmKernel; 5] = [
    GemmKernel::Tiled,
    GemmKernel::Big,
    GemmKernel::Direct,
    GemmKernel::Regs,
    GemmKernel::Lanes,
];

/// On a software adapter, one core's time for one workgroup of a kernel: a start (setting up the workgroup,
/// its accumulators and its stores, in ns) and nanoseconds per multiply-add of its tile (padding included).
/// Measured on llvmpipe (2 cores, 256-bit vectors): `gemm_lanes` 1 x 1 x 1 over 512 workgroups 1.8 ms (7 us
/// a workgroup per core), 1040 x 576 x 192 in about 3.5 ms with vec4 stores of C and k in pairs (0.06 ns per
/// multiply-add per core; 6 ms and 0.10 before them); `gemm_direct`
/// 12-13 GFLOP/s on tiny's linear layers (`BEITLAB_GEMM=... beitlab bench kernels
/// --preset tiny --batch 16`: about 0.33 ns); their small states start fast (not measured apart, taken as
/// 1 us). The one measured choice that depends on the starts: micro's batched 17 x 17 attention products
/// take `gemm_direct` (a step 17 against 20 ms with `gemm_lanes`), tiny's 65 x 65 ones `gemm_lanes`
/// (attention forward 9.9 against 13.5 ms).
/// `gemm_regs` (8 x 8 per thread) relative to `gemm_direct`: on adapters with 4-lane subgroups 1.5-1.8x fewer
/// ns per multiply-add (SwiftShader, mini b16: its 16 products of 784 x 64 81 -> 55 ms a step; llvmpipe on
/// 128-bit vectors, `LP_NATIVE_VECTOR_WIDTH=128`, tiny32 b16 with every product on one kernel: a step 9.2 s
/// with `gemm_direct`, 5.0 s with `gemm_regs`), on llvmpipe's 8 lanes 1.15x (a 784 x 256 x 64 product 7.7
/// against 6.7 GFLOP/s); its start taken as `gemm_direct`'s.
fn software_tile_ns(kernel: GemmKernel, eight_lanes: bool) -> (f64, f64) {
    match kernel {
        GemmKernel::Lanes => (7000.0, 0.06),
        GemmKernel::Regs if eight_lanes => (1000.0, 0.29),
        GemmKernel::Regs => (1000.0, 0.2),
        _ => (1000.0, 0.33),
    }
}

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

/// How much more a multiply-add costs in `gemm` (64 x 64) than in `gemm_big` on a GPU; measured on an H200 with
/// `BEITLAB_GEMM=tiled|big beitlab bench kernels`: 4096^3 1.51x, tiny's qkv and fc1 forward 1.51x and 1.56x, fc2 1.13x.
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
    /// The forced choice from `BEITLAB_GEMM=tiled|big|direct|regs|lanes`, if any.
    pub(crate) fn forced() -> Option<Self> {
        #[cfg(not(target_arch = "wasm32"))]
        match std::env::var("BEITLAB_GEMM").as_deref() {
            Ok("tiled") => return Some(Self::Tiled),
            Ok("big") => return Some(Self::Big),
            Ok("direct") => return Some(Self::Direct),
            Ok("regs") => return Some(Self::Regs),
            Ok("lanes") => return Some(Self::Lanes),
            _ => {}
        }
        None
    }

    /// Whether this kernel can run on `ctx`: `Lanes` needs subgroup operations with subgroups of exactly 8
    /// lanes (its workgroup is one subgroup) and [`crate::gpu::LANES_STORAGE_BUFFERS`] storage buffers per
    /// stage; the others run anywhere.
    pub fn runs_on(self, ctx: &GpuContext) -> bool {
        match self {
            Self::Lanes => {
                ctx.features.contains(wgpu::Features::SUBGROUP)
                    && ctx.adapter_info.subgroup_min_size == 8
                    && ctx.adapter_info.subgroup_max_size == 8
                    && ctx.limits.max_storage_buffers_per_shader_stage
                        >= crate::gpu::LANES_STORAGE_BUFFERS
            }
            _ => true,
        }
    }

    /// On CPU adapters (lavapipe, SwiftShader) `Lanes` where it runs, else `Regs`; `Big` elsewhere;
    /// `BEITLAB_GEMM=tiled|big|direct|regs|lanes` overrides (every product then takes that kernel; `lanes`
    /// falls back to `regs` on a device without 8-lane subgroups).
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if let Some(k) = Self::forced() {
            return if k.runs_on(ctx) { k } else { Self::Regs };
        }
        if ctx.adapter_info.device_type != wgpu::DeviceType::Cpu {
            Self::Big
        } else if Self::Lanes.runs_on(ctx) {
            Self::Lanes
        } else {
            Self::Regs
        }
    }

    /// The kernel for `batch` products of `m x n x k`: on CPU adapters whichever of `Lanes` (where it runs),
    /// `Regs` and `Direct` takes less time by a simple model: workgroups run a core each, in rounds of as many
    /// as there are cores, and each costs its start plus the part of its tile it computes (padding included: a 17 x 17
    /// attention product fills 2% of a 128-wide tile and 28% of a 32-wide one; `Lanes` skips rows past the
    /// edge in groups of 8 and columns in groups of 32) times k times the kernel's cost per multiply-add
    /// ([`software_tile_ns`]).
    ///
    /// On GPUs, `Big` or `Tiled` by `gpu_time`: whole rounds of resident workgroups times the cost of a tile;
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
        let eight_lanes = base == Self::Lanes;
        let time = |kernel: Self| {
            let [tiles_n, tiles_m] = kernel.tiles_for_batch(m, n, batch);
            let per_item = tiles_m as u64 * tiles_n as u64;
            let tiles = per_item * batch.max(1) as u64;
            // The area a tile computes on average: all of it, but for Lanes' skipped edge groups.
            let area = match kernel {
                Self::Lanes => {
                    let wide = lanes_wide_edge(m, n);
                    (m.div_ceil(8) * 8) as f64 * lanes_padded_cols(n, wide) as f64 / per_item as f64
                }
                _ => {
                    let (tn, tm) = kernel.tile_for(m, n);
                    (tm * tn) as f64
                }
            };
            let (start, per_fma) = software_tile_ns(kernel, eight_lanes);
            tiles.div_ceil(cores) as f64 * (start + area * k.max(1) as f64 * per_fma)
        };
        [Self::Regs, Self::Direct]
            .into_iter()
            .fold(base, |best, other| {
                if time(other) < time(best) {
                    other
                } else {
                    best
                }
            })
    }

    /// The shader module the kernel's entry point is in.
    pub fn shader(self) -> &'static str {
        match self {
            Self::Lanes => "matmul_lanes",
            _ => "matmul",
        }
    }

    pub fn entry_point(self) -> &'static str {
        match self {
            Self::Tiled => "gemm",
            Self::Big => "gemm_big",
            Self::Direct => "gemm_direct",
            Self::Regs => "gemm_regs",
            Self::Lanes => "gemm_lanes",
        }
    }

    /// Rows and columns of C per workgroup (the largest tile for `Direct` and `Regs`).
    pub fn tile(self) -> u32 {
        match self {
            Self::Tiled | Self::Lanes => 64,
            Self::Big => 128,
            Self::Direct | Self::Regs => 32,
        }
    }

    /// Workgroups along the columns and the rows of C for an `m x n` product: one per tile of
    /// [`Self::tile_for`], but for `Lanes` with a wide edge ([`lanes_wide_edge`]), whose last tile takes an
    /// edge of 8 or fewer with it.
    pub fn tiles(self, m: u32, n: u32) -> [u32; 2] {
        match self {
            Self::Lanes => {
                let wide = lanes_wide_edge(m, n);
                [lanes_tiles(n, wide), lanes_tiles(m, wide)]
            }
            other => {
                let (tn, tm) = other.tile_for(m, n);
                [n.div_ceil(tn), m.div_ceil(tm)]
            }
        }
    }

    /// [`Self::tiles`] for `batch` products: `Lanes` with the shorter row tiles of [`lanes_tile_rows`].
    pub fn tiles_for_batch(self, m: u32, n: u32, batch: u32) -> [u32; 2] {
        match self {
            Self::Lanes if !lanes_wide_edge(m, n) => {
                let [tiles_n, _] = self.tiles(m, n);
                [tiles_n, m.div_ceil(lanes_tile_rows(m, n, batch)).max(1)]
            }
            other => other.tiles(m, n),
        }
    }

    /// (columns, rows) of C per workgroup for an `m x n` product: `Direct` and `Regs` shrink their 32 x 32 tile
    /// to the matrix in steps of 4 and 8 (their threads' 4 x 4 and 8 x 8 blocks).
    pub fn tile_for(self, m: u32, n: u32) -> (u32, u32) {
        match self {
            Self::Direct => {
                let fit = |x: u32| x.div_ceil(4).clamp(1, 8) * 4;
                (fit(n), fit(m))
            }
            Self::Regs => {
                let fit = |x: u32| x.div_ceil(8).clamp(1, 4) * 8;
                (fit(n), fit(m))
            }
            other => (other.tile(), other.tile()),
        }
    }
}

/// Whether a `gemm_lanes` product takes the wide-edge variant (`WIDE_EDGE` in `shaders/matmul_lanes.wgsl`):
/// where a side of C passes a multiple of 64 by 1 to 8, as BEiT's token count does (64 patches and the class
/// token: 65; 196 and it: 197), the last tile on that side is up to 72 wide instead of a tile of its own that
/// reads as much of the other operand as a full one for a sliver of work. Measured on llvmpipe (48 products
/// each): 65 x 65 x 64 in 1.2 ms against 2.7-3.3 with four tiles, 65 x 64 x 65 1.2 against 1.5. The variant
/// keeps more state per workgroup (a ninth row group, a ninth column), which makes its full tiles slower, so
/// products without such an edge keep the plain kernel.
pub fn lanes_wide_edge(m: u32, n: u32) -> bool {
    let small_edge = |x: u32| x > 64 && (1..=8).contains(&(x % 64));
    small_edge(m) || small_edge(n)
}

/// Rows of C per `gemm_lanes` workgroup (`TILE_ROWS` in `shaders/matmul_lanes.wgsl`): 64, or 32 or 16 where
/// `batch` products have fewer 64-row tiles than the CPU has cores and the shorter tile gives more of them, so
/// a small product with a long k (a small model's weight gradient: 64 x 32 with k = 544) runs on every core
/// instead of one. Each workgroup still reads all of its columns of B, so this is only worth it below one tile
/// per core. The wide-edge variant keeps 64.
pub fn lanes_tile_rows(m: u32, n: u32, batch: u32) -> u32 {
    if lanes_wide_edge(m, n) {
        return 64;
    }
    let cores = cpu_cores();
    let tiles = |rows: u32| m.div_ceil(rows) as u64 * n.div_ceil(64) as u64 * batch.max(1) as u64;
    let mut rows = 64;
    for shorter in [32, 16] {
        if tiles(rows) < cores && tiles(shorter) > tiles(rows) {
            rows = shorter;
        }
    }
    rows
}

/// `gemm_lanes` tiles along a side of `x`: 64 each, the last up to 72 in the wide-edge variant.
fn lanes_tiles(x: u32, wide: bool) -> u32 {
    if wide {
        x.saturating_sub(8).div_ceil(64).max(1)
    } else {
        x.div_ceil(64).max(1)
    }
}

/// Columns of C a `gemm_lanes` product computes, padding included: whole tiles of 64, the last one 32 where
/// its second half is past the edge, 72 where it takes a ninth column.
fn lanes_padded_cols(n: u32, wide: bool) -> u32 {
    let tiles = lanes_tiles(n, wide);
    let last = n - 64 * (tiles - 1);
    let last_padded = match last {
        0..=32 => 32,
        33..=64 => 64,
        _ => 72,
    };
    64 * (tiles - 1) + last_padded
}
