//! `Gpu`: one adapter, device and queue, with the pipeline cache, and the way every kernel is run:
//! a list of `Dispatch`es encoded into one compute pass, submitted, and optionally timed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use super::adapter;
use super::buffers::Storage;
use super::limits::AdapterLimits;
use super::pipelines::PipelineKey;
use crate::error::{Error, Result};

/// Which limits the device is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsProfile {
    /// Everything the adapter offers (the normal case).
    Adapter,
    /// wgpu's downlevel defaults: what a phone-class GPU guarantees (256 invocations per workgroup,
    /// 16 KiB workgroup memory, 128 MiB per storage binding, 4 storage buffers per stage).
    Downlevel,
    /// Downlevel, with the storage binding size cut to this many bytes: lets tests reach the
    /// split-into-several-dispatches paths with small tensors.
    DownlevelWithBinding(u64),
}

/// One kernel launch: a cached pipeline, its bindings in binding order, and the workgroup grid.
#[derive(Debug)]
pub struct Dispatch {
    /// The compute pipeline (shared with the cache).
    pub pipeline: Arc<wgpu::ComputePipeline>,
    /// The buffers, bound in binding order.
    pub bind_group: wgpu::BindGroup,
    /// Workgroup counts in x, y, z.
    pub workgroups: [u32; 3],
    /// Names the dispatch in GPU errors.
    pub label: &'static str,
}

/// GPU time of a batch of dispatches: from timestamp queries where the adapter has them,
/// otherwise synchronized wall time (submit → completion).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The compute pass's duration (timestamps at its start and end), or submit → completion.
    pub elapsed: Duration,
    /// Whether `elapsed` comes from timestamp queries (else synchronized wall time).
    pub timestamps: bool,
}

/// One adapter, device and queue. Cloning is cheap and shares everything (wgpu's handles are
/// reference-counted, and so is the pipeline cache), so extractors and servers can own a `Gpu`
/// and move it across threads.
#[derive(Debug, Clone)]
pub struct Gpu {
    /// The wgpu adapter.
    pub adapter: wgpu::Adapter,
    /// The device, created with `limits`.
    pub device: wgpu::Device,
    /// The device's queue.
    pub queue: wgpu::Queue,
    /// The adapter's name, backend, type and driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with (per [`LimitsProfile`]).
    pub limits: wgpu::Limits,
    /// Whether the device has timestamp queries enabled.
    pub timestamps: bool,
    /// Whether the device has subgroup operations enabled (where the adapter has them, unless
    /// `BNN_SUBGROUPS=0`).
    pub subgroups: bool,
    /// Whether the device has shader-f16 enabled (see [`Gpu::has_f16`]).
    f16: bool,
    /// What tile choice needs of the device, worked out once (it reads the environment and the
    /// CPU count): see [`Gpu::adapter_limits`].
    adapter_limits: AdapterLimits,
    pipelines: Arc<Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>>,
}

impl Gpu {
    /// The adapter chosen from the environment, with all of its limits.
    pub fn new() -> Result<Gpu> {
        Gpu::with_limits(LimitsProfile::Adapter)
    }

    /// [`Gpu::new`] without blocking: the adapter and device are requested asynchronously.
    pub async fn new_async() -> Result<Gpu> {
        let adapter = adapter::select_adapter_async().await?;
        Gpu::from_adapter_async(adapter, LimitsProfile::Adapter).await
    }

    /// The adapter chosen from the environment, with the limits of `profile`.
    pub fn with_limits(profile: LimitsProfile) -> Result<Gpu> {
        let adapter = adapter::select_adapter()?;
        Gpu::from_adapter(adapter, profile)
    }

    /// Opens a device on `adapter` with the limits of `profile` (and timestamp queries and
    /// shader-f16 where the adapter has them); blocks until it is created.
    pub fn from_adapter(adapter: wgpu::Adapter, profile: LimitsProfile) -> Result<Gpu> {
        pollster::block_on(Gpu::from_adapter_async(adapter, profile))
    }

    /// [`Gpu::from_adapter`] without blocking.
    pub async fn from_adapter_async(adapter: wgpu::Adapter, profile: LimitsProfile) -> Result<Gpu> {
        let info = adapter.get_info();
        let supported = adapter.limits();
        let limits = match profile {
            LimitsProfile::Adapter => supported.clone(),
            LimitsProfile::Downlevel => wgpu::Limits::downlevel_defaults(),
            LimitsProfile::DownlevelWithBinding(bytes) => wgpu::Limits {
                max_storage_buffer_binding_size: bytes,
                ..wgpu::Limits::downlevel_defaults()
            },
        };
        // Optional features, requested where the adapter offers them: timestamp queries (the
        // benchmark's GPU timer), shader-f16 (the f16 float baseline, `float_conv.wgsl` in f16) and
        // subgroups (the fused XNOR conv's ballot path; `BNN_SUBGROUPS=0` leaves them off).
        let offered = adapter.features();
        let timestamps = offered.contains(wgpu::Features::TIMESTAMP_QUERY);
        let f16 = offered.contains(wgpu::Features::SHADER_F16);
        let subgroups = offered.contains(wgpu::Features::SUBGROUP)
            && std::env::var("BNN_SUBGROUPS").map_or(true, |v| v.trim() != "0");
        let mut required_features =
            offered & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
        if subgroups {
            required_features |= wgpu::Features::SUBGROUP;
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("bnn-transfer"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            adapter
                .request_device(&desc)
                .await
                .map_err(|e| Error::RequestDevice {
                    adapter: info.name.clone(),
                    message: e.to_string(),
                })?;
        let fixed_subgroup = info.subgroup_min_size == info.subgroup_max_size;
        let adapter_limits = AdapterLimits {
            subgroup_size: (subgroups && fixed_subgroup).then_some(info.subgroup_min_size),
            ..AdapterLimits::from_adapter(&info, &limits)
        };
        Ok(Gpu {
            adapter,
            device,
            queue,
            info,
            limits,
            timestamps,
            subgroups,
            f16,
            adapter_limits,
            pipelines: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// One line naming the adapter, for reports and skipped-test messages.
    pub fn describe(&self) -> String {
        // Browsers do not name their WebGPU adapter.
        let name = if self.info.name.is_empty() {
            "unnamed adapter"
        } else {
            &self.info.name
        };
        format!(
            "{name} ({:?}, {:?}, {})",
            self.info.backend, self.info.device_type, self.info.driver
        )
    }

    /// The limits tile choice and tensor splitting are computed from.
    pub fn adapter_limits(&self) -> AdapterLimits {
        self.adapter_limits
    }

    /// Whether shaders may use `f16` (the adapter offers `wgpu::Features::SHADER_F16` and the
    /// device was opened with it): the f16 float baseline runs only then.
    pub fn has_f16(&self) -> bool {
        self.f16
    }

    /// Largest storage binding, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.adapter_limits().max_storage_binding
    }

    /// The subgroup size when the device has subgroups and every subgroup has the same size
    /// (lavapipe: 8, NVIDIA: 32); `None` otherwise.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.adapter_limits.subgroup_size
    }

    /// The compiled pipeline for `key`, compiled on first use inside a validation error scope so a
    /// bad shader is an `Err`, not a panic.
    pub fn pipeline(&self, key: PipelineKey) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.lock().expect("pipeline cache").get(&key) {
            return Ok(p.clone());
        }
        let pipeline = Arc::new(key.compile(&self.device)?);
        self.pipelines
            .lock()
            .expect("pipeline cache")
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A bind group for `pipeline` with `buffers` at bindings 0, 1, 2, … in order.
    pub fn bind(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        })
    }

    /// A 2-D grid covering `groups` workgroups within the per-dimension limit. Kernels flatten it
    /// back with `wid.x + wid.y * num_workgroups.x` and ignore ids past the end.
    pub fn grid(&self, groups: u32) -> [u32; 3] {
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if groups <= max {
            [groups.max(1), 1, 1]
        } else {
            let y = groups.div_ceil(max);
            [groups.div_ceil(y), y, 1]
        }
    }

    fn encode(
        &self,
        dispatches: &[Dispatch],
        timer: Option<&wgpu::QuerySet>,
    ) -> wgpu::CommandEncoder {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let timestamp_writes = timer.map(|query_set| wgpu::ComputePassTimestampWrites {
                query_set,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes,
            });
            for d in dispatches {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        encoder
    }

    /// Runs the dispatches in order (one compute pass: each sees the previous one's writes) and waits.
    pub fn run(&self, dispatches: &[Dispatch]) -> Result<()> {
        pollster::block_on(self.submit_async(dispatches))?;
        self.wait()
    }

    /// Submits the dispatches (one compute pass) and resolves once validation has accepted them;
    /// it does not wait for the GPU: a later [`read_async`](Gpu::read_async) does.
    pub async fn submit_async(&self, dispatches: &[Dispatch]) -> Result<()> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let encoder = self.encode(dispatches, None);
        self.queue.submit([encoder.finish()]);
        Gpu::checked(scope.pop().await, dispatches)
    }

    /// Submits the dispatches (one compute pass) and a copy of each of `reads` into its
    /// read-back buffer (`MAP_READ | COPY_DST`, at least as large) in one command buffer, then maps
    /// the read-back buffers: a recorded chain's whole run is one submission and reads only these
    /// results.
    pub async fn run_and_read_async<T: Pod>(
        &self,
        dispatches: &[Dispatch],
        reads: &[(&Storage<T>, &wgpu::Buffer)],
    ) -> Result<Vec<Vec<T>>> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = self.encode(dispatches, None);
        for (storage, readback) in reads {
            let bytes = storage.bytes().next_multiple_of(4);
            encoder.copy_buffer_to_buffer(&storage.buffer, 0, readback, 0, bytes);
        }
        self.queue.submit([encoder.finish()]);
        Gpu::checked(scope.pop().await, dispatches)?;
        let mut outs = Vec::with_capacity(reads.len());
        for (storage, readback) in reads {
            let mut values: Vec<T> = self.map_read_async(readback).await?;
            values.truncate(storage.len);
            outs.push(values);
        }
        Ok(outs)
    }

    /// Runs the dispatches and returns their GPU time.
    pub fn time(&self, dispatches: &[Dispatch]) -> Result<Timing> {
        if !self.timestamps {
            let start = Instant::now();
            self.run(dispatches)?;
            return Ok(Timing {
                elapsed: start.elapsed(),
                timestamps: false,
            });
        }
        let query_set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timer"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timer resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = self.encode(dispatches, Some(&query_set));
        encoder.resolve_query_set(&query_set, 0..2, &resolve, 0);
        let readback = self.readback_buffer(16);
        encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, 16);
        self.queue.submit([encoder.finish()]);
        self.check(scope, dispatches)?;
        let ticks: Vec<u64> = self.map_read(&readback)?;
        let ns =
            ticks[1].saturating_sub(ticks[0]) as f64 * self.queue.get_timestamp_period() as f64;
        Ok(Timing {
            elapsed: Duration::from_nanos(ns as u64),
            timestamps: true,
        })
    }

    fn check(&self, scope: wgpu::ErrorScopeGuard, dispatches: &[Dispatch]) -> Result<()> {
        Gpu::checked(pollster::block_on(scope.pop()), dispatches)
    }

    fn checked(error: Option<wgpu::Error>, dispatches: &[Dispatch]) -> Result<()> {
        match error {
            None => Ok(()),
            Some(e) => Err(Error::Gpu {
                context: dispatches
                    .iter()
                    .map(|d| d.label)
                    .collect::<Vec<_>>()
                    .join(", "),
                message: e.to_string(),
            }),
        }
    }

    pub(crate) fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu {
                context: "poll".into(),
                message: e.to_string(),
            })
    }
}
