// reduce.wgsl: reductions without float atomics (WebGPU has none): column sums in row chunks, row sums,
// and a multi-pass sum (optionally of squares, optionally with a final square root) of a flat buffer.
//
// col_sum:    x (R, C) -> out (chunks, C), chunk k summing rows [k·rpc, (k+1)·rpc); one pass when chunks = 1.
// row_sum:    x (R, C) -> out (R), one workgroup per row.
// reduce_sum: x (n) -> out (groups) partial sums of 4096 elements each; repeat until one value remains.

struct ReduceParams {
    rows: u32,
    cols: u32,
    rows_per_chunk: u32,
    chunks: u32,
    n: u32,
    // bit 0: accumulate into out; bit 1: square the inputs; bit 2: square root of the result.
    flags: u32,
    scale: f32,
    out_offset: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> p: ReduceParams;
@group(0) @binding(3) var<storage, read> x4: array<vec4<f32>>; // x, 4 at a time (reduce_sum)

const WG: u32 = 256u;
// reduce_sum: quads of x per thread, so 4096 elements per workgroup. Reading four at a time and 4x fewer
// workgroups (each ending in a tree of barriers) made the gradient's sum of squares 3x faster on llvmpipe.
const QUADS: u32 = 4u;
var<workgroup> red: array<f32, 256>;

fn store(i: u32, v: f32) {
    var r = v * p.scale;
    if ((p.flags & 4u) != 0u) {
        r = sqrt(r);
    }
    if ((p.flags & 1u) != 0u) {
        r += out[i];
    }
    out[i] = r;
}

fn tree(li: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn col_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * WG + li;
    if (g >= p.cols * p.chunks) {
        return;
    }
    let c = g % p.cols;
    let chunk = g / p.cols;
    let r0 = chunk * p.rows_per_chunk;
    let r1 = min(p.rows, r0 + p.rows_per_chunk);
    var s = 0.0;
    for (var row = r0; row < r1; row++) {
        s += x[row * p.cols + c];
    }
    store(p.out_offset + g, s);
}

@compute @workgroup_size(256)
fn row_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        s += x[row * p.cols + c];
    }
    red[li] = s;
    tree(li);
    if (li == 0u) {
        store(p.out_offset + row, red[0]);
    }
}

@compute @workgroup_size(256)
fn reduce_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let group = wg.x + wg.y * nwg.x;
    let groups = (p.n + WG * QUADS * 4u - 1u) / (WG * QUADS * 4u);
    if (group >= groups) {
        return;
    }
    let square = (p.flags & 2u) != 0u;
    var s = 0.0;
    for (var t = 0u; t < QUADS; t++) {
        let q = group * WG * QUADS + t * WG + li;
        let i = 4u * q;
        if (i + 3u < p.n) {
            let v = x4[q];
            let f = select(v, v * v, square);
            s += (f.x + f.y) + (f.z + f.w);
        } else {
            // The quad that holds the end of x (i + 3 >= n): its elements before n one at a time.
            for (var j = i; j < p.n; j++) {
                let v = x[j];
                s += select(v, v * v, square);
            }
        }
    }
    red[li] = s;
    tree(li);
    if (li == 0u) {
        store(p.out_offset + group, red[0]);
    }
}
