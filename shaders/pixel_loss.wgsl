// pixel_loss.wgsl: per-pixel softmax cross-entropy for dense prediction, with an ignored label.
//
// pixel_cross_entropy: logits (B, K, H, W), labels (B, H, W) u32 (`ignore` = not counted). One thread per pixel:
//   stats[3·i] = scale · (logsumexp − logit[label]), stats[3·i + 1] = scale · [argmax == label] (lowest class on
//   ties), stats[3·i + 2] = 1 for a counted pixel; dlogits (=|+=) scale · (softmax − one_hot(label)); all zero at
//   ignored pixels. With scale = 1 / (counted pixels), sums of stats are the mean loss and the pixel accuracy.

struct PixelLossParams {
    batch: u32,
    classes: u32,
    // H·W.
    pixels: u32,
    ignore: u32,
    scale: f32,
    // bit 0: accumulate into dlogits; bit 1: write dlogits.
    flags: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> dlogits: array<f32>;  // (B, K, H, W)
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;    // (B·H·W, 3)
@group(0) @binding(2) var<storage, read> logits: array<f32>;         // (B, K, H, W)
@group(0) @binding(3) var<storage, read> labels: array<u32>;         // (B, H, W)
@group(0) @binding(4) var<uniform> p: PixelLossParams;

@compute @workgroup_size(256)
fn pixel_cross_entropy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + li;
    if (i >= p.batch * p.pixels) {
        return;
    }
    let b = i / p.pixels;
    let q = i % p.pixels;
    let base = b * p.classes * p.pixels + q;
    let label = labels[i];
    let counted = label != p.ignore && label < p.classes;
    let write_grad = (p.flags & 2u) != 0u;
    let acc = (p.flags & 1u) != 0u;
    if (!counted) {
        stats[3u * i] = 0.0;
        stats[3u * i + 1u] = 0.0;
        stats[3u * i + 2u] = 0.0;
        if (write_grad && !acc) {
            for (var c = 0u; c < p.classes; c++) {
                dlogits[base + c * p.pixels] = 0.0;
            }
        }
        return;
    }
    var best = logits[base];
    var arg = 0u;
    for (var c = 1u; c < p.classes; c++) {
        let v = logits[base + c * p.pixels];
        if (v > best) {
            best = v;
            arg = c;
        }
    }
    var sum = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        sum += exp(logits[base + c * p.pixels] - best);
    }
    let lse = best + log(sum);
    stats[3u * i] = p.scale * (lse - logits[base + label * p.pixels]);
    stats[3u * i + 1u] = select(0.0, p.scale, arg == label);
    stats[3u * i + 2u] = 1.0;
    if (write_grad) {
        for (var c = 0u; c < p.classes; c++) {
            let idx = base + c * p.pixels;
            var g = exp(logits[idx] - lse);
            if (c == label) {
                g -= 1.0;
            }
            g *= p.scale;
            if (acc) {
                g += dlogits[idx];
            }
            dlogits[idx] = g;
        }
    }
}
