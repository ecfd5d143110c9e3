//! A one-off read of several GPU slices that never blocks: the copies go into one staging buffer in one submit,
//! and [`AsyncRead::poll`] hands the bytes back once the GPU has finished (a frame or a few later). Used where a
//! whole model comes back while the app keeps drawing, as when the browser saves a checkpoint.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::buffers::GpuSlice;
use super::context::GpuContext;
use super::error::GpuError;

/// Copies in flight; each slice's bytes come back in the order the slices were given.
pub struct AsyncRead {
    staging: wgpu::Buffer,
    /// (offset in the staging buffer, bytes) per slice.
    parts: Vec<(u64, u64)>,
    /// 0 pending, 1 mapped, 2 failed.
    status: Arc<AtomicU8>,
    done: bool,
}

impl AsyncRead {
    /// Record and submit copies of `slices` (submitted after everything queued before, so the values are those
    /// left by the last submitted step).
    pub fn start(ctx: &GpuContext, slices: &[&GpuSlice]) -> Self {
        let mut parts = Vec::with_capacity(slices.len());
        let mut total = 0u64;
        for s in slices {
            parts.push((total, s.size_bytes()));
            total += s.size_bytes().next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        }
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("async read staging"),
            size: total.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("async read"),
            });
        for (s, &(offset, size)) in slices.iter().zip(&parts) {
            if size > 0 {
                encoder.copy_buffer_to_buffer(&s.buffer, s.offset, &staging, offset, size);
            }
        }
        ctx.queue.submit([encoder.finish()]);
        let status = Arc::new(AtomicU8::new(0));
        let flag = status.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            flag.store(if r.is_ok() { 1 } else { 2 }, Ordering::SeqCst)
        });
        Self {
            staging,
            parts,
            status,
            done: false,
        }
    }

    /// The bytes of every slice once the copies have landed; `None` while they are in flight (never waits).
    /// After it has returned `Some` once, it returns `None`.
    pub fn poll(&mut self, ctx: &GpuContext) -> Option<Result<Vec<Vec<u8>>, GpuError>> {
        if self.done {
            return None;
        }
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        let result = match self.status.load(Ordering::SeqCst) {
            0 => return None,
            1 => {
                let bytes = self
                    .staging
                    .get_mapped_range(..)
                    .map(|view| {
                        self.parts
                            .iter()
                            .map(|&(o, n)| view[o as usize..(o + n) as usize].to_vec())
                            .collect()
                    })
                    .map_err(|e| GpuError::Readback(e.to_string()));
                self.staging.unmap();
                bytes
            }
            _ => Err(GpuError::Readback(
                "the staging buffer could not be mapped".into(),
            )),
        };
        self.done = true;
        Some(result)
    }
}
