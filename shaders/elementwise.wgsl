// elementwise.wgsl: fill, copy, add (residual), axpby, accumulate-into, per-channel scale (layer scale) and the
// partial column sums of its parameter gradient. One thread per element, 2D grid past 65535 workgroups; the `4`
// entries one thread per four elements through vec4 views of the same buffers, where n (and, for scale_cols,
// C) is a multiple of 4: on llvmpipe every storage access is a loop over the lanes, so four elements per
// access cut the layer scale's time in about half there.
//
// Shapes: out, a, b (n) for fill / copy / add / accumulate; for scale_cols a (R, C), b = γ (C), out (R, C);
// for scale_cols_grad_partial a = dy (R, C), b = x (R, C), out (chunks, C).

struct ElementwiseParams {
    n: u32,
    cols: u32,
    rows: u32,
    rows_per_chunk: u32,
    chunks: u32,
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

// C a multiple of 4: a quad lies in one row, and its columns are quad (4q mod C) / 4 of γ.
@compute @workgroup_size(256)
fn scale_cols4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let q = gid(wg, nwg, li);
    if (q < p.n / 4u) {
        put4(q, a4[q] * b4[(4u * q % p.cols) / 4u]);
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

@compute @workgroup_size(256)
fn scale_cols(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i < p.n) {
        put(i, a[i] * b[i % p.cols]);
    }
}

@compute @workgroup_size(256)
fn scale_cols_grad_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) li: u32) {
    let g = gid(wg, nwg, li);
    if (g >= p.cols * p.chunks) {
        return;
    }
    let c = g % p.cols;
    let chunk = g / p.cols;
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(p.rows, r0 + p.rows_per_chunk);
    var s = 0.0;
    for (var row = r0; row < r1; row++) {
        s += a[row * p.cols + c] * b[row * p.cols + c];
    }
    out[g] = s;
}
