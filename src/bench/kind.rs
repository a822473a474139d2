//! What `bnn bench` times, as enums: the per-shape implementations ([`Kernel`]) and the
//! end-to-end runs ([`Run`]). Their snake-case names are the ids in the JSON report, the table
//! and criterion.

use std::fmt;

use serde::Serialize;

/// One implementation timed on every shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// `xnor_conv.wgsl` / `xnor_dense.wgsl`, integer dots out.
    XnorDot,
    /// The same with the threshold and packing fused: packed signs out.
    XnorBits,
    /// The float baseline on the same adapter: `float_conv.wgsl` for convs and large-batch dense
    /// layers, `float_dense.wgsl` for dense layers up to batch 8.
    FloatWgsl,
    /// `float_conv.wgsl` in f16, the f16 baseline (convs, and dense layers as its 1×1 case), where the
    /// adapter has shader-f16.
    FloatF16,
    /// burn's float conv2d / matmul on its wgpu backend (same adapter).
    BurnWgpu,
    /// The library's CPU binary path (`cpu::CpuConv` / `cpu::CpuDense`), integer dots out.
    CpuXnor,
    /// burn's float conv2d / matmul on its flex CPU backend.
    BurnFlex,
}

impl Kernel {
    /// The id used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::XnorDot => "xnor_dot",
            Kernel::XnorBits => "xnor_bits",
            Kernel::FloatWgsl => "float_wgsl",
            Kernel::FloatF16 => "float_f16",
            Kernel::BurnWgpu => "burn_wgpu",
            Kernel::CpuXnor => "cpu_xnor",
            Kernel::BurnFlex => "burn_flex",
        }
    }

    /// Whether it runs our WGSL on the adapter (timed with the adapter's timer).
    pub fn is_wgsl(self) -> bool {
        matches!(
            self,
            Kernel::XnorDot | Kernel::XnorBits | Kernel::FloatWgsl | Kernel::FloatF16
        )
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One whole-network run of the end-to-end rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// The frozen binary extractor on the WGSL kernels.
    BinaryExtractor,
    /// Its float twin on the float WGSL kernels.
    FloatTwinWgsl,
    /// The frozen binary extractor on the library's CPU binary path.
    CpuBinaryExtractor,
    /// burn's float model of the same arch on its wgpu backend.
    BurnFloatModelWgpu,
    /// burn's float model of the same arch on its flex CPU backend.
    BurnFloatModelFlex,
    /// EfficientNet-Lite0 (ImageNet weights, the float network a user would pick instead) on
    /// flex: the same 64-px images upscaled to 160 px, to its 1280-d features.
    EfficientnetLite0Flex,
}

impl Run {
    /// The id used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Run::BinaryExtractor => "binary_extractor",
            Run::FloatTwinWgsl => "float_twin_wgsl",
            Run::CpuBinaryExtractor => "cpu_binary_extractor",
            Run::BurnFloatModelWgpu => "burn_float_model_wgpu",
            Run::BurnFloatModelFlex => "burn_float_model_flex",
            Run::EfficientnetLite0Flex => "efficientnet_lite0_flex",
        }
    }

    /// The binary run a float run is compared with on the same device (`None` for binary runs).
    pub fn versus(self) -> Option<Run> {
        match self {
            Run::BinaryExtractor | Run::CpuBinaryExtractor => None,
            Run::BurnFloatModelFlex | Run::EfficientnetLite0Flex => Some(Run::CpuBinaryExtractor),
            Run::FloatTwinWgsl | Run::BurnFloatModelWgpu => Some(Run::BinaryExtractor),
        }
    }

    /// Whether burn runs it (its own, slower timing plan).
    pub fn is_burn(self) -> bool {
        matches!(
            self,
            Run::BurnFloatModelWgpu | Run::BurnFloatModelFlex | Run::EfficientnetLite0Flex
        )
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}
