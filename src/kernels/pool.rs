//! Max-pooling (`shaders/pool.wgsl`) on i32/f32 pre-activations and on packed signs (AND of the
//! "−1" bits, or per channel AND/OR: the pooled pre-activations' signs computed from the signs,
//! [`encode_bits`]). NHWC, square window, no padding. The op and its references:
//! [`crate::ops::pool`].

use bytemuck::{Pod, Zeroable};

use super::{Shader, WORKGROUP, dispatch};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::pool::{PoolShape, PoolValues};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    in_h: u32,
    in_w: u32,
    channels: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
}

/// Encodes the pooling of `input` (elements as raw 32-bit words, `values` says which) into a
/// new output buffer; one invocation per output element. Packed signs are pooled with a plain AND
/// (the max of ±1 values); [`encode_bits`] takes a per-channel AND/OR mask.
pub fn encode(
    gpu: &Gpu,
    shape: &PoolShape,
    values: PoolValues,
    input: &Storage<u32>,
) -> Result<(Dispatch, Storage<u32>)> {
    if values == PoolValues::Bits {
        let all_and = gpu.upload(&vec![u32::MAX; shape.channels], "pool and-mask")?;
        return encode_bits(gpu, shape, input, &all_and);
    }
    let float = if values == PoolValues::F32 { 1.0 } else { 0.0 };
    encode_entry(gpu, shape, input, ("maxpool_values", float), None)
}

/// Encodes the pooling of threshold output bits `[N][H][W][words]` as the bits of the pooled
/// pre-activations: per bit, AND over the window where `and_mask[word]` has it set (flip-0
/// channels), OR where it is clear (flip-1 channels); see docs/FORMAT.md, Pooling.
/// `shape.channels` counts words, and `and_mask` holds one word per pixel word.
pub fn encode_bits(
    gpu: &Gpu,
    shape: &PoolShape,
    input: &Storage<u32>,
    and_mask: &Storage<u32>,
) -> Result<(Dispatch, Storage<u32>)> {
    if and_mask.len != shape.channels {
        return Err(Error::Shape(format!(
            "pool: {} mask words for {} words per pixel",
            and_mask.len, shape.channels
        )));
    }
    encode_entry(gpu, shape, input, ("maxpool_bits", 0.0), Some(and_mask))
}

fn encode_entry(
    gpu: &Gpu,
    shape: &PoolShape,
    input: &Storage<u32>,
    (entry, float): (&'static str, f64),
    and_mask: Option<&Storage<u32>>,
) -> Result<(Dispatch, Storage<u32>)> {
    shape.validate()?;
    if input.len != shape.input_len() {
        return Err(Error::Shape(format!(
            "pool: {} elements for {shape:?}",
            input.len
        )));
    }
    let out = gpu.zeros::<u32>(shape.output_len(), "pooled")?;
    let params = gpu.uniform(&Params {
        batch: shape.batch as u32,
        in_h: shape.in_h as u32,
        in_w: shape.in_w as u32,
        channels: shape.channels as u32,
        out_h: shape.out_h() as u32,
        out_w: shape.out_w() as u32,
        kernel: shape.kernel as u32,
        stride: shape.stride as u32,
    });
    let pipeline = gpu.pipeline(PipelineKey::new(
        Shader::Pool,
        entry,
        &[("WG", WORKGROUP as f64), ("FLOAT", float)],
    ))?;
    let mut buffers = vec![&params, &input.buffer, &out.buffer];
    if let Some(m) = and_mask {
        buffers.push(&m.buffer);
    }
    Ok((dispatch(gpu, pipeline, &buffers, out.len, "maxpool"), out))
}

/// On the device, host in and out (elements as raw 32-bit words).
pub fn run(gpu: &Gpu, shape: &PoolShape, values: PoolValues, input: &[u32]) -> Result<Vec<u32>> {
    let per_in = shape.input_len() / shape.batch.max(1) * 4;
    let per_out = shape.output_len() / shape.batch.max(1) * 4;
    let chunk = super::batch_chunk(
        gpu,
        "pool",
        shape.batch,
        &[("input", per_in), ("output", per_out)],
    )?;
    let item = shape.in_h * shape.in_w * shape.channels;
    super::over_chunks(shape.batch, chunk, |r| {
        let part = PoolShape {
            batch: r.len(),
            ..*shape
        };
        let x = gpu.upload(&input[r.start * item..r.end * item], "pool input")?;
        let (d, out) = encode(gpu, &part, values, &x)?;
        gpu.run(&[d])?;
        gpu.read(&out)
    })
}

/// [`encode_bits`] on the device, host in and out.
pub fn run_bits(gpu: &Gpu, shape: &PoolShape, input: &[u32], and_mask: &[u32]) -> Result<Vec<u32>> {
    let x = gpu.upload(input, "pool input")?;
    let m = gpu.upload(and_mask, "pool and-mask")?;
    let (d, out) = encode_bits(gpu, shape, &x, &m)?;
    gpu.run(&[d])?;
    gpu.read(&out)
}
