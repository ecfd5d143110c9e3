// matmul.wgsl: batched, strided matrix product C = alpha · A · B (+ bias) (+ C), tiled in workgroup memory
// (64 x 64 x 16 tiles) with 8x8 register blocking per thread. Every operand is addressed through strides, so one kernel serves
// nn.Linear forward (B = Wᵀ), its backward (dX = dY·W, dW += dYᵀ·X) and attention's per-head products.
//
// Shapes: A (M, K), B (K, N), C (M, N) per batch item; batch item z = (z / batch_inner, z % batch_inner)
// with separate outer / inner strides (e.g. batch and head). bias (N). All f32, any M, N, K.

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    batch_inner: u32,
    // bit 0: add bias[n]; bit 1: accumulate into C.
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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> c: array<f32>;   // (batch, M, N) through c strides
@group(0) @binding(1) var<storage, read> a: array<f32>;         // (batch, M, K) through a strides
@group(0) @binding(2) var<storage, read> b: array<f32>;         // (batch, K, N) through b strides
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // (N)
@group(0) @binding(4) var<uniform> p: GemmParams;

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
        if ((p.flags & 2u) != 0u) {
            r += c[idx];
        }
        c[idx] = r;
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
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 64u;
            var kk = e / 16u;
            var mq = e % 16u;
            if (a_k_fast) {
                kk = e % 16u;
                mq = e / 16u;
            }
            var va = vec4<f32>(0.0);
            if (a_inside) {
                let at = a_base + (k0 + kk) * p.a_cs + (m0 + mq * 4u) * p.a_rs;
                va = vec4<f32>(a[at], a[at + p.a_rs], a[at + 2u * p.a_rs], a[at + 3u * p.a_rs]);
            } else if (k0 + kk < p.k) {
                let ka = a_base + (k0 + kk) * p.a_cs;
                let m = m0 + mq * 4u;
                if (m < p.m) { va.x = a[ka + m * p.a_rs]; }
                if (m + 1u < p.m) { va.y = a[ka + (m + 1u) * p.a_rs]; }
                if (m + 2u < p.m) { va.z = a[ka + (m + 2u) * p.a_rs]; }
                if (m + 3u < p.m) { va.w = a[ka + (m + 3u) * p.a_rs]; }
            }
            tile_a[kk * 16u + mq] = va;

            var kb = e / 16u;
            var nq = e % 16u;
            if (!b_n_fast) {
                kb = e % 16u;
                nq = e / 16u;
            }
            var vb = vec4<f32>(0.0);
            if (b_inside) {
                let bt = b_base + (k0 + kb) * p.b_rs + (n0 + nq * 4u) * p.b_cs;
                vb = vec4<f32>(b[bt], b[bt + p.b_cs], b[bt + 2u * p.b_cs], b[bt + 3u * p.b_cs]);
            } else if (k0 + kb < p.k) {
                let kbase = b_base + (k0 + kb) * p.b_rs;
                let n = n0 + nq * 4u;
                if (n < p.n) { vb.x = b[kbase + n * p.b_cs]; }
                if (n + 1u < p.n) { vb.y = b[kbase + (n + 1u) * p.b_cs]; }
                if (n + 2u < p.n) { vb.z = b[kbase + (n + 2u) * p.b_cs]; }
                if (n + 3u < p.n) { vb.w = b[kbase + (n + 3u) * p.b_cs]; }
            }
            tile_b[kb * 16u + nq] = vb;
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
