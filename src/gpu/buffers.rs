//! GPU buffers: [`GpuSlice`] (a 32-bit-element range of a buffer, bindable on its own) and the flat buffer
//! with an offset table ([`FlatLayout`], [`FlatBuffer`]) that holds parameters, gradients and optimizer moments,
//! every tensor starting at the device's storage-offset alignment so each can be bound as a sub-range.

use wgpu::util::DeviceExt;

use super::context::GpuContext;
use super::error::GpuError;

static ALLOCATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of GPU buffers created through [`GpuSlice`] so far (a running total; for benchmarks' memory reports).
pub fn allocated_bytes() -> u64 {
    ALLOCATED.load(std::sync::atomic::Ordering::Relaxed)
}

fn count(bytes: u64) {
    ALLOCATED.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// Usage of every storage buffer beitlab creates: bindable, and copyable both ways (readback, uploads).
pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A range of a buffer holding `len` 32-bit elements (f32 or u32) starting at byte `offset`.
#[derive(Clone, Debug)]
pub struct GpuSlice {
    pub buffer: wgpu::Buffer,
    /// Byte offset; a multiple of the device's storage-offset alignment when it is bound.
    pub offset: u64,
    /// Number of 32-bit elements.
    pub len: u64,
}

impl GpuSlice {
    /// A whole buffer of `len` elements, left uninitialised (zeroed by wgpu).
    pub fn new(ctx: &GpuContext, label: &str, len: u64) -> Self {
        count(len.max(1) * 4);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1)) * 4,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Self {
            buffer,
            offset: 0,
            len,
        }
    }

    /// A buffer for a short-lived measurement (the tuner's operands), left out of [`allocated_bytes`]: it is
    /// dropped before any training step runs.
    pub fn temporary(ctx: &GpuContext, label: &str, len: u64) -> Self {
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1)) * 4,
            usage: STORAGE_USAGE,
            mapped_at_creation: false,
        });
        Self {
            buffer,
            offset: 0,
            len,
        }
    }

    /// A buffer holding a copy of `data` (any 32-bit plain type: f32, u32, i32).
    pub fn from_slice<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> Self {
        assert_eq!(
            std::mem::size_of::<T>(),
            4,
            "GpuSlice holds 32-bit elements"
        );
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        count(contents.len() as u64);
        let buffer = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: STORAGE_USAGE,
            });
        Self {
            buffer,
            offset: 0,
            len: data.len() as u64,
        }
    }

    /// A uniform buffer holding one `#[repr(C)]` parameter struct.
    pub fn uniform<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, value: &T) -> Self {
        count(std::mem::size_of::<T>() as u64);
        let buffer = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        Self {
            buffer,
            offset: 0,
            len: (std::mem::size_of::<T>() / 4) as u64,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.len * 4
    }

    /// A sub-range of `len` elements starting `start` elements into this slice.
    pub fn sub(&self, start: u64, len: u64) -> Self {
        debug_assert!(start + len <= self.len);
        Self {
            buffer: self.buffer.clone(),
            offset: self.offset + start * 4,
            len,
        }
    }

    /// Overwrite the slice with `data` through the queue (ordered before the next submit).
    pub fn write<T: bytemuck::Pod>(&self, ctx: &GpuContext, data: &[T]) {
        ctx.queue
            .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
    }

    /// Fill every element with NaN (tests poison outputs before a dispatch).
    pub fn poison(&self, ctx: &GpuContext) {
        self.write(ctx, &vec![f32::NAN; self.len as usize]);
    }

    pub fn binding_resource(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.size_bytes()),
        })
    }
}

/// One named tensor in a flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatEntry {
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in elements from the start of the buffer.
    pub offset: u64,
    pub len: u64,
}

/// The offset table of a flat buffer: every tensor aligned to `align_elems` elements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlatLayout {
    pub entries: Vec<FlatEntry>,
    pub align_elems: u64,
    /// Total elements including alignment padding.
    pub total: u64,
}

impl FlatLayout {
    /// An empty layout whose tensors start at multiples of `align_bytes` (the device's storage-offset alignment).
    pub fn new(align_bytes: u64) -> Self {
        Self {
            entries: Vec::new(),
            align_elems: (align_bytes / 4).max(1),
            total: 0,
        }
    }

    /// Append a tensor at the next aligned offset; returns its index in the table.
    pub fn push(&mut self, name: &str, shape: &[usize]) -> usize {
        let offset = self.total.div_ceil(self.align_elems) * self.align_elems;
        self.push_at(name, shape, offset)
    }

    /// Append a tensor directly after the previous one, unaligned, so that a run of tensors can be bound as one
    /// (e.g. query, key and value weights as one fused (3C, C) matrix). Returns its index in the table.
    pub fn push_packed(&mut self, name: &str, shape: &[usize]) -> usize {
        self.push_at(name, shape, self.total)
    }

    fn push_at(&mut self, name: &str, shape: &[usize], offset: u64) -> usize {
        let len = shape.iter().product::<usize>() as u64;
        self.entries.push(FlatEntry {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset,
            len,
        });
        self.total = offset + len;
        self.entries.len() - 1
    }

    pub fn find(&self, name: &str) -> Option<&FlatEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// A buffer laid out by a [`FlatLayout`].
#[derive(Clone, Debug)]
pub struct FlatBuffer {
    pub whole: GpuSlice,
    pub layout: FlatLayout,
}

impl FlatBuffer {
    pub fn new(ctx: &GpuContext, label: &str, layout: FlatLayout) -> Self {
        Self {
            whole: GpuSlice::new(ctx, label, layout.total),
            layout,
        }
    }

    /// The bindable sub-range of one tensor.
    pub fn get(&self, name: &str) -> Result<GpuSlice, GpuError> {
        let e = self
            .layout
            .find(name)
            .ok_or_else(|| GpuError::UnknownTensor(name.to_string()))?;
        Ok(self.whole.sub(e.offset, e.len))
    }

    /// The sub-range of the tensor at index `i` of the table.
    pub fn at(&self, i: usize) -> GpuSlice {
        let e = &self.layout.entries[i];
        self.whole.sub(e.offset, e.len)
    }
}
