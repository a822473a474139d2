//! The wgpu device layer: adapter selection from the environment, the device with the limits the
//! kernels need, a pipeline cache keyed by (shader, entry point, override constants), buffer helpers,
//! read-back, and GPU timing through timestamp queries.

mod adapter;
mod buffers;
mod context;
mod limits;
mod pipelines;

pub use adapter::{AdapterReport, describe_adapters, select_adapter};
pub use buffers::Storage;
pub use context::{Dispatch, Gpu, LimitsProfile, Timing};
pub use limits::{AdapterLimits, LLVMPIPE_LOOP_BUDGET, NVIDIA_BOARDS, known_board};
pub use pipelines::{PipelineKey, ShaderSource};
