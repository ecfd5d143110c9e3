// matmul.wgsl: batched, strided matrix product C = alpha · A · B (+ bias) (+ C), optionally with a GELU epilogue
// (flags bits 6-7; GELU's functions from common/gelu.wgsl, appended by the shader registry). Kernels: gemm (64 x
// 64 tiles), gemm_big (128 x 128, GPUs, optional split-K with gemm_splitk_sum), gemm_regs and gemm_direct
// (software adapters; those with 8-lane subgroups use gemm_lanes of matmul_lanes.wgsl instead of gemm_regs). gemm
// is tiled in workgroup memory (64 x 64 x 16 tiles) with 8x8 register blocking per thread. Every operand is
// addressed through strides, so one kernel serves nn.Linear forward (B = Wᵀ), its backward (dX = dY·W, dW +=
// dYᵀ·X) and attention's per-head products.
//
// Shapes: A (M, K), B (K, N), C (M, N) per batch item; batch item z = (z / batch_inner, z % batch_inner)
// with separate outer / inner strides (e.g. batch and head). bias (N). All f32, any M, N, K.

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    batch_inner: u32,
    // bit 0: add bias[n]; bit 1: accumulate into C; bits 2-3: A readable as vec4 along k (1) or m (2);
    // bits 4-5: B readable as vec4 along k (1) or n (2). Set by the launcher when offsets and strides allow.
    // Bits 6-7: the GELU epilogue (`ops::matmul::Epilogue`): 1 also writes gelu of each stored element of C to
    // `act` at the same index (an MLP's activation with its pre-activation); 2 multiplies each new value by the
    // slope gelu'(act) at its index before it is stored (the pre-activation's gradient; never with bit 1).
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
    // Split-K (gemm_big only): when non-zero, workgroup z computes k in [z·k_chunk, min(K, (z+1)·k_chunk)) of
    // a single product into C batch item z (a partial-sum buffer); gemm_splitk_sum then adds the `splits` items.
    k_chunk: u32,
    splits: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;   // (batch, M, N) through c strides
@group(0) @binding(1) var<storage, read> a: array<f32>;         // (batch, M, K) through a strides
@group(0) @binding(2) var<storage, read> b: array<f32>;         // (batch, K, N) through b strides
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // (N)
@group(0) @binding(4) var<uniform> p: GemmParams;
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;  // the same buffer as a, read 4 at a time
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;  // the same buffer as b, read 4 at a time
@group(0) @binding(8) var<storage, read_write> act: array<f32>; // laid out as C: the GELU epilogue's (flags bits 6-7)

const TILE_M: u32 = 64u;
const TILE_N: u32 = 64u;
const TILE_K: u32 = 16u;

// Tiles hold 4 consecutive rows (of A) or columns (of B) per vec4: [k][m / 4] and [k][n / 4].
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

fn store_c(row: u32, col: u32, base: u32, v: f32) {
    if (row < p.m && col < p.n) {
        var r = p.alpha * v;
        if ((p.flags & 1u) != 0u) {
            r += bias[col];
        }
        let idx = base + row * p.c_rs + col * p.c_cs;
        let gelu_mode = (p.flags >> 6u) & 3u;
        if (gelu_mode == 2u) {
            r *= gelu_slope(act[idx]);
        }
        if ((p.flags & 2u) != 0u) {
            r += c[idx];
        }
        c[idx] = r;
        if (gelu_mode == 1u) {
            act[idx] = gelu(r);
        }
    }
}

fn store_row(row: u32, col0: u32, base: u32, lo: vec4<f32>, hi: vec4<f32>) {
    store_c(row, col0, base, lo.x);
    store_c(row, col0 + 1u, base, lo.y);
    store_c(row, col0 + 2u, base, lo.z);
    store_c(row, col0 + 3u, base, lo.w);
    store_c(row, col0 + 4u, base, hi.x);
    store_c(row, col0 + 5u, base, hi.y);
    store_c(row, col0 + 6u, base, hi.z);
    store_c(row, col0 + 7u, base, hi.w);
}

// Scalar tile loads with bounds checks: edge tiles and layouts the vec4 paths cannot read.
fn load_a_scalar(li: u32, k0: u32, m0: u32, a_base: u32, a_k_fast: bool) {
    for (var r = 0u; r < 4u; r++) {
        let e = li + r * 64u;
        var kk = e / 16u;
        var mq = e % 16u;
        if (a_k_fast) {
            kk = e % 16u;
            mq = e / 16u;
        }
        var va = vec4<f32>(0.0);
        if (k0 + kk < p.k) {
            let ka = a_base + (k0 + kk) * p.a_cs;
            let m = m0 + mq * 4u;
            if (m < p.m) { va.x = a[ka + m * p.a_rs]; }
            if (m + 1u < p.m) { va.y = a[ka + (m + 1u) * p.a_rs]; }
            if (m + 2u < p.m) { va.z = a[ka + (m + 2u) * p.a_rs]; }
            if (m + 3u < p.m) { va.w = a[ka + (m + 3u) * p.a_rs]; }
        }
        tile_a[kk * 16u + mq] = va;
    }
}

fn load_b_scalar(li: u32, k0: u32, n0: u32, b_base: u32, b_n_fast: bool) {
    for (var r = 0u; r < 4u; r++) {
        let e = li + r * 64u;
        var kb = e / 16u;
        var nq = e % 16u;
        if (!b_n_fast) {
            kb = e % 16u;
            nq = e / 16u;
        }
        var vb = vec4<f32>(0.0);
        if (k0 + kb < p.k) {
            let kbase = b_base + (k0 + kb) * p.b_rs;
            let n = n0 + nq * 4u;
            if (n < p.n) { vb.x = b[kbase + n * p.b_cs]; }
            if (n + 1u < p.n) { vb.y = b[kbase + (n + 1u) * p.b_cs]; }
            if (n + 2u < p.n) { vb.z = b[kbase + (n + 2u) * p.b_cs]; }
            if (n + 3u < p.n) { vb.w = b[kbase + (n + 3u) * p.b_cs]; }
        }
        tile_b[kb * 16u + nq] = vb;
    }
}

// One 64 x 64 tile of C per workgroup of 8 x 8 threads; thread (x, y) owns rows 8y..8y+7, columns 8x..8x+7.
@compute @workgroup_size(8, 8, 1)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let z = wg.z;
    let zo = z / p.batch_inner;
    let zi = z % p.batch_inner;
    let a_base = p.a_off + zo * p.a_bo + zi * p.a_bi;
    let b_base = p.b_off + zo * p.b_bo + zi * p.b_bi;
    let c_base = p.c_off + zo * p.c_bo + zi * p.c_bi;
    let m0 = wg.y * TILE_M;
    let n0 = wg.x * TILE_N;
    // Which k a loading thread takes depends on the layout, so neighbouring threads read neighbouring addresses.
    let a_k_fast = p.a_cs == 1u;
    let b_n_fast = p.b_cs == 1u;

    // Accumulators as separate variables (a dynamically indexed private array may be kept in memory).
    // acc_r_lo / acc_r_hi: row r of the thread's 8x8 block, columns 0..3 and 4..7.
    var c0l = vec4<f32>(0.0); var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0); var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0); var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0); var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0); var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0); var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0); var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0); var c7h = vec4<f32>(0.0);

    let rows_inside = m0 + TILE_M <= p.m;
    let cols_inside = n0 + TILE_N <= p.n;
    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        // Interior tiles (the common case) load without per-element bounds checks.
        let k_inside = k0 + TILE_K <= p.k;
        let a_inside = rows_inside && k_inside;
        let b_inside = cols_inside && k_inside;
        // Thread li fills a 4 x 4 block of each tile: rows / columns 4q..4q+3 (q = li % 16) at k 4kq..4kq+3.
        let q = li % 16u;
        let kq = li / 16u;
        let a_mode = (p.flags >> 2u) & 3u;
        if (a_inside && a_mode == 1u) {
            // Rows of A are contiguous along k: four vec4 reads, transposed into the [k][m / 4] tile.
            let rs4 = p.a_rs / 4u;
            let base = (a_base + (m0 + q * 4u) * p.a_rs + k0 + kq * 4u) / 4u;
            let r0 = a4[base];
            let r1 = a4[base + rs4];
            let r2 = a4[base + 2u * rs4];
            let r3 = a4[base + 3u * rs4];
            tile_a[(kq * 4u) * 16u + q] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
            tile_a[(kq * 4u + 1u) * 16u + q] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
            tile_a[(kq * 4u + 2u) * 16u + q] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
            tile_a[(kq * 4u + 3u) * 16u + q] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
        } else if (a_inside && a_mode == 2u) {
            // Columns of A are contiguous along m: vec4 reads land in the tile as they are.
            for (var j = 0u; j < 4u; j++) {
                tile_a[(kq * 4u + j) * 16u + q] = a4[(a_base + (k0 + kq * 4u + j) * p.a_cs + m0 + q * 4u) / 4u];
            }
        } else {
            load_a_scalar(li, k0, m0, a_base, a_k_fast);
        }
        let b_mode = (p.flags >> 4u) & 3u;
        if (b_inside && b_mode == 2u) {
            // Rows of B are contiguous along n: vec4 reads land in the tile as they are.
            for (var j = 0u; j < 4u; j++) {
                tile_b[(kq * 4u + j) * 16u + q] = b4[(b_base + (k0 + kq * 4u + j) * p.b_rs + n0 + q * 4u) / 4u];
            }
        } else if (b_inside && b_mode == 1u) {
            // Columns of B are contiguous along k (B = Wᵀ of nn.Linear): four vec4 reads, transposed.
            let cs4 = p.b_cs / 4u;
            let base = (b_base + (n0 + q * 4u) * p.b_cs + k0 + kq * 4u) / 4u;
            let c0 = b4[base];
            let c1 = b4[base + cs4];
            let c2 = b4[base + 2u * cs4];
            let c3 = b4[base + 3u * cs4];
            tile_b[(kq * 4u) * 16u + q] = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
            tile_b[(kq * 4u + 1u) * 16u + q] = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
            tile_b[(kq * 4u + 2u) * 16u + q] = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
            tile_b[(kq * 4u + 3u) * 16u + q] = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
        } else {
            load_b_scalar(li, k0, n0, b_base, b_n_fast);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let al = tile_a[kk * 16u + lid.y * 2u];
            let ah = tile_a[kk * 16u + lid.y * 2u + 1u];
            let bl = tile_b[kk * 16u + lid.x * 2u];
            let bh = tile_b[kk * 16u + lid.x * 2u + 1u];
            c0l += al.x * bl; c0h += al.x * bh;
            c1l += al.y * bl; c1h += al.y * bh;
            c2l += al.z * bl; c2h += al.z * bh;
            c3l += al.w * bl; c3h += al.w * bh;
            c4l += ah.x * bl; c4h += ah.x * bh;
            c5l += ah.y * bl; c5h += ah.y * bh;
            c6l += ah.z * bl; c6h += ah.z * bh;
            c7l += ah.w * bl; c7h += ah.w * bh;
        }
        workgroupBarrier();
    }

    let row0 = m0 + lid.y * 8u;
    let col0 = n0 + lid.x * 8u;
    store_row(row0, col0, c_base, c0l, c0h);
    store_row(row0 + 1u, col0, c_base, c1l, c1h);
    store_row(row0 + 2u, col0, c_base, c2l, c2h);
    store_row(row0 + 3u, col0, c_base, c3l, c3h);
    store_row(row0 + 4u, col0, c_base, c4l, c4h);
    store_row(row0 + 5u, col0, c_base, c5l, c5h);
    store_row(row0 + 6u, col0, c_base, c6l, c6h);
    store_row(row0 + 7u, col0, c_base, c7l, c7h);
}

// ---------------------------------------------------------------------------------------------------------
// gemm_direct: tiles of up to 32 x 32, 4 x 4 outputs per thread, operands read straight from the buffers (no workgroup
// memory, no barriers). On a software adapter workgroup memory is ordinary memory and a barrier switches
// between every group of lanes, so skipping both wins for small products (measured on llvmpipe: 4 contiguous
// columns per thread beat columns spread 8 apart). Thread (x, y) owns rows 4y..4y+3, columns 4x..4x+3.
// Rows and columns past the end are read at the last valid index (clamped) and never stored. Same bindings
// and parameters.

fn store_row4(row: u32, col0: u32, base: u32, v: vec4<f32>) {
    store_c(row, col0, base, v.x);
    store_c(row, col0 + 1u, base, v.y);
    store_c(row, col0 + 2u, base, v.z);
    store_c(row, col0 + 3u, base, v.w);
}

// Threads per workgroup along n and m (at most 8 x 8); the launcher shrinks them to the matrix, so a 17 x 17
// attention product runs on 5 x 5 threads (a 20 x 20 tile) instead of padding to 32 x 32.
override DIRECT_X: u32 = 8u;
override DIRECT_Y: u32 = 8u;

@compute @workgroup_size(DIRECT_X, DIRECT_Y, 1)
fn gemm_direct(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let zo = z / p.batch_inner;
    let zi = z % p.batch_inner;
    let a_base = p.a_off + zo * p.a_bo + zi * p.a_bi;
    let b_base = p.b_off + zo * p.b_bo + zi * p.b_bi;
    let c_base = p.c_off + zo * p.c_bo + zi * p.c_bi;
    let row0 = (wg.y * DIRECT_Y + lid.y) * 4u;
    let col0 = (wg.x * DIRECT_X + lid.x) * 4u;
    let last_m = max(p.m, 1u) - 1u;
    let last_n = max(p.n, 1u) - 1u;
    let ar0 = a_base + min(row0, last_m) * p.a_rs;
    let ar1 = a_base + min(row0 + 1u, last_m) * p.a_rs;
    let ar2 = a_base + min(row0 + 2u, last_m) * p.a_rs;
    let ar3 = a_base + min(row0 + 3u, last_m) * p.a_rs;
    let bc0 = b_base + min(col0, last_n) * p.b_cs;
    let bc1 = b_base + min(col0 + 1u, last_n) * p.b_cs;
    let bc2 = b_base + min(col0 + 2u, last_n) * p.b_cs;
    let bc3 = b_base + min(col0 + 3u, last_n) * p.b_cs;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    var k = 0u;
    // Both operands contiguous along k with aligned rows (nn.Linear forward, Q·Kᵀ): four k at a time, one vec4
    // read per row of A and per column of B instead of four scalar reads.
    if (((p.flags >> 2u) & 3u) == 1u && ((p.flags >> 4u) & 3u) == 1u) {
        let k4 = p.k & ~3u;
        for (; k < k4; k += 4u) {
            let x0 = a4[(ar0 + k) / 4u];
            let x1 = a4[(ar1 + k) / 4u];
            let x2 = a4[(ar2 + k) / 4u];
            let x3 = a4[(ar3 + k) / 4u];
            let y0 = b4[(bc0 + k) / 4u];
            let y1 = b4[(bc1 + k) / 4u];
            let y2 = b4[(bc2 + k) / 4u];
            let y3 = b4[(bc3 + k) / 4u];
            s0 += vec4<f32>(dot(x0, y0), dot(x0, y1), dot(x0, y2), dot(x0, y3));
            s1 += vec4<f32>(dot(x1, y0), dot(x1, y1), dot(x1, y2), dot(x1, y3));
            s2 += vec4<f32>(dot(x2, y0), dot(x2, y1), dot(x2, y2), dot(x2, y3));
            s3 += vec4<f32>(dot(x3, y0), dot(x3, y1), dot(x3, y2), dot(x3, y3));
        }
    }
    for (; k < p.k; k++) {
        let ka = k * p.a_cs;
        let kb = k * p.b_rs;
        let bv = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
        s0 += a[ar0 + ka] * bv;
        s1 += a[ar1 + ka] * bv;
        s2 += a[ar2 + ka] * bv;
        s3 += a[ar3 + ka] * bv;
    }
    store_row4(row0, col0, c_base, s0);
    store_row4(row0 + 1u, col0, c_base, s1);
    store_row4(row0 + 2u, col0, c_base, s2);
    store_row4(row0 + 3u, col0, c_base, s3);
}

// ---------------------------------------------------------------------------------------------------------
// gemm_regs: tiles of up to 32 x 32 on up to 4 x 4 threads, 8 x 8 outputs per thread, operands read straight from
// the buffers (no workgroup memory, no barriers): the product for software adapters without 8-lane subgroups
// (SwiftShader, the browser's fallback adapter, and llvmpipe on 128-bit vectors). There every read of a storage
// buffer is a loop over the lanes (an address, a bounds check and an insert per lane per value), whether the
// address differs between lanes or not, while arithmetic is cheap; so what counts is values read per
// multiply-add: a thread's 8 x 8 block reads 16 values per k for 64 multiply-adds (gemm_direct's 4 x 4 block: 8
// for 16). Measured on SwiftShader (Subzero, 2 cores), a 784 x 256 x 64 product: 2.4-2.6 GFLOP/s with 4 x 4
// per thread, 4.1-5.1 with 8 x 8 (16 x 8 and 16 x 16 up to a tenth faster on large products, but their tiles of
// 64 would pad small products further); on llvmpipe 6.7 against 7.7.
// Thread (x, y) owns rows 8y..8y+7 and columns 8x..8x+7 of the tile; rows and columns past the end are read
// at the last valid index (clamped) and never stored. Same bindings and parameters.

// Threads per workgroup along n and m (at most 4 x 4); the launcher shrinks them to the matrix in steps of 8.
override REGS_X: u32 = 4u;
override REGS_Y: u32 = 4u;

@compute @workgroup_size(REGS_X, REGS_Y, 1)
fn gemm_regs(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let z = wg.z;
    let zo = z / p.batch_inner;
    let zi = z % p.batch_inner;
    let a_base = p.a_off + zo * p.a_bo + zi * p.a_bi;
    let b_base = p.b_off + zo * p.b_bo + zi * p.b_bi;
    let c_base = p.c_off + zo * p.c_bo + zi * p.c_bi;
    let row0 = (wg.y * REGS_Y + lid.y) * 8u;
    let col0 = (wg.x * REGS_X + lid.x) * 8u;
    let last_m = max(p.m, 1u) - 1u;
    let last_n = max(p.n, 1u) - 1u;
    let ar0 = a_base + min(row0 + 0u, last_m) * p.a_rs;
    let ar1 = a_base + min(row0 + 1u, last_m) * p.a_rs;
    let ar2 = a_base + min(row0 + 2u, last_m) * p.a_rs;
    let ar3 = a_base + min(row0 + 3u, last_m) * p.a_rs;
    let ar4 = a_base + min(row0 + 4u, last_m) * p.a_rs;
    let ar5 = a_base + min(row0 + 5u, last_m) * p.a_rs;
    let ar6 = a_base + min(row0 + 6u, last_m) * p.a_rs;
    let ar7 = a_base + min(row0 + 7u, last_m) * p.a_rs;
    let bc0 = b_base + min(col0 + 0u, last_n) * p.b_cs;
    let bc1 = b_base + min(col0 + 1u, last_n) * p.b_cs;
    let bc2 = b_base + min(col0 + 2u, last_n) * p.b_cs;
    let bc3 = b_base + min(col0 + 3u, last_n) * p.b_cs;
    let bc4 = b_base + min(col0 + 4u, last_n) * p.b_cs;
    let bc5 = b_base + min(col0 + 5u, last_n) * p.b_cs;
    let bc6 = b_base + min(col0 + 6u, last_n) * p.b_cs;
    let bc7 = b_base + min(col0 + 7u, last_n) * p.b_cs;
    var s0_lo = vec4<f32>(0.0);
    var s0_hi = vec4<f32>(0.0);
    var s1_lo = vec4<f32>(0.0);
    var s1_hi = vec4<f32>(0.0);
    var s2_lo = vec4<f32>(0.0);
    var s2_hi = vec4<f32>(0.0);
    var s3_lo = vec4<f32>(0.0);
    var s3_hi = vec4<f32>(0.0);
    var s4_lo = vec4<f32>(0.0);
    var s4_hi = vec4<f32>(0.0);
    var s5_lo = vec4<f32>(0.0);
    var s5_hi = vec4<f32>(0.0);
    var s6_lo = vec4<f32>(0.0);
    var s6_hi = vec4<f32>(0.0);
    var s7_lo = vec4<f32>(0.0);
    var s7_hi = vec4<f32>(0.0);
    var k = 0u;
    // Both operands contiguous along k with aligned rows (nn.Linear forward, Q·Kᵀ): four k at a time, one vec4
    // read per row of A and per column of B.
    if (((p.flags >> 2u) & 3u) == 1u && ((p.flags >> 4u) & 3u) == 1u) {
        let k4 = p.k & ~3u;
        for (; k < k4; k += 4u) {
            let x0 = a4[(ar0 + k) / 4u];
            let x1 = a4[(ar1 + k) / 4u];
            let x2 = a4[(ar2 + k) / 4u];
            let x3 = a4[(ar3 + k) / 4u];
            let x4 = a4[(ar4 + k) / 4u];
            let x5 = a4[(ar5 + k) / 4u];
            let x6 = a4[(ar6 + k) / 4u];
            let x7 = a4[(ar7 + k) / 4u];
            let y0 = b4[(bc0 + k) / 4u];
            let y1 = b4[(bc1 + k) / 4u];
            let y2 = b4[(bc2 + k) / 4u];
            let y3 = b4[(bc3 + k) / 4u];
            let y4 = b4[(bc4 + k) / 4u];
            let y5 = b4[(bc5 + k) / 4u];
            let y6 = b4[(bc6 + k) / 4u];
            let y7 = b4[(bc7 + k) / 4u];
            s0_lo += vec4<f32>(dot(x0, y0), dot(x0, y1), dot(x0, y2), dot(x0, y3));
            s0_hi += vec4<f32>(dot(x0, y4), dot(x0, y5), dot(x0, y6), dot(x0, y7));
            s1_lo += vec4<f32>(dot(x1, y0), dot(x1, y1), dot(x1, y2), dot(x1, y3));
            s1_hi += vec4<f32>(dot(x1, y4), dot(x1, y5), dot(x1, y6), dot(x1, y7));
            s2_lo += vec4<f32>(dot(x2, y0), dot(x2, y1), dot(x2, y2), dot(x2, y3));
            s2_hi += vec4<f32>(dot(x2, y4), dot(x2, y5), dot(x2, y6), dot(x2, y7));
            s3_lo += vec4<f32>(dot(x3, y0), dot(x3, y1), dot(x3, y2), dot(x3, y3));
            s3_hi += vec4<f32>(dot(x3, y4), dot(x3, y5), dot(x3, y6), dot(x3, y7));
            s4_lo += vec4<f32>(dot(x4, y0), dot(x4, y1), dot(x4, y2), dot(x4, y3));
            s4_hi += vec4<f32>(dot(x4, y4), dot(x4, y5), dot(x4, y6), dot(x4, y7));
            s5_lo += vec4<f32>(dot(x5, y0), dot(x5, y1), dot(x5, y2), dot(x5, y3));
            s5_hi += vec4<f32>(dot(x5, y4), dot(x5, y5), dot(x5, y6), dot(x5, y7));
            s6_lo += vec4<f32>(dot(x6, y0), dot(x6, y1), dot(x6, y2), dot(x6, y3));
            s6_hi += vec4<f32>(dot(x6, y4), dot(x6, y5), dot(x6, y6), dot(x6, y7));
            s7_lo += vec4<f32>(dot(x7, y0), dot(x7, y1), dot(x7, y2), dot(x7, y3));
            s7_hi += vec4<f32>(dot(x7, y4), dot(x7, y5), dot(x7, y6), dot(x7, y7));
        }
    }
    for (; k < p.k; k++) {
        let ka = k * p.a_cs;
        let kb = k * p.b_rs;
        let lo = vec4<f32>(b[bc0 + kb], b[bc1 + kb], b[bc2 + kb], b[bc3 + kb]);
        let hi = vec4<f32>(b[bc4 + kb], b[bc5 + kb], b[bc6 + kb], b[bc7 + kb]);
        let x0 = a[ar0 + ka];
        s0_lo += x0 * lo;
        s0_hi += x0 * hi;
        let x1 = a[ar1 + ka];
        s1_lo += x1 * lo;
        s1_hi += x1 * hi;
        let x2 = a[ar2 + ka];
        s2_lo += x2 * lo;
        s2_hi += x2 * hi;
        let x3 = a[ar3 + ka];
        s3_lo += x3 * lo;
        s3_hi += x3 * hi;
        let x4 = a[ar4 + ka];
        s4_lo += x4 * lo;
        s4_hi += x4 * hi;
        let x5 = a[ar5 + ka];
        s5_lo += x5 * lo;
        s5_hi += x5 * hi;
        let x6 = a[ar6 + ka];
        s6_lo += x6 * lo;
        s6_hi += x6 * hi;
        let x7 = a[ar7 + ka];
        s7_lo += x7 * lo;
        s7_hi += x7 * hi;
    }
    store_row(row0 + 0u, col0, c_base, s0_lo, s0_hi);
    store_row(row0 + 1u, col0, c_base, s1_lo, s1_hi);
    store_row(row0 + 2u, col0, c_base, s2_lo, s2_hi);
    store_row(row0 + 3u, col0, c_base, s3_lo, s3_hi);
    store_row(row0 + 4u, col0, c_base, s4_lo, s4_hi);
    store_row(row0 + 5u, col0, c_base, s5_lo, s5_hi);
    store_row(row0 + 6u, col0, c_base, s6_lo, s6_hi);
    store_row(row0 + 7u, col0, c_base, s7_lo, s7_hi);
}

// ---------------------------------------------------------------------------------------------------------
// gemm_big: the product for GPUs when there is enough of it to fill the card: 128 x 128 x 16 tiles on 16 x 16
// threads, 8 x 8 outputs per thread. Thread (x, y) owns rows 4y..4y+3 and 64+4y..64+4y+3 of the tile and the
// same two groups of columns with x, so in every k step a warp reads A as a broadcast and B as 16 consecutive
// vec4s (no workgroup-memory bank conflicts). Per k tile each thread loads one 4 x 4 block of one operand
// (threads 0-127 of A, 128-255 of B). Rows or columns past the edge are read clamped (layouts contiguous along
// k) or as zeros (layouts contiguous along m / n) and never stored, so edge tiles keep the vec4 reads; only a
// partial k tile or an unaligned layout reads scalars. The k loop is unrolled four times by hand (drivers do
// not unroll naga's loops). Fetching the next k tile into registers during the multiply-adds was measured
// slower on an H200 (4096^3: 27.3 against 32.4 TFLOP/s; the registers it holds cost occupancy). With
// p.k_chunk set, workgroup z computes one k range of a split-K product into batch item z of C (a partial-sum
// buffer; see GemmParams). Same bindings and parameters as gemm.

const BIG_QUADS: u32 = 32u; // vec4s per k row of a 128-wide tile
var<workgroup> big_a: array<vec4<f32>, 512>; // [k][m / 4]
var<workgroup> big_b: array<vec4<f32>, 512>; // [k][n / 4]

// Block blk (0..127) of the A tile: 4 rows x 4 k, for k in [k0, k0 + 16) of a product ending at k_end.
fn big_load_a(blk: u32, k0: u32, k_end: u32, m0: u32, a_base: u32, mode: u32) {
    let k_inside = k0 + TILE_K <= k_end;
    if (k_inside && mode == 1u) {
        // Rows contiguous along k: four threads read one row's 16 k; rows past the edge read the last row.
        let kq = blk % 4u;
        let q = blk / 4u;
        let last = p.m - 1u;
        let m = m0 + q * 4u;
        let kb = a_base + k0 + kq * 4u;
        let r0 = a4[(kb + min(m, last) * p.a_rs) / 4u];
        let r1 = a4[(kb + min(m + 1u, last) * p.a_rs) / 4u];
        let r2 = a4[(kb + min(m + 2u, last) * p.a_rs) / 4u];
        let r3 = a4[(kb + min(m + 3u, last) * p.a_rs) / 4u];
        big_a[(kq * 4u) * BIG_QUADS + q] = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
        big_a[(kq * 4u + 1u) * BIG_QUADS + q] = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
        big_a[(kq * 4u + 2u) * BIG_QUADS + q] = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
        big_a[(kq * 4u + 3u) * BIG_QUADS + q] = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
        return;
    }
    let q = blk % BIG_QUADS;
    let kq = blk / BIG_QUADS;
    let m = m0 + q * 4u;
    if (k_inside && mode == 2u && (m0 + 128u <= p.m || (p.m & 3u) == 0u)) {
        // Columns contiguous along m: 32 threads read 128 consecutive rows; quads past the edge are zeros.
        for (var j = 0u; j < 4u; j++) {
            var v = vec4<f32>(0.0);
            if (m < p.m) {
                v = a4[(a_base + (k0 + kq * 4u + j) * p.a_cs + m) / 4u];
            }
            big_a[(kq * 4u + j) * BIG_QUADS + q] = v;
        }
        return;
    }
    // Scalar reads; when A is contiguous along k (unaligned rows, e.g. attention probabilities with T = 65)
    // four neighbouring threads take one row's 16 k so a warp reads 8 runs of 64 bytes, not 32 scattered rows.
    var sq = q;
    var skq = kq;
    if (p.a_cs == 1u) {
        skq = blk % 4u;
        sq = blk / 4u;
    }
    let sm = m0 + sq * 4u;
    for (var j = 0u; j < 4u; j++) {
        let k = k0 + skq * 4u + j;
        var v = vec4<f32>(0.0);
        if (k < k_end) {
            let ka = a_base + k * p.a_cs;
            if (sm < p.m) { v.x = a[ka + sm * p.a_rs]; }
            if (sm + 1u < p.m) { v.y = a[ka + (sm + 1u) * p.a_rs]; }
            if (sm + 2u < p.m) { v.z = a[ka + (sm + 2u) * p.a_rs]; }
            if (sm + 3u < p.m) { v.w = a[ka + (sm + 3u) * p.a_rs]; }
        }
        big_a[(skq * 4u + j) * BIG_QUADS + sq] = v;
    }
}

// Block blk (0..127) of the B tile: 4 k x 4 columns.
fn big_load_b(blk: u32, k0: u32, k_end: u32, n0: u32, b_base: u32, mode: u32) {
    let k_inside = k0 + TILE_K <= k_end;
    if (k_inside && mode == 1u) {
        // Columns contiguous along k (B = Wᵀ of nn.Linear): four threads read one column's 16 k.
        let kq = blk % 4u;
        let q = blk / 4u;
        let last = p.n - 1u;
        let n = n0 + q * 4u;
        let kb = b_base + k0 + kq * 4u;
        let c0 = b4[(kb + min(n, last) * p.b_cs) / 4u];
        let c1 = b4[(kb + min(n + 1u, last) * p.b_cs) / 4u];
        let c2 = b4[(kb + min(n + 2u, last) * p.b_cs) / 4u];
        let c3 = b4[(kb + min(n + 3u, last) * p.b_cs) / 4u];
        big_b[(kq * 4u) * BIG_QUADS + q] = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
        big_b[(kq * 4u + 1u) * BIG_QUADS + q] = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
        big_b[(kq * 4u + 2u) * BIG_QUADS + q] = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
        big_b[(kq * 4u + 3u) * BIG_QUADS + q] = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
        return;
    }
    let q = blk % BIG_QUADS;
    let kq = blk / BIG_QUADS;
    let n = n0 + q * 4u;
    if (k_inside && mode == 2u && (n0 + 128u <= p.n || (p.n & 3u) == 0u)) {
        // Rows contiguous along n: 32 threads read 128 consecutive columns; quads past the edge are zeros.
        for (var j = 0u; j < 4u; j++) {
            var v = vec4<f32>(0.0);
            if (n < p.n) {
                v = b4[(b_base + (k0 + kq * 4u + j) * p.b_rs + n) / 4u];
            }
            big_b[(kq * 4u + j) * BIG_QUADS + q] = v;
        }
        return;
    }
    // Scalar reads, k-contiguous columns read by four neighbouring threads as for A.
    var sq = q;
    var skq = kq;
    if (p.b_rs == 1u) {
        skq = blk % 4u;
        sq = blk / 4u;
    }
    let sn = n0 + sq * 4u;
    for (var j = 0u; j < 4u; j++) {
        let k = k0 + skq * 4u + j;
        var v = vec4<f32>(0.0);
        if (k < k_end) {
            let kb = b_base + k * p.b_rs;
            if (sn < p.n) { v.x = b[kb + sn * p.b_cs]; }
            if (sn + 1u < p.n) { v.y = b[kb + (sn + 1u) * p.b_cs]; }
            if (sn + 2u < p.n) { v.z = b[kb + (sn + 2u) * p.b_cs]; }
            if (sn + 3u < p.n) { v.w = b[kb + (sn + 3u) * p.b_cs]; }
        }
        big_b[(skq * 4u + j) * BIG_QUADS + sq] = v;
    }
}

@compute @workgroup_size(16, 16, 1)
fn gemm_big(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let z = wg.z;
    let zo = z / p.batch_inner;
    let zi = z % p.batch_inner;
    let a_base = p.a_off + zo * p.a_bo + zi * p.a_bi;
    let b_base = p.b_off + zo * p.b_bo + zi * p.b_bi;
    let c_base = p.c_off + zo * p.c_bo + zi * p.c_bi;
    var k_begin = 0u;
    var k_end = p.k;
    if (p.k_chunk != 0u) {
        // Split-K: item z is k range z of one product (the launcher gives A and B zero batch strides).
        k_begin = z * p.k_chunk;
        k_end = min(p.k, k_begin + p.k_chunk);
    }
    let m0 = wg.y * 128u;
    let n0 = wg.x * 128u;
    let a_mode = (p.flags >> 2u) & 3u;
    let b_mode = (p.flags >> 4u) & 3u;

    // g{r}l / g{r}h: the thread's row r (r < 4: 4y + r; r >= 4: 64 + 4y + r - 4), columns 4x.. and 64+4x..
    var g0l = vec4<f32>(0.0); var g0h = vec4<f32>(0.0);
    var g1l = vec4<f32>(0.0); var g1h = vec4<f32>(0.0);
    var g2l = vec4<f32>(0.0); var g2h = vec4<f32>(0.0);
    var g3l = vec4<f32>(0.0); var g3h = vec4<f32>(0.0);
    var g4l = vec4<f32>(0.0); var g4h = vec4<f32>(0.0);
    var g5l = vec4<f32>(0.0); var g5h = vec4<f32>(0.0);
    var g6l = vec4<f32>(0.0); var g6h = vec4<f32>(0.0);
    var g7l = vec4<f32>(0.0); var g7h = vec4<f32>(0.0);

    for (var k0 = k_begin; k0 < k_end; k0 += TILE_K) {
        if (li < 128u) {
            big_load_a(li, k0, k_end, m0, a_base, a_mode);
        } else {
            big_load_b(li - 128u, k0, k_end, n0, b_base, b_mode);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk += 4u) {
            let al0 = big_a[(kk + 0u) * BIG_QUADS + lid.y];
            let ah0 = big_a[(kk + 0u) * BIG_QUADS + 16u + lid.y];
            let bl0 = big_b[(kk + 0u) * BIG_QUADS + lid.x];
            let bh0 = big_b[(kk + 0u) * BIG_QUADS + 16u + lid.x];
            g0l += al0.x * bl0; g0h += al0.x * bh0;
            g1l += al0.y * bl0; g1h += al0.y * bh0;
            g2l += al0.z * bl0; g2h += al0.z * bh0;
            g3l += al0.w * bl0; g3h += al0.w * bh0;
            g4l += ah0.x * bl0; g4h += ah0.x * bh0;
            g5l += ah0.y * bl0; g5h += ah0.y * bh0;
            g6l += ah0.z * bl0; g6h += ah0.z * bh0;
            g7l += ah0.w * bl0; g7h += ah0.w * bh0;
            let al1 = big_a[(kk + 1u) * BIG_QUADS + lid.y];
            let ah1 = big_a[(kk + 1u) * BIG_QUADS + 16u + lid.y];
            let bl1 = big_b[(kk + 1u) * BIG_QUADS + lid.x];
            let bh1 = big_b[(kk + 1u) * BIG_QUADS + 16u + lid.x];
            g0l += al1.x * bl1; g0h += al1.x * bh1;
            g1l += al1.y * bl1; g1h += al1.y * bh1;
            g2l += al1.z * bl1; g2h += al1.z * bh1;
            g3l += al1.w * bl1; g3h += al1.w * bh1;
            g4l += ah1.x * bl1; g4h += ah1.x * bh1;
            g5l += ah1.y * bl1; g5h += ah1.y * bh1;
            g6l += ah1.z * bl1; g6h += ah1.z * bh1;
            g7l += ah1.w * bl1; g7h += ah1.w * bh1;
            let al2 = big_a[(kk + 2u) * BIG_QUADS + lid.y];
            let ah2 = big_a[(kk + 2u) * BIG_QUADS + 16u + lid.y];
            let bl2 = big_b[(kk + 2u) * BIG_QUADS + lid.x];
            let bh2 = big_b[(kk + 2u) * BIG_QUADS + 16u + lid.x];
            g0l += al2.x * bl2; g0h += al2.x * bh2;
            g1l += al2.y * bl2; g1h += al2.y * bh2;
            g2l += al2.z * bl2; g2h += al2.z * bh2;
            g3l += al2.w * bl2; g3h += al2.w * bh2;
            g4l += ah2.x * bl2; g4h += ah2.x * bh2;
            g5l += ah2.y * bl2; g5h += ah2.y * bh2;
            g6l += ah2.z * bl2; g6h += ah2.z * bh2;
            g7l += ah2.w * bl2; g7h += ah2.w * bh2;
            let al3 = big_a[(kk + 3u) * BIG_QUADS + lid.y];
            let ah3 = big_a[(kk + 3u) * BIG_QUADS + 16u + lid.y];
            let bl3 = big_b[(kk + 3u) * BIG_QUADS + lid.x];
            let bh3 = big_b[(kk + 3u) * BIG_QUADS + 16u + lid.x];
            g0l += al3.x * bl3; g0h += al3.x * bh3;
            g1l += al3.y * bl3; g1h += al3.y * bh3;
            g2l += al3.z * bl3; g2h += al3.z * bh3;
            g3l += al3.w * bl3; g3h += al3.w * bh3;
            g4l += ah3.x * bl3; g4h += ah3.x * bh3;
            g5l += ah3.y * bl3; g5h += ah3.y * bh3;
            g6l += ah3.z * bl3; g6h += ah3.z * bh3;
            g7l += ah3.w * bl3; g7h += ah3.w * bh3;
        }
        workgroupBarrier();
    }

    let r_lo = m0 + lid.y * 4u;
    let r_hi = r_lo + 64u;
    let c_lo = n0 + lid.x * 4u;
    let c_hi = c_lo + 64u;
    store_row4(r_lo, c_lo, c_base, g0l); store_row4(r_lo, c_hi, c_base, g0h);
    store_row4(r_lo + 1u, c_lo, c_base, g1l); store_row4(r_lo + 1u, c_hi, c_base, g1h);
    store_row4(r_lo + 2u, c_lo, c_base, g2l); store_row4(r_lo + 2u, c_hi, c_base, g2h);
    store_row4(r_lo + 3u, c_lo, c_base, g3l); store_row4(r_lo + 3u, c_hi, c_base, g3h);
    store_row4(r_hi, c_lo, c_base, g4l); store_row4(r_hi, c_hi, c_base, g4h);
    store_row4(r_hi + 1u, c_lo, c_base, g5l); store_row4(r_hi + 1u, c_hi, c_base, g5h);
    store_row4(r_hi + 2u, c_lo, c_base, g6l); store_row4(r_hi + 2u, c_hi, c_base, g6h);
    store_row4(r_hi + 3u, c_lo, c_base, g7l); store_row4(r_hi + 3u, c_hi, c_base, g7h);
}

// gemm_splitk_sum: C = alpha · Σ_z partial[z] (+ bias) (+ C) for a split-K product, one thread per element of
// C; the partial sums (splits, M, N) row-major are bound as `a`. 256 threads per workgroup on a 2D grid.
@compute @workgroup_size(256, 1, 1)
fn gemm_splitk_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * groups.x) * 256u + li;
    let mn = p.m * p.n;
    if (i >= mn) {
        return;
    }
    var s = 0.0;
    for (var z = 0u; z < p.splits; z++) {
        s += a[z * mn + i];
    }
    store_c(i / p.n, i % p.n, p.c_off, s);
}
