// patches.wgsl: image <-> patches in the order of a PyTorch Conv2d weight (out, in, kh, kw), so patch
// embedding is a matmul with the conv weight viewed as (D, C·p·p).
//
// patchify:   img (B, C, H, W) -> patches (B, N, C·p·p), N = (H/p)·(W/p) in row-major patch order,
//             element (c, ky, kx) of a patch at c·p·p + ky·p + kx.
// unpatchify: the inverse, patches -> img.

struct PatchParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    patch_size: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<uniform> p: PatchParams;

const WG: u32 = 256u;

// The image index of element `e` of the patches tensor.
fn image_index(e: u32) -> u32 {
    let pp = p.patch_size * p.patch_size;
    let cpp = p.channels * pp;
    let gw = p.width / p.patch_size;
    let n_per = (p.height / p.patch_size) * gw;
    let b = e / (n_per * cpp);
    let rem = e % (n_per * cpp);
    let n = rem / cpp;
    let k = rem % cpp;
    let c = k / pp;
    let ky = (k % pp) / p.patch_size;
    let kx = k % p.patch_size;
    let y = (n / gw) * p.patch_size + ky;
    let x = (n % gw) * p.patch_size + kx;
    return ((b * p.channels + c) * p.height + y) * p.width + x;
}

@compute @workgroup_size(256)
fn patchify(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * WG + li;
    if (e < p.batch * p.channels * p.height * p.width) {
        out[e] = src[image_index(e)];
    }
}

@compute @workgroup_size(256)
fn unpatchify(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * WG + li;
    if (e < p.batch * p.channels * p.height * p.width) {
        out[image_index(e)] = src[e];
    }
}

// patch_context: ctx (B·N, 5·P) = [patch, patch above, below, left, right] for every patch of patches (B·N, P),
// zeros past the image border (P = C·p·p). The tokenizer's encoder sees each patch with its neighbours.
@compute @workgroup_size(256)
fn patch_context(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = (wg.x + wg.y * nwg.x) * WG + li;
    let pp = p.channels * p.patch_size * p.patch_size;
    let gh = p.height / p.patch_size;
    let gw = p.width / p.patch_size;
    let n_per = gh * gw;
    if (e >= p.batch * n_per * 5u * pp) {
        return;
    }
    let row = e / (5u * pp);
    let slot = (e % (5u * pp)) / pp;
    let k = e % pp;
    let b = row / n_per;
    let n = row % n_per;
    var gy = i32(n / gw);
    var gx = i32(n % gw);
    if (slot == 1u) { gy -= 1; }
    if (slot == 2u) { gy += 1; }
    if (slot == 3u) { gx -= 1; }
    if (slot == 4u) { gx += 1; }
    var v = 0.0;
    if (gy >= 0 && gx >= 0 && gy < i32(gh) && gx < i32(gw)) {
        v = src[(b * n_per + u32(gy) * gw + u32(gx)) * pp + k];
    }
    out[e] = v;
}
