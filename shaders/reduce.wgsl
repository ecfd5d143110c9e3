// reduce.wgsl: reductions without float atomics (WebGPU has none): column sums in row chunks, row sums,
// and a multi-pass sum (optionally of squares, optionally with a final square root) of a flat buffer.
//
// col_sum:    x (R, C) -> out (chunks, C), chunk k summing rows [k·rpc, (k+1)·rpc); one pass when chunks = 1.
// row_sum:    x (R, C) -> out (R), one workgroup per row.
// reduce_sum: x (n) -> out (groups) partial sums of 4096 elements each; repeat until one value remains.
// reduce_sum_long: the same with 65536 elements per workgroup of 64 threads (software adapters).

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

// red[0] = Σ red[0..width) (width: the workgroup's size, a power of two).
fn tree(li: u32, width: u32) {
    workgroupBarrier();
    for (var s = width / 2u; s > 0u; s = s / 2u) {
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
    tree(li, WG);
    if (li == 0u) {
        store(p.out_offset + row, red[0]);
    }
}

@compute @workgroup_size(256)
fn reduce_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let group = wg.x + wg.y * nwg.x;
    // One group for n = 0, which writes the empty sum 0.
    let groups = max((p.n + WG * QUADS * 4u - 1u) / (WG * QUADS * 4u), 1u);
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
    tree(li, WG);
    if (li == 0u) {
        store(p.out_offset + group, red[0]);
    }
}

// reduce_sum for software adapters: 65536 elements per workgroup of 64 threads (LONG_QUADS quads per thread),
// then one tree of 6 levels. On llvmpipe a workgroup barrier switches every subgroup of the workgroup out and in,
// and reduce_sum's 9 barriers per 4096 elements took three quarters of tiny's gradient sum of squares (6.9M
// elements: 36.4 ms single-threaded, 9.7 ms with the tree removed). This kernel: 5.8 ms
// (`LP_NUM_THREADS=0 beitlab bench kernels --preset tiny --batch 16`, row "grad sum of squares").
const LONG_WG: u32 = 64u;
const LONG_QUADS: u32 = 256u;

@compute @workgroup_size(64)
fn reduce_sum_long(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let group = wg.x + wg.y * nwg.x;
    let per_group = LONG_WG * LONG_QUADS;
    let full_quads = p.n / 4u;
    let groups = max((p.n + 4u * per_group - 1u) / (4u * per_group), 1u); // as reduce_sum's
    if (group >= groups) {
        return;
    }
    let square = (p.flags & 2u) != 0u;
    var s = 0.0;
    let end = min(full_quads, (group + 1u) * per_group);
    // Each subgroup of 8 threads walks its own contiguous eighth of the group's quads, its lanes on adjacent
    // quads: llvmpipe runs a workgroup's subgroups one after another, and threads 64 quads apart (each subgroup
    // touching a few bytes of every kilobyte) took 23 ms instead of 5.8.
    let run = per_group / 8u;
    let first = group * per_group + (li / 8u) * run + li % 8u;
    let last = min(end, group * per_group + (li / 8u + 1u) * run);
    for (var q = first; q < last; q += 8u) {
        let v = x4[q];
        let f = select(v, v * v, square);
        s += (f.x + f.y) + (f.z + f.w);
    }
    // The last 0-3 elements (past the last whole quad), in the last group.
    if (group + 1u == groups && li == 0u) {
        for (var j = 4u * full_quads; j < p.n; j++) {
            let v = x[j];
            s += select(v, v * v, square);
        }
    }
    red[li] = s;
    tree(li, LONG_WG);
    if (li == 0u) {
        store(p.out_offset + group, red[0]);
    }
}
