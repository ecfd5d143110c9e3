//! Pictures painted by egui-wgpu callbacks straight from the GPU buffers the networks wrote: heat maps of attention
//! probabilities and relative position bias tables, and the tokenizer's reconstructions as images.
//! `shaders/paint.wgsl` reads the values with strides, normalises and colours them in the fragment shader; nothing
//! is copied to the CPU.

use std::collections::HashMap;

use egui_wgpu::{CallbackResources, CallbackTrait, RenderState};

/// Where the values of one map are in its buffer; mirrors `PaintParams` in `shaders/paint.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PaintParams {
    pub base: u32,
    pub cols: u32,
    pub rows: u32,
    pub col_stride: u32,
    pub row_stride: u32,
    pub heads: u32,
    pub head_stride: u32,
    /// 0: sequential heat map, 1: diverging heat map, 2: image (`heads` = channels).
    pub mode: u32,
    pub alpha: f32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// The WGSL source of the painter.
pub const SHADER: &str = crate::gpu::shaders::RENDER_SHADERS[0].1;

/// One map: a uniform buffer and the bind group over the buffer it reads.
struct Entry {
    uniform: wgpu::Buffer,
    source: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

/// The pipeline and one entry per map on screen (keyed by the caller's id), kept in egui-wgpu's callback resources.
pub struct PaintResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    entries: HashMap<u64, Entry>,
}

/// Create the pipeline for eframe's render state (call once at start-up).
pub fn install(rs: &RenderState) {
    let (pipeline, layout) = create_pipeline(&rs.device, rs.target_format);
    rs.renderer
        .write()
        .callback_resources
        .insert(PaintResources {
            pipeline,
            layout,
            entries: HashMap::new(),
        });
}

/// The painter's pipeline drawing into `format` (premultiplied alpha blending over what is there), and the layout
/// of its bind group: binding 0 the values (a storage buffer), 1 the [`PaintParams`]. Draw 4 vertices as a
/// triangle strip to cover the viewport.
pub fn create_pipeline(
    device: &wgpu::Device,
    format: wgpu::TextureFormat,
) -> (wgpu::RenderPipeline, wgpu::BindGroupLayout) {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("paint"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("paint"),
        entries: &[
            wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: true },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
            wgpu::BindGroupLayoutEntry {
                binding: 1,
                visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            },
        ],
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some("paint"),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("paint"),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module: &module,
            entry_point: Some("vs_main"),
            compilation_options: Default::default(),
            buffers: &[],
        },
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                write_mask: wgpu::ColorWrites::ALL,
            })],
        }),
        primitive: wgpu::PrimitiveState {
            topology: wgpu::PrimitiveTopology::TriangleStrip,
            ..Default::default()
        },
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    });
    (pipeline, layout)
}

/// One heat map to draw this frame.
pub struct HeatMap {
    pub id: u64,
    pub buffer: wgpu::Buffer,
    pub params: PaintParams,
}

impl CallbackTrait for HeatMap {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<PaintResources>() else {
            return Vec::new();
        };
        let stale = res
            .entries
            .get(&self.id)
            .is_none_or(|e| e.source != self.buffer);
        if stale {
            let uniform = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("paint params"),
                size: std::mem::size_of::<PaintParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("paint"),
                layout: &res.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: uniform.as_entire_binding(),
                    },
                ],
            });
            res.entries.insert(
                self.id,
                Entry {
                    uniform,
                    source: self.buffer.clone(),
                    bind_group,
                },
            );
        }
        if let Some(e) = res.entries.get(&self.id) {
            queue.write_buffer(&e.uniform, 0, bytemuck::bytes_of(&self.params));
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(res) = resources.get::<PaintResources>() else {
            return;
        };
        if let Some(e) = res.entries.get(&self.id) {
            pass.set_pipeline(&res.pipeline);
            pass.set_bind_group(0, &e.bind_group, &[]);
            pass.draw(0..4, 0..1);
        }
    }
}

/// Queue a heat map over `rect` (drawn after what the painter already holds).
pub fn paint(ui: &egui::Ui, rect: egui::Rect, map: HeatMap) {
    ui.painter()
        .add(egui_wgpu::Callback::new_paint_callback(rect, map));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_shader_validates_and_params_match() {
        let module = naga::front::wgsl::parse_str(SHADER).expect("paint.wgsl parses");
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("paint.wgsl validates");
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("PaintParams"))
            .expect("PaintParams");
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            panic!("PaintParams is not a struct")
        };
        assert_eq!(*span as usize, std::mem::size_of::<PaintParams>());
        assert_eq!(members.len(), 12);
        assert!(members
            .iter()
            .enumerate()
            .all(|(i, m)| m.offset as usize == 4 * i));
    }
}
