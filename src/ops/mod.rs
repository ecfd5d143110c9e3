//! Thin typed launchers, one module per WGSL kernel family in `shaders/`. A launcher checks its shapes,
//! writes the kernel's `#[repr(C)]` parameter struct into a uniform buffer and returns prebuilt
//! [`Dispatch`]es; nothing is submitted here, so callers put a whole step in one compute pass.
//! Every launcher has a CPU twin of the same name in [`crate::cpu`].

pub mod adamw;
pub mod attention;
pub mod attention_fused;
pub mod attention_lanes;
pub mod conv;
pub mod conv_columns;
pub mod crossentropy;
pub mod droppath;
pub mod elementwise;
pub mod gelu;
mod gemm_choice;
pub mod groupnorm;
pub mod layernorm;
pub mod matmul;
pub mod matmul_f16;
pub mod patches;
pub mod pixel_loss;
pub mod precision;
pub mod probe;
pub mod reduce;
pub mod spatial;
pub mod tokens;
pub mod vq;

use crate::gpu::{workgroup_grid, Dispatch, GpuContext, GpuError, GpuSlice};

/// A kernel's uniform parameter struct, mirrored from WGSL. Every field is 32 bits, so WGSL lays field `i`
/// at byte `4·i`; a test checks that against naga's layout of the WGSL struct of the same name.
pub trait GpuParams: bytemuck::Pod {
    const SHADER: &'static str;
    const WGSL_NAME: &'static str;
    const FIELDS: &'static [&'static str];
}

/// Declares a `#[repr(C)]` parameter struct and ties it to its WGSL twin.
macro_rules! gpu_params {
    ($(#[$meta:meta])* $name:ident in $shader:literal as $wgsl:literal { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty,)*
        }
        impl $crate::ops::GpuParams for $name {
            const SHADER: &'static str = $shader;
            const WGSL_NAME: &'static str = $wgsl;
            const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}
pub(crate) use gpu_params;

/// (shader, WGSL struct name, Rust size in bytes, field names) of every parameter struct.
pub fn param_layouts() -> Vec<(&'static str, &'static str, usize, &'static [&'static str])> {
    fn row<P: GpuParams>() -> (&'static str, &'static str, usize, &'static [&'static str]) {
        (P::SHADER, P::WGSL_NAME, std::mem::size_of::<P>(), P::FIELDS)
    }
    vec![
        row::<matmul::GemmParams>(),
        // The software adapters' gemm declares the same struct in its own module.
        (
            "matmul_lanes",
            <matmul::GemmParams as GpuParams>::WGSL_NAME,
            std::mem::size_of::<matmul::GemmParams>(),
            <matmul::GemmParams as GpuParams>::FIELDS,
        ),
        row::<layernorm::LayerNormParams>(),
        row::<gelu::GeluParams>(),
        row::<attention::AttentionParams>(),
        row::<attention_lanes::AttentionLanesParams>(),
        row::<attention_fused::FusedAttentionParams>(),
        row::<elementwise::ElementwiseParams>(),
        row::<patches::PatchParams>(),
        row::<tokens::TokenParams>(),
        row::<crossentropy::CrossEntropyParams>(),
        row::<reduce::ReduceParams>(),
        row::<adamw::AdamWParams>(),
        row::<adamw::TensorInfo>(),
        row::<droppath::DropPathParams>(),
        row::<droppath::ChunkParams>(),
        row::<vq::VqParams>(),
        row::<conv::ConvParams>(),
        row::<conv_columns::ColumnParams>(),
        row::<spatial::SpatialParams>(),
        row::<pixel_loss::PixelLossParams>(),
        row::<groupnorm::GroupNormParams>(),
        row::<precision::PrecisionParams>(),
        row::<probe::ProbeParams>(),
        row::<matmul_f16::PadParams>(),
        row::<matmul_f16::CoopParams>(),
    ]
}

/// How a kernel that reduces along rows (layer norm, softmax) spreads its work: a workgroup per row with a
/// tree reduction (GPUs), or a thread per row with no barrier (software adapters, where a workgroup barrier
/// costs more than a short row's arithmetic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKernel {
    Workgroup,
    Thread,
}

impl RowKernel {
    /// `Thread` on CPU adapters (lavapipe, SwiftShader), `Workgroup` elsewhere.
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if ctx.adapter_info.device_type == wgpu::DeviceType::Cpu {
            Self::Thread
        } else {
            Self::Workgroup
        }
    }

    /// The entry point: `base` for a workgroup per row, `base_rows` for a thread per row.
    pub(crate) fn entry(self, base: &'static str, rows: &'static str) -> &'static str {
        match self {
            Self::Workgroup => base,
            Self::Thread => rows,
        }
    }

    /// The launch grid for `rows` rows (64 rows per workgroup for a thread per row).
    pub(crate) fn grid(self, rows: u64) -> [u32; 3] {
        match self {
            Self::Workgroup => workgroup_grid(rows),
            Self::Thread => grid_for(rows, 64),
        }
    }
}

/// Threads per workgroup of the one-thread-per-element kernels.
pub(crate) const ELEMENT_WG: u64 = 256;

/// Build one launch: `args[i]` is binding `i` of the shader family (unused ones are skipped by the kernel).
pub(crate) fn launch(
    ctx: &GpuContext,
    shader: &str,
    entry: &str,
    args: &[&GpuSlice],
    workgroups: [u32; 3],
) -> Result<Dispatch, GpuError> {
    launch_with(ctx, shader, entry, &[], args, workgroups)
}

/// [`launch`] of the pipeline built with these override constants (e.g. a workgroup size).
pub(crate) fn launch_with(
    ctx: &GpuContext,
    shader: &str,
    entry: &str,
    constants: &[(&str, f64)],
    args: &[&GpuSlice],
    workgroups: [u32; 3],
) -> Result<Dispatch, GpuError> {
    let kernel = ctx.pipelines.get_with(shader, entry, constants)?;
    let max = ctx.limits.max_storage_buffer_binding_size;
    for &(binding, _) in &kernel.bindings {
        if let Some(arg) = args.get(binding as usize) {
            if arg.size_bytes() > max {
                return Err(GpuError::BadLaunch {
                    kernel: kernel.name.clone(),
                    message: format!("binding {binding} spans {} bytes but this device allows {max} per storage binding; use a smaller batch", arg.size_bytes()),
                });
            }
        }
    }
    let bind_group = kernel.bind(&ctx.device, args)?;
    Ok(Dispatch {
        kernel,
        bind_group,
        workgroups,
    })
}

/// The same buffer range viewed as vec4s, for the kernels that read or write 4 elements at a time (length
/// rounded down to whole vec4s; a tiny stand-in when too short).
pub(crate) fn vec4_view(ctx: &GpuContext, s: &GpuSlice) -> GpuSlice {
    if s.len >= 4 {
        GpuSlice {
            buffer: s.buffer.clone(),
            offset: s.offset,
            len: s.len / 4 * 4,
        }
    } else {
        GpuSlice::new(ctx, "vec4 stand-in", 4)
    }
}

/// A 2D grid with one workgroup of `per_group` threads per `per_group` items.
pub(crate) fn grid_for(items: u64, per_group: u64) -> [u32; 3] {
    workgroup_grid(items.div_ceil(per_group))
}

/// Fail with a clear message when a buffer is shorter than a shape needs.
pub(crate) fn need(kernel: &str, what: &str, slice: &GpuSlice, elems: u64) -> Result<(), GpuError> {
    if slice.len < elems {
        return Err(GpuError::BadLaunch {
            kernel: kernel.to_string(),
            message: format!(
                "{what} holds {} elements but the shape needs {elems}",
                slice.len
            ),
        });
    }
    Ok(())
}

/// Fail when a size does not fit the 32-bit indices the kernels use.
pub(crate) fn fits_u32(kernel: &str, elems: u64) -> Result<u32, GpuError> {
    u32::try_from(elems).map_err(|_| GpuError::BadLaunch {
        kernel: kernel.to_string(),
        message: format!("{elems} elements exceed the 32-bit index range of the kernels"),
    })
}

/// Rows per chunk for the two-stage column sums: enough chunks to fill a GPU, few enough to finish in one more pass.
pub(crate) fn rows_per_chunk(rows: u64) -> u64 {
    if rows <= 256 {
        rows.max(1)
    } else {
        (rows as f64).sqrt().ceil().max(64.0) as u64
    }
}
