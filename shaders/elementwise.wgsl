// elementwise.wgsl: fill, copy, add (residual), axpby, accumulate-into. One thread per element, 2D grid past
// 65535 workgroups; the `4` entries one thread per four elements through vec4 views of the same buffers, where
// n is a multiple of 4: on llvmpipe every storage access is a loop over the lanes, so four elements per access
// cut such a kernel's time in about half there. (The layer scale and its gradient are part of the residual
// branch's kernels, droppath.wgsl.)
//
// Shapes: out, a, b (n).

struct ElementwiseParams {
    n: u32,
    // bit 0: accumulate into out.
    flags: u32,
    value: f32,
    value2: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<uniform> p: ElementwiseParams;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>; // out, 4 at a time
@group(0) @binding(5) var<storage, read> a4: array<vec4<f32>>;         // a, 4 at a time
@group(0) @binding(6) var<storage, read> b4: array<vec4<f32>>;         // b, 4 at a time

const WG: u32 = 256u;

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

fn put(i: u32, v: f32) {
    if ((p.flags & 1u) != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}

fn put4(q: u32, v: vec4<f32>) {
    if ((p.flags & 1u) != 0u) {
        out4[q] = out4[q] + v;
    } else {
        out4[q] = v;
    }
}

@compute @workgroup_size(256)
fn fill4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = gid(wg, nwg, li);
    if (q < p.n / 4u) {
        out4[q] = vec4<f32>(p.value);
    }
}

@compute @workgroup_size(256)
fn copy4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = gid(wg, nwg, li);
    if (q < p.n / 4u) {
        put4(q, a4[q]);
    }
}

@compute @workgroup_size(256)
fn add4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = gid(wg, nwg, li);
    if (q < p.n / 4u) {
        put4(q, a4[q] + b4[q]);
    }
}

@compute @workgroup_size(256)
fn axpby4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = gid(wg, nwg, li);
    if (q < p.n / 4u) {
        put4(q, p.value * a4[q] + p.value2 * b4[q]);
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        out[i] = p.value;
    }
}

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        put(i, a[i]);
    }
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        put(i, a[i] + b[i]);
    }
}

// out (=|+=) value · a + value2 · b
@compute @workgroup_size(256)
fn axpby(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        put(i, p.value * a[i] + p.value2 * b[i]);
    }
}
