//! Getting numbers back from the GPU. [`GpuContext::read_f32`] blocks (tests, benchmarks, saving a checkpoint);
//! [`ReadbackRing`] never blocks: a copy is recorded into the step's command buffer, mapped after the submit,
//! and collected a frame or a step later when the GPU has finished.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use super::buffers::GpuSlice;
use super::context::GpuContext;
#[cfg(not(target_arch = "wasm32"))]
use super::error::GpuError;

impl GpuContext {
    /// Copy a slice to the CPU and wait for it (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_bytes(&self, src: &GpuSlice) -> Result<Vec<u8>, GpuError> {
        let mut read = super::AsyncRead::start(self, &[src]);
        // Another thread's poll may be running our callback right now: give it a moment to land.
        for _ in 0..1000 {
            self.wait()?;
            if let Some(parts) = read.poll(self) {
                return parts.map(|mut p| p.pop().unwrap_or_default());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(GpuError::Readback(
            "the staging buffer could not be mapped".into(),
        ))
    }

    /// Copy a slice of f32 to the CPU and wait for it (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_f32(&self, src: &GpuSlice) -> Result<Vec<f32>, GpuError> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(src)?))
    }

    /// Copy a slice of u32 to the CPU and wait for it (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_u32(&self, src: &GpuSlice) -> Result<Vec<u32>, GpuError> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(src)?))
    }
}

/// Identifies one value queued in a [`ReadbackRing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadbackTicket(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Copy recorded; waiting for the command buffer to be submitted.
    Recorded,
    /// `map_async` issued; the flag says when it is done.
    Mapping,
}

struct Slot {
    staging: wgpu::Buffer,
    state: SlotState,
    ticket: ReadbackTicket,
    bytes: u64,
    /// 0 pending, 1 mapped, 2 failed.
    status: Arc<AtomicU8>,
}

/// A small ring of staging buffers for metrics that come back without blocking. It grows by a slot when every
/// slot is still in flight, so no value is ever dropped.
pub struct ReadbackRing {
    device: wgpu::Device,
    slots: Vec<Slot>,
    capacity_bytes: u64,
    next_ticket: u64,
}

fn new_slot(device: &wgpu::Device, i: usize, bytes: u64) -> Slot {
    Slot {
        staging: device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&format!("readback ring slot {i}")),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }),
        state: SlotState::Free,
        ticket: ReadbackTicket(0),
        bytes: 0,
        status: Arc::new(AtomicU8::new(0)),
    }
}

impl ReadbackRing {
    /// `slots` staging buffers of `capacity_bytes` each.
    pub fn new(ctx: &GpuContext, slots: usize, capacity_bytes: u64) -> Self {
        Self {
            device: ctx.device.clone(),
            slots: (0..slots)
                .map(|i| new_slot(&ctx.device, i, capacity_bytes))
                .collect(),
            capacity_bytes,
            next_ticket: 0,
        }
    }

    /// Record a copy of `src` into a free slot. `None` when every slot is still in flight (the caller is
    /// running too far ahead of the GPU and can skip or wait) or `src` is larger than a slot.
    pub fn record(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        src: &GpuSlice,
    ) -> Option<ReadbackTicket> {
        let need = src.size_bytes();
        let i = self
            .slots
            .iter()
            .position(|s| s.state == SlotState::Free && s.staging.size() >= need)?;
        Some(self.record_into(i, encoder, src))
    }

    /// Record a copy of `src`, adding a slot when every slot is still in flight or too small: for values that
    /// must not be lost (a training step's loss, which is checked for being finite).
    pub fn record_always(
        &mut self,
        encoder: &mut wgpu::CommandEncoder,
        src: &GpuSlice,
    ) -> ReadbackTicket {
        let need = src.size_bytes();
        let i = match self
            .slots
            .iter()
            .position(|s| s.state == SlotState::Free && s.staging.size() >= need)
        {
            Some(i) => i,
            None => {
                let n = self.slots.len();
                let slot = new_slot(&self.device, n, need.max(self.capacity_bytes));
                self.slots.push(slot);
                n
            }
        };
        self.record_into(i, encoder, src)
    }

    fn record_into(
        &mut self,
        i: usize,
        encoder: &mut wgpu::CommandEncoder,
        src: &GpuSlice,
    ) -> ReadbackTicket {
        let slot = &mut self.slots[i];
        let need = src.size_bytes();
        encoder.copy_buffer_to_buffer(&src.buffer, src.offset, &slot.staging, 0, need);
        slot.state = SlotState::Recorded;
        slot.bytes = need;
        slot.ticket = ReadbackTicket(self.next_ticket);
        self.next_ticket += 1;
        slot.ticket
    }

    /// Slots held (grows past the initial count only through [`ReadbackRing::record_always`]).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Call right after submitting the command buffer the copies were recorded into.
    pub fn after_submit(&mut self) {
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.state == SlotState::Recorded)
        {
            slot.status.store(0, Ordering::SeqCst);
            let flag = slot.status.clone();
            slot.staging
                .map_async(wgpu::MapMode::Read, ..slot.bytes.max(4), move |r| {
                    flag.store(if r.is_ok() { 1 } else { 2 }, Ordering::SeqCst)
                });
            slot.state = SlotState::Mapping;
        }
    }

    /// Values whose copies have finished, oldest first. Never waits.
    pub fn collect(&mut self, ctx: &GpuContext) -> Vec<(ReadbackTicket, Vec<u8>)> {
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        let mut done = Vec::new();
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.state == SlotState::Mapping)
        {
            match slot.status.load(Ordering::SeqCst) {
                1 => {
                    if let Ok(view) = slot.staging.get_mapped_range(..slot.bytes.max(4)) {
                        done.push((slot.ticket, view[..slot.bytes as usize].to_vec()));
                    }
                    slot.staging.unmap();
                    slot.state = SlotState::Free;
                }
                2 => {
                    slot.state = SlotState::Free;
                }
                _ => {}
            }
        }
        done.sort_by_key(|d| d.0);
        done
    }

    /// Number of values recorded but not yet collected.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state != SlotState::Free)
            .count()
    }
}
