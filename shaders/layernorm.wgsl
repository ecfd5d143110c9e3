// layernorm.wgsl: LayerNorm over the last dimension, forward (saves mean and rstd) and backward
// (dx; dγ, dβ as per-chunk partial column sums that reduce.wgsl's col_sum finishes).
//
// Shapes: x, y, dx, dy (R, C); mean, rstd (R); gamma, beta (C); part: dγ partials (chunks, C) at 0 and
// dβ partials (chunks, C) at beta_offset. One workgroup per row.

struct LayerNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    // bit 0 (backward_input): accumulate into dx.
    flags: u32,
    rows_per_chunk: u32,
    chunks: u32,
    // element offset of the dβ partials in `out` (storage-aligned so each half binds on its own).
    beta_offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;    // y (R, C) | dx (R, C) | part (2·chunks, C)
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;   // (R), written by forward
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;   // (R), written by forward
@group(0) @binding(3) var<storage, read> x: array<f32>;            // (R, C)
@group(0) @binding(4) var<storage, read> gamma: array<f32>;        // (C)
@group(0) @binding(5) var<storage, read> beta: array<f32>;         // (C)
@group(0) @binding(6) var<storage, read> dy: array<f32>;           // (R, C)
@group(0) @binding(7) var<uniform> p: LayerNormParams;
@group(0) @binding(8) var<storage, read> saved_mean: array<f32>;   // (R), read by backward
@group(0) @binding(9) var<storage, read> saved_rstd: array<f32>;   // (R), read by backward
// The same buffers 4 at a time, for the `_rows4` entries (C a multiple of 4).
@group(0) @binding(10) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> gamma4: array<vec4<f32>>;
@group(0) @binding(13) var<storage, read> beta4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> dy4: array<vec4<f32>>;

const WG: u32 = 64u;
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 64>;

fn reduce2(li: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red_a[li] += red_a[li + s];
            red_b[li] += red_b[li + s];
        }
        workgroupBarrier();
    }
}

fn row_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

@compute @workgroup_size(64)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let row = row_index(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        s += x[base + c];
    }
    red_a[li] = s;
    red_b[li] = 0.0;
    reduce2(li);
    let mu = red_a[0] / f32(p.cols);
    workgroupBarrier();
    var v = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        let d = x[base + c] - mu;
        v += d * d;
    }
    red_a[li] = v;
    red_b[li] = 0.0;
    reduce2(li);
    let r = inverseSqrt(red_a[0] / f32(p.cols) + p.eps);
    for (var c = li; c < p.cols; c += WG) {
        out[base + c] = (x[base + c] - mu) * r * gamma[c] + beta[c];
    }
    if (li == 0u) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

// dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)), g = dy · γ.
@compute @workgroup_size(64)
fn layernorm_backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) li: u32) {
    let row = row_index(wg, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let mu = saved_mean[row];
    let r = saved_rstd[row];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        let g = dy[base + c] * gamma[c];
        sg += g;
        sgx += g * (x[base + c] - mu) * r;
    }
    red_a[li] = sg;
    red_b[li] = sgx;
    reduce2(li);
    let mg = red_a[0] / f32(p.cols);
    let mgx = red_b[0] / f32(p.cols);
    let accumulate = (p.flags & 1u) != 0u;
    for (var c = li; c < p.cols; c += WG) {
        let xhat = (x[base + c] - mu) * r;
        var d = r * (dy[base + c] * gamma[c] - mg - xhat * mgx);
        if (accumulate) {
            d += out[base + c];
        }
        out[base + c] = d;
    }
}

// One thread per (chunk, column): partial sums of dy · x̂ (dγ) and dy (dβ) over the chunk's rows.
@compute @workgroup_size(64)
fn layernorm_backward_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * WG + li;
    if (g >= p.cols * p.chunks) {
        return;
    }
    let c = g % p.cols;
    let chunk = g / p.cols;
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(p.rows, r0 + p.rows_per_chunk);
    var dg = 0.0;
    var db = 0.0;
    for (var row = r0; row < r1; row++) {
        let d = dy[row * p.cols + c];
        dg += d * (x[row * p.cols + c] - saved_mean[row]) * saved_rstd[row];
        db += d;
    }
    out[chunk * p.cols + c] = dg;
    out[p.beta_offset + chunk * p.cols + c] = db;
}

// ---------------------------------------------------------------------------------------------------------
// One thread per row: the same forward and input backward for software (CPU) adapters, where a workgroup
// barrier costs more than a row's arithmetic (a tree reduction per row takes a dozen). 64 rows per workgroup.

fn thread_row(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

@compute @workgroup_size(64)
fn layernorm_forward_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) li: u32) {
    let row = thread_row(wg, nwg, li);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        s += x[base + c];
    }
    let mu = s / f32(p.cols);
    var v = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let d = x[base + c] - mu;
        v += d * d;
    }
    let r = inverseSqrt(v / f32(p.cols) + p.eps);
    for (var c = 0u; c < p.cols; c++) {
        out[base + c] = (x[base + c] - mu) * r * gamma[c] + beta[c];
    }
    mean[row] = mu;
    rstd[row] = r;
}

@compute @workgroup_size(64)
fn layernorm_backward_input_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                 @builtin(local_invocation_index) li: u32) {
    let row = thread_row(wg, nwg, li);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let mu = saved_mean[row];
    let r = saved_rstd[row];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let g = dy[base + c] * gamma[c];
        sg += g;
        sgx += g * (x[base + c] - mu) * r;
    }
    let mg = sg / f32(p.cols);
    let mgx = sgx / f32(p.cols);
    let accumulate = (p.flags & 1u) != 0u;
    for (var c = 0u; c < p.cols; c++) {
        let xhat = (x[base + c] - mu) * r;
        var d = r * (dy[base + c] * gamma[c] - mg - xhat * mgx);
        if (accumulate) {
            d += out[base + c];
        }
        out[base + c] = d;
    }
}

// The same two with C a multiple of 4, a row read and written as C / 4 quads (on llvmpipe each storage access
// is a loop over the lanes; four elements per access halved these kernels there).

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

@compute @workgroup_size(64)
fn layernorm_forward_rows4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) li: u32) {
    let row = thread_row(wg, nwg, li);
    if (row >= p.rows) {
        return;
    }
    let quads = p.cols / 4u;
    let base = row * quads;
    var s = vec4<f32>(0.0);
    for (var c = 0u; c < quads; c++) {
        s += x4[base + c];
    }
    let mu = sum4(s) / f32(p.cols);
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < quads; c++) {
        let d = x4[base + c] - mu;
        v += d * d;
    }
    let r = inverseSqrt(sum4(v) / f32(p.cols) + p.eps);
    for (var c = 0u; c < quads; c++) {
        out4[base + c] = (x4[base + c] - mu) * r * gamma4[c] + beta4[c];
    }
    mean[row] = mu;
    rstd[row] = r;
}

@compute @workgroup_size(64)
fn layernorm_backward_input_rows4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) li: u32) {
    let row = thread_row(wg, nwg, li);
    if (row >= p.rows) {
        return;
    }
    let quads = p.cols / 4u;
    let base = row * quads;
    let mu = saved_mean[row];
    let r = saved_rstd[row];
    var sg = vec4<f32>(0.0);
    var sgx = vec4<f32>(0.0);
    for (var c = 0u; c < quads; c++) {
        let g = dy4[base + c] * gamma4[c];
        sg += g;
        sgx += g * (x4[base + c] - mu) * r;
    }
    let mg = sum4(sg) / f32(p.cols);
    let mgx = sum4(sgx) / f32(p.cols);
    let accumulate = (p.flags & 1u) != 0u;
    for (var c = 0u; c < quads; c++) {
        let xhat = (x4[base + c] - mu) * r;
        var d = r * (dy4[base + c] * gamma4[c] - mg - xhat * mgx);
        if (accumulate) {
            d += out4[base + c];
        }
        out4[base + c] = d;
    }
}
