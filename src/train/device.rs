//! Which burn backend trains: wgpu on a real GPU, flex (pure-Rust CPU) where the only adapter is
//! a CPU. Measured on a 2-core machine: flex trains a small binary net ~75× faster than burn-wgpu
//! on lavapipe, so `auto` never picks a CPU adapter.

use burn::tensor::{Device, DeviceKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `--device`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// burn-wgpu on the selected adapter if it is a real GPU, else flex.
    #[default]
    Auto,
    /// burn-wgpu on the adapter `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` / `WGPU_POWER_PREF` select,
    /// even a CPU one.
    Wgpu,
    /// burn's flex CPU backend.
    Cpu,
}

/// The chosen backend device (without autodiff) and why it was chosen.
#[derive(Clone, Debug)]
pub struct TrainDevice {
    /// The burn device.
    pub device: Device,
    /// `"wgpu"` or `"flex"`.
    pub backend: &'static str,
    /// Adapter name (wgpu) or "cpu" (flex).
    pub name: String,
    /// One line: what was chosen and why.
    pub reason: String,
}

impl TrainDevice {
    /// burn's flex CPU backend.
    pub fn flex(reason: impl Into<String>) -> Self {
        TrainDevice {
            device: Device::flex(),
            backend: "flex",
            name: "cpu".into(),
            reason: reason.into(),
        }
    }
}

/// Resolves `--device`.
pub fn resolve(choice: DeviceChoice) -> Result<TrainDevice> {
    match choice {
        DeviceChoice::Cpu => Ok(TrainDevice::flex("flex (CPU): `device` cpu")),
        DeviceChoice::Wgpu => {
            let adapter = crate::gpu::select_adapter()?;
            let cpu = adapter.get_info().device_type == wgpu::DeviceType::Cpu;
            let why = if cpu {
                "`device` wgpu (a CPU adapter: expect this to be far slower than `device` cpu)"
            } else {
                "`device` wgpu"
            };
            wgpu_device(&adapter, why)
        }
        DeviceChoice::Auto => match crate::gpu::select_adapter() {
            Ok(adapter) if adapter.get_info().device_type != wgpu::DeviceType::Cpu => {
                wgpu_device(&adapter, "`device` auto: a GPU adapter is present")
            }
            Ok(adapter) => {
                let info = adapter.get_info();
                Ok(TrainDevice::flex(format!(
                    "flex (CPU): `device` auto and the selected adapter, {} ({:?}), is a CPU; \
                     burn's flex backend trains much faster there than burn-wgpu on it",
                    info.name, info.backend
                )))
            }
            Err(e) => Ok(TrainDevice::flex(format!(
                "flex (CPU): `device` auto and {e}"
            ))),
        },
    }
}

/// burn's wgpu device on the same adapter as `adapter` (same graphics API, same device type and
/// index among adapters of that type, the order burn's runtime enumerates them in).
fn wgpu_device(adapter: &wgpu::Adapter, why: &str) -> Result<TrainDevice> {
    use burn::tensor::wgpu::WgpuBackend;
    let info = adapter.get_info();
    let api = match info.backend {
        wgpu::Backend::Vulkan => WgpuBackend::Vulkan,
        wgpu::Backend::Metal => WgpuBackend::Metal,
        wgpu::Backend::Dx12 => WgpuBackend::Dx12,
        wgpu::Backend::Gl => WgpuBackend::Gl,
        wgpu::Backend::BrowserWebGpu => WgpuBackend::WebGpu,
        other => {
            return Err(Error::Gpu {
                context: "burn-wgpu device".into(),
                message: format!(
                    "adapter {} is on the {other:?} backend, which burn cannot use",
                    info.name
                ),
            });
        }
    };
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = info.backend.into();
    let instance = wgpu::Instance::new(desc);
    let same_type: Vec<wgpu::AdapterInfo> =
        pollster::block_on(instance.enumerate_adapters(info.backend.into()))
            .iter()
            .map(|a| a.get_info())
            .filter(|a| a.device_type == info.device_type)
            .collect();
    let index = same_type
        .iter()
        .position(|a| a.name == info.name && a.device == info.device && a.vendor == info.vendor)
        .unwrap_or(0);
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(index),
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(index),
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(index),
        wgpu::DeviceType::Cpu => DeviceKind::Cpu,
        wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
    };
    let device = Device::wgpu_options()
        .device_kind(kind)
        .graphics_api(api)
        .init()
        .map_err(|e| Error::RequestDevice {
            adapter: info.name.clone(),
            message: format!("burn-wgpu: {e}"),
        })?;
    Ok(TrainDevice {
        device,
        backend: "wgpu",
        name: info.name.clone(),
        reason: format!(
            "wgpu on {} ({:?}, {:?}): {why}",
            info.name, info.backend, info.device_type
        ),
    })
}
