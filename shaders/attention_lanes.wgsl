// attention_lanes.wgsl: the attention core of short sequences (T <= 64 tokens, head_dim <= 32 and a multiple of
// 4) in one launch per direction, for software adapters whose subgroups are 8 lanes wide (llvmpipe on 256-bit
// vectors). A separate module because it needs the SUBGROUP feature; the composed path (matmul.wgsl's gemm and
// attention.wgsl's softmax) serves every other adapter and shape.
//
// attention_forward_lanes:  P = softmax(scale · A·Bᵀ + bias), O = P·C           (A = Q, B = K, C = V)
// attention_backward_lanes: dS = P · (A·Bᵀ − Σ_key P·A·Bᵀ), O = scale · dS·C     (A = dO, B = V, C = K)
// The backward writes dS (for d bias, which the launcher leaves to col_sum, and for dK) and dQ; then, up to 32
// tokens, attention_backward_kv_lanes computes dV = Pᵀ·dO and dK = scale · dSᵀ·Q for 8 keys per workgroup
// (past 32 tokens the launcher takes two gemm products instead: reading Pᵀ a key at a time costs more there).
//
// Shapes: A, B, C, O are (B, H, T, D) matrices addressed through (offset, row, head, batch) strides, all
// multiples of 4 (a fused (B, T, 3C) qkv tensor or a (B, T, C) one); P and dS (B, H, T, T); bias (H, T, T).
//
// Why: at BEiT's small presets (micro: T = 17, D = 16) the composed path is three launches forward and six
// backward, each reading and writing the (B, H, T, T) scores, and on llvmpipe every storage access is a loop
// over the lanes (about 10 cycles per lane), so the launches' fixed cost and their memory traffic dominate the
// arithmetic. Here one workgroup, one subgroup of 8 lanes, takes 8 query rows of one (batch, head): lane l
// reads row l and keys l, l + 8, l + 16, l + 24 (and with WIDE l + 32 .. l + 56) four dimensions at a time
// (vec4), the rows reach every lane through subgroup broadcasts, so each lane holds 8 rows x its 4 or 8 keys of
// the scores (`Scores`) with no workgroup memory and no barrier; softmax rows are reduced with subgroupMax / subgroupAdd; the product with C gives lane
// l the output dimensions 4l..4l+3 of the 8 rows, each key's weights broadcast from the lane that holds them.
// Measured on llvmpipe (2 cores, `bench train --preset micro --batch 32 --steps 10 --profile`, launches timed
// alone, the binaries before and after run back to back): a micro step's attention core (six gemm_direct products
// and two softmax launches per block) 6.5 and 9.3 ms in two runs; with the forward and dS / dQ launches here
// (dV and dK still products) 4.0 ms; with attention_backward_kv_lanes too 3.1 ms.

struct AttentionLanesParams {
    batch: u32,
    heads: u32,
    tokens: u32,
    head_dim: u32,
    scale: f32,
    // bit 0: add bias (forward).
    flags: u32,
    // Groups of 8 query rows: ceil(tokens / 8).
    groups: u32,
    _pad: u32,
    a_off: u32,
    a_rs: u32,
    a_hs: u32,
    a_bs: u32,
    b_off: u32,
    b_rs: u32,
    b_hs: u32,
    b_bs: u32,
    c_off: u32,
    c_rs: u32,
    c_hs: u32,
    c_bs: u32,
    o_off: u32,
    o_rs: u32,
    o_hs: u32,
    o_bs: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionLanesParams;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;          // Q | dO
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;          // K | V
@group(0) @binding(3) var<storage, read> c4: array<vec4<f32>>;          // V | K
@group(0) @binding(4) var<storage, read_write> o4: array<vec4<f32>>;    // O | dQ
@group(0) @binding(5) var<storage, read_write> probs_out: array<f32>;  // P (B, H, T, T), forward
@group(0) @binding(6) var<storage, read> bias: array<f32>;             // (H, T, T), forward
@group(0) @binding(7) var<storage, read> probs_in: array<f32>;         // P, backward
@group(0) @binding(8) var<storage, read_write> ds_out: array<f32>;     // dS (B, H, T, T), backward (read back by kv)
@group(0) @binding(9) var<storage, read_write> o4b: array<vec4<f32>>;   // dK (kv; may be o4's buffer)

// Pipeline constant: lanes hold 8 keys each (l + 8j, j = 0..7) instead of 4, for 33 to 64 tokens (mini's 50).
override WIDE: bool = false;

alias Rows = array<vec4<f32>, 8>; // 8 query rows x 4 of the lane's keys (or its 4 output dimensions)

// 8 query rows x the lane's keys: l + 8j for j = 0..3 in `lo`, j = 4..7 in `hi` (WIDE only).
struct Scores {
    lo: Rows,
    hi: Rows,
}

// One row's values at the lane's keys.
struct Pair {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// The (batch, head, group of 8 query rows) of a workgroup; `valid` false for the grid's padding.
struct Item {
    b: u32,
    h: u32,
    g: u32,
    valid: bool,
}

fn item_of(wg: vec3<u32>, nwg: vec3<u32>) -> Item {
    let w = wg.x + wg.y * nwg.x;
    let bh = w / p.groups;
    return Item(bh / p.heads, bh % p.heads, w % p.groups, bh < p.batch * p.heads);
}

// The lane's keys l + 8j, j = 4·half .. 4·half + 3.
fn lane_keys(lane: u32, half: u32) -> vec4<u32> {
    return vec4<u32>(lane) + 8u * (vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(4u * half));
}

// Row r of `s` += (row r of A) · (each of 4 keys' rows of B), four dimensions at once; `x` is lane l's four
// dimensions of row l.
fn add_dots(s: ptr<function, Rows>, x: vec4<f32>, y0: vec4<f32>, y1: vec4<f32>, y2: vec4<f32>, y3: vec4<f32>) {
    let x0 = subgroupBroadcast(x, 0u);
    let x1 = subgroupBroadcast(x, 1u);
    let x2 = subgroupBroadcast(x, 2u);
    let x3 = subgroupBroadcast(x, 3u);
    let x4 = subgroupBroadcast(x, 4u);
    let x5 = subgroupBroadcast(x, 5u);
    let x6 = subgroupBroadcast(x, 6u);
    let x7 = subgroupBroadcast(x, 7u);
    (*s)[0] += vec4<f32>(dot(x0, y0), dot(x0, y1), dot(x0, y2), dot(x0, y3));
    (*s)[1] += vec4<f32>(dot(x1, y0), dot(x1, y1), dot(x1, y2), dot(x1, y3));
    (*s)[2] += vec4<f32>(dot(x2, y0), dot(x2, y1), dot(x2, y2), dot(x2, y3));
    (*s)[3] += vec4<f32>(dot(x3, y0), dot(x3, y1), dot(x3, y2), dot(x3, y3));
    (*s)[4] += vec4<f32>(dot(x4, y0), dot(x4, y1), dot(x4, y2), dot(x4, y3));
    (*s)[5] += vec4<f32>(dot(x5, y0), dot(x5, y1), dot(x5, y2), dot(x5, y3));
    (*s)[6] += vec4<f32>(dot(x6, y0), dot(x6, y1), dot(x6, y2), dot(x6, y3));
    (*s)[7] += vec4<f32>(dot(x7, y0), dot(x7, y1), dot(x7, y2), dot(x7, y3));
}

// Rows 8g..8g+7 of A·Bᵀ at the lane's keys (rows and keys past T read the last one; their results are never
// stored). Keys past 8, 16, 24, ... are read only where T has them (a branch every lane takes alike).
fn row_key_products(it: Item, lane: u32) -> Scores {
    let last = p.tokens - 1u;
    let a_row = (p.a_off + it.b * p.a_bs + it.h * p.a_hs + min(it.g * 8u + lane, last) * p.a_rs) / 4u;
    let b_base = p.b_off + it.b * p.b_bs + it.h * p.b_hs;
    let lo = (vec4<u32>(b_base) + min(lane_keys(lane, 0u), vec4<u32>(last)) * p.b_rs) / 4u;
    let hi = (vec4<u32>(b_base) + min(lane_keys(lane, 1u), vec4<u32>(last)) * p.b_rs) / 4u;
    var s_lo: Rows;
    var s_hi: Rows;
    let quads = p.head_dim / 4u;
    for (var q = 0u; q < quads; q++) {
        let x = a4[a_row + q];
        let y0 = b4[lo.x + q];
        var y1 = vec4<f32>(0.0);
        var y2 = vec4<f32>(0.0);
        var y3 = vec4<f32>(0.0);
        if (p.tokens > 8u) { y1 = b4[lo.y + q]; }
        if (p.tokens > 16u) { y2 = b4[lo.z + q]; }
        if (p.tokens > 24u) { y3 = b4[lo.w + q]; }
        add_dots(&s_lo, x, y0, y1, y2, y3);
        if (WIDE) {
            var y4 = vec4<f32>(0.0);
            var y5 = vec4<f32>(0.0);
            var y6 = vec4<f32>(0.0);
            var y7 = vec4<f32>(0.0);
            if (p.tokens > 32u) { y4 = b4[hi.x + q]; }
            if (p.tokens > 40u) { y5 = b4[hi.y + q]; }
            if (p.tokens > 48u) { y6 = b4[hi.z + q]; }
            if (p.tokens > 56u) { y7 = b4[hi.w + q]; }
            add_dots(&s_hi, x, y4, y5, y6, y7);
        }
    }
    return Scores(s_lo, s_hi);
}

// Where row i of a (B, H, T, T) tensor starts (rows past T clamped).
fn square_row(it: Item, i: u32) -> u32 {
    return ((it.b * p.heads + it.h) * p.tokens + min(i, p.tokens - 1u)) * p.tokens;
}

// Store the lane's keys of row i (those inside T) of a (B, H, T, T) tensor, to P (`to_probs`) or dS.
fn store_square(it: Item, i: u32, lane: u32, v: Pair, to_probs: bool) {
    if (i >= p.tokens) {
        return;
    }
    let base = square_row(it, i);
    let halves = select(1u, 2u, WIDE && p.tokens > 32u);
    for (var half = 0u; half < halves; half++) {
        let keys = lane_keys(lane, half);
        let vals = select(v.lo, v.hi, half == 1u);
        for (var j = 0u; j < 4u; j++) {
            if ((4u * half + j) * 8u >= p.tokens) {
                return;
            }
            if (keys[j] < p.tokens) {
                if (to_probs) {
                    probs_out[base + keys[j]] = vals[j];
                } else {
                    ds_out[base + keys[j]] = vals[j];
                }
            }
        }
    }
}

// Four of the lane's keys of row i of P (`half` 0: l .. l + 24, 1: l + 32 .. l + 56), zero past T.
fn load_probs_half(base: u32, lane: u32, half: u32) -> vec4<f32> {
    let keys = lane_keys(lane, half);
    let last = p.tokens - 1u;
    let k0 = 32u * half;
    var v = vec4<f32>(0.0);
    if (p.tokens > k0) { v.x = probs_in[base + min(keys.x, last)]; }
    if (p.tokens > k0 + 8u) { v.y = probs_in[base + min(keys.y, last)]; }
    if (p.tokens > k0 + 16u) { v.z = probs_in[base + min(keys.z, last)]; }
    if (p.tokens > k0 + 24u) { v.w = probs_in[base + min(keys.w, last)]; }
    return select(vec4<f32>(0.0), v, keys < vec4<u32>(p.tokens));
}

// Four of the lane's keys of row i of the bias (H, T, T) (the same halves), zero past T.
fn load_bias_half(it: Item, i: u32, lane: u32, half: u32) -> vec4<f32> {
    let last = p.tokens - 1u;
    let base = (it.h * p.tokens + min(i, last)) * p.tokens;
    let keys = min(lane_keys(lane, half), vec4<u32>(last));
    let k0 = 32u * half;
    var v = vec4<f32>(0.0);
    if (p.tokens > k0) { v.x = bias[base + keys.x]; }
    if (p.tokens > k0 + 8u) { v.y = bias[base + keys.y]; }
    if (p.tokens > k0 + 16u) { v.z = bias[base + keys.z]; }
    if (p.tokens > k0 + 24u) { v.w = bias[base + keys.w]; }
    return v;
}

fn max4(v: vec4<f32>) -> f32 {
    return max(max(v.x, v.y), max(v.z, v.w));
}

// Softmax of row i over every key (each lane holding 4 or 8 of them): scale · s + bias, keys past T left out.
fn softmax_row(it: Item, i: u32, lane: u32, s_lo: vec4<f32>, s_hi: vec4<f32>) -> Pair {
    let in_lo = lane_keys(lane, 0u) < vec4<u32>(p.tokens);
    let in_hi = lane_keys(lane, 1u) < vec4<u32>(select(0u, p.tokens, WIDE)); // none without WIDE
    var lo = p.scale * s_lo;
    var hi = p.scale * s_hi;
    if ((p.flags & 1u) != 0u) {
        lo += load_bias_half(it, i, lane, 0u);
        if (WIDE) { hi += load_bias_half(it, i, lane, 1u); }
    }
    let lowest = vec4<f32>(bitcast<f32>(0xff7fffffu)); // -FLT_MAX past T
    lo = select(lowest, lo, in_lo);
    hi = select(lowest, hi, in_hi);
    let m = subgroupMax(max(max4(lo), max4(hi)));
    let e_lo = select(vec4<f32>(0.0), exp(lo - m), in_lo);
    let e_hi = select(vec4<f32>(0.0), exp(hi - m), in_hi);
    let sum = subgroupAdd(dot(e_lo, vec4<f32>(1.0)) + dot(e_hi, vec4<f32>(1.0)));
    let pr = Pair(e_lo / sum, e_hi / sum);
    store_square(it, i, lane, pr, true);
    return pr;
}

// Softmax backward of row i: dS = P · (dP − Σ_key P·dP); written to dS and returned.
fn softmax_grad_row(it: Item, i: u32, lane: u32, dp_lo: vec4<f32>, dp_hi: vec4<f32>) -> Pair {
    let base = square_row(it, i);
    let p_lo = load_probs_half(base, lane, 0u);
    var p_hi = vec4<f32>(0.0);
    if (WIDE) { p_hi = load_probs_half(base, lane, 1u); }
    let total = subgroupAdd(dot(p_lo, dp_lo) + dot(p_hi, dp_hi));
    let ds = Pair(p_lo * (dp_lo - total), p_hi * (dp_hi - total));
    store_square(it, i, lane, ds, false);
    return ds;
}

// acc[r] += w_r · cv for the 8 rows: `lo`, `hi` are the weights of rows 0-3 and 4-7 for one key.
fn add_key(acc: ptr<function, Rows>, lo: vec4<f32>, hi: vec4<f32>, cv: vec4<f32>) {
    (*acc)[0] += lo.x * cv;
    (*acc)[1] += lo.y * cv;
    (*acc)[2] += lo.z * cv;
    (*acc)[3] += lo.w * cv;
    (*acc)[4] += hi.x * cv;
    (*acc)[5] += hi.y * cv;
    (*acc)[6] += hi.z * cv;
    (*acc)[7] += hi.w * cv;
}

// Row `idx` (in vec4s) of the operand bound at A (`src` 0), B (1) or C (2).
fn src_row(src: u32, idx: u32) -> vec4<f32> {
    switch (src) {
        case 0u: { return a4[idx]; }
        case 1u: { return b4[idx]; }
        default: { return c4[idx]; }
    }
}

// Rows 8g..8g+7 = alpha · W · X, W (8 rows x T) spread over the lanes as in `Scores` (lane l: columns l + 8j),
// X (T, D) the operand at `src` through (x_base, x_rs) in vec4s of this (batch, head); stored through
// (o_base, o_rs) to o4 (`to_b` false) or o4b. Lane l computes dimensions 4l..4l+3 (lanes past D compute a copy
// of the last quad and store nothing).
fn weighted_sum_store(it: Item, lane: u32, w: Scores, alpha: f32, src: u32, x_base: u32, x_rs: u32,
                      to_b: bool, o_base: u32, o_rs: u32) {
    let quads = p.head_dim / 4u;
    let c_base = x_base + min(lane, quads - 1u);
    let c_rs = x_rs;
    var acc: Rows;
    let blocks = select(4u, 8u, WIDE && p.tokens > 32u);
    for (var j = 0u; j < blocks; j++) {
        let k0 = j * 8u;
        if (k0 >= p.tokens) {
            break;
        }
        // Weights of column 8j + lane for rows 0-3 and 4-7.
        var lo: vec4<f32>;
        var hi: vec4<f32>;
        if (j < 4u) {
            lo = vec4<f32>(w.lo[0][j], w.lo[1][j], w.lo[2][j], w.lo[3][j]);
            hi = vec4<f32>(w.lo[4][j], w.lo[5][j], w.lo[6][j], w.lo[7][j]);
        } else {
            let jh = j - 4u;
            lo = vec4<f32>(w.hi[0][jh], w.hi[1][jh], w.hi[2][jh], w.hi[3][jh]);
            hi = vec4<f32>(w.hi[4][jh], w.hi[5][jh], w.hi[6][jh], w.hi[7][jh]);
        }
        let lo0 = subgroupBroadcast(lo, 0u);
        let hi0 = subgroupBroadcast(hi, 0u);
        let lo1 = subgroupBroadcast(lo, 1u);
        let hi1 = subgroupBroadcast(hi, 1u);
        let lo2 = subgroupBroadcast(lo, 2u);
        let hi2 = subgroupBroadcast(hi, 2u);
        let lo3 = subgroupBroadcast(lo, 3u);
        let hi3 = subgroupBroadcast(hi, 3u);
        let lo4 = subgroupBroadcast(lo, 4u);
        let hi4 = subgroupBroadcast(hi, 4u);
        let lo5 = subgroupBroadcast(lo, 5u);
        let hi5 = subgroupBroadcast(hi, 5u);
        let lo6 = subgroupBroadcast(lo, 6u);
        let hi6 = subgroupBroadcast(hi, 6u);
        let lo7 = subgroupBroadcast(lo, 7u);
        let hi7 = subgroupBroadcast(hi, 7u);
        add_key(&acc, lo0, hi0, src_row(src, c_base + k0 * c_rs));
        if (k0 + 1u < p.tokens) { add_key(&acc, lo1, hi1, src_row(src, c_base + (k0 + 1u) * c_rs)); }
        if (k0 + 2u < p.tokens) { add_key(&acc, lo2, hi2, src_row(src, c_base + (k0 + 2u) * c_rs)); }
        if (k0 + 3u < p.tokens) { add_key(&acc, lo3, hi3, src_row(src, c_base + (k0 + 3u) * c_rs)); }
        if (k0 + 4u < p.tokens) { add_key(&acc, lo4, hi4, src_row(src, c_base + (k0 + 4u) * c_rs)); }
        if (k0 + 5u < p.tokens) { add_key(&acc, lo5, hi5, src_row(src, c_base + (k0 + 5u) * c_rs)); }
        if (k0 + 6u < p.tokens) { add_key(&acc, lo6, hi6, src_row(src, c_base + (k0 + 6u) * c_rs)); }
        if (k0 + 7u < p.tokens) { add_key(&acc, lo7, hi7, src_row(src, c_base + (k0 + 7u) * c_rs)); }
    }
    if (lane >= quads) {
        return;
    }
    let i0 = it.g * 8u;
    for (var r = 0u; r < 8u; r++) {
        if (i0 + r < p.tokens) {
            let idx = o_base + lane + (i0 + r) * o_rs;
            if (to_b) {
                o4b[idx] = alpha * acc[r];
            } else {
                o4[idx] = alpha * acc[r];
            }
        }
    }
}

// (base, row stride) in vec4s of this (batch, head)'s matrix in a view (off, rs, hs, bs).
fn view_c(it: Item) -> vec2<u32> {
    return vec2<u32>((p.c_off + it.b * p.c_bs + it.h * p.c_hs) / 4u, p.c_rs / 4u);
}
fn view_o(it: Item) -> vec2<u32> {
    return vec2<u32>((p.o_off + it.b * p.o_bs + it.h * p.o_hs) / 4u, p.o_rs / 4u);
}
fn view_a(it: Item) -> vec2<u32> {
    return vec2<u32>((p.a_off + it.b * p.a_bs + it.h * p.a_hs) / 4u, p.a_rs / 4u);
}
fn view_b(it: Item) -> vec2<u32> {
    return vec2<u32>((p.b_off + it.b * p.b_bs + it.h * p.b_hs) / 4u, p.b_rs / 4u);
}

// The transpose of P (`from_ds` false) or dS at this workgroup's 8 keys: row r = key 8g + r, column i = query
// l + 8j in lane l, as `Scores` (up to 32 tokens: the launcher takes this entry only there, so `hi` stays zero);
// queries past T give zeros, keys past T the last key (never stored).
fn transposed_weights(it: Item, lane: u32, from_ds: bool) -> Scores {
    let last = p.tokens - 1u;
    let k0 = it.g * 8u;
    let keys_lo = min(vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let keys_hi = min(vec4<u32>(k0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(last));
    var w: Rows;
    for (var j = 0u; j < 4u; j++) {
        if (j * 8u >= p.tokens) {
            break;
        }
        let i = lane + 8u * j;
        let base = square_row(it, i);
        var x_lo: vec4<f32>;
        var x_hi: vec4<f32>;
        if (from_ds) {
            x_lo = vec4<f32>(ds_out[base + keys_lo.x], ds_out[base + keys_lo.y], ds_out[base + keys_lo.z],
                             ds_out[base + keys_lo.w]);
            x_hi = vec4<f32>(ds_out[base + keys_hi.x], ds_out[base + keys_hi.y], ds_out[base + keys_hi.z],
                             ds_out[base + keys_hi.w]);
        } else {
            x_lo = vec4<f32>(probs_in[base + keys_lo.x], probs_in[base + keys_lo.y], probs_in[base + keys_lo.z],
                             probs_in[base + keys_lo.w]);
            x_hi = vec4<f32>(probs_in[base + keys_hi.x], probs_in[base + keys_hi.y], probs_in[base + keys_hi.z],
                             probs_in[base + keys_hi.w]);
        }
        if (i >= p.tokens) {
            x_lo = vec4<f32>(0.0);
            x_hi = vec4<f32>(0.0);
        }
        // Column i of rows 0..7: component j of w[r].
        w[0][j] = x_lo.x; w[1][j] = x_lo.y; w[2][j] = x_lo.z; w[3][j] = x_lo.w;
        w[4][j] = x_hi.x; w[5][j] = x_hi.y; w[6][j] = x_hi.z; w[7][j] = x_hi.w;
    }
    return Scores(w, Rows());
}

@compute @workgroup_size(8, 1, 1)
fn attention_forward_lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(subgroup_invocation_id) lane: u32) {
    let it = item_of(wg, nwg);
    if (!it.valid) {
        return;
    }
    let s = row_key_products(it, lane);
    let i0 = it.g * 8u;
    var w: Scores;
    let r0 = softmax_row(it, i0, lane, s.lo[0], s.hi[0]);
    let r1 = softmax_row(it, i0 + 1u, lane, s.lo[1], s.hi[1]);
    let r2 = softmax_row(it, i0 + 2u, lane, s.lo[2], s.hi[2]);
    let r3 = softmax_row(it, i0 + 3u, lane, s.lo[3], s.hi[3]);
    let r4 = softmax_row(it, i0 + 4u, lane, s.lo[4], s.hi[4]);
    let r5 = softmax_row(it, i0 + 5u, lane, s.lo[5], s.hi[5]);
    let r6 = softmax_row(it, i0 + 6u, lane, s.lo[6], s.hi[6]);
    let r7 = softmax_row(it, i0 + 7u, lane, s.lo[7], s.hi[7]);
    w.lo = Rows(r0.lo, r1.lo, r2.lo, r3.lo, r4.lo, r5.lo, r6.lo, r7.lo);
    w.hi = Rows(r0.hi, r1.hi, r2.hi, r3.hi, r4.hi, r5.hi, r6.hi, r7.hi);
    let c = view_c(it);
    let o = view_o(it);
    weighted_sum_store(it, lane, w, 1.0, 2u, c.x, c.y, false, o.x, o.y);
}

@compute @workgroup_size(8, 1, 1)
fn attention_backward_lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(subgroup_invocation_id) lane: u32) {
    let it = item_of(wg, nwg);
    if (!it.valid) {
        return;
    }
    let dp = row_key_products(it, lane);
    let i0 = it.g * 8u;
    var w: Scores;
    let r0 = softmax_grad_row(it, i0, lane, dp.lo[0], dp.hi[0]);
    let r1 = softmax_grad_row(it, i0 + 1u, lane, dp.lo[1], dp.hi[1]);
    let r2 = softmax_grad_row(it, i0 + 2u, lane, dp.lo[2], dp.hi[2]);
    let r3 = softmax_grad_row(it, i0 + 3u, lane, dp.lo[3], dp.hi[3]);
    let r4 = softmax_grad_row(it, i0 + 4u, lane, dp.lo[4], dp.hi[4]);
    let r5 = softmax_grad_row(it, i0 + 5u, lane, dp.lo[5], dp.hi[5]);
    let r6 = softmax_grad_row(it, i0 + 6u, lane, dp.lo[6], dp.hi[6]);
    let r7 = softmax_grad_row(it, i0 + 7u, lane, dp.lo[7], dp.hi[7]);
    w.lo = Rows(r0.lo, r1.lo, r2.lo, r3.lo, r4.lo, r5.lo, r6.lo, r7.lo);
    w.hi = Rows(r0.hi, r1.hi, r2.hi, r3.hi, r4.hi, r5.hi, r6.hi, r7.hi);
    let c = view_c(it);
    let o = view_o(it);
    weighted_sum_store(it, lane, w, p.scale, 2u, c.x, c.y, false, o.x, o.y);
}

// dV = Pᵀ·dO and dK = scale · dSᵀ·Q for 8 keys of one (batch, head) per workgroup (after
// attention_backward_lanes wrote dS): A = dO, B = Q, C = dV (written through o4), O = dK (through o4b).
@compute @workgroup_size(8, 1, 1)
fn attention_backward_kv_lanes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(subgroup_invocation_id) lane: u32) {
    let it = item_of(wg, nwg);
    if (!it.valid) {
        return;
    }
    let a = view_a(it);
    let b = view_b(it);
    let c = view_c(it);
    let o = view_o(it);
    let pt = transposed_weights(it, lane, false);
    weighted_sum_store(it, lane, pt, 1.0, 0u, a.x, a.y, false, c.x, c.y);
    let dst = transposed_weights(it, lane, true);
    weighted_sum_store(it, lane, dst, p.scale, 1u, b.x, b.y, true, o.x, o.y);
}
