//! Max-pooling (`shaders/pool.wgsl`) on i32/f32 pre-activations and on packed signs (AND of the
//! "−1" bits, or per channel AND/OR: the pooled pre-activations' signs computed from the signs,
//! [`encode_bits`]). NHWC, square window, no padding.

use bytemuck::{Pod, Zeroable};

use super::{Shader, WORKGROUP, dispatch};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};

/// Shape of a pooling layer; `channels` counts elements per pixel (words, for packed input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Images.
    pub batch: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Elements per pixel (packed words for [`PoolValues::Bits`]).
    pub channels: usize,
    /// Side of the square window.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
}

impl PoolShape {
    /// Output height (floor, no padding).
    pub fn out_h(&self) -> usize {
        (self.in_h - self.kernel) / self.stride + 1
    }
    /// Output width (floor, no padding).
    pub fn out_w(&self) -> usize {
        (self.in_w - self.kernel) / self.stride + 1
    }
    /// Input elements of the whole batch.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.channels
    }
    /// Output elements of the whole batch.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_h() * self.out_w() * self.channels
    }
    fn validate(&self) -> Result<()> {
        if self.kernel == 0
            || self.stride == 0
            || self.kernel > self.in_h
            || self.kernel > self.in_w
            || self.channels == 0
        {
            return Err(Error::Shape(format!("invalid pool shape {self:?}")));
        }
        Ok(())
    }
}

/// What the pooled elements are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolValues {
    /// Integer pre-activations (dots).
    I32,
    /// Float values (first-layer sums, float twin).
    F32,
    /// Packed signs: max of ±1 is the AND of the −1 bits.
    Bits,
}

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

/// Scalar reference over any ordered element type, with `combine` the window reduction.
fn reference_with<T: Copy>(shape: &PoolShape, input: &[T], combine: impl Fn(T, T) -> T) -> Vec<T> {
    let (oh, ow, c) = (shape.out_h(), shape.out_w(), shape.channels);
    let mut out = Vec::with_capacity(shape.output_len());
    for n in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let at = |y: usize, x: usize| {
                        input[((n * shape.in_h + y) * shape.in_w + x) * c + ch]
                    };
                    let (y0, x0) = (oy * shape.stride, ox * shape.stride);
                    let mut acc = at(y0, x0);
                    for ky in 0..shape.kernel {
                        for kx in 0..shape.kernel {
                            acc = combine(acc, at(y0 + ky, x0 + kx));
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

/// Scalar reference: max-pooling of i32 values.
pub fn reference_i32(shape: &PoolShape, input: &[i32]) -> Vec<i32> {
    reference_with(shape, input, i32::max)
}

/// Scalar reference: max-pooling of f32 values.
pub fn reference_f32(shape: &PoolShape, input: &[f32]) -> Vec<f32> {
    reference_with(shape, input, |a, b| if b > a { b } else { a })
}

/// Scalar reference on packed signs: the AND of the window's words.
pub fn reference_bits(shape: &PoolShape, input: &[u32]) -> Vec<u32> {
    reference_with(shape, input, |a, b| a & b)
}

/// Scalar reference of [`encode_bits`]: per bit, AND over the window where `and_mask` has it set,
/// OR where it is clear.
pub fn reference_bits_masked(shape: &PoolShape, input: &[u32], and_mask: &[u32]) -> Vec<u32> {
    let all = reference_bits(shape, input);
    let any = reference_with(shape, input, |a, b| a | b);
    let words = shape.channels;
    all.iter()
        .zip(&any)
        .enumerate()
        .map(|(i, (&a, &o))| {
            let m = and_mask[i % words];
            (a & m) | (o & !m)
        })
        .collect()
}
