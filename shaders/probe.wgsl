// probe.wgsl: what an adapter's arithmetic and storage reads cost, measured by `beitlab bench kernels` (its
// "probe" rows) so that a product kernel's speed can be read against the ceiling of the adapter it runs on.
// On a software adapter the two differ from a GPU's in kind: every storage read is a loop over the lanes of a
// subgroup, while a multiply-add on all lanes is one vector instruction (two: llvmpipe has no fused
// multiply-add), so a kernel's speed there is set by how many reads it makes per multiply-add.
//
// probe_multiply_add: each invocation runs `iters` steps of 6 independent vec4 chains, each step applying
// a ← a·c + x eight times to each chain before writing it back, values in registers, no memory traffic in the
// loop: 192 multiply-adds per step. Eight per write as in gemm_lanes' k loop, because on llvmpipe every write
// to a variable inside a loop is a masked blend, which one multiply-add per write would time as well.
// probe_read / probe_read4: each invocation sums 8 scalars (vec4s) per step from its own contiguous run of
// `src`, wrapping at `n` (a power of two, small enough to stay in cache), so the loop is its reads and little
// else.
//
// Shapes: src (n) floats (n / 4 vec4s through src4); out (invocations), one sum per invocation.

struct ProbeParams {
    n: u32,
    iters: u32,
    invocations: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<uniform> p: ProbeParams;
@group(0) @binding(3) var<storage, read> src4: array<vec4<f32>>; // src, 4 at a time

// The multiply-add chains' factor: below 1, so each chain tends to x / (1 - c) and never overflows.
const CHAIN_FACTOR: f32 = 0.999;

// Eight steps a ← a·c + x of one chain.
fn chain8(a: vec4<f32>, c: vec4<f32>, x: vec4<f32>) -> vec4<f32> {
    let a2 = (a * c + x) * c + x;
    let a4 = (a2 * c + x) * c + x;
    let a6 = (a4 * c + x) * c + x;
    return (a6 * c + x) * c + x;
}

@compute @workgroup_size(64)
fn probe_multiply_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.invocations) {
        return;
    }
    let x = vec4<f32>(src[i & (p.n - 1u)], src[(i + 1u) & (p.n - 1u)], src[(i + 2u) & (p.n - 1u)],
                      src[(i + 3u) & (p.n - 1u)]);
    let c = vec4<f32>(CHAIN_FACTOR);
    var a0 = x;
    var a1 = x + 1.0;
    var a2 = x + 2.0;
    var a3 = x + 3.0;
    var a4 = x + 4.0;
    var a5 = x + 5.0;
    for (var s = 0u; s < p.iters; s++) {
        a0 = chain8(a0, c, x);
        a1 = chain8(a1, c, x);
        a2 = chain8(a2, c, x);
        a3 = chain8(a3, c, x);
        a4 = chain8(a4, c, x);
        a5 = chain8(a5, c, x);
    }
    let t = a0 + a1 + a2 + a3 + a4 + a5;
    out[i] = t.x + t.y + t.z + t.w;
}

// The first element of invocation `i`'s run of 8 per step, and where step `s`'s 8 start (wrapped at `n`).
fn read_start(i: u32, s: u32, len: u32) -> u32 {
    return (8u * (i + s)) & (len - 1u);
}

@compute @workgroup_size(64)
fn probe_read(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.invocations) {
        return;
    }
    var lo = 0.0;
    var hi = 0.0;
    for (var s = 0u; s < p.iters; s++) {
        let o = read_start(i, s, p.n);
        lo += src[o] + src[o + 1u] + src[o + 2u] + src[o + 3u];
        hi += src[o + 4u] + src[o + 5u] + src[o + 6u] + src[o + 7u];
    }
    out[i] = lo + hi;
}

@compute @workgroup_size(64)
fn probe_read4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= p.invocations) {
        return;
    }
    var lo = vec4<f32>(0.0);
    var hi = vec4<f32>(0.0);
    for (var s = 0u; s < p.iters; s++) {
        let o = read_start(i, s, p.n / 4u);
        lo += src4[o] + src4[o + 1u] + src4[o + 2u] + src4[o + 3u];
        hi += src4[o + 4u] + src4[o + 5u] + src4[o + 6u] + src4[o + 7u];
    }
    let t = lo + hi;
    out[i] = t.x + t.y + t.z + t.w;
}
