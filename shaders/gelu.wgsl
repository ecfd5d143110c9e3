// gelu.wgsl: GELU in its exact form x · Φ(x) = x · ½ · erfc(−x / √2) (what HF BEiT's "gelu" is), forward and
// backward dx = dy · (Φ(x) + x · φ(x)). WGSL has no erf: erfc uses a Chebyshev-fitted form with fractional
// error below 1.2e-7 everywhere, the same one the CPU twin uses.
//
// Shapes: out, x, dy (n).

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
        let v = x[i];
        put(i, v * phi_cdf(v));
    }
}

@compute @workgroup_size(256)
fn gelu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * WG + li;
    if (i < p.n) {
        let v = x[i];
        let pdf = 0.39894228040143268 * exp(-0.5 * v * v);
        put(i, dy[i] * (phi_cdf(v) + v * pdf));
    }
}
