//! `AdapterLimits`: the few facts about an adapter that tile choice and tensor splitting depend on,
//! read from wgpu's limits and adapter info in one place ([`AdapterLimits::new`]). Everything that
//! decides a kernel's launch shape takes this plain value, so it can be computed and tested for any
//! adapter (a phone GPU, an H100, lavapipe) without a device.
//!
//! One limit is not in `wgpu::Limits`: Mesa's llvmpipe (lavapipe, the Vulkan-on-CPU driver) lets a
//! shader invocation run at most 65,535 loop iterations in all, counted over every loop of the
//! shader together (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`, a hang guard); past that every loop
//! exits early and the kernel silently returns wrong values. [`AdapterLimits::loop_budget`] carries
//! it, and the tiled kernels check their worst-case count against it.
//!
//! Nor is the number of compute units (SMs, CUs, CPU threads): wgpu does not report it, and tile
//! choice needs it for occupancy. [`AdapterLimits::compute_units`] comes from `BNN_COMPUTE_UNITS`,
//! a table of known boards ([`NVIDIA_BOARDS`]), the CPU's threads for a CPU adapter, or a default
//! per device class; it only ever changes speed, never results.

/// The compute limits of one device, as the kernels see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AdapterLimits {
    /// A CPU adapter (lavapipe, WARP, SwiftShader): one thread runs a whole workgroup.
    pub is_cpu: bool,
    /// Workgroup memory per workgroup, bytes.
    pub max_workgroup_storage: u32,
    /// Invocations per workgroup.
    pub max_invocations: u32,
    /// Workgroup size along x (the kernels' channel axis).
    pub max_workgroup_size_x: u32,
    /// Workgroup size along y (the kernels' pixel axis).
    pub max_workgroup_size_y: u32,
    /// Workgroups per grid dimension.
    pub max_workgroups_per_dimension: u32,
    /// Largest storage binding, bytes: the smaller of the binding and buffer size limits.
    pub max_storage_binding: u64,
    /// Loop iterations one invocation may run over all its loops before the driver cuts every loop
    /// short (Some only for llvmpipe: [`LLVMPIPE_LOOP_BUDGET`]).
    pub loop_budget: Option<u64>,
    /// Workgroups the device runs at once, roughly: SMs / CUs on a GPU, threads on a CPU adapter.
    /// Tiles shrink until a layer gives at least this many workgroups (see module docs).
    pub compute_units: u32,
    /// The subgroup size where the device has subgroup operations enabled and all subgroups have
    /// one size (lavapipe 8, NVIDIA 32): the fused XNOR conv then prefers workgroup rows of that
    /// width, so its output bits can be gathered by subgroup ballots.
    pub subgroup_size: Option<u32>,
}

/// Known NVIDIA boards: (name substring, SMs, boost clock MHz), checked in order.
pub const NVIDIA_BOARDS: [(&str, u32, f64); 8] = [
    ("H100 PCIe", 114, 1755.0),
    ("H100", 132, 1980.0),
    ("H200", 132, 1980.0),
    ("A100", 108, 1410.0),
    ("L40S", 142, 2520.0),
    ("L4", 58, 2040.0),
    ("4090", 128, 2520.0),
    ("T4", 40, 1590.0),
];

/// The board of `info` in [`NVIDIA_BOARDS`], if it is one.
pub fn known_board(info: &wgpu::AdapterInfo) -> Option<&'static (&'static str, u32, f64)> {
    (info.vendor == 0x10de)
        .then(|| NVIDIA_BOARDS.iter().find(|(n, _, _)| info.name.contains(n)))
        .flatten()
}

/// Compute units by device class when nothing better is known: a CPU adapter's default is 4
/// threads, an integrated GPU 8 CUs, a discrete GPU 64 SMs, anything else 16.
fn class_units(device_type: wgpu::DeviceType) -> u32 {
    match device_type {
        wgpu::DeviceType::Cpu => 4,
        wgpu::DeviceType::IntegratedGpu => 8,
        wgpu::DeviceType::DiscreteGpu => 64,
        _ => 16,
    }
}

/// The CPU threads a CPU adapter runs workgroups on: llvmpipe's `LP_NUM_THREADS`, else the
/// machine's.
fn cpu_threads() -> Option<u32> {
    std::env::var("LP_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u32)
        })
}

/// gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`: each loop iteration's end (the last, exiting one
/// included) takes one from this per-invocation count, and when it reaches 0 every loop exits.
pub const LLVMPIPE_LOOP_BUDGET: u64 = 65_535;

impl AdapterLimits {
    /// The limits of the device opened on the adapter `info` with `limits`.
    pub fn from_adapter(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> AdapterLimits {
        let llvmpipe = [&info.name, &info.driver]
            .iter()
            .any(|s| s.to_lowercase().contains("llvmpipe"));
        let detected = match info.device_type {
            wgpu::DeviceType::Cpu => cpu_threads(),
            _ => known_board(info).map(|b| b.1),
        };
        let units = std::env::var("BNN_COMPUTE_UNITS")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&n| n > 0)
            .or(detected);
        let base = AdapterLimits::new(info.device_type, limits);
        AdapterLimits {
            loop_budget: llvmpipe.then_some(LLVMPIPE_LOOP_BUDGET),
            compute_units: units.unwrap_or(base.compute_units),
            ..base
        }
    }

    /// The limits of a device of `device_type` created with `limits`, with no loop budget and the
    /// device class's default compute units.
    pub fn new(device_type: wgpu::DeviceType, limits: &wgpu::Limits) -> AdapterLimits {
        AdapterLimits {
            is_cpu: device_type == wgpu::DeviceType::Cpu,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations: limits.max_compute_invocations_per_workgroup,
            max_workgroup_size_x: limits.max_compute_workgroup_size_x,
            max_workgroup_size_y: limits.max_compute_workgroup_size_y,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            loop_budget: None,
            compute_units: class_units(device_type),
            subgroup_size: None,
        }
    }
}
