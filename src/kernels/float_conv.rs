//! The float baseline (`shaders/float_conv.wgsl`): conv2d as a tiled implicit GEMM, and the dense
//! layer as its 1×1 case (`float_dense` picks it for large batches). f32 NHWC input, f32 OHWI
//! weights, zero padding. Every output is the sequential `fma` sum in increasing k from +0.0, so
//! with ±1.0 weights it equals `ops::first_conv::reference_sum` bit for bit; the scalar references
//! (both roundings of `fma`) are [`crate::ops::float_conv`].
//!
//! Weights larger than one storage binding (AlexNet's fc6: 9216 × 4096 f32 = 151 MB against the
//! downlevel 128 MiB) are split along the output channels into [`FloatWeights`] parts, one dispatch
//! each, all writing into one output buffer; every output's sum is computed exactly as unsplit.

use bytemuck::{Pod, Zeroable};

use super::tuning::{ConvTile, Tuning};
use super::xnor_conv::ConvParams;
use super::{Shader, batch_chunk, over_chunks};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::{ConvShape, Padding};

/// The shader's `Params`: the conv's, then where this dispatch's channels go in the output rows.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct FloatParams {
    conv: ConvParams,
    out_stride: u32,
    out_base: u32,
    _pad: [u32; 2],
}

/// Float weights on the device, as one or more parts of consecutive output channels, each within
/// the device's storage-binding limit.
#[derive(Debug)]
pub struct FloatWeights {
    /// (first output channel, its weights `[channels][K]`).
    parts: Vec<(usize, Storage<f32>)>,
    out_c: usize,
    k: usize,
}

impl FloatWeights {
    /// Uploads `weights` (`[out_c][k]`, OHWI rows of `k` values), split into as few parts as the
    /// binding limit allows. One row larger than a binding is an error naming both sizes.
    pub fn upload(gpu: &Gpu, out_c: usize, k: usize, weights: &[f32]) -> Result<FloatWeights> {
        FloatWeights::upload_within(gpu, out_c, k, weights, gpu.max_binding())
    }

    /// [`FloatWeights::upload`] with parts of at most `max_bytes` (≤ the device's limit).
    pub fn upload_within(
        gpu: &Gpu,
        out_c: usize,
        k: usize,
        weights: &[f32],
        max_bytes: u64,
    ) -> Result<FloatWeights> {
        if out_c == 0 || k == 0 || weights.len() != out_c * k {
            return Err(Error::Shape(format!(
                "float weights: {} values are not {out_c} rows of {k}",
                weights.len()
            )));
        }
        let row_bytes = (k * 4) as u64;
        let rows = (max_bytes.min(gpu.max_binding()) / row_bytes) as usize;
        if rows == 0 {
            return Err(Error::Limits(format!(
                "float weights: one output channel's row is {row_bytes} bytes ({k} values), more \
                 than the device's largest storage binding ({} bytes); the weights can only be \
                 split between output channels",
                max_bytes.min(gpu.max_binding())
            )));
        }
        let mut parts = Vec::new();
        let mut o = 0;
        while o < out_c {
            let end = (o + rows).min(out_c);
            parts.push((o, gpu.upload(&weights[o * k..end * k], "float weights")?));
            o = end;
        }
        Ok(FloatWeights { parts, out_c, k })
    }

    /// How many parts (dispatches) the weights are split into.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Output channels (rows) of the whole layer.
    pub fn out_c(&self) -> usize {
        self.out_c
    }

    /// Values per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The parts: (first output channel, its rows).
    pub(crate) fn iter_parts(&self) -> impl Iterator<Item = (usize, &Storage<f32>)> {
        self.parts.iter().map(|(base, w)| (*base, w))
    }
}

/// Encodes the conv over device buffers with the tile of [`Tuning::for_gpu`].
pub fn encode(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<f32>,
    weights: &Storage<f32>,
) -> Result<(Dispatch, Storage<f32>)> {
    let tile = Tuning::for_gpu(gpu).float_conv_tile(shape);
    encode_with(gpu, shape, &tile, input, weights)
}

/// [`encode`] with an explicit tile (benchmarks and tests of the tiling).
pub fn encode_with(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<f32>,
    weights: &Storage<f32>,
) -> Result<(Dispatch, Storage<f32>)> {
    check(shape, input)?;
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    if weights.len != shape.out_c * k {
        return Err(Error::Shape(format!(
            "float_conv: {} weights for {shape:?}",
            weights.len
        )));
    }
    let out = output(gpu, shape)?;
    let d = encode_part(gpu, shape, tile, input, weights, 0, &out)?;
    Ok((d, out))
}

/// Encodes the conv with weights split into parts: one dispatch per part, one output buffer,
/// each part's tile from [`Tuning::for_gpu`].
pub fn encode_split(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<f32>,
    weights: &FloatWeights,
) -> Result<(Vec<Dispatch>, Storage<f32>)> {
    check(shape, input)?;
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    if weights.out_c != shape.out_c || weights.k != k {
        return Err(Error::Shape(format!(
            "float_conv: weights of {} rows of {} for {shape:?}",
            weights.out_c, weights.k
        )));
    }
    let out = output(gpu, shape)?;
    let tuning = Tuning::for_gpu(gpu);
    let mut dispatches = Vec::with_capacity(weights.parts.len());
    for (base, w) in &weights.parts {
        let part = ConvShape {
            out_c: w.len / k,
            ..*shape
        };
        let tile = tuning.float_conv_tile(&part);
        dispatches.push(encode_part(gpu, shape, &tile, input, w, *base, &out)?);
    }
    Ok((dispatches, out))
}

pub(crate) fn check<T: bytemuck::Pod>(shape: &ConvShape, input: &Storage<T>) -> Result<()> {
    shape.validate()?;
    if input.len != shape.batch * shape.in_h * shape.in_w * shape.in_c {
        return Err(Error::Shape(format!(
            "float_conv: {} input values for {shape:?}",
            input.len
        )));
    }
    if shape.padding != Padding::Zero {
        return Err(Error::Shape("float_conv supports zero padding only".into()));
    }
    Ok(())
}

fn output(gpu: &Gpu, shape: &ConvShape) -> Result<Storage<f32>> {
    let m = shape.batch * shape.out_pixels_per_item();
    gpu.zeros::<f32>(m * shape.out_c, "float conv out")
}

/// The dispatch computing output channels `base .. base + weights.len / K` of `shape` into `out`.
fn encode_part(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<f32>,
    weights: &Storage<f32>,
    base: usize,
    out: &Storage<f32>,
) -> Result<Dispatch> {
    let buffers = Buffers {
        input: &input.buffer,
        weights: &weights.buffer,
        weights_len: weights.len,
        out: &out.buffer,
    };
    encode_dispatch(gpu, Shader::FloatConv, shape, tile, buffers, base)
}

/// The buffers of one dispatch of `float_conv.wgsl` or its f16 variant (the same bindings).
pub(crate) struct Buffers<'a> {
    pub input: &'a wgpu::Buffer,
    pub weights: &'a wgpu::Buffer,
    /// Values in `weights` (rows × K).
    pub weights_len: usize,
    pub out: &'a wgpu::Buffer,
}

/// The dispatch of `shader` (`float_conv.wgsl` in f32 or in f16, same overrides and
/// bindings) computing output channels `base .. base + weights_len / K` of `shape`.
pub(crate) fn encode_dispatch(
    gpu: &Gpu,
    shader: Shader,
    shape: &ConvShape,
    tile: &ConvTile,
    buffers: Buffers,
    base: usize,
) -> Result<Dispatch> {
    tile.validate_float(&gpu.adapter_limits(), shape)?;
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    let part = ConvShape {
        out_c: buffers.weights_len / k,
        ..*shape
    };
    let params = gpu.uniform(&FloatParams {
        conv: ConvParams::of(&part),
        out_stride: shape.out_c as u32,
        out_base: base as u32,
        _pad: [0; 2],
    });
    let pipeline = gpu.pipeline(PipelineKey::new(
        shader,
        "conv",
        &[
            ("C", shape.in_c as f64),
            ("KH", shape.kernel_h as f64),
            ("KW", shape.kernel_w as f64),
            ("WG_M", tile.wg_m as f64),
            ("WG_N", tile.wg_n as f64),
            ("KC", tile.kc as f64),
        ],
    ))?;
    let bind_group = gpu.bind(
        &pipeline,
        &[&params, buffers.input, buffers.weights, buffers.out],
    );
    Ok(Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(tile.workgroups(&part) as u32),
        label: shader.file_name(),
    })
}

/// On the device, host in and out: the batch split to fit the binding limit, and the weights split
/// along the output channels when they do not fit one binding.
pub fn run(gpu: &Gpu, shape: &ConvShape, input: &[f32], weights: &[f32]) -> Result<Vec<f32>> {
    run_within(gpu, shape, input, weights, gpu.max_binding())
}

/// [`run`] with weight parts of at most `max_weight_bytes` (tests of the split path).
pub fn run_within(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[f32],
    weights: &[f32],
    max_weight_bytes: u64,
) -> Result<Vec<f32>> {
    shape.validate()?;
    let in_item = shape.in_h * shape.in_w * shape.in_c;
    if input.len() != shape.batch * in_item {
        return Err(Error::Shape(format!(
            "float_conv: {} input values for {shape:?}",
            input.len()
        )));
    }
    let out_item = shape.out_pixels_per_item() * shape.out_c;
    let chunk = batch_chunk(
        gpu,
        "float_conv",
        shape.batch,
        &[("input", in_item * 4), ("output", out_item * 4)],
    )?;
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    let w = FloatWeights::upload_within(gpu, shape.out_c, k, weights, max_weight_bytes)?;
    over_chunks(shape.batch, chunk, |r| {
        let part = ConvShape {
            batch: r.len(),
            ..*shape
        };
        let x = gpu.upload(&input[r.start * in_item..r.end * in_item], "float input")?;
        let (d, out) = encode_split(gpu, &part, &x, &w)?;
        gpu.run(&d)?;
        gpu.read(&out)
    })
}

/// The float dense layer `[B][in] × [out][in]ᵀ` on the device ([`run`] on
/// [`ConvShape::dense`]).
pub fn run_dense(
    gpu: &Gpu,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &[f32],
    weights: &[f32],
) -> Result<Vec<f32>> {
    run(
        gpu,
        &ConvShape::dense(batch, in_features, out_features),
        input,
        weights,
    )
}
