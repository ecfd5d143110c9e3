//! CPU twin of `shaders/paint.wgsl`: the premultiplied colour of every pixel of a heat map or image painted from a
//! grid of values read with strides (see [`PaintParams`]), over a `width x height` rectangle, pixel centres
//! sampled as the rasterizer does. Rows of pixels top to bottom; each pixel (r, g, b, a) in [0, 1].

use crate::app::gpu_paint::PaintParams;

/// The colour of each pixel, row-major from the top-left, as the paint pipeline draws it on a transparent target.
pub fn paint_pixels(values: &[f32], p: &PaintParams, width: u32, height: u32) -> Vec<[f32; 4]> {
    let heads = p.heads.max(1);
    let cell = |c: u32, r: u32| -> f32 {
        let mut sum = 0.0f32;
        for h in 0..p.heads {
            sum +=
                values[(p.base + h * p.head_stride + r * p.row_stride + c * p.col_stride) as usize];
        }
        sum / heads as f32
    };
    let (mut lo, mut hi) = (3.0e38f32, -3.0e38f32);
    if p.mode != 2 {
        for r in 0..p.rows {
            for c in 0..p.cols {
                lo = lo.min(cell(c, r));
                hi = hi.max(cell(c, r));
            }
        }
    }
    let mut out = Vec::with_capacity((width * height) as usize);
    for y in 0..height {
        let v = (y as f32 + 0.5) / height as f32;
        let r = ((v * p.rows as f32) as u32).min(p.rows - 1);
        for x in 0..width {
            let u = (x as f32 + 0.5) / width as f32;
            let c = ((u * p.cols as f32) as u32).min(p.cols - 1);
            let rgb = if p.mode == 2 {
                let at = p.base + r * p.row_stride + c * p.col_stride;
                let last = heads - 1;
                let channel = |i: u32| values[(at + i.min(last) * p.head_stride) as usize];
                [channel(0), channel(1), channel(2)].map(|x| (x * 0.5 + 0.5).clamp(0.0, 1.0))
            } else {
                let value = cell(c, r);
                let top = lo.abs().max(hi.abs()).max(1e-12);
                if p.mode == 1 {
                    diverging(value / top)
                } else {
                    sequential((value - lo) / (hi - lo).max(1e-12))
                }
            };
            out.push([
                rgb[0] * p.alpha,
                rgb[1] * p.alpha,
                rgb[2] * p.alpha,
                p.alpha,
            ]);
        }
    }
    out
}

/// Dark blue through green to yellow for t in [0, 1].
fn sequential(t: f32) -> [f32; 3] {
    let x = t.clamp(0.0, 1.0);
    [
        (-0.1 + 1.1 * x * x).clamp(0.0, 1.0),
        (0.05 + 0.9 * x).clamp(0.0, 1.0),
        (0.35 + 0.6 * (std::f32::consts::PI * x).sin() * (1.0 - x)).clamp(0.0, 1.0),
    ]
}

/// Blue below 0, light grey at 0, red above, for t in [-1, 1].
fn diverging(t: f32) -> [f32; 3] {
    let x = t.clamp(-1.0, 1.0);
    let grey = [0.97f32; 3];
    let (end, w) = if x >= 0.0 {
        ([0.75f32, 0.1, 0.1], x)
    } else {
        ([0.1f32, 0.25, 0.75], -x)
    };
    [0, 1, 2].map(|i| grey[i] + (end[i] - grey[i]) * w)
}
