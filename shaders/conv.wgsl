// conv.wgsl: 2D convolution, stride 1, any kernel size k and zero padding `pad` (k odd, pad = (k − 1) / 2 is
// "same"), as an implicit matrix product: out (Co, pixels) = W (Co, Ci·k·k) · patches (Ci·k·k, pixels), where the
// patch matrix is never stored: each tile of it is read straight from the image. 64 x 64 x 16 tiles in workgroup
// memory, 4 x 4 outputs per thread.
//
// conv2d:     out (B, Co, Ho, Wo) (=|+=) scale · (conv(act(x), w) + bias), act = ReLU or identity,
//             Ho = H + 2·pad − k + 1. Weights w (Co, Ci, k, k) as PyTorch's Conv2d.
// token_conv: out (B, Co, H, W) = scale · (w[co, tokens[offset + (b, y, x)]] + bias[co]): a 1x1 convolution of the one-hot image of
//             the tokens (B, H, W) u32, with w (Co, V, 1, 1), read without building the one-hot image.
//
// conv2d with flag bit 3 is the input gradient of a convolution: dX = conv(dY, W transposed and flipped) with
// padding k − 1 − pad; the launcher passes the backward's shape (in = the forward's out) and the flag makes
// weight_at read w (Co_fwd, Ci_fwd, k, k) as (Ci_fwd, Co_fwd, k, k) flipped. Bit 4 then zeroes dX where the
// forward's input (binding `saved`) was not positive (the ReLU the forward applied on read).
// conv2d_weight_grad: partial dW (split, Co, Ci·k·k) = dY (Co, pixels of the split) · patchesᵀ, the patches read
//             from x as the forward read them (ReLU included); same tiles, the reduction over pixels split in
//             chunks of `aux` (grid z = channel tiles x splits); the launcher sums the splits into dW.
// (The bias gradient is two reductions, in ops::conv::conv2d_bias_grad.)

struct ConvParams {
    batch: u32,
    in_channels: u32,
    out_channels: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    pad: u32,
    // bit 0: add bias; bit 1: accumulate into out; bit 2: ReLU on the input as it is read; bit 3: weights read
    // transposed and flipped (input gradient); bit 4: zero the result where `saved` <= 0.
    flags: u32,
    scale: f32,
    // token_conv: index of the first token read (a chunk of a larger batch); conv2d_weight_grad: pixels per
    // split of the reduction.
    aux: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;  // (B, Co, Ho, Wo)
@group(0) @binding(1) var<storage, read> x: array<f32>;          // (B, Ci, H, W)
@group(0) @binding(2) var<storage, read> w: array<f32>;          // (Co, Ci, k, k)
@group(0) @binding(3) var<storage, read> bias: array<f32>;       // (Co)
@group(0) @binding(4) var<uniform> p: ConvParams;
@group(0) @binding(5) var<storage, read> tokens: array<u32>;     // (B, H, W), token_conv only
@group(0) @binding(6) var<storage, read> saved: array<f32>;      // the forward's input (input gradient, bit 4)

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

// [k][m] and [k][n]: a thread reads 4 consecutive m (or n) of one k row.
var<workgroup> tile_w: array<f32, 1024>;
var<workgroup> tile_x: array<f32, 1024>;

// W viewed as (Co, Ci·k·k): row m, column kk. With bit 3, the forward's W (in_channels, out_channels, k, k)
// (its out = this pass's in) read transposed and flipped.
fn weight_index(m: u32, kk: u32, kdim: u32) -> u32 {
    if ((p.flags & 8u) == 0u) {
        return m * kdim + kk;
    }
    let kk2 = p.kernel * p.kernel;
    let c = kk / kk2;
    let r = kk - c * kk2;
    return (c * p.out_channels + m) * kk2 + (kk2 - 1u - r);
}

fn weight_at(m: u32, kk: u32, kdim: u32) -> f32 {
    if (m >= p.out_channels || kk >= kdim) {
        return 0.0;
    }
    return w[weight_index(m, kk, kdim)];
}

// The patch matrix (Ci·k·k, B·Ho·Wo): row kk = (ci, ky, kx), column n = (b, oy, ox); zero outside the image.
fn patch_at(kk: u32, n: u32, kdim: u32, pixels: u32) -> f32 {
    if (kk >= kdim || n >= pixels) {
        return 0.0;
    }
    let kk2 = p.kernel * p.kernel;
    let ci = kk / kk2;
    let r = kk - ci * kk2;
    let ky = r / p.kernel;
    let kx = r - ky * p.kernel;
    let per_image = p.out_h * p.out_w;
    let b = n / per_image;
    let q = n - b * per_image;
    let oy = q / p.out_w;
    let ox = q - oy * p.out_w;
    let iy = i32(oy + ky) - i32(p.pad);
    let ix = i32(ox + kx) - i32(p.pad);
    if (iy < 0 || ix < 0 || iy >= i32(p.in_h) || ix >= i32(p.in_w)) {
        return 0.0;
    }
    let v = x[((b * p.in_channels + ci) * p.in_h + u32(iy)) * p.in_w + u32(ix)];
    if ((p.flags & 4u) != 0u) {
        return max(v, 0.0);
    }
    return v;
}

fn store_out(co: u32, n: u32, pixels: u32, acc: f32) {
    if (co >= p.out_channels || n >= pixels) {
        return;
    }
    var v = acc;
    if ((p.flags & 1u) != 0u) {
        v += bias[co];
    }
    v *= p.scale;
    let per_image = p.out_h * p.out_w;
    let b = n / per_image;
    let q = n - b * per_image;
    let idx = (b * p.out_channels + co) * per_image + q;
    if ((p.flags & 16u) != 0u && saved[idx] <= 0.0) {
        v = 0.0;
    }
    if ((p.flags & 2u) != 0u) {
        v += out[idx];
    }
    out[idx] = v;
}

// acc[i][j] += Σ_kk tile_w[kk][4·ty + i] · tile_x[kk][4·tx + j]: one k tile of a thread's 4 x 4 outputs.
fn multiply_tiles(lid: vec3<u32>, acc: ptr<function, array<vec4<f32>, 4>>) {
    for (var kk = 0u; kk < TILE_K; kk++) {
        let a = vec4<f32>(tile_w[kk * TILE + lid.y * 4u], tile_w[kk * TILE + lid.y * 4u + 1u],
                          tile_w[kk * TILE + lid.y * 4u + 2u], tile_w[kk * TILE + lid.y * 4u + 3u]);
        let bv = vec4<f32>(tile_x[kk * TILE + lid.x * 4u], tile_x[kk * TILE + lid.x * 4u + 1u],
                           tile_x[kk * TILE + lid.x * 4u + 2u], tile_x[kk * TILE + lid.x * 4u + 3u]);
        (*acc)[0] += a.x * bv;
        (*acc)[1] += a.y * bv;
        (*acc)[2] += a.z * bv;
        (*acc)[3] += a.w * bv;
    }
}

// Grid: x·y (folded) = pixel tiles, z = output-channel tiles. 16 x 16 threads, each 4 channels x 4 pixels.
@compute @workgroup_size(16, 16)
fn conv2d(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let pixels = p.batch * p.out_h * p.out_w;
    let kdim = p.in_channels * p.kernel * p.kernel;
    let n0 = (wg.x + wg.y * nwg.x) * TILE;
    let m0 = wg.z * TILE;
    if (n0 >= pixels) {
        return; // uniform across the workgroup: no barrier is skipped by part of it
    }
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    // Loads: each of the 256 threads fetches 4 weights and 4 patch values per k tile.
    let load_k = li / 16u;          // 0..15
    let load_j = (li % 16u) * 4u;   // 0..60
    for (var k0 = 0u; k0 < kdim; k0 += TILE_K) {
        for (var j = 0u; j < 4u; j++) {
            tile_w[load_k * TILE + load_j + j] = weight_at(m0 + load_j + j, k0 + load_k, kdim);
            tile_x[load_k * TILE + load_j + j] = patch_at(k0 + load_k, n0 + load_j + j, kdim, pixels);
        }
        workgroupBarrier();
        multiply_tiles(lid, &acc);
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let co = m0 + lid.y * 4u + i;
        let n = n0 + lid.x * 4u;
        store_out(co, n, pixels, acc[i].x);
        store_out(co, n + 1u, pixels, acc[i].y);
        store_out(co, n + 2u, pixels, acc[i].z);
        store_out(co, n + 3u, pixels, acc[i].w);
    }
}

// One thread per output element (B, Co, H, W); in_channels = V is the vocabulary.
@compute @workgroup_size(256)
fn token_conv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let per_image = p.out_h * p.out_w;
    if (i >= p.batch * p.out_channels * per_image) {
        return;
    }
    let q = i % per_image;
    let co = (i / per_image) % p.out_channels;
    let b = i / (per_image * p.out_channels);
    // Tokens past the vocabulary (never produced by an argmax) read the last column rather than out of bounds.
    let t = min(tokens[p.aux + b * per_image + q], p.in_channels - 1u);
    var v = w[co * p.in_channels + t];
    if ((p.flags & 1u) != 0u) {
        v += bias[co];
    }
    out[i] = p.scale * v;
}

// Partial dW of one split: M = Co, N = Ci·k·k, reduction over pixels [split·aux, (split + 1)·aux). `x` is the
// forward's input, `out` the partials (splits, Co, Ci·k·k), `saved` dY (B, Co, Ho, Wo). Grid: x·y (folded) =
// tiles of N, z = tiles of Co x splits.
@compute @workgroup_size(16, 16)
fn conv2d_weight_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let pixels = p.batch * p.out_h * p.out_w;
    let kdim = p.in_channels * p.kernel * p.kernel;
    let per_image = p.out_h * p.out_w;
    let n0 = (wg.x + wg.y * nwg.x) * TILE;
    let m_tiles = (p.out_channels + TILE - 1u) / TILE;
    let split = wg.z / m_tiles;
    let m0 = (wg.z % m_tiles) * TILE;
    if (n0 >= kdim) {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    let load_k = li / 16u;
    let load_j = (li % 16u) * 4u;
    let first = split * p.aux;
    let end = min(first + p.aux, pixels);
    for (var k0 = first; k0 < end; k0 += TILE_K) {
        let px = k0 + load_k;
        for (var j = 0u; j < 4u; j++) {
            let co = m0 + load_j + j;
            var g = 0.0;
            if (co < p.out_channels && px < end) {
                let b = px / per_image;
                g = saved[(b * p.out_channels + co) * per_image + (px - b * per_image)];
            }
            tile_w[load_k * TILE + load_j + j] = g;
            tile_x[load_k * TILE + load_j + j] = patch_at(n0 + load_j + j, px, kdim, end);
        }
        workgroupBarrier();
        multiply_tiles(lid, &acc);
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let co = m0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x * 4u + j;
            if (co < p.out_channels && n < kdim) {
                out[(split * p.out_channels + co) * kdim + n] = acc[i][j];
            }
        }
    }
}

// Transposed convolution with a 2x2 kernel and stride 2 (PyTorch's ConvTranspose2d(Ci, Co, 2, stride=2)): every
// output pixel reads one input pixel through one kernel tap. Weights w (Ci, Co, 2, 2) as PyTorch's.
// conv_transpose2:            out (B, Co, 2H, 2W) (=|+=) scale · (Σ_ci x[b, ci, y/2, x/2] · w[ci, co, y%2, x%2] + bias)
// conv_transpose2_input_grad: out = dx (B, Ci, H, W) (=|+=) Σ_{co, a, c} dy[b, co, 2y+a, 2x+c] · w[ci, co, a, c]
//                             (dy in `saved`; in_channels/out_channels are the forward's).
// conv_transpose2_weight_grad: partials (split, Ci·Co·4) of Σ over the split's input pixels of x · dy, one thread
//                             per (split, weight); the launcher sums the splits.

fn transpose_w(ci: u32, co: u32, a: u32, c: u32) -> u32 {
    return ((ci * p.out_channels + co) * 2u + a) * 2u + c;
}

@compute @workgroup_size(256)
fn conv_transpose2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let per = p.out_h * p.out_w;
    if (i >= p.batch * p.out_channels * per) {
        return;
    }
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let co = (i / per) % p.out_channels;
    let b = i / (per * p.out_channels);
    let src = (oy / 2u) * p.in_w + ox / 2u;
    var acc = 0.0;
    for (var ci = 0u; ci < p.in_channels; ci++) {
        acc += x[(b * p.in_channels + ci) * p.in_h * p.in_w + src] * w[transpose_w(ci, co, oy % 2u, ox % 2u)];
    }
    if ((p.flags & 1u) != 0u) {
        acc += bias[co];
    }
    var v = p.scale * acc;
    if ((p.flags & 2u) != 0u) {
        v += out[i];
    }
    out[i] = v;
}

@compute @workgroup_size(256)
fn conv_transpose2_input_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let per = p.in_h * p.in_w;
    if (i >= p.batch * p.in_channels * per) {
        return;
    }
    let ix = i % p.in_w;
    let iy = (i / p.in_w) % p.in_h;
    let ci = (i / per) % p.in_channels;
    let b = i / (per * p.in_channels);
    var acc = 0.0;
    for (var co = 0u; co < p.out_channels; co++) {
        let base = ((b * p.out_channels + co) * p.out_h + 2u * iy) * p.out_w + 2u * ix;
        acc += saved[base] * w[transpose_w(ci, co, 0u, 0u)] + saved[base + 1u] * w[transpose_w(ci, co, 0u, 1u)]
            + saved[base + p.out_w] * w[transpose_w(ci, co, 1u, 0u)]
            + saved[base + p.out_w + 1u] * w[transpose_w(ci, co, 1u, 1u)];
    }
    if ((p.flags & 2u) != 0u) {
        acc += out[i];
    }
    out[i] = acc;
}

@compute @workgroup_size(256)
fn conv_transpose2_weight_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    let weights = p.in_channels * p.out_channels * 4u;
    let per = p.in_h * p.in_w;
    let pixels = p.batch * per;
    let splits = (pixels + p.aux - 1u) / p.aux;
    if (i >= splits * weights) {
        return;
    }
    let split = i / weights;
    let j = i % weights;
    let c = j % 2u;
    let a = (j / 2u) % 2u;
    let co = (j / 4u) % p.out_channels;
    let ci = j / (4u * p.out_channels);
    var acc = 0.0;
    let end = min((split + 1u) * p.aux, pixels);
    for (var px = split * p.aux; px < end; px++) {
        let b = px / per;
        let q = px % per;
        let iy = q / p.in_w;
        let ix = q % p.in_w;
        acc += x[(b * p.in_channels + ci) * per + q]
            * saved[((b * p.out_channels + co) * p.out_h + 2u * iy + a) * p.out_w + 2u * ix + c];
    }
    out[i] = acc;
}
