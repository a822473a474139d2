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
        AdapterLimits {
            loop_budget: llvmpipe.then_some(LLVMPIPE_LOOP_BUDGET),
            ..AdapterLimits::new(info.device_type, limits)
        }
    }

    /// The limits of a device of `device_type` created with `limits`, with no loop budget.
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
        }
    }
}
