//! Buffers: typed storage buffers (upload, allocate, read back) and uniform parameter blocks.

use std::marker::PhantomData;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::Gpu;
use crate::error::{Error, Result};

/// A storage buffer of `len` elements of `T` on the device.
#[derive(Debug)]
pub struct Storage<T: Pod> {
    /// The wgpu buffer (storage, copy source and destination).
    pub buffer: wgpu::Buffer,
    /// Elements of `T` (the buffer may be larger: at least 4 bytes).
    pub len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> Storage<T> {
    /// The same buffer viewed as another 4-byte element type (i32/f32 results fed to a kernel
    /// that reads raw 32-bit words).
    pub fn reinterpret<U: Pod>(other: Storage<U>) -> Storage<T> {
        assert_eq!(
            size_of::<T>(),
            size_of::<U>(),
            "reinterpret needs equal element sizes"
        );
        Storage {
            buffer: other.buffer,
            len: other.len,
            _t: PhantomData,
        }
    }

    /// Another handle on the same buffer, viewed as `U` (same element size): a result that two
    /// later kernels read, one as raw 32-bit words.
    pub fn view<U: Pod>(&self) -> Storage<U> {
        Storage::reinterpret(Storage::<T> {
            buffer: self.buffer.clone(),
            len: self.len,
            _t: PhantomData,
        })
    }

    /// Size of the `len` elements in bytes.
    pub fn bytes(&self) -> u64 {
        (self.len * size_of::<T>()) as u64
    }
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    fn check_binding(&self, bytes: u64, label: &str) -> Result<()> {
        if bytes > self.max_binding() {
            return Err(Error::Limits(format!(
                "{label}: {bytes} bytes exceed the device's largest storage binding ({} bytes)",
                self.max_binding()
            )));
        }
        Ok(())
    }

    /// Copies `data` into a new storage buffer (at least 4 bytes, as wgpu requires).
    pub fn upload<T: Pod>(&self, data: &[T], label: &str) -> Result<Storage<T>> {
        let bytes = bytemuck::cast_slice::<T, u8>(data);
        self.check_binding(bytes.len() as u64, label)?;
        let buffer = if bytes.len() >= 4 {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage: STORAGE,
                })
        } else {
            self.zeroed_buffer(4, label)
        };
        Ok(Storage {
            buffer,
            len: data.len(),
            _t: PhantomData,
        })
    }

    /// A new zero-filled storage buffer of `len` elements.
    pub fn zeros<T: Pod>(&self, len: usize, label: &str) -> Result<Storage<T>> {
        let bytes = (len * size_of::<T>()) as u64;
        self.check_binding(bytes, label)?;
        Ok(Storage {
            buffer: self.zeroed_buffer(bytes.max(4).next_multiple_of(4), label),
            len,
            _t: PhantomData,
        })
    }

    fn zeroed_buffer(&self, size: u64, label: &str) -> wgpu::Buffer {
        // wgpu zero-initialises new buffers.
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding a `#[repr(C)]` parameter block.
    pub fn uniform<T: Pod>(&self, params: &T) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// A MAP_READ | COPY_DST buffer of `size` bytes to copy results into.
    pub fn readback_buffer(&self, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Copies a storage buffer back to the host (blocks until the GPU is done).
    pub fn read<T: Pod>(&self, storage: &Storage<T>) -> Result<Vec<T>> {
        pollster::block_on(self.read_async(storage))
    }

    /// Copies a storage buffer back to the host without blocking the caller's executor: the map
    /// completes through a channel. Native wgpu needs the device polled for that, which this does
    /// (waiting for the queue); on the web the browser completes it.
    pub async fn read_async<T: Pod>(&self, storage: &Storage<T>) -> Result<Vec<T>> {
        if storage.len == 0 {
            return Ok(Vec::new());
        }
        let size = storage.bytes().next_multiple_of(4);
        let readback = self.readback_buffer(size);
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read"),
            });
        encoder.copy_buffer_to_buffer(&storage.buffer, 0, &readback, 0, size);
        self.queue.submit([encoder.finish()]);
        let mut out: Vec<T> = self.map_read_async(&readback).await?;
        out.truncate(storage.len);
        Ok(out)
    }

    /// Maps a MAP_READ buffer (after its copy was submitted) and returns its contents.
    pub(crate) fn map_read<T: Pod>(&self, buffer: &wgpu::Buffer) -> Result<Vec<T>> {
        pollster::block_on(self.map_read_async(buffer))
    }

    /// Maps a MAP_READ buffer after its copy was submitted (waiting for the GPU on native; the
    /// browser completes it on the web) and returns its contents.
    pub async fn map_read_async<T: Pod>(&self, buffer: &wgpu::Buffer) -> Result<Vec<T>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.wait()?;
        rx.await
            .map_err(|e| Error::Gpu {
                context: "map".into(),
                message: e.to_string(),
            })?
            .map_err(|e| Error::Gpu {
                context: "map".into(),
                message: e.to_string(),
            })?;
        let data = {
            let view = buffer.get_mapped_range(..).map_err(|e| Error::Gpu {
                context: "map".into(),
                message: e.to_string(),
            })?;
            bytemuck::pod_collect_to_vec(&view)
        };
        buffer.unmap();
        Ok(data)
    }
}
