//! The one device-creation path: a headless device for the command line and tests, or a device that already
//! exists (eframe's render state in the app). Every path ends in [`GpuContext`], which holds the device,
//! queue, the limits actually granted and the pipeline cache.

use std::sync::{Arc, Mutex};

use super::buffers::GpuSlice;
use super::error::GpuError;
use super::pipelines::PipelineCache;

/// The environment variable that picks an adapter by a substring of its name (case-insensitive).
pub const ADAPTER_ENV: &str = "BEITLAB_ADAPTER";

/// What happens to a wgpu error that no error scope captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Panic at once (tests: a validation error must fail the test that caused it).
    Panic,
    /// Keep the first message; [`GpuContext::take_error`] turns it into a typed error (command line, app).
    Record,
}

/// The limits and features a workload needs. Start from [`Requirements::kernels`] and raise what a model needs.
#[derive(Clone, Debug)]
pub struct Requirements {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub features: wgpu::Features,
    /// What to tell the user when a limit is missing (e.g. "choose a smaller preset or batch").
    pub hint: String,
}

impl Requirements {
    /// What the kernel library itself needs: WebGPU's default limits, nothing more.
    pub fn kernels() -> Self {
        let d = wgpu::Limits::default();
        Self {
            max_storage_buffer_binding_size: d.max_storage_buffer_binding_size,
            max_buffer_size: d.max_buffer_size,
            max_storage_buffers_per_shader_stage: d.max_storage_buffers_per_shader_stage,
            max_compute_workgroup_storage_size: d.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: d.max_compute_invocations_per_workgroup,
            features: wgpu::Features::empty(),
            hint: "use a smaller preset or batch".to_string(),
        }
    }

    /// What to tell the user when a limit is missing.
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.hint = hint.to_string();
        self
    }

    /// Raise the buffer limits so that one buffer (and one binding) of `bytes` fits.
    pub fn with_buffer_bytes(mut self, bytes: u64) -> Self {
        self.max_buffer_size = self.max_buffer_size.max(bytes);
        self.max_storage_buffer_binding_size = self.max_storage_buffer_binding_size.max(bytes);
        self
    }

    /// Check an adapter against these requirements and build the limits to request:
    /// WebGPU defaults, raised exactly where needed.
    pub fn limits_for(
        &self,
        adapter_name: &str,
        offered: &wgpu::Limits,
    ) -> Result<wgpu::Limits, GpuError> {
        let checks: [(&'static str, u64, u64); 5] = [
            (
                "max_storage_buffer_binding_size",
                self.max_storage_buffer_binding_size,
                offered.max_storage_buffer_binding_size,
            ),
            (
                "max_buffer_size",
                self.max_buffer_size,
                offered.max_buffer_size,
            ),
            (
                "max_storage_buffers_per_shader_stage",
                self.max_storage_buffers_per_shader_stage as u64,
                offered.max_storage_buffers_per_shader_stage as u64,
            ),
            (
                "max_compute_workgroup_storage_size",
                self.max_compute_workgroup_storage_size as u64,
                offered.max_compute_workgroup_storage_size as u64,
            ),
            (
                "max_compute_invocations_per_workgroup",
                self.max_compute_invocations_per_workgroup as u64,
                offered.max_compute_invocations_per_workgroup as u64,
            ),
        ];
        for (limit, needed, have) in checks {
            if needed > have {
                return Err(GpuError::LimitTooSmall {
                    adapter: adapter_name.to_string(),
                    limit,
                    needed,
                    offered: have,
                    hint: self.hint.clone(),
                });
            }
        }
        let mut limits = wgpu::Limits::default().using_resolution(offered.clone());
        limits.max_storage_buffer_binding_size = self.max_storage_buffer_binding_size;
        limits.max_buffer_size = self.max_buffer_size;
        limits.max_storage_buffers_per_shader_stage = self.max_storage_buffers_per_shader_stage;
        limits.max_compute_workgroup_storage_size = self.max_compute_workgroup_storage_size;
        limits.max_compute_invocations_per_workgroup = self.max_compute_invocations_per_workgroup;
        // Alignments are "lower is better": take what the adapter offers so sub-range binding is as fine as it can be.
        limits.min_storage_buffer_offset_alignment = offered.min_storage_buffer_offset_alignment;
        limits.min_uniform_buffer_offset_alignment = offered.min_uniform_buffer_offset_alignment;
        Ok(limits)
    }
}

/// Features beitlab uses where an adapter offers them and does without elsewhere: natively, subgroup operations
/// (the software adapters' gemm, `shaders/matmul_lanes.wgsl`) and, together, f16 with cooperative matrices
/// (mixed precision's products, `shaders/matmul_coop.wgsl`). Every device, the app's included, asks for these.
/// None in the browser: there WGSL with subgroup operations needs an `enable subgroups;` directive that naga 30
/// does not parse, so one shader source cannot serve both, and cooperative matrices are native only.
#[cfg(not(target_arch = "wasm32"))]
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
#[cfg(target_arch = "wasm32")]
pub const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::empty();

/// Storage buffers per shader stage that a device with subgroups asks for where its adapter offers them:
/// `gemm_lanes` (`shaders/matmul_lanes.wgsl`, the software adapters' product) binds 9, one more than WebGPU's
/// default 8 (llvmpipe offers 32). The browser never runs it.
pub const LANES_STORAGE_BUFFERS: u32 = 9;

/// Raise `limits` (what a device will be created with) for the optional features it gets: with subgroups, to
/// [`LANES_STORAGE_BUFFERS`] storage buffers per stage where the adapter offers that many.
pub fn raise_optional_limits(
    limits: &mut wgpu::Limits,
    offered: &wgpu::Limits,
    features: wgpu::Features,
) {
    if features.contains(wgpu::Features::SUBGROUP)
        && offered.max_storage_buffers_per_shader_stage >= LANES_STORAGE_BUFFERS
    {
        limits.max_storage_buffers_per_shader_stage = limits
            .max_storage_buffers_per_shader_stage
            .max(LANES_STORAGE_BUFFERS);
    }
}

/// The features mixed precision's cooperative-matrix products need, both or neither.
const COOP_FEATURES: wgpu::Features =
    wgpu::Features::SHADER_F16.union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

/// Whether an adapter computes on the CPU (a software driver: llvmpipe / lavapipe, SwiftShader), by its device
/// type or, where a browser reports none, its name.
pub fn is_software_adapter(info: &wgpu::AdapterInfo) -> bool {
    let name = info.name.to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || name.contains("swiftshader")
        || name.contains("llvmpipe")
}

/// The optional features an adapter offers (see [`OPTIONAL_FEATURES`]); f16 only with cooperative matrices.
pub fn optional_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let offered = adapter.features() & OPTIONAL_FEATURES;
    if offered.contains(COOP_FEATURES) {
        offered
    } else {
        offered - COOP_FEATURES
    }
}

/// Experimental features are switched on only for a device that asks for cooperative matrices.
pub fn experimental_features(features: wgpu::Features) -> wgpu::ExperimentalFeatures {
    if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        // SAFETY: wgpu marks cooperative matrices experimental (their validation is incomplete). beitlab uses
        // them in one kernel, which runs only after `ops::matmul_f16::self_check` compared its results with
        // the CPU on this device; every other kernel is unaffected.
        unsafe { wgpu::ExperimentalFeatures::enabled() }
    } else {
        wgpu::ExperimentalFeatures::disabled()
    }
}

/// A device, its queue, what was granted, and the pipeline cache. Cheap to clone (all handles are shared).
/// Which of the convolutions' scratch buffers (see [`GpuContext::conv_scratch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvScratch {
    Operands,
    Results,
}

#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    /// The limits the device was created with (not the adapter's maxima).
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub pipelines: PipelineCache,
    first_error: Arc<Mutex<Option<String>>>,
    /// One scratch buffer shared by the launches that need temporary space (split-K partial sums): launches in
    /// a pass run one after another, so they can share it; it only grows.
    scratch: Arc<Mutex<Option<GpuSlice>>>,
    /// The same for the convolutions on products (`ops::conv_columns`), apart from `scratch` because their
    /// products may use that one: [`ConvScratch::Operands`] (packed weights, columns) and
    /// [`ConvScratch::Results`] (partial sums, an unmasked gradient), two buffers because one launch reads the
    /// first and writes the second.
    conv_scratch: Arc<[Mutex<Option<GpuSlice>>; 2]>,
    /// See [`GpuContext::unused_storage`].
    unused: Arc<std::sync::OnceLock<GpuSlice>>,
    /// The startup micro-tuning's state and table (see `gpu::tune`).
    pub(super) tuning: Arc<Mutex<super::tune::TuneState>>,
}

impl GpuContext {
    /// Create a headless device: pick an adapter (honouring `BEITLAB_ADAPTER`), check `req`, request it.
    pub async fn new_headless(req: &Requirements, policy: ErrorPolicy) -> Result<Self, GpuError> {
        let instance = if cfg!(target_arch = "wasm32") {
            let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
            desc.backends = wgpu::Backends::BROWSER_WEBGPU;
            wgpu::Instance::new(desc)
        } else {
            native_instance()
        };
        let adapter = pick_adapter(&instance).await?;
        Self::from_adapter(&adapter, req, policy).await
    }

    /// Blocking form of [`GpuContext::new_headless`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_headless_blocking(
        req: &Requirements,
        policy: ErrorPolicy,
    ) -> Result<Self, GpuError> {
        pollster::block_on(Self::new_headless(req, policy))
    }

    /// Request a device from a chosen adapter with exactly the limits and features in `req`.
    pub async fn from_adapter(
        adapter: &wgpu::Adapter,
        req: &Requirements,
        policy: ErrorPolicy,
    ) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let mut limits = req.limits_for(&info.name, &adapter.limits())?;
        raise_optional_limits(&mut limits, &adapter.limits(), optional_features(adapter));
        let missing = req.features - adapter.features();
        if !missing.is_empty() {
            return Err(GpuError::MissingFeature {
                adapter: info.name.clone(),
                feature: format!("{missing:?}"),
            });
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("beitlab device"),
                required_features: req.features | optional_features(adapter),
                required_limits: limits.clone(),
                experimental_features: experimental_features(
                    req.features | optional_features(adapter),
                ),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| GpuError::RequestDevice {
                adapter: info.name.clone(),
                source,
            })?;
        Ok(Self::from_existing(device, queue, info, policy))
    }

    /// Wrap a device created elsewhere (e.g. eframe's `RenderState`). Its limits are read from the device.
    pub fn from_existing(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: wgpu::AdapterInfo,
        policy: ErrorPolicy,
    ) -> Self {
        let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let slot = first_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| match policy {
            ErrorPolicy::Panic => panic!("uncaptured wgpu error: {e}"),
            ErrorPolicy::Record => {
                if let Ok(mut s) = slot.lock() {
                    // wgpu's report spans lines ("Validation Error / Caused by: ..."): one line here.
                    s.get_or_insert_with(|| {
                        e.to_string()
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    });
                }
            }
        }));
        // A lost device (driver reset, out of memory, destroyed) ends the work in progress with a message.
        let lost = first_error.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut s) = lost.lock() {
                s.get_or_insert_with(|| {
                    format!(
                        "the GPU device was lost ({reason:?}{}{message})",
                        if message.is_empty() { "" } else { ": " }
                    )
                });
            }
        });
        let limits = device.limits();
        let features = device.features();
        let pipelines = PipelineCache::new(device.clone());
        let tuning = Arc::new(Mutex::new(super::tune::TuneState::new(&adapter_info)));
        Self {
            device,
            queue,
            adapter_info,
            limits,
            features,
            pipelines,
            first_error,
            scratch: Arc::new(Mutex::new(None)),
            conv_scratch: Arc::new([Mutex::new(None), Mutex::new(None)]),
            unused: Arc::new(std::sync::OnceLock::new()),
            tuning,
        }
    }

    /// A 4-element buffer for a writable binding that a launch does not use (a kernel's optional output, such as
    /// a product's GELU epilogue): WebGPU forbids two writable bindings of one dispatch over the same buffer, so
    /// such a binding cannot stand on the kernel's output.
    pub fn unused_storage(&self) -> GpuSlice {
        self.unused
            .get_or_init(|| GpuSlice::new(self, "unused binding", 4))
            .clone()
    }

    /// The shared scratch buffer, at least `len` elements long (a new, larger one when it is too short; launches
    /// recorded earlier keep the old one). For temporaries that one launch writes and the next reads.
    pub fn scratch(&self, len: u64) -> GpuSlice {
        self.grown(&self.scratch, "shared scratch", len)
    }

    /// One of the convolutions' shared scratch buffers (see [`GpuContext::scratch`]).
    pub fn conv_scratch(&self, which: ConvScratch, len: u64) -> GpuSlice {
        match which {
            ConvScratch::Operands => {
                self.grown(&self.conv_scratch[0], "convolution operands scratch", len)
            }
            ConvScratch::Results => {
                self.grown(&self.conv_scratch[1], "convolution results scratch", len)
            }
        }
    }

    fn grown(&self, slot: &Mutex<Option<GpuSlice>>, label: &str, len: u64) -> GpuSlice {
        let mut slot = match slot.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        match slot.as_ref() {
            Some(s) if s.buffer.size() >= len.max(1) * 4 => GpuSlice {
                buffer: s.buffer.clone(),
                offset: 0,
                len,
            },
            _ => {
                let s = GpuSlice::new(self, label, len);
                *slot = Some(s.clone());
                s
            }
        }
    }

    /// The first uncaptured GPU error since the last call, as a typed error.
    pub fn take_error(&self) -> Result<(), GpuError> {
        match self.first_error.lock().ok().and_then(|mut s| s.take()) {
            Some(msg) => Err(GpuError::Device(msg)),
            None => Ok(()),
        }
    }

    /// Alignment, in bytes, of storage sub-range offsets on this device.
    pub fn storage_alignment(&self) -> u64 {
        self.limits.min_storage_buffer_offset_alignment as u64
    }

    /// Block until all submitted work is done (native; tests, benchmarks, command-line waits).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Device(e.to_string()))?;
        self.take_error()
    }

    /// One line describing the adapter, for logs and `beitlab info`.
    pub fn describe(&self) -> String {
        let i = &self.adapter_info;
        format!(
            "{} ({:?}, {:?}, driver {} {})",
            i.name, i.backend, i.device_type, i.driver, i.driver_info
        )
    }
}

/// The instance every native path uses: Vulkan, Metal or DX12 (never GL: no compute through eframe's GL path).
fn native_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

/// Every compute-capable adapter on this machine, in the order beitlab prefers them (discrete GPUs first),
/// without the `BEITLAB_ADAPTER` filter. For `beitlab info`.
#[cfg(not(target_arch = "wasm32"))]
pub fn list_adapters() -> Vec<wgpu::Adapter> {
    let mut adapters =
        pollster::block_on(native_instance().enumerate_adapters(wgpu::Backends::all()));
    adapters.retain(|a| a.get_info().backend != wgpu::Backend::Gl);
    adapters.sort_by_key(|a| preference(&a.get_info()));
    adapters
}

#[cfg(not(target_arch = "wasm32"))]
fn preference(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The adapter beitlab uses among `adapters` (the command line's and the app's window alike): GL is never used,
/// `BEITLAB_ADAPTER` filters by name when set, and the most capable kind wins.
#[cfg(not(target_arch = "wasm32"))]
pub fn choose_adapter(adapters: &[wgpu::Adapter]) -> Result<wgpu::Adapter, GpuError> {
    let wanted = std::env::var(ADAPTER_ENV).ok().map(|s| s.to_lowercase());
    let mut usable: Vec<&wgpu::Adapter> = adapters
        .iter()
        .filter(|a| a.get_info().backend != wgpu::Backend::Gl)
        .collect();
    let names: Vec<String> = usable.iter().map(|a| a.get_info().name).collect();
    if let Some(w) = &wanted {
        usable.retain(|a| a.get_info().name.to_lowercase().contains(w.as_str()));
    }
    usable.sort_by_key(|a| preference(&a.get_info()));
    match usable.first() {
        Some(a) => Ok((*a).clone()),
        None => Err(GpuError::NoAdapter {
            detail: match wanted {
                Some(w) => format!(
                    " whose name contains \"{w}\" ({ADAPTER_ENV}); adapters present: {names:?}"
                ),
                None => String::new(),
            },
        }),
    }
}

/// All adapters of the instance, filtered by `BEITLAB_ADAPTER` when it is set; the most capable kind wins.
async fn pick_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter, GpuError> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        choose_adapter(&instance.enumerate_adapters(wgpu::Backends::all()).await)
    }
    #[cfg(target_arch = "wasm32")]
    {
        instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter {
                detail: format!(" ({e}); this browser may not have WebGPU enabled"),
            })
    }
}
