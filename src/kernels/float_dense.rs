//! The float baseline's dense layer `y[b][o] = Σ_k x[b][k]·W[o][k]`: batches up to [`MAX_BATCH`]
//! (below [`TILED_BATCH`]) run the dedicated small-batch kernel `shaders/float_dense.wgsl` (one
//! workgroup per 4 output rows, vec4 loads along the weight rows, a fixed-order tree reduction),
//! larger ones the tiled conv kernel's 1×1 case (`float_conv`), which reuses each staged weight
//! over the batch rows it holds in registers. `xnor_dense` makes the same split for the binary
//! layer (at batch 8; the float kernel holds up to 8 rows).
//!
//! The small-batch kernel reads rows as `vec4<f32>`, so it needs `in_features % 4 == 0`; other
//! widths run on the conv kernel at every batch. Weights over the storage-binding limit are split
//! along the output channels ([`FloatWeights`]) on both paths. The scalar reference, in the
//! small-batch kernel's summation order: [`crate::ops::float_dense`].
//!
//! Crossover, measured on lavapipe (Mesa 22.3, 2 shared cores, `cargo run --release --example
//! rough_timing crossover`, GPU timestamps, medians of 7): the small-batch kernel is faster than
//! the tile at every batch it takes, for 4096 → 4096 17–49 ms against 62–189 ms (batch 1–8) and
//! for 1152 → 512 0.39–1.1 ms against 2.2–6.5 ms. It holds at most 8 rows, so the tile takes over
//! at batch 9 (there: 135–287 ms and 9.6 ms); splitting larger batches into 8-row dispatches of
//! this kernel would likely still be faster on lavapipe, and is not done. On GPUs the tile reuses
//! each staged weight over its rows, and the crossover is unmeasured.

use bytemuck::{Pod, Zeroable};

use super::float_conv::{self, FloatWeights};
use super::{Shader, Tuning};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::ConvShape;

/// From this batch on the dense layer runs on the tiled conv kernel (`float_conv`'s 1×1 case); see
/// the module docs for the measurement.
pub const TILED_BATCH: usize = 9;

/// The most batch rows the small-batch kernel takes (its named registers `acc0` … `acc7`).
pub const MAX_BATCH: usize = 8;

/// Output rows per workgroup of the small-batch kernel (the shader's `ROWS`).
const ROWS: usize = 4;

/// Which kernel a dense layer runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseKernel {
    /// `float_dense.wgsl`, batches of 1 ..= [`MAX_BATCH`] rows, `in_features % 4 == 0`.
    SmallBatch,
    /// `float_conv.wgsl`'s 1×1 case.
    Tiled,
}

impl DenseKernel {
    /// The kernel [`encode`] uses for a batch of `batch` rows of `in_features`.
    pub fn for_shape(batch: usize, in_features: usize) -> DenseKernel {
        if batch < TILED_BATCH.min(MAX_BATCH + 1) && in_features.is_multiple_of(4) {
            DenseKernel::SmallBatch
        } else {
            DenseKernel::Tiled
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    out_c: u32,
    out_stride: u32,
    out_base: u32,
}

/// Encodes the layer over device buffers (`input` `[batch][in]`, `weights` `[out][in]` in one
/// binding) on the kernel of [`DenseKernel::for_shape`].
pub fn encode(
    gpu: &Gpu,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &Storage<f32>,
    weights: &Storage<f32>,
) -> Result<(Dispatch, Storage<f32>)> {
    let kernel = DenseKernel::for_shape(batch, in_features);
    encode_on(
        gpu,
        kernel,
        batch,
        in_features,
        out_features,
        input,
        weights,
    )
}

/// [`encode`] on an explicit kernel (benchmarks, and tests of both paths).
pub fn encode_on(
    gpu: &Gpu,
    kernel: DenseKernel,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &Storage<f32>,
    weights: &Storage<f32>,
) -> Result<(Dispatch, Storage<f32>)> {
    let shape = ConvShape::dense(batch, in_features, out_features);
    match kernel {
        DenseKernel::Tiled => float_conv::encode(gpu, &shape, input, weights),
        DenseKernel::SmallBatch => {
            let wg = Tuning::for_gpu(gpu).float_dense_workgroup();
            encode_small_batch_with(gpu, wg, batch, in_features, out_features, input, weights)
        }
    }
}

/// The small-batch kernel with workgroups of `wg` invocations (a power of two within the device's
/// limits) instead of [`Tuning::float_dense_workgroup`]'s: lets the tests run a GPU's reduction
/// depth on any adapter.
pub fn encode_small_batch_with(
    gpu: &Gpu,
    wg: u32,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &Storage<f32>,
    weights: &Storage<f32>,
) -> Result<(Dispatch, Storage<f32>)> {
    check(batch, in_features, out_features, input)?;
    if weights.len != out_features * in_features {
        return Err(Error::Shape(format!(
            "float_dense: {} weights for {out_features} rows of {in_features}",
            weights.len
        )));
    }
    let out = gpu.zeros::<f32>(batch * out_features, "float dense out")?;
    let d = encode_part(
        gpu,
        wg,
        batch,
        in_features,
        out_features,
        input,
        weights,
        0,
        &out,
    )?;
    Ok((d, out))
}

/// Encodes the layer with weights split into parts (one dispatch per part, one output buffer).
pub fn encode_split(
    gpu: &Gpu,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &Storage<f32>,
    weights: &FloatWeights,
) -> Result<(Vec<Dispatch>, Storage<f32>)> {
    if DenseKernel::for_shape(batch, in_features) == DenseKernel::Tiled {
        let shape = ConvShape::dense(batch, in_features, out_features);
        return float_conv::encode_split(gpu, &shape, input, weights);
    }
    check(batch, in_features, out_features, input)?;
    if weights.out_c() != out_features || weights.k() != in_features {
        return Err(Error::Shape(format!(
            "float_dense: weights of {} rows of {} for {out_features} rows of {in_features}",
            weights.out_c(),
            weights.k()
        )));
    }
    let out = gpu.zeros::<f32>(batch * out_features, "float dense out")?;
    let wg = Tuning::for_gpu(gpu).float_dense_workgroup();
    let dispatches = weights
        .iter_parts()
        .map(|(base, w)| {
            let rows = w.len / in_features;
            encode_part(gpu, wg, batch, in_features, rows, input, w, base, &out)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((dispatches, out))
}

fn check(
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &Storage<f32>,
) -> Result<()> {
    if batch == 0 || in_features == 0 || out_features == 0 || input.len != batch * in_features {
        return Err(Error::Shape(format!(
            "float_dense: {} input values for {batch} rows of {in_features} → {out_features}",
            input.len
        )));
    }
    if batch > MAX_BATCH || !in_features.is_multiple_of(4) {
        return Err(Error::Shape(format!(
            "float_dense: the small-batch kernel takes at most {MAX_BATCH} rows of a multiple of \
             4 values, not {batch} rows of {in_features} (use encode, which picks the tiled \
             kernel)"
        )));
    }
    Ok(())
}

/// Loop iterations one invocation may run (each loop's exiting pass counted), for the loop budget:
/// the depth loop, the reduction's levels with their batch loops, and the output loop.
fn loop_iterations(batch: usize, k4: usize, wg: u32) -> u64 {
    let (b, wg) = (batch as u64, wg as u64);
    let levels = wg.trailing_zeros() as u64;
    (k4 as u64).div_ceil(wg) + 1 + levels * (b + 1) + levels + 1 + (4 * b).div_ceil(wg) + 1
}

/// The dispatch computing output rows `base .. base + rows` into `out` (rows `out_stride` long).
#[allow(clippy::too_many_arguments)]
fn encode_part(
    gpu: &Gpu,
    wg: u32,
    batch: usize,
    in_features: usize,
    rows: usize,
    input: &Storage<f32>,
    weights: &Storage<f32>,
    base: usize,
    out: &Storage<f32>,
) -> Result<Dispatch> {
    let out_stride = out.len / batch;
    let k4 = in_features / 4;
    let limits = gpu.adapter_limits();
    let workgroup_bytes = 16 * wg as u64 * batch as u64;
    if !wg.is_power_of_two()
        || wg > limits.max_invocations
        || wg > limits.max_workgroup_size_x
        || workgroup_bytes > limits.max_workgroup_storage as u64
    {
        return Err(Error::Limits(format!(
            "float_dense: a workgroup of {wg} invocations (a power of two needed) with \
             {workgroup_bytes} bytes of workgroup memory for {batch} rows; the device allows \
             {} invocations, {} along x and {} bytes",
            limits.max_invocations, limits.max_workgroup_size_x, limits.max_workgroup_storage
        )));
    }
    super::check_loop_budget(
        &limits,
        format_args!("float_dense over {batch} rows of {in_features} → {rows}"),
        loop_iterations(batch, k4, wg),
    )?;
    let params = gpu.uniform(&Params {
        batch: batch as u32,
        out_c: rows as u32,
        out_stride: out_stride as u32,
        out_base: base as u32,
    });
    let pipeline = gpu.pipeline(PipelineKey::new(
        Shader::FloatDense,
        "dense",
        &[
            ("K4", k4 as f64),
            ("BATCH", batch as f64),
            ("WG", wg as f64),
        ],
    ))?;
    let bind_group = gpu.bind(
        &pipeline,
        &[&params, &input.buffer, &weights.buffer, &out.buffer],
    );
    Ok(Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(rows.div_ceil(ROWS) as u32),
        label: "float_dense",
    })
}

/// On the device, host in and out: the batch split to fit the binding limit (and into chunks the
/// kernel of [`DenseKernel::for_shape`] takes), the weights along the output channels when they do
/// not fit one binding.
pub fn run(
    gpu: &Gpu,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &[f32],
    weights: &[f32],
) -> Result<Vec<f32>> {
    if batch == 0 || input.len() != batch * in_features {
        return Err(Error::Shape(format!(
            "float_dense: {} input values for {batch} rows of {in_features}",
            input.len()
        )));
    }
    let chunk = super::batch_chunk(
        gpu,
        "float_dense",
        batch,
        &[("input", in_features * 4), ("output", out_features * 4)],
    )?;
    let w = FloatWeights::upload(gpu, out_features, in_features, weights)?;
    super::over_chunks(batch, chunk, |r| {
        let x = gpu.upload(
            &input[r.start * in_features..r.end * in_features],
            "float dense input",
        )?;
        let (d, out) = encode_split(gpu, r.len(), in_features, out_features, &x, &w)?;
        gpu.run(&d)?;
        gpu.read(&out)
    })
}
