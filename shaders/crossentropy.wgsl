// crossentropy.wgsl: softmax cross-entropy over selected rows of a logits matrix, with optional label
// smoothing ε (target q = (1 − ε)·onehot + ε / V), top-1 correctness, and the fused backward
// dlogits[row] = (softmax − q) · scale, scale = upstream gradient / M for a mean loss.
//
// Shapes: logits, dlogits (R, V); rows, labels (M) u32 (row index into logits, target class);
// loss, correct, lse (M). Forward: one workgroup per selected row (ce_forward_rows: one thread), reading the row
// four logits at a time where V is a multiple of 4. Backward: one thread per (i, v), or per (i, four v) in
// ce_backward4 (V a multiple of 4). On llvmpipe every storage access is a loop over the subgroup's lanes, so four
// values per access made tiny's loss backward (410 x 8192) 3x faster there: 33.6 -> 11.3 ms single-threaded.
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
@group(0) @binding(9) var<storage, read> logits4: array<vec4<f32>>;  // logits, 4 at a time (V % 4 == 0)
@group(0) @binding(10) var<storage, read_write> out4: array<vec4<f32>>; // dlogits, 4 at a time (ce_backward4)

const WG: u32 = 64u;
var<workgroup> red_v: array<f32, 64>;
var<workgroup> red_i: array<u32, 64>;
var<workgroup> red_s: array<f32, 64>;

// The running maximum and its index (`best`, `best_i`) after the four values `z` at indices first..first+3, in
// order: a tie keeps the lower index.
fn take_quad_max(z: vec4<f32>, first: u32, best: ptr<function, f32>, best_i: ptr<function, u32>) {
    for (var j = 0u; j < 4u; j++) {
        if (z[j] > *best) {
            *best = z[j];
            *best_i = first + j;
        }
    }
}

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
    let quads = p.vocab % 4u == 0u;
    if (quads) {
        // Thread li takes quads li, li + WG, ...: its values in increasing v, so a tie keeps the lowest index.
        for (var q = li; q < p.vocab / 4u; q += WG) {
            let z = logits4[base / 4u + q];
            take_quad_max(z, 4u * q, &best, &best_i);
        }
    } else {
        for (var v = li; v < p.vocab; v += WG) {
            let z = logits[base + v];
            if (z > best) {
                best = z;
                best_i = v;
            }
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
    if (quads) {
        for (var q = li; q < p.vocab / 4u; q += WG) {
            let z = logits4[base / 4u + q];
            let e = exp(z - row_max);
            se += (e.x + e.y) + (e.z + e.w);
            sz += (z.x + z.y) + (z.z + z.w);
        }
    } else {
        for (var v = li; v < p.vocab; v += WG) {
            let z = logits[base + v];
            se += exp(z - row_max);
            sz += z;
        }
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

// The same forward with one thread per selected row and no barrier, for software (CPU) adapters: there a
// workgroup barrier costs more than a row's arithmetic, and ce_forward's two tree reductions took a micro step's
// single longest launch (1.7 ms for 192 rows of 64 logits on llvmpipe). 64 rows per workgroup; rows of whole
// quads read four logits at a time (each lane streams its own row: tiny's 410 x 8192 took 8.7 ms single-threaded
// against 18.2 with ce_forward).
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
    var se = 0.0;
    var sz = 0.0;
    if (p.vocab % 4u == 0u) {
        for (var q = 0u; q < p.vocab / 4u; q++) {
            let z = logits4[base / 4u + q];
            take_quad_max(z, 4u * q, &best, &best_i);
        }
        for (var q = 0u; q < p.vocab / 4u; q++) {
            let z = logits4[base / 4u + q];
            let e = exp(z - best);
            se += (e.x + e.y) + (e.z + e.w);
            sz += (z.x + z.y) + (z.z + z.w);
        }
    } else {
        for (var v = 0u; v < p.vocab; v++) {
            let z = logits[base + v];
            if (z > best) {
                best = z;
                best_i = v;
            }
        }
        for (var v = 0u; v < p.vocab; v++) {
            let z = logits[base + v];
            se += exp(z - best);
            sz += z;
        }
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

// ce_backward on quads: thread e updates v = 4q .. 4q + 3 of selected row i (e = i · V/4 + q).
@compute @workgroup_size(256)
fn ce_backward4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * 256u + li;
    let row_quads = p.vocab / 4u;
    if (e >= p.m * row_quads) {
        return;
    }
    let i = e / row_quads;
    let q = e % row_quads;
    let idx = rows[i] * row_quads + q;
    // The target distribution on these four: ε / V each, plus 1 − ε where the label lies among them.
    let on_label = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(labels[i]);
    let spread = p.smoothing / f32(p.vocab);
    let wanted = select(vec4<f32>(spread), vec4<f32>(spread + (1.0 - p.smoothing)), on_label);
    out4[idx] = (exp(logits4[idx] - saved_lse[i]) - wanted) * p.scale;
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
