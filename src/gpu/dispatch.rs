//! A recorded kernel launch ({pipeline, bind group, workgroups}) and the 2D workgroup grid that lets one
//! launch go past the 65535-workgroups-per-dimension limit.

use std::sync::Arc;

use super::context::GpuContext;
use super::error::GpuError;
use super::pipelines::Kernel;

/// The WebGPU guarantee for workgroups in one dimension of a dispatch.
pub const MAX_WORKGROUPS_PER_DIM: u32 = 65535;

/// A grid of at least `groups` workgroups: `[x, y, 1]` with `x <= 65535`. Shaders rebuild the linear
/// workgroup index as `wg.x + wg.y * num_workgroups.x` and skip indices past the end.
pub fn workgroup_grid(groups: u64) -> [u32; 3] {
    let max = MAX_WORKGROUPS_PER_DIM as u64;
    if groups <= max {
        [groups.max(1) as u32, 1, 1]
    } else {
        let y = groups.div_ceil(max);
        let x = groups.div_ceil(y);
        [x as u32, y as u32, 1]
    }
}

/// One kernel launch, prebuilt: recording it is three calls on a compute pass.
#[derive(Clone)]
pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Dispatch {
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.workgroups[0], self.workgroups[1], self.workgroups[2]);
    }

    /// Record a list of launches in one compute pass of `encoder`.
    pub fn record_all(encoder: &mut wgpu::CommandEncoder, label: &str, dispatches: &[Dispatch]) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        for d in dispatches {
            d.record(&mut pass);
        }
    }

    /// Encode `dispatches` in one compute pass and submit them (tests, benchmarks, one-off jobs).
    pub fn submit(
        ctx: &GpuContext,
        label: &str,
        dispatches: &[Dispatch],
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Self::record_all(&mut encoder, label, dispatches);
        let index = ctx.queue.submit([encoder.finish()]);
        ctx.take_error()?;
        Ok(index)
    }
}
