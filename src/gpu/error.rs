//! Typed errors of the GPU runtime: one clear sentence each, naming what failed and what to do.

use thiserror::Error;

/// Everything that can go wrong while talking to the GPU.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no GPU adapter was found{detail}; install a Vulkan driver (for a software GPU: apt-get install mesa-vulkan-drivers)")]
    NoAdapter { detail: String },
    #[error(
        "GPU adapter \"{adapter}\" offers {limit} = {offered} but beitlab needs {needed}; {hint}"
    )]
    LimitTooSmall {
        adapter: String,
        limit: &'static str,
        needed: u64,
        offered: u64,
        hint: String,
    },
    #[error("GPU adapter \"{adapter}\" lacks the feature {feature}, which beitlab needs")]
    MissingFeature { adapter: String, feature: String },
    #[error("the GPU device could not be created on \"{adapter}\": {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("shader {shader}.wgsl is invalid: {message}")]
    Shader { shader: String, message: String },
    #[error("shader {shader}.wgsl has no entry point {entry}")]
    NoEntryPoint { shader: String, entry: String },
    #[error("unknown shader {0}; it is not in the shader registry")]
    UnknownShader(String),
    #[error(
        "kernel {kernel} was given {given} bindings but its shader declares binding {binding}"
    )]
    MissingBinding {
        kernel: String,
        given: usize,
        binding: u32,
    },
    #[error("kernel {kernel}: {message}")]
    BadLaunch { kernel: String, message: String },
    #[error("the GPU reported an error: {0}")]
    Device(String),
    #[error("reading a buffer back from the GPU failed: {0}")]
    Readback(String),
    #[error("tensor {0} is not in this flat buffer's offset table")]
    UnknownTensor(String),
}
