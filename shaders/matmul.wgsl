// matmul.wgsl: batched, strided matrix product C = alpha · A · B (+ bias) (+ C), tiled in workgroup memory
// with 4x4 register blocking. Every operand is addressed through strides, so one kernel serves
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

var<workgroup> tile_a: array<f32, 1024>; // [k][m], TILE_K x TILE_M
var<workgroup> tile_b: array<f32, 1024>; // [k][n], TILE_K x TILE_N

@compute @workgroup_size(16, 16, 1)
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
    // Load order: the unit-stride dimension fastest, so reads coalesce in both layouts.
    let a_k_fast = p.a_cs == 1u;
    let b_n_fast = p.b_cs == 1u;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        for (var r = 0u; r < 4u; r++) {
            let e = li + r * 256u;
            var mm: u32;
            var kk: u32;
            if (a_k_fast) {
                mm = e / TILE_K;
                kk = e % TILE_K;
            } else {
                mm = e % TILE_M;
                kk = e / TILE_M;
            }
            var va = 0.0;
            if (m0 + mm < p.m && k0 + kk < p.k) {
                va = a[a_base + (m0 + mm) * p.a_rs + (k0 + kk) * p.a_cs];
            }
            tile_a[kk * TILE_M + mm] = va;

            var nn: u32;
            var kb: u32;
            if (b_n_fast) {
                nn = e % TILE_N;
                kb = e / TILE_N;
            } else {
                nn = e / TILE_K;
                kb = e % TILE_K;
            }
            var vb = 0.0;
            if (n0 + nn < p.n && k0 + kb < p.k) {
                vb = b[b_base + (k0 + kb) * p.b_rs + (n0 + nn) * p.b_cs];
            }
            tile_b[kb * TILE_N + nn] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let ar = vec4<f32>(tile_a[kk * TILE_M + lid.y * 4u], tile_a[kk * TILE_M + lid.y * 4u + 1u],
                               tile_a[kk * TILE_M + lid.y * 4u + 2u], tile_a[kk * TILE_M + lid.y * 4u + 3u]);
            let br = vec4<f32>(tile_b[kk * TILE_N + lid.x * 4u], tile_b[kk * TILE_N + lid.x * 4u + 1u],
                               tile_b[kk * TILE_N + lid.x * 4u + 2u], tile_b[kk * TILE_N + lid.x * 4u + 3u]);
            acc[0] += ar.x * br;
            acc[1] += ar.y * br;
            acc[2] += ar.z * br;
            acc[3] += ar.w * br;
        }
        workgroupBarrier();
    }

    let use_bias = (p.flags & 1u) != 0u;
    let accumulate = (p.flags & 2u) != 0u;
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + lid.y * 4u + i;
        if (row >= p.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = n0 + lid.x * 4u + j;
            if (col >= p.n) {
                continue;
            }
            var v = p.alpha * acc[i][j];
            if (use_bias) {
                v += bias[col];
            }
            let idx = c_base + row * p.c_rs + col * p.c_cs;
            if (accumulate) {
                v += c[idx];
            }
            c[idx] = v;
        }
    }
}
