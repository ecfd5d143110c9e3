// crossentropy.wgsl: softmax cross-entropy over selected rows of a logits matrix, with optional label
// smoothing ε (target q = (1 − ε)·onehot + ε / V), top-1 correctness, and the fused backward
// dlogits[row] = (softmax − q) · scale, scale = upstream gradient / M for a mean loss.
//
// Shapes: logits, dlogits (R, V); rows, labels (M) u32 (row index into logits, target class);
// loss, correct, lse (M). Forward: one workgroup per selected row (ce_forward_rows: one thread). Backward: one
// thread per (i, v).
// Argmax ties resolve to the lowest index, as torch.argmax.

struct CrossEntropyParams {
    m: u32,
    vocab: u32,
    smoothing: f32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;      // loss (M) | dlogits (R, V)
@group(0) @binding(1) var<storage, read_write> correct: array<f32>;  // (M), 1.0 when argmax == label
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;      // (M) log-sum-exp, saved for backward
@group(0) @binding(3) var<storage, read> logits: array<f32>;         // (R, V)
@group(0) @binding(4) var<storage, read> rows: array<u32>;           // (M)
@group(0) @binding(5) var<storage, read> labels: array<u32>;         // (M)
@group(0) @binding(6) var<uniform> p: CrossEntropyParams;
@group(0) @binding(7) var<storage, read> saved_lse: array<f32>;      // (M), read by backward

const WG: u32 = 64u;
var<workgroup> red_v: array<f32, 64>;
var<workgroup> red_i: array<u32, 64>;
var<workgroup> red_s: array<f32, 64>;

@compute @workgroup_size(64)
fn ce_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = wg.x + wg.y * nwg.x;
    if (i >= p.m) {
        return;
    }
    let base = rows[i] * p.vocab;
    var best = bitcast<f32>(0xff7fffffu); // -FLT_MAX (a decimal literal rounds past it in some compilers)
    var best_i = 0xffffffffu;
    for (var v = li; v < p.vocab; v += WG) {
        let z = logits[base + v];
        if (z > best) {
            best = z;
            best_i = v;
        }
    }
    red_v[li] = best;
    red_i[li] = best_i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            let ov = red_v[li + s];
            let oi = red_i[li + s];
            if (ov > red_v[li] || (ov == red_v[li] && oi < red_i[li])) {
                red_v[li] = ov;
                red_i[li] = oi;
            }
        }
        workgroupBarrier();
    }
    let row_max = red_v[0];
    let arg = red_i[0];
    workgroupBarrier();
    var se = 0.0;
    var sz = 0.0;
    for (var v = li; v < p.vocab; v += WG) {
        let z = logits[base + v];
        se += exp(z - row_max);
        sz += z;
    }
    red_v[li] = se;
    red_s[li] = sz;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red_v[li] += red_v[li + s];
            red_s[li] += red_s[li + s];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let l = row_max + log(red_v[0]);
        let y = labels[i];
        let zy = logits[base + y];
        out[i] = l - (1.0 - p.smoothing) * zy - p.smoothing / f32(p.vocab) * red_s[0];
        correct[i] = select(0.0, 1.0, arg == y);
        lse[i] = l;
    }
}

// The same forward with one thread per selected row and no barrier, for software (CPU) adapters and short rows:
// there a workgroup barrier costs more than a row's arithmetic, and ce_forward's two tree reductions took a
// micro step's single longest launch (1.7 ms for 192 rows of 64 logits on llvmpipe). 64 rows per workgroup.
@compute @workgroup_size(64)
fn ce_forward_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * WG + li;
    if (i >= p.m) {
        return;
    }
    let base = rows[i] * p.vocab;
    var best = bitcast<f32>(0xff7fffffu); // -FLT_MAX
    var best_i = 0xffffffffu;
    for (var v = 0u; v < p.vocab; v++) {
        let z = logits[base + v];
        if (z > best) {
            best = z;
            best_i = v;
        }
    }
    var se = 0.0;
    var sz = 0.0;
    for (var v = 0u; v < p.vocab; v++) {
        let z = logits[base + v];
        se += exp(z - best);
        sz += z;
    }
    let l = best + log(se);
    let y = labels[i];
    let zy = logits[base + y];
    out[i] = l - (1.0 - p.smoothing) * zy - p.smoothing / f32(p.vocab) * sz;
    correct[i] = select(0.0, 1.0, best_i == y);
    lse[i] = l;
}

@compute @workgroup_size(256)
fn ce_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * 256u + li;
    if (e >= p.m * p.vocab) {
        return;
    }
    let i = e / p.vocab;
    let v = e % p.vocab;
    let idx = rows[i] * p.vocab + v;
    var q = p.smoothing / f32(p.vocab);
    if (v == labels[i]) {
        q += 1.0 - p.smoothing;
    }
    out[idx] = (exp(logits[idx] - saved_lse[i]) - q) * p.scale;
}

// Pixel regression (the paper's ablation of visual tokens): loss[i] = Σ_j (pred[i, j] − target[i, j])² for the
// first m rows (m from the params), and dpred[i, j] = 2·scale·(pred − target) (scale = 1 / (m·V) for a mean).
// Shapes: pred (R, V) in `logits`, target (M_cap, V), loss (M_cap); rows past m are left untouched.
@group(0) @binding(8) var<storage, read> goal: array<f32>;     // the regression target (R, V)

@compute @workgroup_size(64)
fn mse_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 64u + li;
    if (i >= p.m) {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < p.vocab; j++) {
        let d = logits[i * p.vocab + j] - goal[i * p.vocab + j];
        s += d * d;
    }
    out[i] = s;
}

@compute @workgroup_size(256)
fn mse_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * 256u + li;
    if (e >= p.m * p.vocab) {
        return;
    }
    out[e] = 2.0 * p.scale * (logits[e] - goal[e]);
}
