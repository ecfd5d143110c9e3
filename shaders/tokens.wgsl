// tokens.wgsl: token assembly after patch embedding, and row gather / scatter for heads on selected tokens.
//
// assemble:            x (B, T, D), T = N + 1: x[b, 0] = cls (+ pos[0]);
//                      x[b, 1 + n] = (mask[b, n] ? mask_token : emb[b, n]) (+ pos[1 + n]).
// assemble_grad_emb:   demb (B, N, D) = mask[b, n] ? 0 : dx[b, 1 + n]   (masked rows get no gradient).
// assemble_grad_mask:  dmask_token (D) (+)= Σ_{b, n masked} dx[b, 1 + n].
// assemble_grad_cls:   dcls (D) (+)= Σ_b dx[b, 0].
// assemble_grad_pos:   dpos (T, D) (+)= Σ_b dx[b, t].
// gather_rows:         out (M, D) = src[idx[i]] rows.      scatter_rows: out[idx[i]] (+)= src (M, D) rows.
// mean_patches / mean_patches_backward: the mean of the patch tokens (mean pooling) and its gradient.
// patch_map / patch_map_backward: the patch tokens as a feature map (B, D, N) (dense heads) and its gradient.

struct TokenParams {
    batch: u32,
    patches: u32,
    dim: u32,
    // bit 0: use mask; bit 1: add positions; bit 2: accumulate into out.
    flags: u32,
    rows: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;       // emb (B, N, D) | dx (B, T, D) | rows (M, D)
@group(0) @binding(2) var<storage, read> mask: array<u32>;      // (B, N), 1 = masked | row indices (M)
@group(0) @binding(3) var<uniform> p: TokenParams;
@group(0) @binding(4) var<storage, read> mask_token: array<f32>; // (D)
@group(0) @binding(5) var<storage, read> cls: array<f32>;        // (D)
@group(0) @binding(6) var<storage, read> pos: array<f32>;        // (T, D)

const WG: u32 = 256u;

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + li;
}

fn put(i: u32, v: f32) {
    if ((p.flags & 4u) != 0u) {
        out[i] = out[i] + v;
    } else {
        out[i] = v;
    }
}

@compute @workgroup_size(256)
fn assemble(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    let t_count = p.patches + 1u;
    if (e >= p.batch * t_count * p.dim) {
        return;
    }
    let d = e % p.dim;
    let t = (e / p.dim) % t_count;
    let b = e / (p.dim * t_count);
    var v: f32;
    if (t == 0u) {
        v = cls[d];
    } else {
        let n = t - 1u;
        if ((p.flags & 1u) != 0u && mask[b * p.patches + n] != 0u) {
            v = mask_token[d];
        } else {
            v = src[(b * p.patches + n) * p.dim + d];
        }
    }
    if ((p.flags & 2u) != 0u) {
        v += pos[t * p.dim + d];
    }
    out[e] = v;
}

@compute @workgroup_size(256)
fn assemble_grad_emb(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.batch * p.patches * p.dim) {
        return;
    }
    let d = e % p.dim;
    let n = (e / p.dim) % p.patches;
    let b = e / (p.dim * p.patches);
    var v = src[(b * (p.patches + 1u) + 1u + n) * p.dim + d];
    if ((p.flags & 1u) != 0u && mask[b * p.patches + n] != 0u) {
        v = 0.0;
    }
    put(e, v);
}

@compute @workgroup_size(256)
fn assemble_grad_mask(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let d = gid(wg, nwg, li);
    if (d >= p.dim) {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        for (var n = 0u; n < p.patches; n++) {
            if (mask[b * p.patches + n] != 0u) {
                s += src[(b * (p.patches + 1u) + 1u + n) * p.dim + d];
            }
        }
    }
    put(d, s);
}

@compute @workgroup_size(256)
fn assemble_grad_cls(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let d = gid(wg, nwg, li);
    if (d >= p.dim) {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        s += src[b * (p.patches + 1u) * p.dim + d];
    }
    put(d, s);
}

@compute @workgroup_size(256)
fn assemble_grad_pos(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    let td = (p.patches + 1u) * p.dim;
    if (e >= td) {
        return;
    }
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        s += src[b * td + e];
    }
    put(e, s);
}

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.rows * p.dim) {
        return;
    }
    let i = e / p.dim;
    let d = e % p.dim;
    put(e, src[mask[i] * p.dim + d]);
}

// Row indices must be distinct (each output row written by one thread).
@compute @workgroup_size(256)
fn scatter_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.rows * p.dim) {
        return;
    }
    let i = e / p.dim;
    let d = e % p.dim;
    put(mask[i] * p.dim + d, src[e]);
}

// mean_patches:          out (B, C) = (1 / N) · Σ_n x[b, 1 + n]  (mean of the patch tokens, CLS excluded).
// mean_patches_backward: dx (B, T, C) (=|+=) dout[b] / N on patch rows, 0 on the CLS row.
@compute @workgroup_size(256)
fn mean_patches(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.batch * p.dim) {
        return;
    }
    let b = e / p.dim;
    let d = e % p.dim;
    var s = 0.0;
    for (var n = 0u; n < p.patches; n++) {
        s += src[(b * (p.patches + 1u) + 1u + n) * p.dim + d];
    }
    put(e, s / f32(p.patches));
}

@compute @workgroup_size(256)
fn mean_patches_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    let t_count = p.patches + 1u;
    if (e >= p.batch * t_count * p.dim) {
        return;
    }
    let d = e % p.dim;
    let t = (e / p.dim) % t_count;
    let b = e / (p.dim * t_count);
    var v = 0.0;
    if (t != 0u) {
        v = src[b * p.dim + d] / f32(p.patches);
    }
    put(e, v);
}

// patch_map:          out (B, C, N) = x[b, 1 + n, c]  (the patch tokens as a C-channel feature map on the patch grid).
// patch_map_backward: dx (B, T, C) (=|+=) dmap[b, c, t − 1] on patch rows, 0 on the CLS row.
@compute @workgroup_size(256)
fn patch_map(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    if (e >= p.batch * p.dim * p.patches) {
        return;
    }
    let n = e % p.patches;
    let d = (e / p.patches) % p.dim;
    let b = e / (p.patches * p.dim);
    put(e, src[(b * (p.patches + 1u) + 1u + n) * p.dim + d]);
}

@compute @workgroup_size(256)
fn patch_map_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = gid(wg, nwg, li);
    let t_count = p.patches + 1u;
    if (e >= p.batch * t_count * p.dim) {
        return;
    }
    let d = e % p.dim;
    let t = (e / p.dim) % t_count;
    let b = e / (p.dim * t_count);
    var v = 0.0;
    if (t != 0u) {
        v = src[(b * p.dim + d) * p.patches + t - 1u];
    }
    put(e, v);
}
