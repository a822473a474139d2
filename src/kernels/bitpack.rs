//! Bit-packing on the device (`shaders/bitpack.wgsl`); the reference is [`crate::bits::pack_rows`].

use bytemuck::{Pod, Zeroable};

use super::{Shader, WORKGROUP, dispatch};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    words: u32,
    _pad: u32,
}

/// Packs `[rows][channels]` f32 into `[rows][ceil(channels/32)]` words.
pub fn encode(
    gpu: &Gpu,
    values: &Storage<f32>,
    channels: usize,
) -> Result<(Dispatch, Storage<u32>)> {
    if channels == 0 || !values.len.is_multiple_of(channels) {
        return Err(Error::Shape(format!(
            "bitpack: {} values are not rows of {channels}",
            values.len
        )));
    }
    let rows = values.len / channels;
    let out = gpu.zeros::<u32>(rows * words(channels), "packed")?;
    let params = gpu.uniform(&Params {
        rows: rows as u32,
        channels: channels as u32,
        words: words(channels) as u32,
        _pad: 0,
    });
    let pipeline = gpu.pipeline(PipelineKey::new(
        Shader::Bitpack,
        "pack",
        &[("WG", WORKGROUP as f64)],
    ))?;
    Ok((
        dispatch(
            gpu,
            pipeline,
            &[&params, &values.buffer, &out.buffer],
            out.len,
            "bitpack",
        ),
        out,
    ))
}

/// On the device, host in and out; rows are split over several dispatches when they exceed the
/// storage-binding limit.
pub fn run(gpu: &Gpu, values: &[f32], channels: usize) -> Result<Vec<u32>> {
    if channels == 0 || !values.len().is_multiple_of(channels) {
        return Err(Error::Shape(format!(
            "bitpack: {} values are not rows of {channels}",
            values.len()
        )));
    }
    let rows = values.len() / channels;
    let chunk = super::batch_chunk(gpu, "bitpack", rows, &[("input row", channels * 4)])?;
    super::over_chunks(rows, chunk, |r| {
        let v = gpu.upload(&values[r.start * channels..r.end * channels], "values")?;
        let (d, out) = encode(gpu, &v, channels)?;
        gpu.run(&[d])?;
        gpu.read(&out)
    })
}
