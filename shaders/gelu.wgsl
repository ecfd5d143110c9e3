// gelu.wgsl: GELU in its exact form x · Φ(x) = x · ½ · erfc(−x / √2) (what HF BEiT's "gelu" is), forward and
// backward dx = dy · (Φ(x) + x · φ(x)). WGSL has no erf: erfc uses a Chebyshev-fitted form with fractional
// error below 1.2e-7 everywhere, the same one the CPU twin uses.
//
// Shapes: out, x, dy (n). The `4` entries take four elements per invocation through vec4 views of the same
// buffers (n a multiple of 4): on software adapters every storage access is a loop over the lanes, and four
// elements per access made GELU forward 3x faster on llvmpipe.

struct GeluParams {
    n: u32,
    // bit 0: accumulate into out.
    flags: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<uniform> p: GeluParams;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>; // out, 4 at a time
@group(0) @binding(5) var<storage, read> x4: array<vec4<f32>>;         // x, 4 at a time
@group(0) @binding(6) var<storage, read> dy4: array<vec4<f32>>;        // dy, 4 at a time

const WG: u32 = 256u;

fn erfc_approx(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * exp(poly);
    return select(2.0 - r, r, v >= 0.0);
}

fn phi_cdf(v: f32) -> f32 {
    return 0.5 * erfc_approx(-v * 0.70710678118654752);
}

fn gelu(v: f32) -> f32 {
    return v * phi_cdf(v);
}

// dgelu/dx = Φ(x) + x · φ(x).
fn gelu_slope(v: f32) -> f32 {
    let pdf = 0.39894228040143268 * exp(-0.5 * v * v);
    return phi_cdf(v) + v * pdf;
}

fn put(i: u32, v: f32) {
    if ((p.flags & 1u) != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}

@compute @workgroup_size(256)
fn gelu_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * WG + li;
    if (i < p.n) {
        put(i, gelu(x[i]));
    }
}

fn put4(i: u32, v: vec4<f32>) {
    if ((p.flags & 1u) != 0u) {
        out4[i] = out4[i] + v;
    } else {
        out4[i] = v;
    }
}

// gelu_forward on quads: invocation i does elements 4i .. 4i + 3.
@compute @workgroup_size(256)
fn gelu_forward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * WG + li;
    if (i < p.n / 4u) {
        let v = x4[i];
        put4(i, vec4<f32>(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w)));
    }
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * WG + li;
    if (i < p.n) {
        put(i, dy[i] * gelu_slope(x[i]));
    }
}

// gelu_backward on quads.
@compute @workgroup_size(256)
fn gelu_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * WG + li;
    if (i < p.n / 4u) {
        let v = x4[i];
        put4(i, dy4[i] * vec4<f32>(gelu_slope(v.x), gelu_slope(v.y), gelu_slope(v.z), gelu_slope(v.w)));
    }
}
