// spatial.wgsl: per-pixel kernels on images (B, C, H, W), one thread per output element.
//
// max_pool2:         out (B, C, H/2, W/2) = max of each 2x2 block (sizes rounded down, as PyTorch's MaxPool2d(2)).
// upsample_nearest2: out (B, C, 2H, 2W) = x[.., y/2, x/2] (nearest, as PyTorch's Upsample(scale_factor=2)).
// argmax_channels:   tokens (B, H, W) u32 (from token_offset on) = argmax over c of x[b, c, y, x] (lowest channel on ties).
// sigmoid_unmap:     out (B, C, H, W) = scale · clamp((sigmoid(x[b, c]) − eps) / (1 − 2·eps), 0, 1) + shift, read
//                    from the first C of x's `in_channels` channels (the DALL-E decoder's pixel means).
// resize_bilinear:   out (B, C, out_h, out_w) = x resized bilinearly as PyTorch's interpolate with
//                    align_corners = False (no antialiasing): source = (dst + 0.5) · in / out − 0.5, clamped.
// max_pool2_backward: dx (B, C, H, W) (=|+=, flags bit 0) dy[.., y/2, x/2] where x[...] is the
//                    first maximum of its 2x2 block (row-major, as the forward's comparison order), else 0; rows and
//                    columns the pooling dropped get 0. `x` binding: the forward's input; `tokens` unused; dy in `aux`.
// upsample_nearest2_backward: dx (B, C, H, W) (=|+=) the sum of dy's 2x2 block over it.
// resize_bilinear_backward: its adjoint, gathered: out (B, C, H, W) (=|+=) Σ over the output pixels that read
//                    input pixel (y, x) of their weight · x[...] (x here is dL/d(resized), (B, C, out_h, out_w));
//                    one thread per input pixel, no atomics. `height`/`width` are the input's, out_h/out_w the
//                    resized sides; flags bit 0: accumulate.

struct SpatialParams {
    batch: u32,
    channels: u32,
    // Input sides (the output's follow from the kernel).
    height: u32,
    width: u32,
    // Channels per image of the input (sigmoid_unmap; equal to `channels` elsewhere).
    in_channels: u32,
    eps: f32,
    scale: f32,
    shift: f32,
    // argmax_channels: index of the first token written (a chunk of a larger batch).
    token_offset: u32,
    // resize_bilinear: output sides.
    out_h: u32,
    out_w: u32,
    // The backward kernels: bit 0 = accumulate into out.
    flags: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> p: SpatialParams;
@group(0) @binding(3) var<storage, read_write> tokens: array<u32>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;         // dy of max_pool2_backward

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + li;
}

@compute @workgroup_size(256)
fn max_pool2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let oh = p.height / 2u;
    let ow = p.width / 2u;
    if (i >= p.batch * p.channels * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    let base = (plane * p.height + 2u * oy) * p.width + 2u * ox;
    out[i] = max(max(x[base], x[base + 1u]), max(x[base + p.width], x[base + p.width + 1u]));
}

@compute @workgroup_size(256)
fn upsample_nearest2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let oh = p.height * 2u;
    let ow = p.width * 2u;
    if (i >= p.batch * p.channels * oh * ow) {
        return;
    }
    let ox = i % ow;
    let oy = (i / ow) % oh;
    let plane = i / (ow * oh);
    out[i] = x[(plane * p.height + oy / 2u) * p.width + ox / 2u];
}

@compute @workgroup_size(256)
fn argmax_channels(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let hw = p.height * p.width;
    if (i >= p.batch * hw) {
        return;
    }
    let b = i / hw;
    let q = i % hw;
    let base = b * p.channels * hw + q;
    var best = x[base];
    var arg = 0u;
    for (var c = 1u; c < p.channels; c++) {
        let v = x[base + c * hw];
        if (v > best) {
            best = v;
            arg = c;
        }
    }
    tokens[p.token_offset + i] = arg;
}

@compute @workgroup_size(256)
fn sigmoid_unmap(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let hw = p.height * p.width;
    if (i >= p.batch * p.channels * hw) {
        return;
    }
    let q = i % hw;
    let c = (i / hw) % p.channels;
    let b = i / (hw * p.channels);
    let s = 1.0 / (1.0 + exp(-x[(b * p.in_channels + c) * hw + q]));
    out[i] = p.scale * clamp((s - p.eps) / (1.0 - 2.0 * p.eps), 0.0, 1.0) + p.shift;
}

fn source_index(i: u32, n_in: u32, n_out: u32) -> vec3<f32> {
    // (lower index, upper index, weight of the upper) along one axis. The source coordinate
    // (i + 0.5)·n_in/n_out − 0.5 = ((2i + 1)·n_in − n_out) / (2·n_out) in integers (sides up to 32768), so its
    // whole part is exact and only the fraction is rounded.
    let num = (2u * i + 1u) * n_in;
    let den = 2u * n_out;
    if (num <= n_out) {
        return vec3<f32>(0.0, f32(min(1u, n_in - 1u)), 0.0);
    }
    // The coordinate stays below n_in − 0.5, so lo <= n_in − 1.
    let q = num - n_out;
    let lo = q / den;
    return vec3<f32>(f32(lo), f32(min(lo + 1u, n_in - 1u)), f32(q - lo * den) / f32(den));
}

@compute @workgroup_size(256)
fn resize_bilinear(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.batch * p.channels * p.out_h * p.out_w) {
        return;
    }
    let ox = i % p.out_w;
    let oy = (i / p.out_w) % p.out_h;
    let plane = i / (p.out_w * p.out_h);
    let sy = source_index(oy, p.height, p.out_h);
    let sx = source_index(ox, p.width, p.out_w);
    let base = plane * p.height * p.width;
    let row0 = base + u32(sy.x) * p.width;
    let row1 = base + u32(sy.y) * p.width;
    let top = mix(x[row0 + u32(sx.x)], x[row0 + u32(sx.y)], sx.z);
    let bottom = mix(x[row1 + u32(sx.x)], x[row1 + u32(sx.y)], sx.z);
    out[i] = mix(top, bottom, sy.z);
}

// The weight with which output index o (of n_out) reads input index i (of n_in) along one axis.
fn axis_weight(o: u32, i: u32, n_in: u32, n_out: u32) -> f32 {
    let s = source_index(o, n_in, n_out);
    var w = 0.0;
    if (u32(s.x) == i) {
        w += 1.0 - s.z;
    }
    if (u32(s.y) == i) {
        w += s.z;
    }
    return w;
}

// First and one-past-last output index along an axis that can read input index i: output o reads input
// floor((o + 0.5)·n_in/n_out − 0.5) and the next, so o lies within (i − 1.5)·n_out/n_in .. (i + 1.5)·n_out/n_in.
fn axis_range(i: u32, n_in: u32, n_out: u32) -> vec2<u32> {
    let lo = max(i32(floor((f32(i) - 1.5) * f32(n_out) / f32(n_in))) - 1, 0);
    let hi = min(i32(ceil((f32(i) + 1.5) * f32(n_out) / f32(n_in))) + 2, i32(n_out));
    return vec2<u32>(u32(lo), u32(max(hi, lo)));
}

@compute @workgroup_size(256)
fn resize_bilinear_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.batch * p.channels * p.height * p.width) {
        return;
    }
    let ix = i % p.width;
    let iy = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let ry = axis_range(iy, p.height, p.out_h);
    let rx = axis_range(ix, p.width, p.out_w);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        let wy = axis_weight(oy, iy, p.height, p.out_h);
        if (wy == 0.0) {
            continue;
        }
        let row = (plane * p.out_h + oy) * p.out_w;
        for (var ox = rx.x; ox < rx.y; ox++) {
            let wx = axis_weight(ox, ix, p.width, p.out_w);
            acc += wy * wx * x[row + ox];
        }
    }
    if ((p.flags & 1u) != 0u) {
        acc += out[i];
    }
    out[i] = acc;
}

@compute @workgroup_size(256)
fn max_pool2_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.batch * p.channels * p.height * p.width) {
        return;
    }
    let ix = i % p.width;
    let iy = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let oh = p.height / 2u;
    let ow = p.width / 2u;
    var g = 0.0;
    if (iy / 2u < oh && ix / 2u < ow) {
        let base = (plane * p.height + (iy & ~1u)) * p.width + (ix & ~1u);
        // The forward's max(max(a, b), max(c, d)) picks the first of equal values in the order a, b, c, d.
        let a = x[base];
        let b = x[base + 1u];
        let c = x[base + p.width];
        let d = x[base + p.width + 1u];
        let m = max(max(a, b), max(c, d));
        var first = 3u;
        if (c == m) { first = 2u; }
        if (b == m) { first = 1u; }
        if (a == m) { first = 0u; }
        let mine = (iy & 1u) * 2u + (ix & 1u);
        if (mine == first) {
            g = aux[(plane * oh + iy / 2u) * ow + ix / 2u];
        }
    }
    if ((p.flags & 1u) != 0u) {
        g += out[i];
    }
    out[i] = g;
}

@compute @workgroup_size(256)
fn upsample_nearest2_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                              @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.batch * p.channels * p.height * p.width) {
        return;
    }
    let ix = i % p.width;
    let iy = (i / p.width) % p.height;
    let plane = i / (p.width * p.height);
    let w2 = 2u * p.width;
    let base = (plane * 2u * p.height + 2u * iy) * w2 + 2u * ix;
    var g = x[base] + x[base + 1u] + x[base + w2] + x[base + w2 + 1u];
    if ((p.flags & 1u) != 0u) {
        g += out[i];
    }
    out[i] = g;
}
