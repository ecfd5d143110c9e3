// attention_lanes.wgsl: the attention core of short sequences (T <= 32 tokens, head_dim <= 32 and a multiple of
// 4) in one launch per direction, for software adapters whose subgroups are 8 lanes wide (llvmpipe on 256-bit
// vectors). A separate module because it needs the SUBGROUP feature; the composed path (matmul.wgsl's gemm and
// attention.wgsl's softmax) serves every other adapter and shape.
//
// attention_forward_lanes:  P = softmax(scale · A·Bᵀ + bias), O = P·C           (A = Q, B = K, C = V)
// attention_backward_lanes: dS = P · (A·Bᵀ − Σ_key P·A·Bᵀ), O = scale · dS·C     (A = dO, B = V, C = K)
// The backward writes dS (for dK = scale · dSᵀ·Q and d bias, which the launcher leaves to gemm and col_sum) and
// dQ; dV = Pᵀ·dO is a gemm too.
//
// Shapes: A, B, C, O are (B, H, T, D) matrices addressed through (offset, row, head, batch) strides, all
// multiples of 4 (a fused (B, T, 3C) qkv tensor or a (B, T, C) one); P and dS (B, H, T, T); bias (H, T, T).
//
// Why: at BEiT's small presets (micro: T = 17, D = 16) the composed path is three launches forward and six
// backward, each reading and writing the (B, H, T, T) scores, and on llvmpipe every storage access is a loop
// over the lanes (about 10 cycles per lane), so the launches' fixed cost and their memory traffic dominate the
// arithmetic. Here one workgroup, one subgroup of 8 lanes, takes 8 query rows of one (batch, head): lane l
// reads row l and keys l, l + 8, l + 16, l + 24 four dimensions at a time (vec4), the rows reach every lane
// through subgroup broadcasts, so each lane holds 8 rows x its 4 keys of the scores (`Rows`) with no workgroup
// memory and no barrier; softmax rows are reduced with subgroupMax / subgroupAdd; the product with C gives lane
// l the output dimensions 4l..4l+3 of the 8 rows, each key's weights broadcast from the lane that holds them.
// Measured on llvmpipe (2 cores, `bench train --preset micro --batch 32 --profile`, launches timed alone): the
// attention of a micro step 9.3 ms composed (six gemm_direct products, two softmax launches per block) against
// 4.2 ms here (one launch each way, about 0.5 ms each, plus dV and dK as gemm_direct products).

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
@group(0) @binding(8) var<storage, read_write> ds_out: array<f32>;     // dS (B, H, T, T), backward

alias Rows = array<vec4<f32>, 8>; // 8 query rows x the lane's 4 keys (or its 4 output dimensions)

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

// The lane's keys l + 8j (j = 0..3) and which of them exist.
fn lane_keys(lane: u32) -> vec4<u32> {
    return vec4<u32>(lane, lane + 8u, lane + 16u, lane + 24u);
}

// Row r of `s` += (row r of A) · (each of the lane's keys' rows of B), four dimensions at once; `x` is lane
// l's four dimensions of row l.
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
// stored). Keys past 8, 16, 24 are read only where T has them (a branch every lane takes alike).
fn row_key_products(it: Item, lane: u32) -> Rows {
    let last = p.tokens - 1u;
    let a_row = (p.a_off + it.b * p.a_bs + it.h * p.a_hs + min(it.g * 8u + lane, last) * p.a_rs) / 4u;
    let b_base = p.b_off + it.b * p.b_bs + it.h * p.b_hs;
    let keys = min(lane_keys(lane), vec4<u32>(last));
    let k0 = (b_base + keys.x * p.b_rs) / 4u;
    let k1 = (b_base + keys.y * p.b_rs) / 4u;
    let k2 = (b_base + keys.z * p.b_rs) / 4u;
    let k3 = (b_base + keys.w * p.b_rs) / 4u;
    var s: Rows;
    let quads = p.head_dim / 4u;
    for (var q = 0u; q < quads; q++) {
        let x = a4[a_row + q];
        let y0 = b4[k0 + q];
        var y1 = vec4<f32>(0.0);
        var y2 = vec4<f32>(0.0);
        var y3 = vec4<f32>(0.0);
        if (p.tokens > 8u) { y1 = b4[k1 + q]; }
        if (p.tokens > 16u) { y2 = b4[k2 + q]; }
        if (p.tokens > 24u) { y3 = b4[k3 + q]; }
        add_dots(&s, x, y0, y1, y2, y3);
    }
    return s;
}

// Element (row i, the lane's keys) of a (B, H, T, T) tensor: its index for each key (keys past T clamped).
fn square_index(it: Item, i: u32, lane: u32) -> vec4<u32> {
    let last = p.tokens - 1u;
    let base = ((it.b * p.heads + it.h) * p.tokens + min(i, last)) * p.tokens;
    return vec4<u32>(base) + min(lane_keys(lane), vec4<u32>(last));
}

// Store the lane's keys of row i (those inside T) of a (B, H, T, T) tensor, to P (`to_probs`) or dS.
fn store_square(it: Item, i: u32, lane: u32, v: vec4<f32>, to_probs: bool) {
    if (i >= p.tokens) {
        return;
    }
    let idx = square_index(it, i, lane);
    let keys = lane_keys(lane);
    for (var j = 0u; j < 4u; j++) {
        if (j * 8u >= p.tokens) {
            break;
        }
        if (keys[j] < p.tokens) {
            if (to_probs) {
                probs_out[idx[j]] = v[j];
            } else {
                ds_out[idx[j]] = v[j];
            }
        }
    }
}

// Read the lane's keys of row i of P (zero past T).
fn load_probs(it: Item, i: u32, lane: u32) -> vec4<f32> {
    let idx = square_index(it, i, lane);
    var v = vec4<f32>(probs_in[idx.x], 0.0, 0.0, 0.0);
    if (p.tokens > 8u) { v.y = probs_in[idx.y]; }
    if (p.tokens > 16u) { v.z = probs_in[idx.z]; }
    if (p.tokens > 24u) { v.w = probs_in[idx.w]; }
    return select(vec4<f32>(0.0), v, lane_keys(lane) < vec4<u32>(p.tokens));
}

// Softmax of row i over every key (each lane holding 4 of them): scale · s + bias, keys past T left out.
fn softmax_row(it: Item, i: u32, lane: u32, s: vec4<f32>) -> vec4<f32> {
    let inside = lane_keys(lane) < vec4<u32>(p.tokens);
    var v = p.scale * s;
    if ((p.flags & 1u) != 0u) {
        let last = p.tokens - 1u;
        let base = (it.h * p.tokens + min(i, last)) * p.tokens;
        let keys = min(lane_keys(lane), vec4<u32>(last));
        v.x += bias[base + keys.x];
        if (p.tokens > 8u) { v.y += bias[base + keys.y]; }
        if (p.tokens > 16u) { v.z += bias[base + keys.z]; }
        if (p.tokens > 24u) { v.w += bias[base + keys.w]; }
    }
    v = select(vec4<f32>(bitcast<f32>(0xff7fffffu)), v, inside); // -FLT_MAX past T
    let m = subgroupMax(max(max(v.x, v.y), max(v.z, v.w)));
    let e = select(vec4<f32>(0.0), exp(v - m), inside);
    let sum = subgroupAdd(e.x + e.y + e.z + e.w);
    let pr = e / sum;
    store_square(it, i, lane, pr, true);
    return pr;
}

// Softmax backward of row i: dS = P · (dP − Σ_key P·dP); written to dS and returned.
fn softmax_grad_row(it: Item, i: u32, lane: u32, dp: vec4<f32>) -> vec4<f32> {
    let pr = load_probs(it, i, lane);
    let total = subgroupAdd(dot(pr, dp));
    let ds = pr * (dp - total);
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

// O rows 8g..8g+7 = alpha · W · C, W (8 rows x T keys) spread over the lanes as in `Rows`; lane l computes
// dimensions 4l..4l+3 (lanes past D compute a copy of the last quad and store nothing) and stores its rows.
fn weighted_sum_store(it: Item, lane: u32, w: Rows, alpha: f32) {
    let quads = p.head_dim / 4u;
    let dq = min(lane, quads - 1u);
    let c_base = (p.c_off + it.b * p.c_bs + it.h * p.c_hs) / 4u + dq;
    let c_rs = p.c_rs / 4u;
    var acc: Rows;
    for (var j = 0u; j < 4u; j++) {
        let k0 = j * 8u;
        if (k0 >= p.tokens) {
            break;
        }
        let lo = vec4<f32>(w[0][j], w[1][j], w[2][j], w[3][j]);
        let hi = vec4<f32>(w[4][j], w[5][j], w[6][j], w[7][j]);
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
        add_key(&acc, lo0, hi0, c4[c_base + k0 * c_rs]);
        if (k0 + 1u < p.tokens) { add_key(&acc, lo1, hi1, c4[c_base + (k0 + 1u) * c_rs]); }
        if (k0 + 2u < p.tokens) { add_key(&acc, lo2, hi2, c4[c_base + (k0 + 2u) * c_rs]); }
        if (k0 + 3u < p.tokens) { add_key(&acc, lo3, hi3, c4[c_base + (k0 + 3u) * c_rs]); }
        if (k0 + 4u < p.tokens) { add_key(&acc, lo4, hi4, c4[c_base + (k0 + 4u) * c_rs]); }
        if (k0 + 5u < p.tokens) { add_key(&acc, lo5, hi5, c4[c_base + (k0 + 5u) * c_rs]); }
        if (k0 + 6u < p.tokens) { add_key(&acc, lo6, hi6, c4[c_base + (k0 + 6u) * c_rs]); }
        if (k0 + 7u < p.tokens) { add_key(&acc, lo7, hi7, c4[c_base + (k0 + 7u) * c_rs]); }
    }
    if (lane >= quads) {
        return;
    }
    let o_base = (p.o_off + it.b * p.o_bs + it.h * p.o_hs) / 4u + lane;
    let o_rs = p.o_rs / 4u;
    let i0 = it.g * 8u;
    for (var r = 0u; r < 8u; r++) {
        if (i0 + r < p.tokens) {
            o4[o_base + (i0 + r) * o_rs] = alpha * acc[r];
        }
    }
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
    var pr: Rows;
    pr[0] = softmax_row(it, i0, lane, s[0]);
    pr[1] = softmax_row(it, i0 + 1u, lane, s[1]);
    pr[2] = softmax_row(it, i0 + 2u, lane, s[2]);
    pr[3] = softmax_row(it, i0 + 3u, lane, s[3]);
    pr[4] = softmax_row(it, i0 + 4u, lane, s[4]);
    pr[5] = softmax_row(it, i0 + 5u, lane, s[5]);
    pr[6] = softmax_row(it, i0 + 6u, lane, s[6]);
    pr[7] = softmax_row(it, i0 + 7u, lane, s[7]);
    weighted_sum_store(it, lane, pr, 1.0);
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
    var ds: Rows;
    ds[0] = softmax_grad_row(it, i0, lane, dp[0]);
    ds[1] = softmax_grad_row(it, i0 + 1u, lane, dp[1]);
    ds[2] = softmax_grad_row(it, i0 + 2u, lane, dp[2]);
    ds[3] = softmax_grad_row(it, i0 + 3u, lane, dp[3]);
    ds[4] = softmax_grad_row(it, i0 + 4u, lane, dp[4]);
    ds[5] = softmax_grad_row(it, i0 + 5u, lane, dp[5]);
    ds[6] = softmax_grad_row(it, i0 + 6u, lane, dp[6]);
    ds[7] = softmax_grad_row(it, i0 + 7u, lane, dp[7]);
    weighted_sum_store(it, lane, ds, p.scale);
}
