// attention_fused.wgsl: the attention core without the (B, H, T, T) probabilities kept between forward and
// backward, for GPUs (flash-style: a workgroup per (batch, head, 16 query rows), keys in tiles through
// workgroup memory, an online softmax in the forward).
//
// fused_attention_forward:  S = scale · Q·Kᵀ + bias, O = softmax(S)·V and lse = log Σ_j exp(S_ij) per row;
//                           S and P are never written.
// fused_attention_backward: P = exp(S − lse) again from Q, K, bias and the forward's lse, dP = dO·Vᵀ,
//                           D_i = Σ_d dO_id·O_id (= Σ_j P_ij·dP_ij), dS = P ∘ (dP − D), dQ = scale · dS·K;
//                           writes P and dS (B, H, T, T) into scratch for the launcher's two products
//                           dV = Pᵀ·dO and dK = scale · dSᵀ·Q, and for the relative position tables' gradient.
//
// Shapes: Q, K, V are (B, H, T, D) views into one buffer (a fused (B, T, 3C) qkv tensor), O, dO and dQ
// (B, H, T, D) views; bias (H, T, T); lse (B, H, T); P and dS (B, H, T, T). D <= 64, any T.
//
// Layout of the work: in the forward thread t of 64 owns two query rows of the tile (below); in the backward
// row t / 4 and the quarter t % 4: keys t % 4 and t % 4 + 4 of each 8-key tile and the output dimensions
// d ≡ t % 4 (mod 4). Tiles in workgroup memory have rows of 65 floats so that the rows a warp reads at once
// fall into different banks. Rows past T read zeros and are never stored;
// keys past T score -3e38 (exp gives 0).

struct FusedAttentionParams {
    batch: u32,
    heads: u32,
    tokens: u32,
    head_dim: u32,
    scale: f32,
    // bit 0: add bias.
    flags: u32,
    // Tiles of 16 query rows per (batch, head): ceil(tokens / 16).
    q_tiles: u32,
    _pad: u32,
    q_off: u32,
    q_rs: u32,
    q_hs: u32,
    q_bs: u32,
    k_off: u32,
    k_rs: u32,
    k_hs: u32,
    k_bs: u32,
    v_off: u32,
    v_rs: u32,
    v_hs: u32,
    v_bs: u32,
    o_off: u32,
    o_rs: u32,
    o_hs: u32,
    o_bs: u32,
    do_off: u32,
    do_rs: u32,
    do_hs: u32,
    do_bs: u32,
    dq_off: u32,
    dq_rs: u32,
    dq_hs: u32,
    dq_bs: u32,
}

@group(0) @binding(0) var<uniform> p: FusedAttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // Q, K, V through their views
@group(0) @binding(4) var<storage, read> bias: array<f32>;         // (H, T, T)
@group(0) @binding(5) var<storage, read_write> o: array<f32>;      // O: written (forward), read (backward)
@group(0) @binding(6) var<storage, read_write> lse: array<f32>;    // (B, H, T): written, then read
@group(0) @binding(7) var<storage, read> dout: array<f32>;         // dO (backward)
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;     // dQ (backward)
@group(0) @binding(9) var<storage, read_write> probs: array<f32>;  // P (B, H, T, T) (backward)
@group(0) @binding(10) var<storage, read_write> ds: array<f32>;    // dS (B, H, T, T) (backward)

const ROWS: u32 = 16u;        // query rows per workgroup
const KEYS: u32 = 32u;        // keys per tile, forward
const KEYS_BACK: u32 = 8u;    // keys per tile, backward
const STRIDE: u32 = 65u;      // row stride of the tiles in workgroup memory
const DIMS: u32 = 16u;        // backward: output dimensions per thread, d = quarter + 4c, c < 16 (D <= 64)
const NEG: f32 = -3.0e38;

var<workgroup> q_tile: array<f32, 1040>;   // ROWS x STRIDE: Q · scale
var<workgroup> kv_tile: array<f32, 2080>;  // KEYS x STRIDE: K, then V (forward)
var<workgroup> p_tile: array<f32, 512>;    // ROWS x KEYS: exp(S − running max) (forward)
var<workgroup> red_max: array<f32, 128>;   // per (row, key group): the max of its scores in the tile (forward)
var<workgroup> red_sum8: array<f32, 128>;  // per (row, key group): its partial sums (forward)
var<workgroup> red_sum: array<f32, 64>;    // per thread: its partial sums (backward)
var<workgroup> do_tile: array<f32, 1040>;  // ROWS x STRIDE: dO (backward)
var<workgroup> k_tile: array<f32, 520>;    // KEYS_BACK x STRIDE (backward)
var<workgroup> v_tile: array<f32, 520>;    // KEYS_BACK x STRIDE (backward)
var<workgroup> ds_tile: array<f32, 128>;   // ROWS x KEYS_BACK: dS (backward)

fn q_at(b: u32, h: u32, i: u32, d: u32) -> u32 {
    return p.q_off + b * p.q_bs + h * p.q_hs + i * p.q_rs + d;
}
fn k_at(b: u32, h: u32, j: u32, d: u32) -> u32 {
    return p.k_off + b * p.k_bs + h * p.k_hs + j * p.k_rs + d;
}
fn v_at(b: u32, h: u32, j: u32, d: u32) -> u32 {
    return p.v_off + b * p.v_bs + h * p.v_hs + j * p.v_rs + d;
}
fn o_at(b: u32, h: u32, i: u32, d: u32) -> u32 {
    return p.o_off + b * p.o_bs + h * p.o_hs + i * p.o_rs + d;
}
fn do_at(b: u32, h: u32, i: u32, d: u32) -> u32 {
    return p.do_off + b * p.do_bs + h * p.do_hs + i * p.do_rs + d;
}
fn dq_at(b: u32, h: u32, i: u32, d: u32) -> u32 {
    return p.dq_off + b * p.dq_bs + h * p.dq_hs + i * p.dq_rs + d;
}

// Key j's dimension d, or 0 past T (tiles past the last key are zero-filled).
fn key_or_zero(b: u32, h: u32, j: u32, d: u32) -> f32 {
    if (j < p.tokens) {
        return qkv[k_at(b, h, j, d)];
    }
    return 0.0;
}
fn value_or_zero(b: u32, h: u32, j: u32, d: u32) -> f32 {
    if (j < p.tokens) {
        return qkv[v_at(b, h, j, d)];
    }
    return 0.0;
}

// The query tile's rows, times the scale, into q_tile (zeros past T).
fn load_q_tile(b: u32, h: u32, i0: u32, t: u32) {
    let dim = p.head_dim;
    for (var e = t; e < ROWS * dim; e += 64u) {
        let row = e / dim;
        let d = e % dim;
        var x = 0.0;
        if (i0 + row < p.tokens) {
            x = qkv[q_at(b, h, i0 + row, d)] * p.scale;
        }
        q_tile[row * STRIDE + d] = x;
    }
}

// The sum of the four values the threads of row `r` left in red_sum.
fn row_sum(r: u32) -> f32 {
    return red_sum[4u * r] + red_sum[4u * r + 1u] + red_sum[4u * r + 2u] + red_sum[4u * r + 3u];
}

// The bias of (row i, key j) of head h where there is one.
fn bias_at(h: u32, i: u32, j: u32) -> f32 {
    if ((p.flags & 1u) != 0u) {
        return bias[(h * p.tokens + i) * p.tokens + j];
    }
    return 0.0;
}

// The forward: thread t owns query rows 2·(t / 8) and 2·(t / 8) + 1 of the tile and, for both, the keys
// j ≡ t % 8 (mod 8) of each 32-key tile and the output dimensions d ≡ t % 8 (mod 8): per dimension of a score
// 2 reads of Q and 4 of K for 8 multiply-adds, per key of the output 2 reads of P and 8 of V for 16.
@compute @workgroup_size(64, 1, 1)
fn fused_attention_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) t: u32) {
    let w = wg.x + wg.y * nwg.x;
    let bh = w / p.q_tiles;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    let i0 = (w % p.q_tiles) * ROWS;
    let r0 = 2u * (t / 8u);
    let r1 = r0 + 1u;
    let g = t % 8u;
    let tokens = p.tokens;
    let dim = p.head_dim;
    load_q_tile(b, h, i0, t);
    var m0 = NEG;
    var m1 = NEG;
    var l0 = 0.0;
    var l1 = 0.0;
    var acc0: array<f32, 8>;
    var acc1: array<f32, 8>;
    for (var j0 = 0u; j0 < tokens; j0 += KEYS) {
        // The previous tile's reads of kv_tile and p_tile are done (and q_tile is written, the first time).
        workgroupBarrier();
        for (var e = t; e < KEYS * dim; e += 64u) {
            kv_tile[(e / dim) * STRIDE + e % dim] = key_or_zero(b, h, j0 + e / dim, e % dim);
        }
        workgroupBarrier();
        var s0: array<f32, 4>;
        var s1: array<f32, 4>;
        for (var d = 0u; d < dim; d++) {
            let x0 = q_tile[r0 * STRIDE + d];
            let x1 = q_tile[r1 * STRIDE + d];
            for (var u = 0u; u < 4u; u++) {
                let kx = kv_tile[(g + 8u * u) * STRIDE + d];
                s0[u] += x0 * kx;
                s1[u] += x1 * kx;
            }
        }
        var mx0 = NEG;
        var mx1 = NEG;
        for (var u = 0u; u < 4u; u++) {
            let j = j0 + g + 8u * u;
            if (j < tokens) {
                if (i0 + r0 < tokens) {
                    s0[u] += bias_at(h, i0 + r0, j);
                }
                if (i0 + r1 < tokens) {
                    s1[u] += bias_at(h, i0 + r1, j);
                }
            } else {
                s0[u] = NEG;
                s1[u] = NEG;
            }
            mx0 = max(mx0, s0[u]);
            mx1 = max(mx1, s1[u]);
        }
        red_max[r0 * 8u + g] = mx0;
        red_max[r1 * 8u + g] = mx1;
        // Every thread's reads of K are done; the tile's maxima are written.
        workgroupBarrier();
        let n0 = max(m0, row_max8(r0));
        let n1 = max(m1, row_max8(r1));
        let alpha0 = exp(m0 - n0);
        let alpha1 = exp(m1 - n1);
        var sum0 = 0.0;
        var sum1 = 0.0;
        for (var u = 0u; u < 4u; u++) {
            let e0 = exp(s0[u] - n0);
            let e1 = exp(s1[u] - n1);
            p_tile[r0 * KEYS + g + 8u * u] = e0;
            p_tile[r1 * KEYS + g + 8u * u] = e1;
            sum0 += e0;
            sum1 += e1;
        }
        red_sum8[r0 * 8u + g] = sum0;
        red_sum8[r1 * 8u + g] = sum1;
        for (var e = t; e < KEYS * dim; e += 64u) {
            kv_tile[(e / dim) * STRIDE + e % dim] = value_or_zero(b, h, j0 + e / dim, e % dim);
        }
        workgroupBarrier();
        l0 = l0 * alpha0 + row_sum8(r0);
        l1 = l1 * alpha1 + row_sum8(r1);
        m0 = n0;
        m1 = n1;
        for (var c = 0u; c < 8u; c++) {
            acc0[c] *= alpha0;
            acc1[c] *= alpha1;
        }
        let keys = min(KEYS, tokens - j0);
        for (var jj = 0u; jj < keys; jj++) {
            let w0 = p_tile[r0 * KEYS + jj];
            let w1 = p_tile[r1 * KEYS + jj];
            for (var c = 0u; c < 8u; c++) {
                // Columns past D read the tile's padding or a neighbour row and are never stored.
                let vx = kv_tile[jj * STRIDE + g + 8u * c];
                acc0[c] += w0 * vx;
                acc1[c] += w1 * vx;
            }
        }
    }
    store_row(b, h, bh, i0 + r0, g, acc0, m0, l0);
    store_row(b, h, bh, i0 + r1, g, acc1, m1, l1);
}

// The largest of the 8 partial maxima of tile row `r` in red_max.
fn row_max8(r: u32) -> f32 {
    var m = red_max[8u * r];
    for (var k = 1u; k < 8u; k++) {
        m = max(m, red_max[8u * r + k]);
    }
    return m;
}

// The sum of the 8 partial sums of tile row `r` in red_sum8.
fn row_sum8(r: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) {
        s += red_sum8[8u * r + k];
    }
    return s;
}

// Row i of O (the thread's dimensions g + 8c) and, from the thread with g = 0, its log-sum-exp.
fn store_row(b: u32, h: u32, bh: u32, i: u32, g: u32, acc: array<f32, 8>, m: f32, l: f32) {
    if (i >= p.tokens) {
        return;
    }
    let inv = 1.0 / l;
    for (var c = 0u; c < 8u; c++) {
        let d = g + 8u * c;
        if (d < p.head_dim) {
            o[o_at(b, h, i, d)] = acc[c] * inv;
        }
    }
    if (g == 0u) {
        lse[bh * p.tokens + i] = m + log(l);
    }
}

@compute @workgroup_size(64, 1, 1)
fn fused_attention_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) t: u32) {
    let w = wg.x + wg.y * nwg.x;
    let bh = w / p.q_tiles;
    if (bh >= p.batch * p.heads) {
        return;
    }
    let b = bh / p.heads;
    let h = bh % p.heads;
    let i0 = (w % p.q_tiles) * ROWS;
    let r = t / 4u;
    let quarter = t % 4u;
    let i = i0 + r;
    let tokens = p.tokens;
    let dim = p.head_dim;
    load_q_tile(b, h, i0, t);
    for (var e = t; e < ROWS * dim; e += 64u) {
        let row = e / dim;
        let d = e % dim;
        var x = 0.0;
        if (i0 + row < tokens) {
            x = dout[do_at(b, h, i0 + row, d)];
        }
        do_tile[row * STRIDE + d] = x;
    }
    // D_i = Σ_d dO_id · O_id, a quarter of the dimensions per thread.
    var part = 0.0;
    var row_lse = 0.0;
    if (i < tokens) {
        for (var c = 0u; c < DIMS; c++) {
            let d = quarter + 4u * c;
            if (d < dim) {
                part += dout[do_at(b, h, i, d)] * o[o_at(b, h, i, d)];
            }
        }
        row_lse = lse[bh * tokens + i];
    }
    red_sum[t] = part;
    workgroupBarrier();
    let delta = row_sum(r);
    var acc: array<f32, DIMS>;
    for (var j0 = 0u; j0 < tokens; j0 += KEYS_BACK) {
        // The previous tile's reads of k_tile and ds_tile are done.
        workgroupBarrier();
        for (var e = t; e < KEYS_BACK * dim; e += 64u) {
            let at = (e / dim) * STRIDE + e % dim;
            k_tile[at] = key_or_zero(b, h, j0 + e / dim, e % dim);
            v_tile[at] = value_or_zero(b, h, j0 + e / dim, e % dim);
        }
        workgroupBarrier();
        for (var u = 0u; u < 2u; u++) {
            let jj = quarter + 4u * u;
            let j = j0 + jj;
            var score = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < dim; d++) {
                score += q_tile[r * STRIDE + d] * k_tile[jj * STRIDE + d];
                dp += do_tile[r * STRIDE + d] * v_tile[jj * STRIDE + d];
            }
            var grad = 0.0;
            if (i < tokens && j < tokens) {
                let prob = exp(score + bias_at(h, i, j) - row_lse);
                grad = prob * (dp - delta);
                let at = (bh * tokens + i) * tokens + j;
                probs[at] = prob;
                ds[at] = grad;
            }
            ds_tile[r * KEYS_BACK + jj] = grad;
        }
        workgroupBarrier();
        let keys = min(KEYS_BACK, tokens - j0);
        for (var jj = 0u; jj < keys; jj++) {
            let g = ds_tile[r * KEYS_BACK + jj];
            for (var c = 0u; c < DIMS; c++) {
                acc[c] += g * k_tile[jj * STRIDE + quarter + 4u * c];
            }
        }
    }
    if (i < tokens) {
        for (var c = 0u; c < DIMS; c++) {
            let d = quarter + 4u * c;
            if (d < dim) {
                dq[dq_at(b, h, i, d)] = p.scale * acc[c];
            }
        }
    }
}
