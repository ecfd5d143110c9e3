//! The pipeline cache, keyed by (shader, entry point, override constants). Each shader is parsed and validated
//! by naga once; the bindings an entry point really uses are read from naga's analysis, and the bind group
//! layout is built from them, so a launcher can pass its family's whole binding list to any entry point.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::buffers::GpuSlice;
use super::error::GpuError;
use super::shaders;

/// How a kernel binding is declared in WGSL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    StorageRead,
    StorageReadWrite,
    Uniform,
}

/// One compiled entry point with its bind group layout.
pub struct Kernel {
    /// `shader::entry`, used as the label of everything made from it.
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// (binding index, kind) for every group-0 binding this entry point uses, sorted by index.
    pub bindings: Vec<(u32, BindingKind)>,
    /// The workgroup size after override constants were applied.
    pub workgroup_size: [u32; 3],
}

impl Kernel {
    /// A bind group for this kernel. `args[i]` is binding `i` of the family; unused ones are skipped.
    pub fn bind(
        &self,
        device: &wgpu::Device,
        args: &[&GpuSlice],
    ) -> Result<wgpu::BindGroup, GpuError> {
        let mut entries = Vec::with_capacity(self.bindings.len());
        for &(binding, _) in &self.bindings {
            let slice = args
                .get(binding as usize)
                .ok_or_else(|| GpuError::MissingBinding {
                    kernel: self.name.clone(),
                    given: args.len(),
                    binding,
                })?;
            if slice.len == 0 {
                return Err(GpuError::BadLaunch {
                    kernel: self.name.clone(),
                    message: format!("binding {binding} is an empty buffer range"),
                });
            }
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: slice.binding_resource(),
            });
        }
        Ok(device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&self.name),
            layout: &self.layout,
            entries: &entries,
        }))
    }
}

struct ParsedShader {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
    gpu_module: wgpu::ShaderModule,
}

type Key = (String, String, Vec<(String, u64)>);

/// Compiled pipelines and parsed shader modules, shared by every clone of a [`super::GpuContext`].
#[derive(Clone)]
pub struct PipelineCache {
    device: wgpu::Device,
    kernels: Arc<Mutex<HashMap<Key, Arc<Kernel>>>>,
    shaders: Arc<Mutex<HashMap<String, Arc<ParsedShader>>>>,
}

/// Parse and validate a WGSL source with naga, as WebGPU would (with subgroup operations allowed only in the
/// shaders of [`shaders::SUBGROUP_SHADERS`], f16 and cooperative matrices only in [`shaders::COOP_SHADERS`]).
pub fn parse_and_validate(
    name: &str,
    source: &str,
) -> Result<(naga::Module, naga::valid::ModuleInfo), GpuError> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| GpuError::Shader {
        shader: name.to_string(),
        message: e.emit_to_string(source),
    })?;
    let capabilities = if shaders::needs_subgroups(name) {
        naga::valid::Capabilities::SUBGROUP
    } else if shaders::needs_coop(name) {
        naga::valid::Capabilities::COOPERATIVE_MATRIX | naga::valid::Capabilities::SHADER_FLOAT16
    } else {
        naga::valid::Capabilities::empty()
    };
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .map_err(|e| GpuError::Shader {
            shader: name.to_string(),
            message: e.emit_to_string(source),
        })?;
    Ok((module, info))
}

/// The group-0 bindings an entry point uses, from naga's analysis of the module.
pub fn used_bindings(
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry_index: usize,
) -> Vec<(u32, BindingKind)> {
    let fi = info.get_entry_point(entry_index);
    let mut out = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let Some(rb) = &var.binding else { continue };
        if fi[handle].is_empty() || rb.group != 0 {
            continue;
        }
        let kind = match var.space {
            naga::AddressSpace::Uniform => BindingKind::Uniform,
            naga::AddressSpace::Storage { access }
                if access.contains(naga::StorageAccess::STORE) =>
            {
                BindingKind::StorageReadWrite
            }
            _ => BindingKind::StorageRead,
        };
        out.push((rb.binding, kind));
    }
    out.sort_by_key(|b| b.0);
    out
}

/// Set to 1 to keep wgpu's runtime checks in beitlab's own shaders (for hunting a suspected out-of-bounds access).
#[cfg(not(target_arch = "wasm32"))]
pub const SHADER_CHECKS_ENV: &str = "BEITLAB_SHADER_CHECKS";

/// A shader module of beitlab's own WGSL. Natively it is built without wgpu's injected runtime checks (an index
/// clamp on every array access and a counter on every loop), which cost compute kernels much of their speed;
/// in the browser WebGPU always keeps them.
fn create_module(device: &wgpu::Device, name: &str, source: &'static str) -> wgpu::ShaderModule {
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var(SHADER_CHECKS_ENV).as_deref() != Ok("1") {
        // SAFETY: these are beitlab's own shaders, not user input. Every kernel compares each index it computes
        // with the sizes in its uniforms before it reads or writes (edge tiles, rows past the end), every
        // launcher checks that the bound buffers hold what those sizes address (`ops::need`), and every loop
        // runs to a bound taken from a uniform. Each kernel is tested against its CPU twin with its outputs
        // poisoned beforehand, at tiny, odd and large sizes, so a stray access shows up as a wrong value.
        return unsafe {
            device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
        };
    }
    device.create_shader_module(desc)
}

impl PipelineCache {
    pub fn new(device: wgpu::Device) -> Self {
        Self {
            device,
            kernels: Arc::new(Mutex::new(HashMap::new())),
            shaders: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn shader(&self, name: &str) -> Result<Arc<ParsedShader>, GpuError> {
        let mut map = self
            .shaders
            .lock()
            .map_err(|_| GpuError::Device("pipeline cache lock poisoned".into()))?;
        if let Some(s) = map.get(name) {
            return Ok(s.clone());
        }
        let source =
            shaders::source(name).ok_or_else(|| GpuError::UnknownShader(name.to_string()))?;
        let (module, info) = parse_and_validate(name, source)?;
        let gpu_module = create_module(&self.device, name, source);
        let parsed = Arc::new(ParsedShader {
            module,
            info,
            gpu_module,
        });
        map.insert(name.to_string(), parsed.clone());
        Ok(parsed)
    }

    /// The kernel for `shader::entry` with no override constants.
    pub fn get(&self, shader: &str, entry: &str) -> Result<Arc<Kernel>, GpuError> {
        self.get_with(shader, entry, &[])
    }

    /// The kernel for `shader::entry` with the given override constants (compiled once, then cached).
    pub fn get_with(
        &self,
        shader: &str,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<Kernel>, GpuError> {
        let mut sorted: Vec<(String, u64)> = constants
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_bits()))
            .collect();
        sorted.sort();
        let key: Key = (shader.to_string(), entry.to_string(), sorted);
        if let Some(k) = self
            .kernels
            .lock()
            .map_err(|_| GpuError::Device("pipeline cache lock poisoned".into()))?
            .get(&key)
        {
            return Ok(k.clone());
        }
        let parsed = self.shader(shader)?;
        let entry_index = parsed
            .module
            .entry_points
            .iter()
            .position(|e| e.name == entry)
            .ok_or_else(|| GpuError::NoEntryPoint {
                shader: shader.to_string(),
                entry: entry.to_string(),
            })?;
        let bindings = used_bindings(&parsed.module, &parsed.info, entry_index);
        let workgroup_size =
            resolved_workgroup_size(&parsed.module, &parsed.info, entry, constants).map_err(
                |message| GpuError::Shader {
                    shader: shader.to_string(),
                    message,
                },
            )?;
        let name = format!("{shader}::{entry}");
        let layout_entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .map(|&(binding, kind)| wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match kind {
                        BindingKind::Uniform => wgpu::BufferBindingType::Uniform,
                        BindingKind::StorageRead => {
                            wgpu::BufferBindingType::Storage { read_only: true }
                        }
                        BindingKind::StorageReadWrite => {
                            wgpu::BufferBindingType::Storage { read_only: false }
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&name),
                entries: &layout_entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        #[cfg(not(target_arch = "wasm32"))]
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&name),
                layout: Some(&pipeline_layout),
                module: &parsed.gpu_module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Shader {
                shader: shader.to_string(),
                message: format!("pipeline {entry} was refused by the device: {err}"),
            });
        }
        let kernel = Arc::new(Kernel {
            name,
            pipeline,
            layout,
            bindings,
            workgroup_size,
        });
        self.kernels
            .lock()
            .map_err(|_| GpuError::Device("pipeline cache lock poisoned".into()))?
            .insert(key, kernel.clone());
        Ok(kernel)
    }
}

/// The workgroup size of `entry` once override constants (or their defaults) are applied. Handles a size
/// given directly by an `override` (possibly with a literal default), which is how beitlab's tunables are written.
pub fn resolved_workgroup_size(
    module: &naga::Module,
    _info: &naga::valid::ModuleInfo,
    entry: &str,
    constants: &[(&str, f64)],
) -> Result<[u32; 3], String> {
    let ep = module
        .entry_points
        .iter()
        .find(|e| e.name == entry)
        .ok_or_else(|| format!("no entry point {entry}"))?;
    let Some(overrides) = &ep.workgroup_size_overrides else {
        return Ok(ep.workgroup_size);
    };
    let literal = |h: naga::Handle<naga::Expression>| -> Option<f64> {
        match module.global_expressions[h] {
            naga::Expression::Literal(naga::Literal::U32(v)) => Some(v as f64),
            naga::Expression::Literal(naga::Literal::I32(v)) => Some(v as f64),
            naga::Expression::Literal(naga::Literal::AbstractInt(v)) => Some(v as f64),
            naga::Expression::Literal(naga::Literal::F32(v)) => Some(v as f64),
            naga::Expression::Literal(naga::Literal::F64(v)) => Some(v),
            _ => None,
        }
    };
    let mut size = ep.workgroup_size;
    for (dim, expr) in overrides.iter().enumerate() {
        let Some(h) = *expr else { continue };
        let value = match module.global_expressions[h] {
            naga::Expression::Override(o) => {
                let ov = &module.overrides[o];
                let by_name = ov
                    .name
                    .as_deref()
                    .and_then(|n| constants.iter().find(|(k, _)| *k == n).map(|(_, v)| *v));
                let by_id = ov.id.and_then(|id| {
                    constants
                        .iter()
                        .find(|(k, _)| *k == id.to_string())
                        .map(|(_, v)| *v)
                });
                by_name.or(by_id).or_else(|| ov.init.and_then(literal))
            }
            _ => literal(h),
        };
        size[dim] = value.ok_or_else(|| {
            format!("workgroup size of {entry} depends on an override without a literal value")
        })? as u32;
    }
    Ok(size)
}
