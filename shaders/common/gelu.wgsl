// common/gelu.wgsl: GELU's functions, appended by the shader registry (`src/gpu/shaders.rs`) to every kernel
// family that computes GELU: gelu.wgsl, and the matrix products' GELU epilogues (matmul.wgsl, matmul_lanes.wgsl).
// Exact GELU x · Φ(x) = x · ½ · erfc(−x / √2) (what HF BEiT's "gelu" is) and its slope Φ(x) + x · φ(x). WGSL has
// no erf: erfc uses a Chebyshev-fitted form with fractional error below 1.2e-7 everywhere, the same one the CPU
// twin (`cpu::gelu`) uses.

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

// gelu and gelu_slope of four elements.
fn gelu4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));
}

fn gelu_slope4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(gelu_slope(v.x), gelu_slope(v.y), gelu_slope(v.z), gelu_slope(v.w));
}
