//! paint.wgsl (the app's heat maps and images drawn from storage buffers) against its CPU twin: each mode on a
//! grid whose cells do not divide the target evenly, values read with strides over heads or channels, drawn
//! offscreen over a poisoned (opaque magenta) target. Tolerance: one step of the 8-bit target plus 1e-3 (sin).

use super::common::*;
use beitlab::app::gpu_paint::{create_pipeline, PaintParams};
use beitlab::cpu;
use wgpu::util::DeviceExt;

const WIDTH: u32 = 24;
const HEIGHT: u32 = 20;
/// The target's colour before the draw, which the blend shows through where alpha < 1.
const POISON: [f32; 4] = [1.0, 0.0, 1.0, 1.0];

/// Draw `params` over `values` into a WIDTH x HEIGHT RGBA8 target cleared to POISON; the pixels in [0, 1].
fn draw(values: &[f32], params: PaintParams) -> Vec<[f32; 4]> {
    let c = ctx();
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let (pipeline, layout) = create_pipeline(&c.device, format);
    let source = c
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("paint values"),
            contents: bytemuck::cast_slice(values),
            usage: wgpu::BufferUsages::STORAGE,
        });
    let uniform = c
        .device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("paint params"),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
    let bind_group = c.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("paint"),
        layout: &layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: source.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: uniform.as_entire_binding(),
            },
        ],
    });
    let target = c.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("paint target"),
        size: wgpu::Extent3d {
            width: WIDTH,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let row_bytes = (WIDTH * 4).div_ceil(256) * 256;
    let readback = c.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("paint readback"),
        size: (row_bytes * HEIGHT) as u64,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let view = target.create_view(&Default::default());
    let mut enc = c.device.create_command_encoder(&Default::default());
    {
        let [r, g, b, a] = POISON.map(f64::from);
        let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("paint"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color { r, g, b, a }),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.draw(0..4, 0..1);
    }
    enc.copy_texture_to_buffer(
        target.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &readback,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row_bytes),
                rows_per_image: None,
            },
        },
        target.size(),
    );
    c.queue.submit([enc.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |_| {});
    c.wait().expect("the draw finishes");
    let bytes = readback
        .slice(..)
        .get_mapped_range()
        .expect("the readback maps")
        .to_vec();
    (0..HEIGHT)
        .flat_map(|y| (0..WIDTH).map(move |x| (y, x)))
        .map(|(y, x)| {
            let at = (y * row_bytes + x * 4) as usize;
            [0, 1, 2, 3].map(|i| bytes[at + i] as f32 / 255.0)
        })
        .collect()
}

/// The paint pipeline's pixels against the twin's, blended over POISON as the pipeline blends.
fn check(what: &str, values: &[f32], params: PaintParams) {
    let got = draw(values, params);
    let want = cpu::paint::paint_pixels(values, &params, WIDTH, HEIGHT);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        for ch in 0..4 {
            let blended = w[ch] + POISON[ch] * (1.0 - w[3]);
            assert!(
                (g[ch] - blended).abs() <= 1.0 / 255.0 + 1e-3,
                "{what}: pixel ({}, {}) channel {ch} = {}, expected {blended}",
                i as u32 % WIDTH,
                i as u32 / WIDTH,
                g[ch]
            );
        }
    }
}

/// Attention rows (B, H, T, T) as the attention view reads them: one query's row over a 5 x 4 grid, the mean
/// of 3 heads, semi-transparent; then one head alone.
#[test]
fn paint_sequential_heat_map_over_heads() {
    let mut rng = Rng::new(41);
    let (heads, t) = (3u32, 21u32);
    let values = rng.vec((2 * heads * t * t) as usize, 1.0);
    let params = PaintParams {
        base: (heads * t + 4) * t + 1,
        cols: 5,
        rows: 4,
        col_stride: 1,
        row_stride: 5,
        heads,
        head_stride: t * t,
        mode: 0,
        alpha: 0.6,
        ..Default::default()
    };
    check("sequential, 3 heads", &values, params);
    check(
        "sequential, 1 head, opaque",
        &values,
        PaintParams {
            heads: 1,
            alpha: 1.0,
            ..params
        },
    );
}

/// A relative position bias table (offsets, H) as the attention view reads it: diverging around 0, heads
/// interleaved along the row.
#[test]
fn paint_diverging_bias_table() {
    let mut rng = Rng::new(42);
    let (heads, side) = (2u32, 5u32);
    let values: Vec<f32> = rng
        .vec((side * side * heads + 3) as usize, 2.0)
        .into_iter()
        .map(|x| x - 0.3)
        .collect();
    check(
        "diverging",
        &values,
        PaintParams {
            base: 1,
            cols: side,
            rows: side - 1,
            col_stride: heads,
            row_stride: side * heads,
            heads,
            head_stride: 1,
            mode: 1,
            alpha: 1.0,
            ..Default::default()
        },
    );
}

/// The tokenizer's reconstructions (B, C, S, S): three channels, and one (grey).
#[test]
fn paint_images() {
    let mut rng = Rng::new(43);
    let s = 5u32;
    let values = rng.vec((2 * 3 * s * s) as usize, 1.5);
    let rgb = PaintParams {
        base: 3 * s * s,
        cols: s,
        rows: s - 1,
        col_stride: 1,
        row_stride: s,
        heads: 3,
        head_stride: s * s,
        mode: 2,
        alpha: 1.0,
        ..Default::default()
    };
    check("image, 3 channels", &values, rgb);
    check(
        "image, 1 channel",
        &values,
        PaintParams {
            heads: 1,
            alpha: 0.5,
            ..rgb
        },
    );
}
