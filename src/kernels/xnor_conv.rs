//! XNOR/popcount conv2d (`shaders/xnor_conv.wgsl`): packed NHWC activations × packed OHWI weights →
//! integer dot products, or packed signs through the fused threshold. The shape and the scalar
//! reference: [`crate::ops::conv`].

use bytemuck::{Pod, Zeroable};

use super::tuning::{ConvTile, Tuning};
use super::{Shader, batch_chunk, over_chunks};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::{ConvShape, Padding, Threshold};

/// The `Params` block shared by the conv shaders.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct ConvParams {
    pub batch: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub in_c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub out_c: u32,
    pub stride: u32,
    pub pad: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub _pad: u32,
}

impl ConvParams {
    /// The block of `shape`.
    pub(crate) fn of(shape: &ConvShape) -> ConvParams {
        ConvParams {
            batch: shape.batch as u32,
            in_h: shape.in_h as u32,
            in_w: shape.in_w as u32,
            in_c: shape.in_c as u32,
            out_h: shape.out_h() as u32,
            out_w: shape.out_w() as u32,
            out_c: shape.out_c as u32,
            stride: shape.stride as u32,
            pad: shape.pad as u32,
            kernel_h: shape.kernel_h as u32,
            kernel_w: shape.kernel_w as u32,
            _pad: 0,
        }
    }
}

fn pipeline_key(
    shape: &ConvShape,
    tile: &ConvTile,
    shader: Shader,
    entry: &'static str,
) -> PipelineKey {
    let one_pad = shape.padding == Padding::One;
    let masked = !one_pad && shape.pad > 0;
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    PipelineKey::new(
        shader,
        entry,
        &[
            ("WORDS", shape.in_words() as f64),
            ("KH", shape.kernel_h as f64),
            ("KW", shape.kernel_w as f64),
            ("ONE_PAD", flag(one_pad)),
            ("MASKED", flag(masked)),
            ("WG_M", tile.wg_m as f64),
            ("WG_N", tile.wg_n as f64),
            ("KC", tile.kc as f64),
        ],
    )
}

/// Encodes the conv over device buffers. With `thresholds`, the output is packed signs
/// (`[N][OH][OW][ceil(O/32)]`); without, i32 dot products (`[N][OH][OW][O]`, stored as u32 bits).
/// The tile comes from [`Tuning::for_gpu`].
pub fn encode(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
) -> Result<(Dispatch, Storage<u32>)> {
    let tile = Tuning::for_gpu(gpu).xnor_conv_tile(shape);
    encode_with(gpu, shape, &tile, input, weights, thresholds)
}

/// [`encode`] with an explicit tile (benchmarks and tests of the tiling).
pub fn encode_with(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
) -> Result<(Dispatch, Storage<u32>)> {
    shape.validate()?;
    tile.validate_xnor(&gpu.adapter_limits(), shape)?;
    if input.len != shape.batch * shape.input_words_per_item()
        || weights.len != shape.weight_words()
    {
        return Err(Error::Shape(format!(
            "xnor_conv: buffers of {} input and {} weight words do not fit {shape:?}",
            input.len, weights.len
        )));
    }
    // The subgroup path where each subgroup is one row of the workgroup.
    let ballots = gpu.subgroup_size() == Some(tile.wg_n);
    encode_entry(gpu, shape, tile, input, weights, thresholds, ballots)
}

/// The fused conv (`thresholds` given) through the subgroup entry point `conv_bits_subgroup`
/// whatever the tile: ballots where each subgroup is one row of the workgroup, the atomic path
/// inside the same kernel otherwise (tests of both). An error where the device has no subgroups.
pub fn encode_bits_subgroup(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: &Storage<Threshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    if !gpu.subgroups {
        return Err(Error::Limits(format!(
            "{}: the device has no subgroup operations",
            gpu.info.name
        )));
    }
    shape.validate()?;
    tile.validate_xnor(&gpu.adapter_limits(), shape)?;
    encode_entry(gpu, shape, tile, input, weights, Some(thresholds), true)
}

fn encode_entry(
    gpu: &Gpu,
    shape: &ConvShape,
    tile: &ConvTile,
    input: &Storage<u32>,
    weights: &Storage<u32>,
    thresholds: Option<&Storage<Threshold>>,
    ballots: bool,
) -> Result<(Dispatch, Storage<u32>)> {
    let pixels = shape.batch * shape.out_pixels_per_item();
    let tiles = tile.workgroups(shape) as u32;
    let params = gpu.uniform(&ConvParams::of(shape));
    let (shader, entry, label, out) = match thresholds {
        None => (
            Shader::XnorConv,
            "conv_dot",
            "xnor_conv_dot",
            gpu.zeros::<u32>(pixels * shape.out_c, "conv dots")?,
        ),
        Some(_) if ballots => (
            Shader::XnorConvSubgroup,
            "conv_bits_subgroup",
            "xnor_conv_bits",
            gpu.zeros::<u32>(pixels * shape.out_words(), "conv bits")?,
        ),
        Some(_) => (
            Shader::XnorConv,
            "conv_bits",
            "xnor_conv_bits",
            gpu.zeros::<u32>(pixels * shape.out_words(), "conv bits")?,
        ),
    };
    let pipeline = gpu.pipeline(pipeline_key(shape, tile, shader, entry))?;
    let mut buffers = vec![&params, &input.buffer, &weights.buffer, &out.buffer];
    if let Some(th) = thresholds {
        buffers.push(&th.buffer);
    }
    let bind_group = gpu.bind(&pipeline, &buffers);
    let d = Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(tiles),
        label,
    };
    Ok((d, out))
}

fn run(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: Option<&[Threshold]>,
) -> Result<Vec<u32>> {
    shape.validate()?;
    let in_item = shape.input_words_per_item();
    let out_item = shape.out_pixels_per_item()
        * if thresholds.is_some() {
            shape.out_words()
        } else {
            shape.out_c
        };
    if input.len() != shape.batch * in_item {
        return Err(Error::Shape(format!(
            "xnor_conv: {} input words for {shape:?}",
            input.len()
        )));
    }
    let chunk = batch_chunk(
        gpu,
        "xnor_conv",
        shape.batch,
        &[("input", in_item * 4), ("output", out_item * 4)],
    )?;
    let w = gpu.upload(weights, "conv weights")?;
    let th = thresholds
        .map(|t| gpu.upload(t, "thresholds"))
        .transpose()?;
    over_chunks(shape.batch, chunk, |range| {
        let part = ConvShape {
            batch: range.len(),
            ..*shape
        };
        let x = gpu.upload(
            &input[range.start * in_item..range.end * in_item],
            "conv input",
        )?;
        let (d, out) = encode(gpu, &part, &x, &w, th.as_ref())?;
        gpu.run(&[d])?;
        gpu.read(&out)
    })
}

/// Dot products on the device, host in and out.
pub fn run_dot(gpu: &Gpu, shape: &ConvShape, input: &[u32], weights: &[u32]) -> Result<Vec<i32>> {
    Ok(bytemuck::cast_vec(run(gpu, shape, input, weights, None)?))
}

/// Fused conv + threshold on the device, host in and out.
pub fn run_bits(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: &[Threshold],
) -> Result<Vec<u32>> {
    if thresholds.len() != shape.out_c {
        return Err(Error::Shape(format!(
            "{} thresholds for {} channels",
            thresholds.len(),
            shape.out_c
        )));
    }
    run(gpu, shape, input, weights, Some(thresholds))
}
