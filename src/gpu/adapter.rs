//! Choosing an adapter: `WGPU_BACKEND` (vulkan, metal, dx12, gl, comma separated),
//! `WGPU_ADAPTER_NAME` (case-insensitive substring of the adapter name) and `WGPU_POWER_PREF`
//! (low, high, none). Also the report behind `bnn devices`.

use crate::error::{Error, Result};
use serde::Serialize;

pub(crate) fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    wgpu::Instance::new(desc)
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// The adapter every command uses: the one named by `WGPU_ADAPTER_NAME` if set, otherwise wgpu's
/// choice for `WGPU_POWER_PREF` (default: no preference), restricted to `WGPU_BACKEND`.
pub fn select_adapter() -> Result<wgpu::Adapter> {
    select_from(&instance())
}

pub(crate) fn select_from(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    pollster::block_on(select_from_async(instance))
}

/// [`select_adapter`] without blocking (what the web needs).
pub async fn select_adapter_async() -> Result<wgpu::Adapter> {
    select_from_async(&instance()).await
}

async fn select_from_async(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted_lc = wanted.to_lowercase();
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        let all = instance.enumerate_adapters(backends).await;
        let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
        return all
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&wanted_lc))
            .ok_or_else(|| Error::NoAdapter {
                detail: format!(
                    " matching WGPU_ADAPTER_NAME={wanted:?} (adapters present: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
    }
    let options = wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
        ..Default::default()
    };
    instance
        .request_adapter(&options)
        .await
        .map_err(|e| Error::NoAdapter {
            detail: format!(" ({e})"),
        })
}

/// What `bnn devices` prints for one adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    /// Adapter name.
    pub name: String,
    /// wgpu backend (`Vulkan`, `Metal`, `Dx12`, `Gl`).
    pub backend: String,
    /// wgpu device type (`DiscreteGpu`, `IntegratedGpu`, `Cpu`, …).
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version and details.
    pub driver_info: String,
    /// Whether this is the adapter the library selects by default.
    pub is_default: bool,
    /// Supports timestamp queries (GPU kernel times in `bnn bench`).
    pub timestamp_query: bool,
    /// Supports shader-f16 (the f16 float baseline: `float_conv.wgsl` in f16).
    pub shader_f16: bool,
    /// Supports subgroup operations.
    pub subgroups: bool,
    /// Smallest and largest subgroup size.
    pub subgroup_size: (u32, u32),
    /// Largest storage binding, bytes (the split size of the `run_*` launchers).
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, bytes.
    pub max_buffer_size: u64,
    /// Most invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Largest workgroup size in x, y, z.
    pub max_compute_workgroup_size: [u32; 3],
    /// Workgroup memory, bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Most workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Most storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
}

/// Every adapter wgpu sees (under `WGPU_BACKEND`), with the default one marked.
pub fn describe_adapters() -> Vec<AdapterReport> {
    let instance = instance();
    let default = select_from(&instance).ok().map(|a| a.get_info());
    adapters(&instance)
        .iter()
        .map(|a| {
            let info = a.get_info();
            let limits = a.limits();
            let features = a.features();
            let is_default = default.as_ref().is_some_and(|d| {
                d.name == info.name && d.backend == info.backend && d.device == info.device
            });
            AdapterReport {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: info.driver.clone(),
                driver_info: info.driver_info.clone(),
                is_default,
                timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
                shader_f16: features.contains(wgpu::Features::SHADER_F16),
                subgroups: features.contains(wgpu::Features::SUBGROUP),
                subgroup_size: (info.subgroup_min_size, info.subgroup_max_size),
                max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
                max_buffer_size: limits.max_buffer_size,
                max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
                max_compute_workgroup_size: [
                    limits.max_compute_workgroup_size_x,
                    limits.max_compute_workgroup_size_y,
                    limits.max_compute_workgroup_size_z,
                ],
                max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
                max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
                max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            }
        })
        .collect()
}
