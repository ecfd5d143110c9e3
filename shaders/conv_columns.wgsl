// conv_columns.wgsl: the pieces that turn a stride-1 convolution into matrix products on software adapters
// (ops::conv_columns): the image's columns, the weights packed as the product's left operand, and the ReLU mask
// of an input gradient. The products themselves run on the adapter's gemm (gemm_lanes on llvmpipe), whose cost
// per multiply-add is 20-40x lower there than a direct convolution's.
//
// image_to_columns(4): cols (images, rows, pixels) for the images b0..b0+images and the output pixels
//             p0..p0+pixels of each: row r = (ci, ky, kx) < Ci·k·k holds act(x[b, ci, oy + ky − pad, ox + kx −
//             pad]) (0 outside the image), act = ReLU with bit 0; with bit 1 one more row of ones (the bias's
//             column of the packed weights). `4`: four adjacent pixels per thread, one vec4 store (pixels and
//             the column layout multiples of 4).
// pack_weights: wp (rows_out, cols_out) from w (Co, Ci, k, k): bit 2 clear, wp[co, r] = w[co, r] for r < Ci·k·k
//             and, with bit 1, wp[co, Ci·k·k] = bias[co]; bit 2 set (input gradient), wp[ci, (co, ky, kx)] =
//             w[co, ci, k − 1 − ky, k − 1 − kx].
// relu_mask:  dx[i] (=|+=) g[i] where saved[i] > 0, else (+) 0 (bit 3: accumulate), i < n.

struct ColumnParams {
    in_channels: u32,
    in_h: u32,
    in_w: u32,
    out_w: u32,
    kernel: u32,
    pad: u32,
    // bit 0: ReLU on read; bit 1: a row of ones / the bias column; bit 2: weights transposed and flipped; bit 3:
    // accumulate (relu_mask).
    flags: u32,
    // image_to_columns: the first image and how many; pack_weights: Co and Ci of w; relu_mask: elements.
    b0: u32,
    images: u32,
    // image_to_columns: the first output pixel of each image and pixels per image in the chunk.
    p0: u32,
    pixels: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> cols: array<f32>;       // columns, packed weights or dx
@group(0) @binding(1) var<storage, read_write> cols4: array<vec4<f32>>; // the same buffer, 4 at a time
@group(0) @binding(2) var<storage, read> x: array<f32>;                // image (B, Ci, H, W), w, or g
@group(0) @binding(3) var<storage, read> aux: array<f32>;              // bias (pack_weights), saved (relu_mask)
@group(0) @binding(4) var<uniform> p: ColumnParams;

fn gid(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + nwg.x * (wg.y + nwg.y * wg.z)) * 256u + li;
}

fn rows() -> u32 {
    return p.in_channels * p.kernel * p.kernel + ((p.flags >> 1u) & 1u);
}

// Where column row `r` reads: its input channel's plane and its tap's offsets (ky − pad, kx − pad); the ones
// row has no plane.
struct Tap {
    ones: bool,
    plane: u32,
    dy: i32,
    dx: i32,
}

fn tap_of(b: u32, r: u32) -> Tap {
    let kk = p.kernel * p.kernel;
    let ci = r / kk;
    let t = r - ci * kk;
    let ky = t / p.kernel;
    let kx = t - ky * p.kernel;
    return Tap(ci >= p.in_channels, (b * p.in_channels + min(ci, p.in_channels - 1u)) * p.in_h * p.in_w,
               i32(ky) - i32(p.pad), i32(kx) - i32(p.pad));
}

// The tap's value at output pixel (oy, ox): act(x) inside the image, 0 outside, 1 on the ones row.
fn tap_at(tp: Tap, oy: u32, ox: u32) -> f32 {
    if (tp.ones) {
        return 1.0;
    }
    let iy = i32(oy) + tp.dy;
    let ix = i32(ox) + tp.dx;
    if (iy < 0 || ix < 0 || iy >= i32(p.in_h) || ix >= i32(p.in_w)) {
        return 0.0;
    }
    let v = x[tp.plane + u32(iy) * p.in_w + u32(ix)];
    if ((p.flags & 1u) != 0u) {
        return max(v, 0.0);
    }
    return v;
}

// Grid: x = runs of 256 pixels (quads in image_to_columns4; a chunk has at most 2^20 pixels, so x stays under
// 65535), y = column rows, z = the chunk's images. The row and image come from the grid instead of dividing
// the thread's index (on llvmpipe an integer division is a loop over the lanes): with one index decoded per
// element, the pyramid head's columns took 542 ms of a step, 420 with this grid (two profile runs one after
// the other).
@compute @workgroup_size(256)
fn image_to_columns(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = wg.x * 256u + li;
    if (j >= p.pixels) {
        return;
    }
    let r = wg.y;
    let tp = tap_of(p.b0 + wg.z, r);
    let q = p.p0 + j;
    let oy = q / p.out_w;
    cols[(wg.z * rows() + r) * p.pixels + j] = tap_at(tp, oy, q - oy * p.out_w);
}

@compute @workgroup_size(256)
fn image_to_columns4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let j = wg.x * 256u + li;
    if (4u * j >= p.pixels) {
        return;
    }
    let r = wg.y;
    let tp = tap_of(p.b0 + wg.z, r);
    let q = p.p0 + 4u * j;
    var oy = q / p.out_w;
    var ox = q - oy * p.out_w;
    var v: vec4<f32>;
    for (var e = 0u; e < 4u; e++) {
        v[e] = tap_at(tp, oy, ox);
        ox += 1u;
        if (ox == p.out_w) {
            ox = 0u;
            oy += 1u;
        }
    }
    cols4[((wg.z * rows() + r) * p.pixels) / 4u + j] = v;
}

@compute @workgroup_size(256)
fn pack_weights(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    let co_n = p.b0;
    let ci_n = p.images;
    let kk = p.kernel * p.kernel;
    let taps = ci_n * kk;
    if ((p.flags & 4u) != 0u) {
        // wp (Ci, Co·k·k).
        if (i >= ci_n * co_n * kk) {
            return;
        }
        let ci = i / (co_n * kk);
        let co = (i / kk) % co_n;
        let t = kk - 1u - i % kk;
        cols[i] = x[(co * ci_n + ci) * kk + t];
        return;
    }
    // wp (Co, Ci·k·k (+ 1)).
    let width = taps + ((p.flags >> 1u) & 1u);
    if (i >= co_n * width) {
        return;
    }
    let co = i / width;
    let r = i % width;
    if (r < taps) {
        cols[i] = x[co * taps + r];
    } else {
        cols[i] = aux[co];
    }
}

@compute @workgroup_size(256)
fn relu_mask(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = gid(wg, nwg, li);
    if (i >= p.b0) {
        return;
    }
    let g = select(0.0, x[i], aux[i] > 0.0);
    if ((p.flags & 8u) != 0u) {
        cols[i] += g;
    } else {
        cols[i] = g;
    }
}
