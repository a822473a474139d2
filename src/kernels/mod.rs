//! The WGSL kernels: one file in `shaders/` per concern, one Rust launcher per shader. The ops they
//! run (shapes, thresholds, the real epilogue's channels) and the scalar reference of each, which
//! the launchers must match, are plain Rust in [`crate::ops`]; this layer only launches them
//! (pipelines, tiling, buffers, splitting to the device's limits).
//!
//! Launchers come in two forms: `encode` builds a [`Dispatch`] over buffers already on the device,
//! so layers chain without leaving the GPU; `run_*` takes host slices, splits the work into several
//! dispatches when a tensor would exceed the device's largest storage binding, and reads the result
//! back.
//!
//! What is split, exactly: every `run_*` splits the batch (inputs and outputs); the float conv and
//! dense layer (`float_conv::run`, `float_conv::encode_split`, `float_dense::run`,
//! `float_dense::encode_split`) also split their weights along the output channels
//! ([`float_conv::FloatWeights`]), bit-identically; the f16 baseline (`float_conv_f16`) does not. What is not: one batch item's
//! input or output larger than a binding, one float weight row (the K values of one output channel)
//! larger than a binding, and the packed XNOR and first-layer weights (AlexNet's largest, fc6, is
//! 4.7 MB packed). Each of those is an [`Error::Limits`] giving the size and the limit (and, for a
//! weight tensor, its name) before anything runs. `encode` never splits: each buffer it is given
//! must fit one binding.

pub mod bitpack;
pub mod first_conv;
pub mod float_conv;
pub mod float_conv_f16;
pub mod float_dense;
pub mod pool;
pub mod real_epilogue;
pub mod threshold;
pub mod tuning;
pub mod xnor_conv;
pub mod xnor_dense;

pub use tuning::{ConvTile, Tuning};

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu};

/// Workgroup size of the one-invocation-per-output kernels (≤ 256: fits downlevel limits).
pub const WORKGROUP: u32 = 64;

/// A shader file of `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    /// `bitpack.wgsl`: f32 values → packed signs.
    Bitpack,
    /// `xnor_conv.wgsl`: the tiled XNOR/popcount conv.
    XnorConv,
    /// `xnor_conv.wgsl` + `xnor_conv_subgroup.wgsl`: the fused conv gathering its output bits
    /// with subgroup ballots (devices with wgpu's `SUBGROUP` feature; naga 30 takes the subgroup
    /// built-ins without WGSL's `enable subgroups;`, which it does not parse yet).
    XnorConvSubgroup,
    /// `first_conv.wgsl`: the first layer, direct (real image × ±1.0 or real weights).
    FirstConv,
    /// `threshold.wgsl`: per-channel thresholds → packed signs.
    Threshold,
    /// `pool.wgsl`: max-pooling of values or packed signs.
    Pool,
    /// `xnor_dense.wgsl`: the XNOR/popcount dense layer.
    XnorDense,
    /// `float_conv.wgsl`: the float conv (and large-batch dense layer) of the float twin.
    FloatConv,
    /// `float_dense.wgsl`: the float dense layer at small batches.
    FloatDense,
    /// `float_conv.wgsl` in f16: `enable f16;` and `alias Real = f16;` (adapters with
    /// shader-f16).
    FloatConvF16,
    /// `real_epilogue.wgsl`: batch norm, shortcut and RPReLU of a Bi-Real block, in f32.
    RealEpilogue,
}

impl Shader {
    /// Every shader, in declaration order.
    pub const ALL: [Shader; 11] = [
        Shader::Bitpack,
        Shader::XnorConv,
        Shader::XnorConvSubgroup,
        Shader::FirstConv,
        Shader::Threshold,
        Shader::Pool,
        Shader::XnorDense,
        Shader::FloatConv,
        Shader::FloatDense,
        Shader::FloatConvF16,
        Shader::RealEpilogue,
    ];

    /// The file's name in `shaders/` (for [`Shader::XnorConvSubgroup`], its own tail; the module
    /// is `xnor_conv.wgsl` with that file appended).
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Bitpack => "bitpack.wgsl",
            Shader::XnorConv => "xnor_conv.wgsl",
            Shader::XnorConvSubgroup => "xnor_conv_subgroup.wgsl",
            Shader::FirstConv => "first_conv.wgsl",
            Shader::Threshold => "threshold.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::XnorDense => "xnor_dense.wgsl",
            Shader::FloatConv => "float_conv.wgsl",
            Shader::FloatDense => "float_dense.wgsl",
            Shader::FloatConvF16 => "float_conv.wgsl",
            Shader::RealEpilogue => "real_epilogue.wgsl",
        }
    }

    /// Whether the module needs the `subgroups` feature.
    pub fn needs_subgroups(self) -> bool {
        self == Shader::XnorConvSubgroup
    }

    /// The WGSL text of the module, embedded at build time.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Bitpack => include_str!("../../shaders/bitpack.wgsl"),
            Shader::XnorConv => include_str!("../../shaders/xnor_conv.wgsl"),
            Shader::XnorConvSubgroup => concat!(
                include_str!("../../shaders/xnor_conv.wgsl"),
                include_str!("../../shaders/xnor_conv_subgroup.wgsl")
            ),
            Shader::FirstConv => include_str!("../../shaders/first_conv.wgsl"),
            Shader::Threshold => include_str!("../../shaders/threshold.wgsl"),
            Shader::Pool => include_str!("../../shaders/pool.wgsl"),
            Shader::XnorDense => include_str!("../../shaders/xnor_dense.wgsl"),
            Shader::FloatConv => include_str!("../../shaders/float_conv.wgsl"),
            Shader::FloatDense => include_str!("../../shaders/float_dense.wgsl"),
            Shader::FloatConvF16 => &FLOAT_CONV_F16,
            Shader::RealEpilogue => include_str!("../../shaders/real_epilogue.wgsl"),
        }
    }
}

/// `float_conv.wgsl` with f16 as its scalar type (built once, kept for the program's life).
static FLOAT_CONV_F16: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
    let f32_text = include_str!("../../shaders/float_conv.wgsl");
    assert!(
        f32_text.contains(REAL_F32),
        "float_conv.wgsl declares `{REAL_F32}`"
    );
    let text = format!(
        "enable f16;\n{}",
        f32_text.replacen(REAL_F32, "alias Real = f16;", 1)
    );
    Box::leak(text.into_boxed_str())
});

/// The scalar type declaration `float_conv.wgsl` starts from.
const REAL_F32: &str = "alias Real = f32;";

impl Shader {
    /// The module's name in the pipeline cache and in errors: the file name, with the variant
    /// when one file makes two modules.
    pub fn module_name(self) -> &'static str {
        match self {
            Shader::FloatConvF16 => "float_conv.wgsl (f16)",
            _ => self.file_name(),
        }
    }
}

impl From<Shader> for crate::gpu::ShaderSource {
    fn from(shader: Shader) -> Self {
        crate::gpu::ShaderSource {
            name: shader.module_name(),
            text: shader.source(),
        }
    }
}

/// Dispatch for `items` invocations of a `WORKGROUP`-wide kernel.
pub(crate) fn dispatch(
    gpu: &Gpu,
    pipeline: std::sync::Arc<wgpu::ComputePipeline>,
    buffers: &[&wgpu::Buffer],
    items: usize,
    label: &'static str,
) -> Dispatch {
    let bind_group = gpu.bind(&pipeline, buffers);
    let groups = items.div_ceil(WORKGROUP as usize).max(1) as u32;
    Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(groups),
        label,
    }
}

/// How many batch items fit in one dispatch, given the bytes one batch item takes in each buffer
/// that scales with the batch (`(tensor name, bytes)`), for `kernel`.
pub(crate) fn batch_chunk(
    gpu: &Gpu,
    kernel: &str,
    batch: usize,
    per_item: &[(&str, usize)],
) -> Result<usize> {
    let max = gpu.max_binding() as usize;
    if let Some(&(tensor, bytes)) = per_item.iter().find(|&&(_, b)| b > max) {
        return Err(Error::Limits(format!(
            "{kernel}: one batch item's {tensor} is {bytes} bytes, more than the device's largest \
             storage binding ({max} bytes); a single item cannot be split"
        )));
    }
    let fit = per_item
        .iter()
        .filter(|&&(_, b)| b > 0)
        .map(|&(_, b)| max / b)
        .min()
        .unwrap_or(batch);
    Ok(fit.min(batch).max(1))
}

/// Refuses a launch whose invocations may each run more than the driver's loop budget (Mesa
/// llvmpipe ends every loop after it, silently: see [`crate::gpu::AdapterLimits::loop_budget`]).
/// `iterations` is an upper bound counting each loop's exiting pass.
pub(crate) fn check_loop_budget(
    limits: &crate::gpu::AdapterLimits,
    what: impl std::fmt::Display,
    iterations: u64,
) -> Result<()> {
    match limits.loop_budget {
        Some(budget) if iterations > budget => Err(Error::Limits(format!(
            "{what} may run {iterations} loop iterations per invocation; this driver (Mesa \
             llvmpipe) silently ends every loop after {budget} in all, so the result would be \
             wrong. Use a real GPU, or the CPU path"
        ))),
        _ => Ok(()),
    }
}

/// Runs `f` over consecutive batch ranges of at most `chunk` items and concatenates the results.
pub(crate) fn over_chunks<T>(
    batch: usize,
    chunk: usize,
    mut f: impl FnMut(std::ops::Range<usize>) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < batch {
        let end = (start + chunk).min(batch);
        out.extend(f(start..end)?);
        start = end;
    }
    Ok(out)
}
