//! Resizing 2D planes as torch.nn.functional.interpolate does with align_corners = False: bilinear (for
//! relative position tables) and bicubic with a = −0.75 and clamped borders (for absolute position embeddings).

/// Source coordinate of destination index `i` when resizing `inp` -> `out` samples (align_corners = False).
fn source(i: usize, inp: usize, out: usize) -> f64 {
    (i as f64 + 0.5) * (inp as f64 / out as f64) - 0.5
}

/// Bilinear resize of a row-major (h, w) plane to (nh, nw).
pub fn bilinear(plane: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; nh * nw];
    for y in 0..nh {
        let sy = source(y, h, nh).max(0.0);
        let y0 = (sy.floor() as usize).min(h - 1);
        let y1 = (y0 + 1).min(h - 1);
        let ly = sy - y0 as f64;
        for x in 0..nw {
            let sx = source(x, w, nw).max(0.0);
            let x0 = (sx.floor() as usize).min(w - 1);
            let x1 = (x0 + 1).min(w - 1);
            let lx = sx - x0 as f64;
            let p = |yy: usize, xx: usize| plane[yy * w + xx] as f64;
            let v = (1.0 - ly) * ((1.0 - lx) * p(y0, x0) + lx * p(y0, x1))
                + ly * ((1.0 - lx) * p(y1, x0) + lx * p(y1, x1));
            out[y * nw + x] = v as f32;
        }
    }
    out
}

/// Keys' cubic convolution weights for fractional offset t (a = −0.75, PyTorch's choice).
fn cubic_weights(t: f64) -> [f64; 4] {
    let a = -0.75;
    let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Bicubic resize of a row-major (h, w) plane to (nh, nw), borders clamped.
pub fn bicubic(plane: &[f32], h: usize, w: usize, nh: usize, nw: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; nh * nw];
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    for y in 0..nh {
        let sy = source(y, h, nh);
        let fy = sy.floor();
        let wy = cubic_weights(sy - fy);
        for x in 0..nw {
            let sx = source(x, w, nw);
            let fx = sx.floor();
            let wx = cubic_weights(sx - fx);
            let mut acc = 0.0f64;
            for (j, wyj) in wy.iter().enumerate() {
                let yy = clamp(fy as i64 - 1 + j as i64, h);
                for (i, wxi) in wx.iter().enumerate() {
                    let xx = clamp(fx as i64 - 1 + i as i64, w);
                    acc += wyj * wxi * plane[yy * w + xx] as f64;
                }
            }
            out[y * nw + x] = acc as f32;
        }
    }
    out
}
