//! The output transform on the device (`shaders/threshold.wgsl`): per-channel thresholds on i32 or
//! f32 pre-activations, written straight to packed signs; the op, and how batch norm folds into it,
//! is [`crate::ops::threshold`].

use bytemuck::{Pod, Zeroable};

use super::{Shader, WORKGROUP, dispatch};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::{FloatThreshold, Threshold};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    words: u32,
    _pad: u32,
}

fn encode_any(
    gpu: &Gpu,
    values: &Storage<u32>,
    channels: usize,
    thresholds: &wgpu::Buffer,
    float: bool,
) -> Result<(Dispatch, Storage<u32>)> {
    if channels == 0 || !values.len.is_multiple_of(channels) {
        return Err(Error::Shape(format!(
            "threshold: {} values are not rows of {channels}",
            values.len
        )));
    }
    let rows = values.len / channels;
    let out = gpu.zeros::<u32>(rows * words(channels), "threshold bits")?;
    let params = gpu.uniform(&Params {
        rows: rows as u32,
        channels: channels as u32,
        words: words(channels) as u32,
        _pad: 0,
    });
    let key = PipelineKey::new(
        Shader::Threshold,
        "threshold",
        &[
            ("WG", WORKGROUP as f64),
            ("FLOAT", if float { 1.0 } else { 0.0 }),
        ],
    );
    let pipeline = gpu.pipeline(key)?;
    let buffers = [&params, &values.buffer, &out.buffer, thresholds];
    Ok((dispatch(gpu, pipeline, &buffers, out.len, "threshold"), out))
}

/// Thresholds i32 pre-activations (`[rows][channels]`, stored as u32 bits) to packed signs.
pub fn encode(
    gpu: &Gpu,
    values: &Storage<u32>,
    thresholds: &Storage<Threshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    encode_any(gpu, values, thresholds.len, &thresholds.buffer, false)
}

/// Thresholds f32 pre-activations (stored as u32 bits) to packed signs.
pub fn encode_f32(
    gpu: &Gpu,
    values: &Storage<u32>,
    thresholds: &Storage<FloatThreshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    encode_any(gpu, values, thresholds.len, &thresholds.buffer, true)
}

/// On the device, host in and out.
pub fn run(gpu: &Gpu, values: &[i32], thresholds: &[Threshold]) -> Result<Vec<u32>> {
    let v = gpu.upload(bytemuck::cast_slice::<i32, u32>(values), "values")?;
    let t = gpu.upload(thresholds, "thresholds")?;
    let (d, out) = encode(gpu, &v, &t)?;
    gpu.run(&[d])?;
    gpu.read(&out)
}

/// On the device, host in and out (f32 values).
pub fn run_f32(gpu: &Gpu, values: &[f32], thresholds: &[FloatThreshold]) -> Result<Vec<u32>> {
    let v = gpu.upload(bytemuck::cast_slice::<f32, u32>(values), "values")?;
    let t = gpu.upload(thresholds, "thresholds")?;
    let (d, out) = encode_f32(gpu, &v, &t)?;
    gpu.run(&[d])?;
    gpu.read(&out)
}
