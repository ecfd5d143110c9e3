//! The GPU runtime: device creation, shader registry and pipeline cache, buffers, dispatch and readback.

mod async_read;
mod buffers;
mod context;
mod dispatch;
mod error;
mod pipelines;
mod readback;
pub mod shaders;
mod tune;

pub use async_read::AsyncRead;
pub use buffers::{allocated_bytes, FlatBuffer, FlatEntry, FlatLayout, GpuSlice};
#[cfg(not(target_arch = "wasm32"))]
pub use context::{choose_adapter, list_adapters};
pub use context::{
    experimental_features, is_software_adapter, optional_features, raise_optional_limits,
    ConvScratch, ErrorPolicy, GpuContext, Requirements, ADAPTER_ENV, LANES_STORAGE_BUFFERS,
    OPTIONAL_FEATURES,
};
pub use dispatch::{workgroup_grid, Dispatch, MAX_WORKGROUPS_PER_DIM};
pub use error::GpuError;
pub use pipelines::{Kernel, PipelineCache};
pub use readback::{ReadbackRing, ReadbackTicket};
pub use tune::{TuneMode, TuneSummary, Tuned};

/// naga-side reflection used by the pipeline cache, exposed for the shader validation tests.
pub mod pipelines_reflection {
    pub use super::pipelines::{parse_and_validate, resolved_workgroup_size, used_bindings};
}
pub use pipelines::BindingKind;
