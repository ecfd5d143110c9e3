// attention.wgsl: the non-matmul parts of attention (the products run on matmul.wgsl's gemm):
// softmax of scores plus a bias, its backward, and BEiT's relative position bias: gather of the
// (heads, T, T) bias from the (rows, heads) table by index, and the scatter-add of its gradient back
// into the table, done as a per-table-row gather over an inverted index (no float atomics in WebGPU).
//
// softmax_forward:  p (rows, cols) = softmax(s + bias[row % bias_rows]) with bias (bias_rows, cols).
// softmax_backward: ds (rows, cols) = p · (dp − Σ_j dp·p).
// relpos_gather:    bias (heads, tt) with bias[h, ij] = table[index[ij], h]; table (table_rows, heads).
// relpos_scatter:   dtable[r, h] (+)= Σ_{ij in items[offsets[r]..offsets[r+1]]} Σ_b dbias[b, h, ij], over
//                   `rows` slabs b of (heads, tt) (1 for a plain d bias, B for the score gradients).

struct AttentionParams {
    rows: u32,
    cols: u32,
    bias_rows: u32,
    // bit 0: add bias (softmax_forward); accumulate into out (relpos_scatter).
    flags: u32,
    heads: u32,
    tt: u32,
    table_rows: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> in0: array<f32>;       // s | p | table | dbias
@group(0) @binding(2) var<storage, read> in1: array<f32>;       // bias | dp
@group(0) @binding(3) var<storage, read> index: array<u32>;     // relpos index (tt) | scatter offsets (table_rows + 1)
@group(0) @binding(4) var<storage, read> items: array<u32>;     // scatter items: ij positions grouped by table row
@group(0) @binding(5) var<uniform> p: AttentionParams;

const WG: u32 = 64u;
var<workgroup> red: array<f32, 64>;

fn tree_max(li: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red[li] = max(red[li], red[li + s]);
        }
        workgroupBarrier();
    }
}

fn tree_sum(li: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red[li] += red[li + s];
        }
        workgroupBarrier();
    }
}

fn score(base: u32, brow: u32, c: u32) -> f32 {
    var v = in0[base + c];
    if ((p.flags & 1u) != 0u) {
        v += in1[brow + c];
    }
    return v;
}

@compute @workgroup_size(64)
fn softmax_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let brow = (row % max(p.bias_rows, 1u)) * p.cols;
    var m = bitcast<f32>(0xff7fffffu); // -FLT_MAX (a decimal literal rounds past it in some compilers)
    for (var c = li; c < p.cols; c += WG) {
        m = max(m, score(base, brow, c));
    }
    red[li] = m;
    tree_max(li);
    let row_max = red[0];
    workgroupBarrier();
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        s += exp(score(base, brow, c) - row_max);
    }
    red[li] = s;
    tree_sum(li);
    let inv = 1.0 / red[0];
    for (var c = li; c < p.cols; c += WG) {
        out[base + c] = exp(score(base, brow, c) - row_max) * inv;
    }
}

@compute @workgroup_size(64)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var c = li; c < p.cols; c += WG) {
        s += in0[base + c] * in1[base + c];
    }
    red[li] = s;
    tree_sum(li);
    let dot = red[0];
    for (var c = li; c < p.cols; c += WG) {
        out[base + c] = in0[base + c] * (in1[base + c] - dot);
    }
}

@compute @workgroup_size(64)
fn relpos_gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * WG + li;
    if (g >= p.heads * p.tt) {
        return;
    }
    let h = g / p.tt;
    let ij = g % p.tt;
    out[g] = in0[index[ij] * p.heads + h];
}

@compute @workgroup_size(64)
fn relpos_scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let g = (wg.x + wg.y * nwg.x) * WG + li;
    if (g >= p.table_rows * p.heads) {
        return;
    }
    let r = g / p.heads;
    let h = g % p.heads;
    // `rows` (B) slabs of (H, T·T) summed: d bias straight from the (B, H, T, T) score gradients.
    let slab = p.heads * p.tt;
    var s = 0.0;
    for (var q = index[r]; q < index[r + 1u]; q++) {
        let at = h * p.tt + items[q];
        for (var b = 0u; b < max(p.rows, 1u); b++) {
            s += in0[b * slab + at];
        }
    }
    if ((p.flags & 1u) != 0u) {
        s += out[g];
    }
    out[g] = s;
}

// ---------------------------------------------------------------------------------------------------------
// One thread per row: the same softmax forward and backward for software (CPU) adapters, where a workgroup
// barrier costs more than a short row's arithmetic. 64 rows per workgroup.

@compute @workgroup_size(64)
fn softmax_forward_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) li: u32) {
    let row = (wg.x + wg.y * nwg.x) * WG + li;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let brow = (row % max(p.bias_rows, 1u)) * p.cols;
    var m = bitcast<f32>(0xff7fffffu); // -FLT_MAX
    for (var c = 0u; c < p.cols; c++) {
        m = max(m, score(base, brow, c));
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let e = exp(score(base, brow, c) - m);
        out[base + c] = e;
        s += e;
    }
    let inv = 1.0 / s;
    for (var c = 0u; c < p.cols; c++) {
        out[base + c] = out[base + c] * inv;
    }
}

@compute @workgroup_size(64)
fn softmax_backward_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                         @builtin(local_invocation_index) li: u32) {
    let row = (wg.x + wg.y * nwg.x) * WG + li;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var dot = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        dot += in0[base + c] * in1[base + c];
    }
    for (var c = 0u; c < p.cols; c++) {
        out[base + c] = in0[base + c] * (in1[base + c] - dot);
    }
}
