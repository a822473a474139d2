//! XNOR/popcount dense layer (`shaders/xnor_dense.wgsl`): a batch of packed rows × packed weight
//! rows `[out][ceil(in/32)]` → i32 dots or packed signs through the fused threshold. Small
//! batches run split-K (a workgroup per row and 32 outputs, [`split_for`] invocations per
//! output); batches of [`TILED_BATCH`] rows or more run on the tiled conv kernel as a 1×1 conv.
//! The shape and the scalar reference: [`crate::ops::dense`].

use bytemuck::{Pod, Zeroable};

use super::Shader;
use crate::bits::words;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::{ConvShape, DenseShape, Threshold};

/// From this batch on, the dense layer runs as a 1×1 conv on the tiled XNOR conv kernel; smaller
/// batches run the split-K kernel (a weight row is used once per row, so there is little to tile).
pub const TILED_BATCH: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    in_features: u32,
    out_features: u32,
    _pad: u32,
}

/// Encodes the layer over device buffers. With `thresholds`, the output is packed signs
/// (`[B][ceil(O/32)]`); without, i32 dot products (`[B][O]`, stored as u32 bits). Batches of
/// [`TILED_BATCH`] or more go to the tiled conv kernel.
pub fn encode(
    gpu: &Gpu,
    shape: &DenseShape,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
) -> Result<(Dispatch, Storage<u32>)> {
    let wpr = shape.in_words();
    if shape.batch == 0
        || shape.in_features == 0
        || shape.out_features == 0
        || input.len != shape.batch * wpr
        || weights.len != shape.out_features * wpr
    {
        return Err(Error::Shape(format!(
            "xnor_dense: {} input and {} weight words for {shape:?}",
            input.len, weights.len
        )));
    }
    if shape.batch >= TILED_BATCH {
        // [B][words] × [O][words] is the 1×1 conv of B one-pixel images: the tiled conv kernel
        // reuses each staged weight word over the batch rows held in registers.
        let conv = ConvShape::dense(shape.batch, shape.in_features, shape.out_features);
        return super::xnor_conv::encode(gpu, &conv, input, weights, thresholds);
    }
    encode_with(
        gpu,
        shape,
        split_for(&gpu.adapter_limits(), wpr),
        input,
        weights,
        thresholds,
    )
}

/// [`encode`] of a batch below [`TILED_BATCH`] with an explicit split-K factor (`split`
/// invocations per output, 1 to 8; tests of the split).
pub fn encode_with(
    gpu: &Gpu,
    shape: &DenseShape,
    split: u32,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
) -> Result<(Dispatch, Storage<u32>)> {
    let wpr = shape.in_words();
    if !(1..=8).contains(&split) || shape.batch >= TILED_BATCH {
        return Err(Error::Shape(format!(
            "xnor_dense split-K: split {split} (1 to 8) over {shape:?} (batch below {TILED_BATCH})"
        )));
    }
    if input.len != shape.batch * wpr || weights.len != shape.out_features * wpr {
        return Err(Error::Shape(format!(
            "xnor_dense: {} input and {} weight words for {shape:?}",
            input.len, weights.len
        )));
    }
    let per_invocation = (wpr as u64).div_ceil(split as u64);
    super::check_loop_budget(
        &gpu.adapter_limits(),
        format_args!("xnor_dense over {shape:?}"),
        per_invocation + 1 + split as u64 + 1,
    )?;
    let params = gpu.uniform(&Params {
        batch: shape.batch as u32,
        in_features: shape.in_features as u32,
        out_features: shape.out_features as u32,
        _pad: 0,
    });
    let pipeline = |entry| {
        gpu.pipeline(PipelineKey::new(
            Shader::XnorDense,
            entry,
            &[("WORDS", wpr as f64), ("SPLIT", split as f64)],
        ))
    };
    let groups = (shape.batch * words(shape.out_features)) as u32;
    let launch = |entry: &'static str, label, buffers: &[&wgpu::Buffer]| -> Result<Dispatch> {
        let pipeline = pipeline(entry)?;
        Ok(Dispatch {
            bind_group: gpu.bind(&pipeline, buffers),
            pipeline,
            workgroups: gpu.grid(groups),
            label,
        })
    };
    Ok(match thresholds {
        None => {
            let out = gpu.zeros::<u32>(shape.batch * shape.out_features, "dense dots")?;
            let d = launch(
                "dense_dot",
                "xnor_dense_dot",
                &[&params, &input.buffer, &weights.buffer, &out.buffer],
            )?;
            (d, out)
        }
        Some(th) => {
            let out = gpu.zeros::<u32>(shape.batch * words(shape.out_features), "dense bits")?;
            let d = launch(
                "dense_bits",
                "xnor_dense_bits",
                &[
                    &params,
                    &input.buffer,
                    &weights.buffer,
                    &out.buffer,
                    &th.buffer,
                ],
            )?;
            (d, out)
        }
    })
}

/// Invocations per output of the split-K kernel: 1 on a CPU adapter (a workgroup runs on one
/// thread, so splitting adds no parallelism), else one per 16 words of depth, a power of two up to
/// 8 (256 invocations: the downlevel limit).
pub fn split_for(limits: &crate::gpu::AdapterLimits, words: usize) -> u32 {
    if limits.is_cpu {
        return 1;
    }
    let split = (words / 16).clamp(1, 8) as u32;
    let split = 1 << (31 - split.leading_zeros()); // down to a power of two
    split.min(limits.max_invocations / 32).max(1)
}

fn run(
    gpu: &Gpu,
    shape: &DenseShape,
    input: &[u32],
    weights: &[u32],
    th: Option<&[Threshold]>,
) -> Result<Vec<u32>> {
    let wpr = shape.in_words();
    let out_item = if th.is_some() {
        words(shape.out_features)
    } else {
        shape.out_features
    };
    let chunk = super::batch_chunk(
        gpu,
        "xnor_dense",
        shape.batch,
        &[("input", wpr * 4), ("output", out_item * 4)],
    )?;
    let w = gpu.upload(weights, "dense weights")?;
    let t = th.map(|t| gpu.upload(t, "thresholds")).transpose()?;
    super::over_chunks(shape.batch, chunk, |r| {
        let part = DenseShape {
            batch: r.len(),
            ..*shape
        };
        let x = gpu.upload(&input[r.start * wpr..r.end * wpr], "dense input")?;
        let (d, out) = encode(gpu, &part, &x, &w, t.as_ref())?;
        gpu.run(&[d])?;
        gpu.read(&out)
    })
}

/// Dot products on the device, host in and out (batches split to fit the device).
pub fn run_dot(gpu: &Gpu, shape: &DenseShape, input: &[u32], weights: &[u32]) -> Result<Vec<i32>> {
    Ok(bytemuck::cast_vec(run(gpu, shape, input, weights, None)?))
}

/// Fused dense + threshold on the device, host in and out; one threshold per output.
pub fn run_bits(
    gpu: &Gpu,
    shape: &DenseShape,
    input: &[u32],
    weights: &[u32],
    th: &[Threshold],
) -> Result<Vec<u32>> {
    if th.len() != shape.out_features {
        return Err(Error::Shape(format!(
            "{} thresholds for {} outputs",
            th.len(),
            shape.out_features
        )));
    }
    run(gpu, shape, input, weights, Some(th))
}
