//! The f16 float baseline (`shaders/float_conv.wgsl` with `alias Real = f16`,
//! [`Shader::FloatConvF16`]): `float_conv` with f16 storage and f16
//! math, on adapters with `wgpu::Features::SHADER_F16` ([`Gpu::has_f16`]); elsewhere every
//! entry point is an [`Error::Limits`] naming the adapter. Same tiles
//! ([`Tuning::float_conv_tile`]: the f16 tile needs half the f32 one's workgroup memory), same
//! summation order, f16 rounding. Weights are not split: over the binding limit they are an error
//! (the f16 baseline is a per-layer benchmark row, not a network path).

use super::Shader;
use super::float_conv::{self, Buffers};
use super::tuning::{ConvTile, Tuning};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Storage};
use crate::ops::ConvShape;

/// f32 → IEEE binary16 bits, rounding to nearest even (overflow → ±inf).
pub fn to_f16(values: &[f32]) -> Vec<u16> {
    values
        .iter()
        .map(|&v| half::f16::from_f32(v).to_bits())
        .collect()
}

/// IEEE binary16 bits → f32 (exact).
pub fn from_f16(bits: &[u16]) -> Vec<f32> {
    bits.iter()
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect()
}

fn require_f16(gpu: &Gpu) -> Result<()> {
    if gpu.has_f16() {
        return Ok(());
    }
    Err(Error::Limits(format!(
        "float_conv_f16 needs the shader-f16 feature (wgpu::Features::SHADER_F16), which {} \
         does not offer; use float_conv (f32) on this adapter",
        gpu.describe()
    )))
}

/// Encodes the f16 conv over device buffers (f16 bits) with the tile of [`Tuning::for_gpu`].
pub fn encode(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<u16>,
    weights: &Storage<u16>,
) -> Result<(Dispatch, Storage<u16>)> {
    let tile = Tuning::for_gpu(gpu).float_conv_tile(shape);
    encode_with(gpu, shape, &tile, input, weights)
}

/// [`encode`] with an explicit tile.
pub fn encode_with(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u16>,
    weights: &Storage<u16>,
) -> Result<(Dispatch, Storage<u16>)> {
    require_f16(gpu)?;
    float_conv::check(shape, input)?;
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    if weights.len != shape.out_c * k {
        return Err(Error::Shape(format!(
            "float_conv_f16: {} weights for {shape:?}",
            weights.len
        )));
    }
    let out = gpu.zeros::<u16>(
        shape.batch * shape.out_pixels_per_item() * shape.out_c,
        "f16 conv out",
    )?;
    let buffers = Buffers {
        input: &input.buffer,
        weights: &weights.buffer,
        weights_len: weights.len,
        out: &out.buffer,
    };
    let d = float_conv::encode_dispatch(gpu, Shader::FloatConvF16, shape, tile, buffers, 0)?;
    Ok((d, out))
}

/// On the device, host f32 in and out: inputs and weights rounded to f16, the f16 results
/// widened back. The batch is split to fit the binding limit; the weights are not.
pub fn run(gpu: &Gpu, shape: &ConvShape, input: &[f32], weights: &[f32]) -> Result<Vec<f32>> {
    require_f16(gpu)?;
    shape.validate()?;
    let in_item = shape.in_h * shape.in_w * shape.in_c;
    if input.len() != shape.batch * in_item {
        return Err(Error::Shape(format!(
            "float_conv_f16: {} input values for {shape:?}",
            input.len()
        )));
    }
    let out_item = shape.out_pixels_per_item() * shape.out_c;
    let chunk = super::batch_chunk(
        gpu,
        "float_conv_f16",
        shape.batch,
        &[("input", in_item * 2), ("output", out_item * 2)],
    )?;
    let w = gpu.upload(&to_f16(weights), "f16 weights")?;
    super::over_chunks(shape.batch, chunk, |r| {
        let part = ConvShape {
            batch: r.len(),
            ..*shape
        };
        let x = gpu.upload(
            &to_f16(&input[r.start * in_item..r.end * in_item]),
            "f16 input",
        )?;
        let (d, out) = encode(gpu, &part, &x, &w)?;
        gpu.run(&[d])?;
        Ok(from_f16(&gpu.read(&out)?))
    })
}
