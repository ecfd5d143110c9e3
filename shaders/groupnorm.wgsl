// groupnorm.wgsl: group normalisation of feature maps (B, C, H, W) with G groups of C/G channels and a per-channel
// affine, as PyTorch's GroupNorm: y = (x − mean_bg) · rstd_bg · γ[c] + β[c], rstd = 1 / sqrt(var + eps) (biased
// variance over the group's (C/G)·H·W values).
//
// group_norm_forward:  one workgroup per (b, g): y, mean (B·G), rstd (B·G) saved.
// group_norm_backward: one workgroup per (b, g): dx = rstd · (dy·γ − mean(dy·γ) − x̂ · mean(dy·γ·x̂)) over the group.
// group_norm_affine_grad: one workgroup per channel: dγ[c] (=|+=) Σ dy·x̂, dβ[c] (=|+=) Σ dy over images and pixels.

struct GroupNormParams {
    batch: u32,
    channels: u32,
    // H·W.
    pixels: u32,
    groups: u32,
    eps: f32,
    // bit 0: accumulate into dx (backward) or dγ, dβ (affine grad).
    flags: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;    // y | dx | dγ
@group(0) @binding(1) var<storage, read_write> out2: array<f32>;   // mean | dβ
@group(0) @binding(2) var<storage, read_write> out3: array<f32>;   // rstd (forward)
@group(0) @binding(3) var<storage, read> x: array<f32>;            // (B, C, H, W)
@group(0) @binding(4) var<storage, read> gamma: array<f32>;        // (C)
@group(0) @binding(5) var<storage, read> beta: array<f32>;         // (C)
@group(0) @binding(6) var<storage, read> dy: array<f32>;           // (B, C, H, W)
@group(0) @binding(7) var<storage, read> saved_mean: array<f32>;   // (B·G)
@group(0) @binding(8) var<storage, read> saved_rstd: array<f32>;   // (B·G)
@group(0) @binding(9) var<uniform> p: GroupNormParams;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;

// Sums red[0..256] and red2[0..256] into red[0], red2[0].
fn tree2(li: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (li < s) {
            red[li] += red[li + s];
            red2[li] += red2[li + s];
        }
        workgroupBarrier();
    }
}

fn group_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

@compute @workgroup_size(256)
fn group_norm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let bg = group_index(wg, nwg);
    if (bg >= p.batch * p.groups) {
        return;
    }
    let per_group = (p.channels / p.groups) * p.pixels;
    let base = bg * per_group;
    // Two passes (mean, then squared deviations): no cancellation when the mean is large.
    var s = 0.0;
    for (var i = li; i < per_group; i += WG) {
        s += x[base + i];
    }
    red[li] = s;
    red2[li] = 0.0;
    tree2(li);
    let mean = red[0] / f32(per_group);
    workgroupBarrier();
    var s2 = 0.0;
    for (var i = li; i < per_group; i += WG) {
        let d = x[base + i] - mean;
        s2 += d * d;
    }
    red[li] = 0.0;
    red2[li] = s2;
    tree2(li);
    let rstd = 1.0 / sqrt(red2[0] / f32(per_group) + p.eps);
    let c0 = (bg % p.groups) * (p.channels / p.groups);
    for (var i = li; i < per_group; i += WG) {
        let c = c0 + i / p.pixels;
        out[base + i] = (x[base + i] - mean) * rstd * gamma[c] + beta[c];
    }
    if (li == 0u) {
        out2[bg] = mean;
        out3[bg] = rstd;
    }
}

@compute @workgroup_size(256)
fn group_norm_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let bg = group_index(wg, nwg);
    if (bg >= p.batch * p.groups) {
        return;
    }
    let per_group = (p.channels / p.groups) * p.pixels;
    let base = bg * per_group;
    let mean = saved_mean[bg];
    let rstd = saved_rstd[bg];
    let c0 = (bg % p.groups) * (p.channels / p.groups);
    var s = 0.0;
    var s2 = 0.0;
    for (var i = li; i < per_group; i += WG) {
        let g = dy[base + i] * gamma[c0 + i / p.pixels];
        s += g;
        s2 += g * (x[base + i] - mean) * rstd;
    }
    red[li] = s;
    red2[li] = s2;
    tree2(li);
    let m1 = red[0] / f32(per_group);
    let m2 = red2[0] / f32(per_group);
    for (var i = li; i < per_group; i += WG) {
        let g = dy[base + i] * gamma[c0 + i / p.pixels];
        let xhat = (x[base + i] - mean) * rstd;
        var v = rstd * (g - m1 - xhat * m2);
        if ((p.flags & 1u) != 0u) {
            v += out[base + i];
        }
        out[base + i] = v;
    }
}

@compute @workgroup_size(256)
fn group_norm_affine_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) li: u32) {
    let c = group_index(wg, nwg);
    if (c >= p.channels) {
        return;
    }
    let g = c / (p.channels / p.groups);
    var s = 0.0;
    var s2 = 0.0;
    let n = p.batch * p.pixels;
    for (var i = li; i < n; i += WG) {
        let b = i / p.pixels;
        let idx = (b * p.channels + c) * p.pixels + i % p.pixels;
        let bg = b * p.groups + g;
        s += dy[idx] * (x[idx] - saved_mean[bg]) * saved_rstd[bg];
        s2 += dy[idx];
    }
    red[li] = s;
    red2[li] = s2;
    tree2(li);
    if (li == 0u) {
        var dg = red[0];
        var db = red2[0];
        if ((p.flags & 1u) != 0u) {
            dg += out[c];
            db += out2[c];
        }
        out[c] = dg;
        out2[c] = db;
    }
}
