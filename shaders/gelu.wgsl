// gelu.wgsl: GELU in its exact form x · Φ(x) = x · ½ · erfc(−x / √2) (what HF BEiT's "gelu" is), forward and
// backward dx = dy · (Φ(x) + x · φ(x)), with the functions of `common/gelu.wgsl` (appended to this source by the
// shader registry; the matrix products' GELU epilogues use the same ones).
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
        put4(i, gelu4(v));
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
        put4(i, dy4[i] * gelu_slope4(v));
    }
}
