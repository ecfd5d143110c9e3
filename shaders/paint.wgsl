// Pictures drawn by the app straight from storage buffers (no trip through the CPU): a grid of values read with
// strides from any f32 buffer. Heat maps (values averaged over heads, normalised in the shader and coloured) for
// attention rows (B, H, T, T) and relative position bias tables (num_relative_distance, H); images for the
// tokenizer's reconstructions (B, C, S, S), normalised with mean 0.5 and std 0.5.

struct PaintParams {
    // Element index of the value at grid cell (0, 0) of the first head.
    base: u32,
    cols: u32,
    rows: u32,
    col_stride: u32,
    row_stride: u32,
    // Values per cell, `head_stride` apart: heads averaged (modes 0, 1) or colour channels (mode 2, 1 or 3).
    heads: u32,
    head_stride: u32,
    // 0: sequential scale from the smallest to the largest value; 1: diverging scale around 0 (blue < 0 < red);
    // 2: an image, each value v shown as the intensity 0.5 v + 0.5.
    mode: u32,
    // Opacity of the map over what is below it.
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> values: array<f32>;
@group(0) @binding(1) var<uniform> p: PaintParams;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
    // The heat map's scale, the smallest and largest value over the grid: the same at every vertex, so flat.
    @location(1) @interpolate(flat) scale: vec2<f32>,
}

// A quad over the whole viewport (the callback's rectangle) as a 4-vertex triangle strip. Each of the 4 vertices
// finds the heat map's scale, so the fragments read only their own cell: with the scale found per fragment, a
// 256 x 256 map of 7 x 7 cells and 3 heads read 147 values a pixel, which on a software adapter cost more than
// the rest of the frame.
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VertexOut {
    let u = f32(i & 1u);
    let v = f32((i >> 1u) & 1u);
    var out: VertexOut;
    out.position = vec4<f32>(u * 2.0 - 1.0, 1.0 - v * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(u, v);
    out.scale = vec2<f32>(0.0, 0.0);
    if p.mode != 2u {
        out.scale = grid_scale();
    }
    return out;
}

// The smallest and largest value over the grid.
fn grid_scale() -> vec2<f32> {
    var lo = 3.0e38;
    var hi = -3.0e38;
    for (var rr = 0u; rr < p.rows; rr += 1u) {
        for (var cc = 0u; cc < p.cols; cc += 1u) {
            let x = cell_value(cc, rr);
            lo = min(lo, x);
            hi = max(hi, x);
        }
    }
    return vec2<f32>(lo, hi);
}

fn cell_value(c: u32, r: u32) -> f32 {
    var sum = 0.0;
    for (var h = 0u; h < p.heads; h += 1u) {
        sum += values[p.base + h * p.head_stride + r * p.row_stride + c * p.col_stride];
    }
    return sum / f32(max(p.heads, 1u));
}

fn sequential(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0);
    return vec3<f32>(
        clamp(-0.1 + 1.1 * x * x, 0.0, 1.0),
        clamp(0.05 + 0.9 * x, 0.0, 1.0),
        clamp(0.35 + 0.6 * sin(3.14159265 * x) * (1.0 - x), 0.0, 1.0),
    );
}

fn diverging(t: f32) -> vec3<f32> {
    let x = clamp(t, -1.0, 1.0);
    if x >= 0.0 {
        return mix(vec3<f32>(0.97, 0.97, 0.97), vec3<f32>(0.75, 0.1, 0.1), x);
    }
    return mix(vec3<f32>(0.97, 0.97, 0.97), vec3<f32>(0.1, 0.25, 0.75), -x);
}

fn image_pixel(c: u32, r: u32) -> vec3<f32> {
    let at = p.base + r * p.row_stride + c * p.col_stride;
    let last = max(p.heads, 1u) - 1u;
    let red = values[at];
    let green = values[at + min(1u, last) * p.head_stride];
    let blue = values[at + min(2u, last) * p.head_stride];
    return clamp(vec3<f32>(red, green, blue) * 0.5 + 0.5, vec3<f32>(0.0), vec3<f32>(1.0));
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let c = min(u32(in.uv.x * f32(p.cols)), p.cols - 1u);
    let r = min(u32(in.uv.y * f32(p.rows)), p.rows - 1u);
    if p.mode == 2u {
        return vec4<f32>(image_pixel(c, r) * p.alpha, p.alpha);
    }
    let lo = in.scale.x;
    let hi = in.scale.y;
    let v = cell_value(c, r);
    let top = max(max(abs(lo), abs(hi)), 1e-12);
    let t = (v - lo) / max(hi - lo, 1e-12);
    let rgb = select(sequential(t), diverging(v / top), p.mode == 1u);
    return vec4<f32>(rgb * p.alpha, p.alpha);
}
