// matmul_lanes.wgsl: gemm_lanes, the strided batched product C = alpha · A · B (+ bias) (+ C) of matmul.wgsl for
// software adapters whose subgroups are 8 lanes wide (llvmpipe on 256-bit vectors). Same parameters and
// bindings 0-4 as matmul.wgsl, and binding 7, C again as vec4s; a separate module because it needs the
// SUBGROUP feature. With ROW_SUMS (binding 8) it also adds each row of A's sum over k into a vector; with
// GELU_EPILOGUE (bindings 8 and 9) it writes an MLP's activation with its pre-activation, or multiplies the
// activation's gradient by GELU's slope (GELU's functions from common/gelu.wgsl, appended by the registry).
//
// Shapes: A (M, K), B (K, N), C (M, N) per batch item, addressed through strides; bias (N).
//
// Why this shape of kernel: a software adapter runs the 8 invocations of a subgroup as the lanes of one SIMD
// vector, and every storage or workgroup-memory read or write becomes a loop over the lanes (an address, a
// bounds check and an insert per lane per access), while a multiply-add on the 8 lanes is one vector
// instruction and subgroupBroadcast with a constant lane is a single extract and splat. So each workgroup is
// one subgroup computing a 64 x 64 tile of C with no workgroup memory and no barriers: per k, lane l reads the
// 8 elements A[m0 + l + 8r, k] (r = 0..7) and its 8 columns of B[k, :]; the A values reach all lanes through
// broadcasts, and each lane adds 64 rows x its 8 columns. That is 16 reads for 512 multiply-adds per lane
// (gemm_wide, the 128 x 128 kernel it replaced, since removed: 32 workgroup-memory reads and more for its tile
// loads per 256). The accumulators do not fit in registers and every write to them inside the k loop is
// masked, so the full-width loop takes k two at a time
// (one accumulator write per two multiply-adds), and C is written as vec4s where its layout allows (C_VEC4).
// Measured on llvmpipe, 2 cores: a 1040 x 576 x 192 product 5.3-5.9 ms before C_VEC4 and the k pairs,
// 3.3-3.6 ms (64-69 GFLOP/s) with them; tiny's linear layers 28-48 GFLOP/s against 12-16 with gemm_wide.
// Reading A and B as vec4s in steps of four k where their layouts allow (A_VEC4, B_VEC4; a storage read costs
// about the same for 1 or 4 values) took tiny's linear layers from 39-47 to 52-66 GFLOP/s (`bench kernels
// --preset tiny --batch 16`) and a tiny32 b16 training step from 1.17 to 0.97-1.00 s.
//
// Lane l owns columns n0 + l + 8j (or, with C_VEC4, n0 + 8l + j): j = 0..3 in acc[2i], j = 4..7 in
// acc[2i + 1] for row i of a group of 8.
// Rows in groups of 8 and, with interleaved columns, the second group of 32 columns are skipped (a branch the
// whole subgroup takes alike) where the tile passes the edge of C. Reads past the edge are clamped to the last
// row / column and never stored. With WIDE_EDGE the last row tile may have up to 8 more rows and the last column
// tile up to 8 more columns, computed after the k loop (store_edge_row_pass, store_edge_column), so up to 72 x 72
// in all and a side that passes a multiple of 64 by 1 to 8 (BEiT's 65 and 197 tokens) costs no tile of its own:
// a 65 x 65 attention product is one workgroup, not four.
// A tile wholly inside C is stored without a check per element (see the end of gemm_lanes): with the checks, a
// 65 x 65 x 64 product whose C rows are 65 long (no vec4 stores) took 5.1 ms for 48 tiles single-threaded, and
// 2.2 ms with the edge rows' pass and without them (a 64 x 64 x 64 product with vec4 stores: 1.3 ms).

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    batch_inner: u32,
    // bit 0: add bias[n]; bit 1: accumulate into C, read here as ACCUMULATE (the vec4 bits of matmul.wgsl are
    // ignored here).
    flags: u32,
    alpha: f32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
    a_rs: u32,
    a_cs: u32,
    a_bo: u32,
    a_bi: u32,
    b_rs: u32,
    b_cs: u32,
    b_bo: u32,
    b_bi: u32,
    c_rs: u32,
    c_cs: u32,
    c_bo: u32,
    c_bi: u32,
    k_chunk: u32,
    splits: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;   // (batch, M, N) through c strides
@group(0) @binding(1) var<storage, read> a: array<f32>;         // (batch, M, K) through a strides
@group(0) @binding(2) var<storage, read> b: array<f32>;         // (batch, K, N) through b strides
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // (N)
@group(0) @binding(4) var<uniform> p: GemmParams;
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;   // the same buffer as a, 4 at a time (A_VEC4)
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;   // the same buffer as b, 4 at a time (B_VEC4)
@group(0) @binding(7) var<storage, read_write> c4: array<vec4<f32>>; // the same buffer as c, 4 at a time (C_VEC4)
// ROW_SUMS: (M) += Σ_k A[m, k]. GELU_EPILOGUE: laid out as C, the activation written or the pre-activation read.
@group(0) @binding(8) var<storage, read_write> aux: array<f32>;
@group(0) @binding(9) var<storage, read_write> aux4: array<vec4<f32>>; // the same buffer as aux, 4 at a time

// Pipeline constant: the wide-edge variant (its extra state makes full tiles slower, so the launcher asks
// for it only where a side of C has such an edge; `GemmKernel::tiles` makes the grid to match).
override WIDE_EDGE: bool = false;

// Pipeline constant: C is added to (flags bit 1) as a constant, so a product that writes C reads none of it.
// A condition on the parameters inside the store loops is not a branch on llvmpipe but a mask: the read of C
// ran, masked off, in every product (a 64 x 64 x 64 product with a row stride of 65 took 4.2 ms for 48
// tiles with the read, 3.1 without).
override ACCUMULATE: bool = false;

// Pipeline constant: C is written four elements at a time (the launcher's `c_vec4`: C contiguous along n, N
// and every offset multiples of 4). Lane l then owns the adjacent columns 8l..8l+7 and stores each row of them
// as two vec4s: a store is a loop over the lanes on llvmpipe, and four elements per iteration instead of one
// made a 1040 x 576 x 192 product 20-25% faster (its 64 x 64 x 4 tiles 3x faster). Only c4 is touched then,
// only c otherwise.
override C_VEC4: bool = false;

// Pipeline constant: rows of C per workgroup (64, or 32 / 16 where a product has fewer 64-row tiles than the CPU
// has cores, as the weight gradients of a small model: a 64 x 32 dW with k = 544 on one core left the other idle;
// `lanes_tile_rows` picks it). Never with WIDE_EDGE.
override TILE_ROWS: u32 = 64u;

// Pipeline constant: also add each row's sum of A over k into `aux` (the workgroups of the first column
// tile store them). A linear layer's weight gradient dW = dYᵀ·X then gives its bias gradient Σ_rows dY on the
// way, from the values of A the k loop reads anyway, instead of a column-sum launch after it. One product at a
// time (batch 1).
override ROW_SUMS: bool = false;

// Pipeline constant: the GELU epilogue, as bits 6-7 of matmul.wgsl's flags (`ops::matmul::Epilogue`): 1 also
// writes gelu of each stored element of C to `aux` at the same index (an MLP's activation with its
// pre-activation, in the same launch); 2 multiplies each value of C by the slope gelu'(aux) at its index (the
// pre-activation's gradient from the activation's; never on an accumulating product). Never with ROW_SUMS.
override GELU_EPILOGUE: u32 = 0u;

// Pipeline constants: how A and B are read in the k loop's steps of four (`vec4_mode` of ops/matmul.rs).
// 0: one element per read. A_VEC4 1: A contiguous along k, each lane reads its row's 4 values at k..k+3 in
// one vec4. A_VEC4 2: A contiguous along m, lane 2j + h reads rows 4h..4h+3 of a group of 8 at k + j, so one
// vec4 read per lane again covers the group's 8 rows x 4 k. B_VEC4 1: B contiguous along k, each of the
// lane's 8 columns at k..k+3 in one vec4. B_VEC4 2 (only with C_VEC4, whose lane columns are adjacent): B
// contiguous along n, the lane's 8 columns at one k in two vec4s. On llvmpipe a storage read is a loop over the
// 8 lanes whatever its width, so a vec4 read moves 4 values for about the price of one, and these steps make
// 4 times fewer loop trips for the same values.
override A_VEC4: u32 = 0u;
override B_VEC4: u32 = 0u;

// `v`, added to the row sum `*sum` with ROW_SUMS.
fn summed(sum: ptr<function, f32>, v: f32) -> f32 {
    if (ROW_SUMS) {
        *sum += v;
    }
    return v;
}

fn store_row_sum(row: u32, v: f32) {
    if (row < p.m) {
        aux[row] += v;
    }
}

alias Rows8 = array<vec4<f32>, 16>; // 8 rows x the lane's 8 columns

// Rows of one group of 8, all 8 columns of the lane: `a_lane` is lane l's A value of row l of the group.
fn add_rows8(a_lane: f32, b_lo: vec4<f32>, b_hi: vec4<f32>, acc: ptr<function, Rows8>) {
    let s0 = subgroupBroadcast(a_lane, 0u);
    let s1 = subgroupBroadcast(a_lane, 1u);
    let s2 = subgroupBroadcast(a_lane, 2u);
    let s3 = subgroupBroadcast(a_lane, 3u);
    let s4 = subgroupBroadcast(a_lane, 4u);
    let s5 = subgroupBroadcast(a_lane, 5u);
    let s6 = subgroupBroadcast(a_lane, 6u);
    let s7 = subgroupBroadcast(a_lane, 7u);
    (*acc)[0] += s0 * b_lo; (*acc)[1] += s0 * b_hi;
    (*acc)[2] += s1 * b_lo; (*acc)[3] += s1 * b_hi;
    (*acc)[4] += s2 * b_lo; (*acc)[5] += s2 * b_hi;
    (*acc)[6] += s3 * b_lo; (*acc)[7] += s3 * b_hi;
    (*acc)[8] += s4 * b_lo; (*acc)[9] += s4 * b_hi;
    (*acc)[10] += s5 * b_lo; (*acc)[11] += s5 * b_hi;
    (*acc)[12] += s6 * b_lo; (*acc)[13] += s6 * b_hi;
    (*acc)[14] += s7 * b_lo; (*acc)[15] += s7 * b_hi;
}

// The 8 rows of a group as two vec4s (rows 0-3, 4-7) in every lane, from lane l's value of row l.
fn spread8(a_lane: f32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(
        vec4<f32>(subgroupBroadcast(a_lane, 0u), subgroupBroadcast(a_lane, 1u), subgroupBroadcast(a_lane, 2u),
                  subgroupBroadcast(a_lane, 3u)),
        vec4<f32>(subgroupBroadcast(a_lane, 4u), subgroupBroadcast(a_lane, 5u), subgroupBroadcast(a_lane, 6u),
                  subgroupBroadcast(a_lane, 7u)));
}

// add_rows8 for two k at once (`a0`, `b_lo0`, `b_hi0` at k; `a1`, `b_lo1`, `b_hi1` at k + 1): each
// accumulator is read and written once for both. On llvmpipe the accumulators live in memory and every write
// inside the k loop is a masked read-modify-write, so this made a 1040 x 576 x 192 product 25% faster; four k
// at a time ran out of registers and was 40% slower than two.
fn add_rows8_k2(a0: f32, a1: f32, b_lo0: vec4<f32>, b_hi0: vec4<f32>, b_lo1: vec4<f32>, b_hi1: vec4<f32>,
                acc: ptr<function, Rows8>) {
    let r0 = spread8(a0);
    let r1 = spread8(a1);
    let x0 = r0[0];
    let y0 = r0[1];
    let x1 = r1[0];
    let y1 = r1[1];
    (*acc)[0] += x0.x * b_lo0 + x1.x * b_lo1; (*acc)[1] += x0.x * b_hi0 + x1.x * b_hi1;
    (*acc)[2] += x0.y * b_lo0 + x1.y * b_lo1; (*acc)[3] += x0.y * b_hi0 + x1.y * b_hi1;
    (*acc)[4] += x0.z * b_lo0 + x1.z * b_lo1; (*acc)[5] += x0.z * b_hi0 + x1.z * b_hi1;
    (*acc)[6] += x0.w * b_lo0 + x1.w * b_lo1; (*acc)[7] += x0.w * b_hi0 + x1.w * b_hi1;
    (*acc)[8] += y0.x * b_lo0 + y1.x * b_lo1; (*acc)[9] += y0.x * b_hi0 + y1.x * b_hi1;
    (*acc)[10] += y0.y * b_lo0 + y1.y * b_lo1; (*acc)[11] += y0.y * b_hi0 + y1.y * b_hi1;
    (*acc)[12] += y0.z * b_lo0 + y1.z * b_lo1; (*acc)[13] += y0.z * b_hi0 + y1.z * b_hi1;
    (*acc)[14] += y0.w * b_lo0 + y1.w * b_lo1; (*acc)[15] += y0.w * b_hi0 + y1.w * b_hi1;
}

// The same for a tile whose second 32 columns are past the edge: the low 4 columns of the lane only.
fn add_rows8_lo(a_lane: f32, b_lo: vec4<f32>, acc: ptr<function, Rows8>) {
    (*acc)[0] += subgroupBroadcast(a_lane, 0u) * b_lo;
    (*acc)[2] += subgroupBroadcast(a_lane, 1u) * b_lo;
    (*acc)[4] += subgroupBroadcast(a_lane, 2u) * b_lo;
    (*acc)[6] += subgroupBroadcast(a_lane, 3u) * b_lo;
    (*acc)[8] += subgroupBroadcast(a_lane, 4u) * b_lo;
    (*acc)[10] += subgroupBroadcast(a_lane, 5u) * b_lo;
    (*acc)[12] += subgroupBroadcast(a_lane, 6u) * b_lo;
    (*acc)[14] += subgroupBroadcast(a_lane, 7u) * b_lo;
}

// A's values of a group of 8 rows at k..k+3 as the lane reads them (A_VEC4): its row's 4 values (0, 1) or
// rows 4h..4h+3 at k + j for lane 2j + h (2). `aq`: the lane's address of them at k = 0.
fn a_quad(aq: u32, k: u32) -> vec4<f32> {
    if (A_VEC4 == 0u) {
        return a_along_k4(aq + k * p.a_cs);
    }
    return a4[(aq + k * p.a_cs) / 4u];
}

// A at element `i` and the next three k, one read each.
fn a_along_k4(i: u32) -> vec4<f32> {
    return vec4<f32>(a[i], a[i + p.a_cs], a[i + 2u * p.a_cs], a[i + 3u * p.a_cs]);
}

// The 8 rows of a group at k..k+3 in every lane, from a_quad's `va`: [rows 0-3, rows 4-7] at k, at k + 1,
// k + 2, k + 3, by broadcasts of whole vec4s.
fn spread8_k4(va: vec4<f32>) -> array<vec4<f32>, 8> {
    if (A_VEC4 == 2u) {
        return array<vec4<f32>, 8>(
            subgroupBroadcast(va, 0u), subgroupBroadcast(va, 1u), subgroupBroadcast(va, 2u),
            subgroupBroadcast(va, 3u), subgroupBroadcast(va, 4u), subgroupBroadcast(va, 5u),
            subgroupBroadcast(va, 6u), subgroupBroadcast(va, 7u));
    }
    let r0 = subgroupBroadcast(va, 0u);
    let r1 = subgroupBroadcast(va, 1u);
    let r2 = subgroupBroadcast(va, 2u);
    let r3 = subgroupBroadcast(va, 3u);
    let r4 = subgroupBroadcast(va, 4u);
    let r5 = subgroupBroadcast(va, 5u);
    let r6 = subgroupBroadcast(va, 6u);
    let r7 = subgroupBroadcast(va, 7u);
    return array<vec4<f32>, 8>(
        vec4<f32>(r0.x, r1.x, r2.x, r3.x), vec4<f32>(r4.x, r5.x, r6.x, r7.x),
        vec4<f32>(r0.y, r1.y, r2.y, r3.y), vec4<f32>(r4.y, r5.y, r6.y, r7.y),
        vec4<f32>(r0.z, r1.z, r2.z, r3.z), vec4<f32>(r4.z, r5.z, r6.z, r7.z),
        vec4<f32>(r0.w, r1.w, r2.w, r3.w), vec4<f32>(r4.w, r5.w, r6.w, r7.w));
}

// Four k of one group of 8 rows: `va` from a_quad, B's lane columns at k + j in `b_lo{j}`, `b_hi{j}`; each
// accumulator written once per four k (writing it twice, once per pair, was 3-7% slower on tiny's linear
// layers, single-threaded `bench kernels`; with A read one value at a time, four k per write was 40% slower).
fn add_rows8_k4(va: vec4<f32>, b_lo0: vec4<f32>, b_hi0: vec4<f32>, b_lo1: vec4<f32>, b_hi1: vec4<f32>,
                b_lo2: vec4<f32>, b_hi2: vec4<f32>, b_lo3: vec4<f32>, b_hi3: vec4<f32>,
                acc: ptr<function, Rows8>) {
    let r = spread8_k4(va);
    (*acc)[0] += r[0].x * b_lo0 + r[2].x * b_lo1 + r[4].x * b_lo2 + r[6].x * b_lo3;
    (*acc)[1] += r[0].x * b_hi0 + r[2].x * b_hi1 + r[4].x * b_hi2 + r[6].x * b_hi3;
    (*acc)[2] += r[0].y * b_lo0 + r[2].y * b_lo1 + r[4].y * b_lo2 + r[6].y * b_lo3;
    (*acc)[3] += r[0].y * b_hi0 + r[2].y * b_hi1 + r[4].y * b_hi2 + r[6].y * b_hi3;
    (*acc)[4] += r[0].z * b_lo0 + r[2].z * b_lo1 + r[4].z * b_lo2 + r[6].z * b_lo3;
    (*acc)[5] += r[0].z * b_hi0 + r[2].z * b_hi1 + r[4].z * b_hi2 + r[6].z * b_hi3;
    (*acc)[6] += r[0].w * b_lo0 + r[2].w * b_lo1 + r[4].w * b_lo2 + r[6].w * b_lo3;
    (*acc)[7] += r[0].w * b_hi0 + r[2].w * b_hi1 + r[4].w * b_hi2 + r[6].w * b_hi3;
    (*acc)[8] += r[1].x * b_lo0 + r[3].x * b_lo1 + r[5].x * b_lo2 + r[7].x * b_lo3;
    (*acc)[9] += r[1].x * b_hi0 + r[3].x * b_hi1 + r[5].x * b_hi2 + r[7].x * b_hi3;
    (*acc)[10] += r[1].y * b_lo0 + r[3].y * b_lo1 + r[5].y * b_lo2 + r[7].y * b_lo3;
    (*acc)[11] += r[1].y * b_hi0 + r[3].y * b_hi1 + r[5].y * b_hi2 + r[7].y * b_hi3;
    (*acc)[12] += r[1].z * b_lo0 + r[3].z * b_lo1 + r[5].z * b_lo2 + r[7].z * b_lo3;
    (*acc)[13] += r[1].z * b_hi0 + r[3].z * b_hi1 + r[5].z * b_hi2 + r[7].z * b_hi3;
    (*acc)[14] += r[1].w * b_lo0 + r[3].w * b_lo1 + r[5].w * b_lo2 + r[7].w * b_lo3;
    (*acc)[15] += r[1].w * b_hi0 + r[3].w * b_hi1 + r[5].w * b_hi2 + r[7].w * b_hi3;
}

// Eight k of one group (a_quad's `va0` at k, `va1` at k + 4; b_quad's `bq0`, `bq1`) in one accumulator write:
// tiny's linear layers 8-15% faster than a write per four k (single-threaded `bench kernels --preset tiny
// --batch 16`, three rounds); sixteen k per write measured no faster than eight.
fn add_rows8_k8(va0: vec4<f32>, va1: vec4<f32>, bq0: array<vec4<f32>, 8>, bq1: array<vec4<f32>, 8>,
                acc: ptr<function, Rows8>) {
    let r = spread8_k4(va0);
    let t = spread8_k4(va1);
    (*acc)[0] += r[0].x * bq0[0] + r[2].x * bq0[2] + r[4].x * bq0[4] + r[6].x * bq0[6] + t[0].x * bq1[0] + t[2].x * bq1[2] + t[4].x * bq1[4] + t[6].x * bq1[6];
    (*acc)[1] += r[0].x * bq0[1] + r[2].x * bq0[3] + r[4].x * bq0[5] + r[6].x * bq0[7] + t[0].x * bq1[1] + t[2].x * bq1[3] + t[4].x * bq1[5] + t[6].x * bq1[7];
    (*acc)[2] += r[0].y * bq0[0] + r[2].y * bq0[2] + r[4].y * bq0[4] + r[6].y * bq0[6] + t[0].y * bq1[0] + t[2].y * bq1[2] + t[4].y * bq1[4] + t[6].y * bq1[6];
    (*acc)[3] += r[0].y * bq0[1] + r[2].y * bq0[3] + r[4].y * bq0[5] + r[6].y * bq0[7] + t[0].y * bq1[1] + t[2].y * bq1[3] + t[4].y * bq1[5] + t[6].y * bq1[7];
    (*acc)[4] += r[0].z * bq0[0] + r[2].z * bq0[2] + r[4].z * bq0[4] + r[6].z * bq0[6] + t[0].z * bq1[0] + t[2].z * bq1[2] + t[4].z * bq1[4] + t[6].z * bq1[6];
    (*acc)[5] += r[0].z * bq0[1] + r[2].z * bq0[3] + r[4].z * bq0[5] + r[6].z * bq0[7] + t[0].z * bq1[1] + t[2].z * bq1[3] + t[4].z * bq1[5] + t[6].z * bq1[7];
    (*acc)[6] += r[0].w * bq0[0] + r[2].w * bq0[2] + r[4].w * bq0[4] + r[6].w * bq0[6] + t[0].w * bq1[0] + t[2].w * bq1[2] + t[4].w * bq1[4] + t[6].w * bq1[6];
    (*acc)[7] += r[0].w * bq0[1] + r[2].w * bq0[3] + r[4].w * bq0[5] + r[6].w * bq0[7] + t[0].w * bq1[1] + t[2].w * bq1[3] + t[4].w * bq1[5] + t[6].w * bq1[7];
    (*acc)[8] += r[1].x * bq0[0] + r[3].x * bq0[2] + r[5].x * bq0[4] + r[7].x * bq0[6] + t[1].x * bq1[0] + t[3].x * bq1[2] + t[5].x * bq1[4] + t[7].x * bq1[6];
    (*acc)[9] += r[1].x * bq0[1] + r[3].x * bq0[3] + r[5].x * bq0[5] + r[7].x * bq0[7] + t[1].x * bq1[1] + t[3].x * bq1[3] + t[5].x * bq1[5] + t[7].x * bq1[7];
    (*acc)[10] += r[1].y * bq0[0] + r[3].y * bq0[2] + r[5].y * bq0[4] + r[7].y * bq0[6] + t[1].y * bq1[0] + t[3].y * bq1[2] + t[5].y * bq1[4] + t[7].y * bq1[6];
    (*acc)[11] += r[1].y * bq0[1] + r[3].y * bq0[3] + r[5].y * bq0[5] + r[7].y * bq0[7] + t[1].y * bq1[1] + t[3].y * bq1[3] + t[5].y * bq1[5] + t[7].y * bq1[7];
    (*acc)[12] += r[1].z * bq0[0] + r[3].z * bq0[2] + r[5].z * bq0[4] + r[7].z * bq0[6] + t[1].z * bq1[0] + t[3].z * bq1[2] + t[5].z * bq1[4] + t[7].z * bq1[6];
    (*acc)[13] += r[1].z * bq0[1] + r[3].z * bq0[3] + r[5].z * bq0[5] + r[7].z * bq0[7] + t[1].z * bq1[1] + t[3].z * bq1[3] + t[5].z * bq1[5] + t[7].z * bq1[7];
    (*acc)[14] += r[1].w * bq0[0] + r[3].w * bq0[2] + r[5].w * bq0[4] + r[7].w * bq0[6] + t[1].w * bq1[0] + t[3].w * bq1[2] + t[5].w * bq1[4] + t[7].w * bq1[6];
    (*acc)[15] += r[1].w * bq0[1] + r[3].w * bq0[3] + r[5].w * bq0[5] + r[7].w * bq0[7] + t[1].w * bq1[1] + t[3].w * bq1[3] + t[5].w * bq1[5] + t[7].w * bq1[7];
}

// `va` added into the group's running row sums `*sums` (ROW_SUMS), in a_quad's layout.
fn summed4(sums: ptr<function, vec4<f32>>, va: vec4<f32>) -> vec4<f32> {
    if (ROW_SUMS) {
        *sums += va;
    }
    return va;
}

// The lane's row's sum from the group's quad sums `sums` (each lane's, in a_quad's layout).
fn quad_row_sum(sums: vec4<f32>, lane: u32) -> f32 {
    if (A_VEC4 == 2u) {
        let lo = subgroupBroadcast(sums, 0u) + subgroupBroadcast(sums, 2u) + subgroupBroadcast(sums, 4u)
            + subgroupBroadcast(sums, 6u);
        let hi = subgroupBroadcast(sums, 1u) + subgroupBroadcast(sums, 3u) + subgroupBroadcast(sums, 5u)
            + subgroupBroadcast(sums, 7u);
        return select(hi, lo, lane < 4u)[lane % 4u];
    }
    return sums.x + sums.y + sums.z + sums.w;
}

// B's values at k..k+3 for the lane's 8 columns, read as B_VEC4 says: [lo, hi] at k, at k + 1, k + 2, k + 3.
// `bc0`..`bc7`: the columns' element addresses at k = 0; `bq_lo`, `bq_hi`, `bq_rs`: the vec4 indices of the
// adjacent columns at k = 0 and B's row stride in vec4s (B_VEC4 2).
fn b_quad(k: u32, bc0: u32, bc1: u32, bc2: u32, bc3: u32, bc4: u32, bc5: u32, bc6: u32, bc7: u32, bq_lo: u32,
          bq_hi: u32, bq_rs: u32) -> array<vec4<f32>, 8> {
    if (B_VEC4 == 1u) {
        let kq = k / 4u;
        let c0 = b4[bc0 / 4u + kq];
        let c1 = b4[bc1 / 4u + kq];
        let c2 = b4[bc2 / 4u + kq];
        let c3 = b4[bc3 / 4u + kq];
        let c4 = b4[bc4 / 4u + kq];
        let c5 = b4[bc5 / 4u + kq];
        let c6 = b4[bc6 / 4u + kq];
        let c7 = b4[bc7 / 4u + kq];
        return array<vec4<f32>, 8>(
            vec4<f32>(c0.x, c1.x, c2.x, c3.x), vec4<f32>(c4.x, c5.x, c6.x, c7.x),
            vec4<f32>(c0.y, c1.y, c2.y, c3.y), vec4<f32>(c4.y, c5.y, c6.y, c7.y),
            vec4<f32>(c0.z, c1.z, c2.z, c3.z), vec4<f32>(c4.z, c5.z, c6.z, c7.z),
            vec4<f32>(c0.w, c1.w, c2.w, c3.w), vec4<f32>(c4.w, c5.w, c6.w, c7.w));
    }
    if (B_VEC4 == 2u) {
        let r = k * bq_rs;
        return array<vec4<f32>, 8>(
            b4[bq_lo + r], b4[bq_hi + r], b4[bq_lo + r + bq_rs], b4[bq_hi + r + bq_rs],
            b4[bq_lo + r + 2u * bq_rs], b4[bq_hi + r + 2u * bq_rs], b4[bq_lo + r + 3u * bq_rs],
            b4[bq_hi + r + 3u * bq_rs]);
    }
    let kb0 = k * p.b_rs;
    let kb1 = kb0 + p.b_rs;
    let kb2 = kb1 + p.b_rs;
    let kb3 = kb2 + p.b_rs;
    return array<vec4<f32>, 8>(
        vec4<f32>(b[bc0 + kb0], b[bc1 + kb0], b[bc2 + kb0], b[bc3 + kb0]),
        vec4<f32>(b[bc4 + kb0], b[bc5 + kb0], b[bc6 + kb0], b[bc7 + kb0]),
        vec4<f32>(b[bc0 + kb1], b[bc1 + kb1], b[bc2 + kb1], b[bc3 + kb1]),
        vec4<f32>(b[bc4 + kb1], b[bc5 + kb1], b[bc6 + kb1], b[bc7 + kb1]),
        vec4<f32>(b[bc0 + kb2], b[bc1 + kb2], b[bc2 + kb2], b[bc3 + kb2]),
        vec4<f32>(b[bc4 + kb2], b[bc5 + kb2], b[bc6 + kb2], b[bc7 + kb2]),
        vec4<f32>(b[bc0 + kb3], b[bc1 + kb3], b[bc2 + kb3], b[bc3 + kb3]),
        vec4<f32>(b[bc4 + kb3], b[bc5 + kb3], b[bc6 + kb3], b[bc7 + kb3]));
}

// Row `ar`'s (the lane's element address of A at k = 0) values at k..k+3: a_quad's read where the lane's
// quad is its own row's (A_VEC4 0 or 1), else four reads.
fn a_row_quad(ar: u32, k: u32) -> vec4<f32> {
    if (A_VEC4 == 2u) {
        return a_along_k4(ar + k * p.a_cs);
    }
    return a_quad(ar, k);
}

// Column `bc`'s (its element address of B at k = 0) values at k..k+3, the same in every lane: one vec4
// where B is contiguous along k (B_VEC4 1), else four reads.
fn b_col_quad(bc: u32, k: u32) -> vec4<f32> {
    if (B_VEC4 == 1u) {
        return b4[(bc + k) / 4u];
    }
    let i = bc + k * p.b_rs;
    return vec4<f32>(b[i], b[i + p.b_rs], b[i + 2u * p.b_rs], b[i + 3u * p.b_rs]);
}

// A tile's column `col` past its first 64 (WIDE_EDGE: the last column tile of a side 65-72 past its start),
// written for the tile's rows as dot products over k: lane l takes rows m0 + l + 8g (g < `groups`, lane
// addresses `ar0`..`ar8`) with B's column read alike by every lane. Before, such a column was a ninth
// accumulator per lane and row inside the k loop, whose extra state made that loop slower whichever way it
// stepped k; with this pass and k pairs in the loop, tiny32's attention products (65 tokens) take 17% less
// time (a single-threaded `bench train --profile-grids` of a step, 304 -> 251 ms).
fn store_edge_column(col: u32, m0: u32, lane: u32, groups: u32, b_base: u32, c_base: u32, ar0: u32, ar1: u32,
                     ar2: u32, ar3: u32, ar4: u32, ar5: u32, ar6: u32, ar7: u32, ar8: u32) {
    let bc = b_base + col * p.b_cs;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    var s4 = vec4<f32>(0.0);
    var s5 = vec4<f32>(0.0);
    var s6 = vec4<f32>(0.0);
    var s7 = vec4<f32>(0.0);
    var s8 = vec4<f32>(0.0);
    let k_quads = p.k & ~3u;
    for (var k = 0u; k < k_quads; k += 4u) {
        let vb = b_col_quad(bc, k);
        s0 += a_row_quad(ar0, k) * vb;
        if (groups > 1u) { s1 += a_row_quad(ar1, k) * vb; }
        if (groups > 2u) { s2 += a_row_quad(ar2, k) * vb; }
        if (groups > 3u) { s3 += a_row_quad(ar3, k) * vb; }
        if (groups > 4u) { s4 += a_row_quad(ar4, k) * vb; }
        if (groups > 5u) { s5 += a_row_quad(ar5, k) * vb; }
        if (groups > 6u) { s6 += a_row_quad(ar6, k) * vb; }
        if (groups > 7u) { s7 += a_row_quad(ar7, k) * vb; }
        if (groups > 8u) { s8 += a_row_quad(ar8, k) * vb; }
    }
    for (var k = k_quads; k < p.k; k++) {
        let vb = b[bc + k * p.b_rs];
        let ka = k * p.a_cs;
        s0.x += a[ar0 + ka] * vb;
        if (groups > 1u) { s1.x += a[ar1 + ka] * vb; }
        if (groups > 2u) { s2.x += a[ar2 + ka] * vb; }
        if (groups > 3u) { s3.x += a[ar3 + ka] * vb; }
        if (groups > 4u) { s4.x += a[ar4 + ka] * vb; }
        if (groups > 5u) { s5.x += a[ar5 + ka] * vb; }
        if (groups > 6u) { s6.x += a[ar6 + ka] * vb; }
        if (groups > 7u) { s7.x += a[ar7 + ka] * vb; }
        if (groups > 8u) { s8.x += a[ar8 + ka] * vb; }
    }
    var bias_c = 0.0;
    if ((p.flags & 1u) != 0u) {
        bias_c = bias[col];
    }
    let ones = vec4<f32>(1.0);
    store_edge_row(m0 + lane, col, c_base, p.alpha * dot(s0, ones) + bias_c);
    if (groups > 1u) { store_edge_row(m0 + lane + 8u, col, c_base, p.alpha * dot(s1, ones) + bias_c); }
    if (groups > 2u) { store_edge_row(m0 + lane + 16u, col, c_base, p.alpha * dot(s2, ones) + bias_c); }
    if (groups > 3u) { store_edge_row(m0 + lane + 24u, col, c_base, p.alpha * dot(s3, ones) + bias_c); }
    if (groups > 4u) { store_edge_row(m0 + lane + 32u, col, c_base, p.alpha * dot(s4, ones) + bias_c); }
    if (groups > 5u) { store_edge_row(m0 + lane + 40u, col, c_base, p.alpha * dot(s5, ones) + bias_c); }
    if (groups > 6u) { store_edge_row(m0 + lane + 48u, col, c_base, p.alpha * dot(s6, ones) + bias_c); }
    if (groups > 7u) { store_edge_row(m0 + lane + 56u, col, c_base, p.alpha * dot(s7, ones) + bias_c); }
    if (groups > 8u) { store_edge_row(m0 + lane + 64u, col, c_base, p.alpha * dot(s8, ones) + bias_c); }
}

// store_lane for a row that may be past C's last (the edge column's lanes).
fn store_edge_row(row: u32, col: u32, c_base: u32, v: f32) {
    if (row < p.m) {
        store_lane(row, col, c_base, v, true);
    }
}

// With the GELU epilogue where C is written one element at a time (no C_VEC4, or a wide tile's edge columns).
fn store_lane(row: u32, col: u32, c_base: u32, v: f32, checked: bool) {
    if (!checked || col < p.n) {
        let idx = c_base + row * p.c_rs + col * p.c_cs;
        var r = v;
        if (GELU_EPILOGUE == 2u) {
            r *= gelu_slope(aux[idx]);
        }
        if (C_VEC4) {
            if (ACCUMULATE) {
                r += c4[idx / 4u][idx % 4u];
            }
            c4[idx / 4u][idx % 4u] = r;
        } else {
            if (ACCUMULATE) {
                r += c[idx];
            }
            c[idx] = r;
        }
        if (GELU_EPILOGUE == 1u) {
            aux[idx] = gelu(r);
        }
    }
}

// Four adjacent elements of a row of C from `idx` (C_VEC4), all inside C (the GELU epilogue comes after all
// stores, gelu_epilogue_rows).
fn store_quad(idx: u32, v: vec4<f32>) {
    var r = v;
    if (ACCUMULATE) {
        r += c4[idx / 4u];
    }
    c4[idx / 4u] = r;
}

// The GELU epilogue of the lane's quads of `rows` rows from `row0` (C_VEC4), read back from C once the tile is
// stored: GELU's code once per kernel instead of once per inlined store (the accumulators are never indexed at run
// time, so each group's stores are a copy of their own).
fn gelu_epilogue_rows(row0: u32, rows: u32, col0: u32, c_base: u32, checked: bool) {
    for (var row = row0; row < row0 + rows; row++) {
        let q = (c_base + row * p.c_rs + col0) / 4u;
        if (!checked || col0 < p.n) { gelu_epilogue_quad(q); }
        if (!checked || col0 + 4u < p.n) { gelu_epilogue_quad(q + 1u); }
    }
}

// The GELU epilogue of C's quad `q`.
fn gelu_epilogue_quad(q: u32) {
    if (GELU_EPILOGUE == 1u) {
        aux4[q] = gelu4(c4[q]);
    } else {
        c4[q] = c4[q] * gelu_slope4(aux4[q]);
    }
}

// Rows row0..row0+7 of C (those inside), the lane's 8 columns (from `col0`, 8 apart or, with C_VEC4,
// adjacent), times alpha plus the bias (`bias_lo`, `bias_hi`: the lane's columns of it, or zeros). A store is
// a loop over the lanes even where every lane is masked off, so groups of 8 columns past the edge (`cols` left
// from the tile's first) are skipped by a branch the whole subgroup takes alike. The accumulators come by value: indexing
// the caller's in place at run time would make llvmpipe keep them in memory through the whole k loop
// (measured 7x slower), and unrolling the rows here by hand made each workgroup slower to start (more code,
// more state).
fn store_rows8(row0: u32, col0: u32, cols: u32, c_base: u32, acc: Rows8, bias_lo: vec4<f32>,
               bias_hi: vec4<f32>, checked: bool) {
    for (var i = 0u; i < 8u; i++) {
        store_row(row0 + i, col0, cols, c_base, p.alpha * acc[2u * i] + bias_lo, p.alpha * acc[2u * i + 1u] + bias_hi,
                  checked);
    }
}

// Row `row` of C, the lane's 8 columns from `col0` (as store_rows8) with their final values `lo`, `hi`; with
// `checked`, only the row and columns inside C (`cols` left from the tile's first column), else all of them.
fn store_row(row: u32, col0: u32, cols: u32, c_base: u32, lo: vec4<f32>, hi: vec4<f32>, checked: bool) {
    if (!checked || row < p.m) {
        if (C_VEC4) {
            // N is a multiple of 4, so each quad is wholly inside C or wholly past its edge.
            let idx = c_base + row * p.c_rs + col0;
            if (!checked || col0 < p.n) { store_quad(idx, lo); }
            if (!checked || col0 + 4u < p.n) { store_quad(idx + 4u, hi); }
        } else {
            store_lane(row, col0, c_base, lo.x, checked);
            if (!checked || cols > 8u) { store_lane(row, col0 + 8u, c_base, lo.y, checked); }
            if (!checked || cols > 16u) { store_lane(row, col0 + 16u, c_base, lo.z, checked); }
            if (!checked || cols > 24u) { store_lane(row, col0 + 24u, c_base, lo.w, checked); }
            if (!checked || cols > 32u) {
                store_lane(row, col0 + 32u, c_base, hi.x, checked);
                if (!checked || cols > 40u) { store_lane(row, col0 + 40u, c_base, hi.y, checked); }
                if (!checked || cols > 48u) { store_lane(row, col0 + 48u, c_base, hi.z, checked); }
                if (!checked || cols > 56u) { store_lane(row, col0 + 56u, c_base, hi.w, checked); }
            }
        }
    }
}

// The tile's first `groups` groups of 8 rows (store_rows8), checked or not as there.
fn store_tile(m0: u32, col0: u32, cols: u32, c_base: u32, groups: u32, acc0: Rows8, acc1: Rows8, acc2: Rows8,
              acc3: Rows8, acc4: Rows8, acc5: Rows8, acc6: Rows8, acc7: Rows8, bias_lo: vec4<f32>,
              bias_hi: vec4<f32>, checked: bool) {
    store_rows8(m0, col0, cols, c_base, acc0, bias_lo, bias_hi, checked);
    if (groups > 1u) { store_rows8(m0 + 8u, col0, cols, c_base, acc1, bias_lo, bias_hi, checked); }
    if (groups > 2u) { store_rows8(m0 + 16u, col0, cols, c_base, acc2, bias_lo, bias_hi, checked); }
    if (groups > 3u) { store_rows8(m0 + 24u, col0, cols, c_base, acc3, bias_lo, bias_hi, checked); }
    if (groups > 4u) { store_rows8(m0 + 32u, col0, cols, c_base, acc4, bias_lo, bias_hi, checked); }
    if (groups > 5u) { store_rows8(m0 + 40u, col0, cols, c_base, acc5, bias_lo, bias_hi, checked); }
    if (groups > 6u) { store_rows8(m0 + 48u, col0, cols, c_base, acc6, bias_lo, bias_hi, checked); }
    if (groups > 7u) { store_rows8(m0 + 56u, col0, cols, c_base, acc7, bias_lo, bias_hi, checked); }
}

// A tile's row `row` past its first 64 (WIDE_EDGE: the last row tile of a side 65-72 past its start), the
// lane's 8 columns of the first 64 as dot products over k, A's row read alike by every lane and B as in the
// k loop; stored with alpha and the bias (`bias_lo`, `bias_hi`), and its sum of A added to the row sums
// (ROW_SUMS, first column tile, lane 0). Before, such rows were a ninth group of 8 rows inside the k loop,
// whose extra state kept that loop at two k per step and one value per read.
fn store_edge_row_pass(row: u32, col0: u32, cols: u32, c_base: u32, ar: u32, bc0: u32, bc1: u32, bc2: u32,
                       bc3: u32, bc4: u32, bc5: u32, bc6: u32, bc7: u32, bq_lo: u32, bq_hi: u32, bq_rs: u32,
                       bias_lo: vec4<f32>, bias_hi: vec4<f32>, store_sum: bool) {
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    var sum = vec4<f32>(0.0);
    let k_quads = select(0u, p.k & ~3u, A_VEC4 != 0u || B_VEC4 != 0u);
    for (var k = 0u; k < k_quads; k += 4u) {
        let va = a_row_quad(ar, k);
        let bq = b_quad(k, bc0, bc1, bc2, bc3, bc4, bc5, bc6, bc7, bq_lo, bq_hi, bq_rs);
        lo += va.x * bq[0] + va.y * bq[2] + va.z * bq[4] + va.w * bq[6];
        hi += va.x * bq[1] + va.y * bq[3] + va.z * bq[5] + va.w * bq[7];
        if (ROW_SUMS) { sum += va; }
    }
    for (var k = k_quads; k < p.k; k++) {
        let va = a[ar + k * p.a_cs];
        let kb = k * p.b_rs;
        lo += va * vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
        hi += va * vec4<f32>(b[bc4 + kb], b[bc5 + kb], b[bc6 + kb], b[bc7 + kb]);
        if (ROW_SUMS) { sum.x += va; }
    }
    store_row(row, col0, cols, c_base, p.alpha * lo + bias_lo, p.alpha * hi + bias_hi, true);
    if (ROW_SUMS && store_sum) {
        store_row_sum(row, dot(sum, vec4<f32>(1.0)));
    }
}

// One tile of C per workgroup of one 8-lane subgroup: 64 x 64; with WIDE_EDGE the last row and column tiles
// up to 72 (an edge of 8 or fewer joins the tile before it).
@compute @workgroup_size(8, 1, 1)
fn gemm_lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(subgroup_invocation_id) lane: u32) {
    let zo = wg.z / p.batch_inner;
    let zi = wg.z % p.batch_inner;
    let a_base = p.a_off + zo * p.a_bo + zi * p.a_bi;
    let b_base = p.b_off + zo * p.b_bo + zi * p.b_bi;
    let c_base = p.c_off + zo * p.c_bo + zi * p.c_bi;
    let m0 = wg.y * TILE_ROWS;
    let n0 = wg.x * 64u;
    let last_m = p.m - 1u;
    let last_n = p.n - 1u;
    // The lane's rows of A (one per group of 8) and columns of B, clamped inside.
    let ar0 = a_base + min(m0 + lane, last_m) * p.a_rs;
    let ar1 = a_base + min(m0 + lane + 8u, last_m) * p.a_rs;
    let ar2 = a_base + min(m0 + lane + 16u, last_m) * p.a_rs;
    let ar3 = a_base + min(m0 + lane + 24u, last_m) * p.a_rs;
    let ar4 = a_base + min(m0 + lane + 32u, last_m) * p.a_rs;
    let ar5 = a_base + min(m0 + lane + 40u, last_m) * p.a_rs;
    let ar6 = a_base + min(m0 + lane + 48u, last_m) * p.a_rs;
    let ar7 = a_base + min(m0 + lane + 56u, last_m) * p.a_rs;
    let ar8 = a_base + min(m0 + lane + 64u, last_m) * p.a_rs;
    // Column j of the lane: col0 + step j.
    let step = select(8u, 1u, C_VEC4);
    let col0 = n0 + select(lane, 8u * lane, C_VEC4);
    let bc0 = b_base + min(col0, last_n) * p.b_cs;
    let bc1 = b_base + min(col0 + step, last_n) * p.b_cs;
    let bc2 = b_base + min(col0 + 2u * step, last_n) * p.b_cs;
    let bc3 = b_base + min(col0 + 3u * step, last_n) * p.b_cs;
    let bc4 = b_base + min(col0 + 4u * step, last_n) * p.b_cs;
    let bc5 = b_base + min(col0 + 5u * step, last_n) * p.b_cs;
    let bc6 = b_base + min(col0 + 6u * step, last_n) * p.b_cs;
    let bc7 = b_base + min(col0 + 7u * step, last_n) * p.b_cs;
    // The lane's addresses of A at k = 0 for a_quad, one per group of 8 rows (never a ninth: wide-edge tiles
    // take no steps of four): its row's as above, or with
    // A_VEC4 2 rows 4h..4h+3 of the group at k = j for lane 2j + h (the launcher asks M to be a multiple of 4
    // then, so the last group's vec4 lies inside A; rows past M are read, never stored).
    let q_row = select(0u, 4u * (lane % 2u), A_VEC4 == 2u);
    let q_k = select(0u, (lane / 2u) * p.a_cs, A_VEC4 == 2u);
    let q_last = select(last_m, last_m & ~3u, A_VEC4 == 2u);
    let aq0 = select(ar0, a_base + min(m0 + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq1 = select(ar1, a_base + min(m0 + 8u + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq2 = select(ar2, a_base + min(m0 + 16u + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq3 = select(ar3, a_base + min(m0 + 24u + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq4 = select(ar4, a_base + min(m0 + 32u + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq5 = select(ar5, a_base + min(m0 + 40u + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq6 = select(ar6, a_base + min(m0 + 48u + q_row, q_last) + q_k, A_VEC4 == 2u);
    let aq7 = select(ar7, a_base + min(m0 + 56u + q_row, q_last) + q_k, A_VEC4 == 2u);
    // B_VEC4 2: the vec4 indices of the lane's columns col0..col0+3 and col0+4..col0+7 at k = 0 (N is a
    // multiple of 4 with C_VEC4, so a quad past the edge is moved inside whole; never stored).
    let bq_lo = (b_base + min(col0, last_n & ~3u)) / 4u;
    let bq_hi = (b_base + min(col0 + 4u, last_n & ~3u)) / 4u;
    let bq_rs = p.b_rs / 4u;
    // Groups of 8 rows inside C (1..8, up to 9 in the last row tile) and columns of C from the tile's first
    // (up to 64, up to 72 in the last column tile); the same for every lane.
    let groups = min((p.m - m0 + 7u) / 8u, select(TILE_ROWS / 8u, 9u, WIDE_EDGE && wg.y + 1u == nwg.y));
    let cols = min(p.n - n0, select(64u, 72u, WIDE_EDGE && wg.x + 1u == nwg.x));
    var acc0: Rows8;
    var acc1: Rows8;
    var acc2: Rows8;
    var acc3: Rows8;
    var acc4: Rows8;
    var acc5: Rows8;
    var acc6: Rows8;
    var acc7: Rows8;
    // The lane's rows' sums of A (ROW_SUMS), one per group of 8.
    var rs0 = 0.0;
    var rs1 = 0.0;
    var rs2 = 0.0;
    var rs3 = 0.0;
    var rs4 = 0.0;
    var rs5 = 0.0;
    var rs6 = 0.0;
    var rs7 = 0.0;
    // The same over the steps of four, in a_quad's layout (folded into rs0..rs7 after them).
    var rq0 = vec4<f32>(0.0);
    var rq1 = vec4<f32>(0.0);
    var rq2 = vec4<f32>(0.0);
    var rq3 = vec4<f32>(0.0);
    var rq4 = vec4<f32>(0.0);
    var rq5 = vec4<f32>(0.0);
    var rq6 = vec4<f32>(0.0);
    var rq7 = vec4<f32>(0.0);
    // k four at a time where A or B is read as vec4s (A_VEC4, B_VEC4), then two at a time (add_rows8_k2),
    // then the last one where K is odd; a wide last column tile's columns past 64 come after (store_edge_column).
    let k_pairs = p.k & ~1u;
    // Wide-edge tiles too: their rows past 64 come after the loop (store_edge_row_pass), so the loop never
    // carries a ninth group of rows, whose extra state had kept it at two k per step there.
    let k_quads = select(0u, p.k & ~3u, A_VEC4 != 0u || B_VEC4 != 0u);
    if (cols > 32u || C_VEC4) {
        // Eight k at a time, then the rest of the steps of four.
        let k_octs = k_quads & ~7u;
        for (var k = 0u; k < k_octs; k += 8u) {
            let bq0 = b_quad(k, bc0, bc1, bc2, bc3, bc4, bc5, bc6, bc7, bq_lo, bq_hi, bq_rs);
            let bq1 = b_quad(k + 4u, bc0, bc1, bc2, bc3, bc4, bc5, bc6, bc7, bq_lo, bq_hi, bq_rs);
            add_rows8_k8(summed4(&rq0, a_quad(aq0, k)), summed4(&rq0, a_quad(aq0, k + 4u)), bq0, bq1, &acc0);
            if (groups > 1u) { add_rows8_k8(summed4(&rq1, a_quad(aq1, k)), summed4(&rq1, a_quad(aq1, k + 4u)), bq0, bq1, &acc1); }
            if (groups > 2u) { add_rows8_k8(summed4(&rq2, a_quad(aq2, k)), summed4(&rq2, a_quad(aq2, k + 4u)), bq0, bq1, &acc2); }
            if (groups > 3u) { add_rows8_k8(summed4(&rq3, a_quad(aq3, k)), summed4(&rq3, a_quad(aq3, k + 4u)), bq0, bq1, &acc3); }
            if (groups > 4u) { add_rows8_k8(summed4(&rq4, a_quad(aq4, k)), summed4(&rq4, a_quad(aq4, k + 4u)), bq0, bq1, &acc4); }
            if (groups > 5u) { add_rows8_k8(summed4(&rq5, a_quad(aq5, k)), summed4(&rq5, a_quad(aq5, k + 4u)), bq0, bq1, &acc5); }
            if (groups > 6u) { add_rows8_k8(summed4(&rq6, a_quad(aq6, k)), summed4(&rq6, a_quad(aq6, k + 4u)), bq0, bq1, &acc6); }
            if (groups > 7u) { add_rows8_k8(summed4(&rq7, a_quad(aq7, k)), summed4(&rq7, a_quad(aq7, k + 4u)), bq0, bq1, &acc7); }
        }
        for (var k = k_octs; k < k_quads; k += 4u) {
            let bq = b_quad(k, bc0, bc1, bc2, bc3, bc4, bc5, bc6, bc7, bq_lo, bq_hi, bq_rs);
            let b_lo0 = bq[0]; let b_hi0 = bq[1]; let b_lo1 = bq[2]; let b_hi1 = bq[3];
            let b_lo2 = bq[4]; let b_hi2 = bq[5]; let b_lo3 = bq[6]; let b_hi3 = bq[7];
            add_rows8_k4(summed4(&rq0, a_quad(aq0, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc0);
            if (groups > 1u) { add_rows8_k4(summed4(&rq1, a_quad(aq1, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc1); }
            if (groups > 2u) { add_rows8_k4(summed4(&rq2, a_quad(aq2, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc2); }
            if (groups > 3u) { add_rows8_k4(summed4(&rq3, a_quad(aq3, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc3); }
            if (groups > 4u) { add_rows8_k4(summed4(&rq4, a_quad(aq4, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc4); }
            if (groups > 5u) { add_rows8_k4(summed4(&rq5, a_quad(aq5, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc5); }
            if (groups > 6u) { add_rows8_k4(summed4(&rq6, a_quad(aq6, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc6); }
            if (groups > 7u) { add_rows8_k4(summed4(&rq7, a_quad(aq7, k)), b_lo0, b_hi0, b_lo1, b_hi1, b_lo2, b_hi2, b_lo3, b_hi3, &acc7); }
        }
        for (var k = k_quads; k < k_pairs; k += 2u) {
            let ka = k * p.a_cs;
            let kn = ka + p.a_cs;
            let kb = k * p.b_rs;
            let kc = kb + p.b_rs;
            let b_lo0 = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
            let b_hi0 = vec4<f32>(b[bc4 + kb], b[bc5 + kb], b[bc6 + kb], b[bc7 + kb]);
            let b_lo1 = vec4<f32>(b[bc0 + kc], b[bc1 + kc], b[bc2 + kc], b[bc3 + kc]);
            let b_hi1 = vec4<f32>(b[bc4 + kc], b[bc5 + kc], b[bc6 + kc], b[bc7 + kc]);
            add_rows8_k2(summed(&rs0, a[ar0 + ka]), summed(&rs0, a[ar0 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc0);
            if (groups > 1u) { add_rows8_k2(summed(&rs1, a[ar1 + ka]), summed(&rs1, a[ar1 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc1); }
            if (groups > 2u) { add_rows8_k2(summed(&rs2, a[ar2 + ka]), summed(&rs2, a[ar2 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc2); }
            if (groups > 3u) { add_rows8_k2(summed(&rs3, a[ar3 + ka]), summed(&rs3, a[ar3 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc3); }
            if (groups > 4u) { add_rows8_k2(summed(&rs4, a[ar4 + ka]), summed(&rs4, a[ar4 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc4); }
            if (groups > 5u) { add_rows8_k2(summed(&rs5, a[ar5 + ka]), summed(&rs5, a[ar5 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc5); }
            if (groups > 6u) { add_rows8_k2(summed(&rs6, a[ar6 + ka]), summed(&rs6, a[ar6 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc6); }
            if (groups > 7u) { add_rows8_k2(summed(&rs7, a[ar7 + ka]), summed(&rs7, a[ar7 + kn]), b_lo0, b_hi0, b_lo1, b_hi1, &acc7); }
        }
        for (var k = k_pairs; k < p.k; k++) {
            let ka = k * p.a_cs;
            let kb = k * p.b_rs;
            let b_lo = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
            let b_hi = vec4<f32>(b[bc4 + kb], b[bc5 + kb], b[bc6 + kb], b[bc7 + kb]);
            add_rows8(summed(&rs0, a[ar0 + ka]), b_lo, b_hi, &acc0);
            if (groups > 1u) { add_rows8(summed(&rs1, a[ar1 + ka]), b_lo, b_hi, &acc1); }
            if (groups > 2u) { add_rows8(summed(&rs2, a[ar2 + ka]), b_lo, b_hi, &acc2); }
            if (groups > 3u) { add_rows8(summed(&rs3, a[ar3 + ka]), b_lo, b_hi, &acc3); }
            if (groups > 4u) { add_rows8(summed(&rs4, a[ar4 + ka]), b_lo, b_hi, &acc4); }
            if (groups > 5u) { add_rows8(summed(&rs5, a[ar5 + ka]), b_lo, b_hi, &acc5); }
            if (groups > 6u) { add_rows8(summed(&rs6, a[ar6 + ka]), b_lo, b_hi, &acc6); }
            if (groups > 7u) { add_rows8(summed(&rs7, a[ar7 + ka]), b_lo, b_hi, &acc7); }
        }
    } else {
        for (var k = 0u; k < p.k; k++) {
            let ka = k * p.a_cs;
            let kb = k * p.b_rs;
            let b_lo = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
            add_rows8_lo(summed(&rs0, a[ar0 + ka]), b_lo, &acc0);
            if (groups > 1u) { add_rows8_lo(summed(&rs1, a[ar1 + ka]), b_lo, &acc1); }
            if (groups > 2u) { add_rows8_lo(summed(&rs2, a[ar2 + ka]), b_lo, &acc2); }
            if (groups > 3u) { add_rows8_lo(summed(&rs3, a[ar3 + ka]), b_lo, &acc3); }
            if (groups > 4u) { add_rows8_lo(summed(&rs4, a[ar4 + ka]), b_lo, &acc4); }
            if (groups > 5u) { add_rows8_lo(summed(&rs5, a[ar5 + ka]), b_lo, &acc5); }
            if (groups > 6u) { add_rows8_lo(summed(&rs6, a[ar6 + ka]), b_lo, &acc6); }
            if (groups > 7u) { add_rows8_lo(summed(&rs7, a[ar7 + ka]), b_lo, &acc7); }
        }
    }
    if (ROW_SUMS && k_quads > 0u) {
        rs0 += quad_row_sum(rq0, lane);
        rs1 += quad_row_sum(rq1, lane);
        rs2 += quad_row_sum(rq2, lane);
        rs3 += quad_row_sum(rq3, lane);
        rs4 += quad_row_sum(rq4, lane);
        rs5 += quad_row_sum(rq5, lane);
        rs6 += quad_row_sum(rq6, lane);
        rs7 += quad_row_sum(rq7, lane);
    }
    if (ROW_SUMS && wg.x == 0u) {
        store_row_sum(m0 + lane, rs0);
        if (groups > 1u) { store_row_sum(m0 + lane + 8u, rs1); }
        if (groups > 2u) { store_row_sum(m0 + lane + 16u, rs2); }
        if (groups > 3u) { store_row_sum(m0 + lane + 24u, rs3); }
        if (groups > 4u) { store_row_sum(m0 + lane + 32u, rs4); }
        if (groups > 5u) { store_row_sum(m0 + lane + 40u, rs5); }
        if (groups > 6u) { store_row_sum(m0 + lane + 48u, rs6); }
        if (groups > 7u) { store_row_sum(m0 + lane + 56u, rs7); }
    }
    var bias_lo = vec4<f32>(0.0);
    var bias_hi = vec4<f32>(0.0);
    if ((p.flags & 1u) != 0u) {
        bias_lo = vec4<f32>(bias[min(col0, last_n)], bias[min(col0 + step, last_n)],
                            bias[min(col0 + 2u * step, last_n)], bias[min(col0 + 3u * step, last_n)]);
        bias_hi = vec4<f32>(bias[min(col0 + 4u * step, last_n)], bias[min(col0 + 5u * step, last_n)],
                            bias[min(col0 + 6u * step, last_n)], bias[min(col0 + 7u * step, last_n)]);
    }
    // A tile wholly inside C (its first 64 columns, its rows up to TILE_ROWS) is stored without checks: a
    // condition inside the store loops is a mask on llvmpipe, not a branch, and made each stored element cost
    // about twice as much (the branch here, outside any loop, is taken by the whole subgroup).
    let full_tile = p.m - m0 >= TILE_ROWS && cols >= 64u;
    if (full_tile) {
        store_tile(m0, col0, cols, c_base, groups, acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, bias_lo, bias_hi,
                   false);
    } else {
        store_tile(m0, col0, cols, c_base, groups, acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, bias_lo, bias_hi,
                   true);
    }
    if (WIDE_EDGE && groups > 8u) {
        for (var row = m0 + 64u; row < min(p.m, m0 + 72u); row++) {
            store_edge_row_pass(row, col0, cols, c_base, a_base + row * p.a_rs, bc0, bc1, bc2, bc3, bc4, bc5,
                                bc6, bc7, bq_lo, bq_hi, bq_rs, bias_lo, bias_hi, wg.x == 0u && lane == 0u);
        }
    }
    if (GELU_EPILOGUE != 0u && C_VEC4) {
        if (full_tile) {
            gelu_epilogue_rows(m0, min(p.m - m0, 8u * groups), col0, c_base, false);
        } else {
            gelu_epilogue_rows(m0, min(p.m - m0, 8u * groups), col0, c_base, true);
        }
    }
    if (WIDE_EDGE) {
        for (var col = n0 + 64u; col < n0 + cols; col++) {
            store_edge_column(col, m0, lane, groups, b_base, c_base, ar0, ar1, ar2, ar3, ar4, ar5, ar6, ar7, ar8);
        }
    }
}
