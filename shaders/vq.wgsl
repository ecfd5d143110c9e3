// vq.wgsl: the vector-quantisation pieces of the visual tokenizer.
//
// l2norm_forward:  y (R, D) = x / max(‖x‖, eps), norm (R) saved.
// l2norm_backward: dx (R, D) = (dy − y·(y·dy)) / max(‖x‖, eps).
// argmax_rows:     idx (R) u32 = argmax_j x[r, j] (lowest index on ties), score (R) = the maximum.
// one_hot:         out (R, K) = 1 where k == idx[r], else 0.
// gather_u32:      idx_out (R) = idx_in[positions[r]] (visual tokens at the masked positions: MIM labels).
// ema_update:      per code k: count ← d·count + (1 − d)·n_k; sum ← d·sum + (1 − d)·s_k; codebook_k = sum / ‖sum‖;
//                  a code whose count fell below `threshold` restarts at the worst-represented of 16 hashed rows
//                  of the batch (lowest best similarity), with count 2·threshold (dead-code restart).
//                  Shapes: codebook, ema_sum, sums (K, D); ema_count, counts (K); z (R, D).

struct VqParams {
    rows: u32,
    dim: u32,
    codes: u32,
    salt: u32,
    eps: f32,
    decay: f32,
    threshold: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;      // y | dx | score | one-hot | codebook
@group(0) @binding(1) var<storage, read_write> aux: array<f32>;      // norm | ema_sum
@group(0) @binding(2) var<storage, read_write> aux2: array<f32>;     // ema_count
@group(0) @binding(3) var<storage, read_write> idx_out: array<u32>;  // argmax indices
@group(0) @binding(4) var<storage, read> x: array<f32>;              // x | dy | scores | counts
@group(0) @binding(5) var<storage, read> y: array<f32>;              // y (backward) | sums
@group(0) @binding(6) var<storage, read> saved: array<f32>;          // norm (backward) | z (restart rows)
@group(0) @binding(7) var<storage, read> idx_in: array<u32>;         // indices for one_hot
@group(0) @binding(8) var<uniform> p: VqParams;
@group(0) @binding(9) var<storage, read> score: array<f32>;          // best similarity per row (restart choice)
@group(0) @binding(10) var<storage, read> positions: array<u32>;     // gather_u32 source positions

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32, size: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * size + li;
}

@compute @workgroup_size(64)
fn l2norm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li, 64u);
    if (r >= p.rows) {
        return;
    }
    var s = 0.0;
    for (var j = 0u; j < p.dim; j++) {
        let v = x[r * p.dim + j];
        s += v * v;
    }
    let n = max(sqrt(s), p.eps);
    for (var j = 0u; j < p.dim; j++) {
        out[r * p.dim + j] = x[r * p.dim + j] / n;
    }
    aux[r] = n;
}

@compute @workgroup_size(64)
fn l2norm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li, 64u);
    if (r >= p.rows) {
        return;
    }
    var dot = 0.0;
    for (var j = 0u; j < p.dim; j++) {
        dot += y[r * p.dim + j] * x[r * p.dim + j];
    }
    let n = saved[r];
    for (var j = 0u; j < p.dim; j++) {
        out[r * p.dim + j] = (x[r * p.dim + j] - y[r * p.dim + j] * dot) / n;
    }
}

@compute @workgroup_size(64)
fn argmax_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li, 64u);
    if (r >= p.rows) {
        return;
    }
    var best = x[r * p.codes];
    var best_k = 0u;
    for (var k = 1u; k < p.codes; k++) {
        let v = x[r * p.codes + k];
        if (v > best) {
            best = v;
            best_k = k;
        }
    }
    idx_out[r] = best_k;
    out[r] = best;
}

@compute @workgroup_size(256)
fn one_hot(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li, 256u);
    if (e >= p.rows * p.codes) {
        return;
    }
    out[e] = select(0.0, 1.0, idx_in[e / p.codes] == e % p.codes);
}

fn restart_candidate(k: u32, salt: u32, c: u32) -> u32 {
    var h = (k * 2654435761u) ^ (salt * 2246822519u) ^ (c * 3266489917u);
    h ^= h >> 15u;
    h *= 2246822519u;
    h ^= h >> 13u;
    return h % p.rows;
}

@compute @workgroup_size(64)
fn ema_update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let k = gid(wg, nwg, li, 64u);
    if (k >= p.codes) {
        return;
    }
    let count = p.decay * aux2[k] + (1.0 - p.decay) * x[k];
    var s = 0.0;
    if (count < p.threshold && p.rows > 0u) {
        // Dead code: restart at the worst-represented of 16 rows picked by hashing (code, salt, candidate).
        var r = restart_candidate(k, p.salt, 0u);
        for (var c = 1u; c < 16u; c++) {
            let rc = restart_candidate(k, p.salt, c);
            if (score[rc] < score[r]) {
                r = rc;
            }
        }
        for (var j = 0u; j < p.dim; j++) {
            let v = saved[r * p.dim + j];
            aux[k * p.dim + j] = v;
            s += v * v;
        }
        aux2[k] = 2.0 * p.threshold;
    } else {
        for (var j = 0u; j < p.dim; j++) {
            let v = p.decay * aux[k * p.dim + j] + (1.0 - p.decay) * y[k * p.dim + j];
            aux[k * p.dim + j] = v;
            s += v * v;
        }
        aux2[k] = count;
    }
    let n = max(sqrt(s), p.eps);
    for (var j = 0u; j < p.dim; j++) {
        out[k * p.dim + j] = aux[k * p.dim + j] / n;
    }
}

@compute @workgroup_size(256)
fn gather_u32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = gid(wg, nwg, li, 256u);
    if (r >= p.rows) {
        return;
    }
    idx_out[r] = idx_in[positions[r]];
}
