//! The first layer: the real-valued image (f32 NHWC) convolved with binary weights, giving f32
//! sums, or packed signs through the float threshold fused into the same kernel.
//! Zero padding only (the image is real-valued, so zeros are the natural pad).
//!
//! `shaders/first_conv.wgsl` is a direct kernel for few input channels: one invocation computes one
//! output pixel × 32 channels in registers. Binary weights go to the device as one sign word per
//! tap and group of 32 channels ([`FirstWeights::upload_signs`]: one load per tap, where real
//! weights need 32), and each sum is `acc + x` or `acc + (−x)` over the taps in (ky, kx, c) order
//! from +0.0, exactly the reference's: the sums and the fused threshold's bits are bit-identical to
//! [`reference_sum`](crate::ops::first_conv::reference_sum) (tested). (The float twin's first layer
//! runs the tiled `float_conv`: with real weights that is the faster of the two on lavapipe.)

use super::xnor_conv::ConvParams;
use super::{Shader, WORKGROUP};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};
use crate::ops::{ConvShape, FloatThreshold};

/// Output channels per invocation (one packed output word).
const GROUP: usize = 32;

/// The first layer's binary weights on the device in the kernel's layout: one sign word per tap
/// and group of 32 output channels, `[G][KH][KW][C]` u32 with `G = ceil(O/32)`, bit `j` the sign
/// of channel `32g + j` (set = −1; bits past `O` clear).
#[derive(Debug)]
pub struct FirstWeights {
    words: Storage<u32>,
    out_c: usize,
    k: usize,
}

impl FirstWeights {
    /// Uploads packed binary weights (`[O][KH][KW][ceil(C/32)]`, set bit = −1) as sign words.
    pub fn upload_signs(gpu: &Gpu, shape: &ConvShape, packed: &[u32]) -> Result<FirstWeights> {
        if packed.len() != shape.weight_words() {
            return Err(Error::Shape(format!(
                "first_conv: {} weight words for {shape:?}",
                packed.len()
            )));
        }
        let (c, wpp) = (shape.in_c, shape.in_words());
        let taps = shape.kernel_h * shape.kernel_w;
        let k = taps * c;
        let mut words = vec![0u32; shape.out_c.div_ceil(GROUP) * k];
        for o in 0..shape.out_c {
            let (g, j) = (o / GROUP, o % GROUP);
            for t in 0..taps {
                let row = &packed[(o * taps + t) * wpp..(o * taps + t + 1) * wpp];
                for ch in 0..c {
                    if (row[ch / 32] >> (ch % 32)) & 1 == 1 {
                        words[g * k + t * c + ch] |= 1 << j;
                    }
                }
            }
        }
        Ok(FirstWeights {
            words: gpu.upload(&words, "first layer signs")?,
            out_c: shape.out_c,
            k,
        })
    }
}

fn check(gpu: &Gpu, shape: &ConvShape, input: &Storage<f32>, w: &FirstWeights) -> Result<()> {
    shape.validate()?;
    if input.len != shape.batch * shape.in_h * shape.in_w * shape.in_c
        || w.out_c != shape.out_c
        || w.k != shape.kernel_h * shape.kernel_w * shape.in_c
    {
        return Err(Error::Shape(format!(
            "first_conv: {} input values and weights for {} channels × {} taps, for {shape:?}",
            input.len, w.out_c, w.k
        )));
    }
    // One output word per invocation: the ky, kx and c loops (each with its exiting pass), then
    // the 32 (or 8 × 4) output loop passes.
    let (kh, kw, c) = (
        shape.kernel_h as u64,
        shape.kernel_w as u64,
        shape.in_c as u64,
    );
    super::check_loop_budget(
        &gpu.adapter_limits(),
        format_args!("first_conv over {shape:?}"),
        kh + 1 + kh * (kw + 1) + kh * kw * (c + 1) + 41,
    )
}

fn launch(
    gpu: &Gpu,
    shape: &ConvShape,
    entry: &'static str,
    buffers: &[&wgpu::Buffer],
) -> Result<Dispatch> {
    let pipeline = gpu.pipeline(PipelineKey::new(
        Shader::FirstConv,
        entry,
        &[
            ("WG", WORKGROUP as f64),
            ("C", shape.in_c as f64),
            ("KH", shape.kernel_h as f64),
            ("KW", shape.kernel_w as f64),
        ],
    ))?;
    let pixels = shape.batch * shape.out_pixels_per_item();
    let groups = pixels.div_ceil(WORKGROUP as usize) * shape.out_c.div_ceil(GROUP);
    Ok(Dispatch {
        bind_group: gpu.bind(&pipeline, buffers),
        pipeline,
        workgroups: gpu.grid(groups as u32),
        label: entry,
    })
}

/// Encodes the first layer: f32 sums `[N][OH][OW][O]`.
pub fn encode(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<f32>,
    weights: &FirstWeights,
) -> Result<(Dispatch, Storage<f32>)> {
    check(gpu, shape, input, weights)?;
    let out = gpu.zeros::<f32>(
        shape.batch * shape.out_pixels_per_item() * shape.out_c,
        "first sums",
    )?;
    let params = gpu.uniform(&ConvParams::of(shape));
    let d = launch(
        gpu,
        shape,
        "first_sums",
        &[&params, &input.buffer, &weights.words.buffer, &out.buffer],
    )?;
    Ok((d, out))
}

/// Encodes the first layer with its float threshold fused: packed signs
/// `[N][OH][OW][ceil(O/32)]`.
pub fn encode_bits(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<f32>,
    weights: &FirstWeights,
    thresholds: &Storage<FloatThreshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    check(gpu, shape, input, weights)?;
    if thresholds.len != shape.out_c {
        return Err(Error::Shape(format!(
            "first_conv: {} thresholds for {} channels",
            thresholds.len, shape.out_c
        )));
    }
    let out = gpu.zeros::<u32>(
        shape.batch * shape.out_pixels_per_item() * shape.out_c.div_ceil(32),
        "first bits",
    )?;
    let params = gpu.uniform(&ConvParams::of(shape));
    let d = launch(
        gpu,
        shape,
        "first_bits",
        &[
            &params,
            &input.buffer,
            &weights.words.buffer,
            &out.buffer,
            &thresholds.buffer,
        ],
    )?;
    Ok((d, out))
}

fn run(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[f32],
    weights: &[u32],
    th: Option<&[FloatThreshold]>,
) -> Result<Vec<u32>> {
    shape.validate()?;
    let in_item = shape.in_h * shape.in_w * shape.in_c;
    if input.len() != shape.batch * in_item {
        return Err(Error::Shape(format!(
            "first_conv: {} input values for {shape:?}",
            input.len()
        )));
    }
    let out_item = shape.out_pixels_per_item() * shape.out_c;
    let chunk = super::batch_chunk(
        gpu,
        "first_conv",
        shape.batch,
        &[("input", in_item * 4), ("output", out_item * 4)],
    )?;
    let w = FirstWeights::upload_signs(gpu, shape, weights)?;
    let t = th.map(|t| gpu.upload(t, "thresholds")).transpose()?;
    super::over_chunks(shape.batch, chunk, |r| {
        let part = ConvShape {
            batch: r.len(),
            ..*shape
        };
        let x = gpu.upload(&input[r.start * in_item..r.end * in_item], "image")?;
        match &t {
            None => {
                let (d, out) = encode(gpu, &part, &x, &w)?;
                gpu.run(&[d])?;
                Ok(bytemuck::cast_vec(gpu.read(&out)?))
            }
            Some(t) => {
                let (d, out) = encode_bits(gpu, &part, &x, &w, t)?;
                gpu.run(&[d])?;
                gpu.read(&out)
            }
        }
    })
}

/// The first layer's f32 sums (`[N][OH][OW][O]`) on the device, host in and out.
pub fn run_sum(gpu: &Gpu, shape: &ConvShape, input: &[f32], weights: &[u32]) -> Result<Vec<f32>> {
    Ok(bytemuck::cast_vec(run(gpu, shape, input, weights, None)?))
}

/// The first layer straight to packed signs (sums, then the float threshold).
pub fn run_bits(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &[f32],
    weights: &[u32],
    th: &[FloatThreshold],
) -> Result<Vec<u32>> {
    if th.len() != shape.out_c {
        return Err(Error::Shape(format!(
            "{} thresholds for {} channels",
            th.len(),
            shape.out_c
        )));
    }
    run(gpu, shape, input, weights, Some(th))
}
