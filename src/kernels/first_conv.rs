//! The first layer (`shaders/first_conv.wgsl`): the real-valued image (f32 NHWC) convolved with
//! binary weights (packed OHWI), giving f32 sums, or packed signs through a float threshold
//! (`threshold.wgsl`) in a second dispatch.
//! Zero padding only (the image is real-valued, so zeros are the natural pad).

use super::xnor_conv::ConvShape;
use super::{FloatThreshold, Shader, WORKGROUP, dispatch, threshold};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};

fn key(shape: &ConvShape, entry: &'static str) -> PipelineKey {
    PipelineKey::new(
        Shader::FirstConv,
        entry,
        &[
            ("WG", WORKGROUP as f64),
            ("WORDS", shape.in_words() as f64),
            ("KH", shape.kernel_h as f64),
            ("KW", shape.kernel_w as f64),
        ],
    )
}

/// Encodes the first layer: f32 sums `[N][OH][OW][O]`.
pub fn encode(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<f32>,
    weights: &Storage<u32>,
) -> Result<(Dispatch, Storage<f32>)> {
    shape.validate()?;
    if input.len != shape.batch * shape.in_h * shape.in_w * shape.in_c
        || weights.len != shape.weight_words()
    {
        return Err(Error::Shape(format!(
            "first_conv: {} input values and {} weight words for {shape:?}",
            input.len, weights.len
        )));
    }
    // One output per invocation: the ky, kx and c loops (each with its exiting pass).
    let (kh, kw, c) = (
        shape.kernel_h as u64,
        shape.kernel_w as u64,
        shape.in_c as u64,
    );
    super::check_loop_budget(
        &gpu.adapter_limits(),
        format_args!("first_conv over {shape:?}"),
        kh + 1 + kh * (kw + 1) + kh * kw * (c + 1),
    )?;
    let out = gpu.zeros::<f32>(
        shape.batch * shape.out_pixels_per_item() * shape.out_c,
        "first sums",
    )?;
    let params = gpu.uniform(&shape.params());
    let p = gpu.pipeline(key(shape, "first_dot"))?;
    Ok((
        dispatch(
            gpu,
            p,
            &[&params, &input.buffer, &weights.buffer, &out.buffer],
            out.len,
            "first_conv",
        ),
        out,
    ))
}

/// Encodes the first layer followed by its float threshold: packed signs `[N][OH][OW][ceil(O/32)]`.
pub fn encode_bits(
    gpu: &Gpu,
    shape: &ConvShape,
    input: &Storage<f32>,
    weights: &Storage<u32>,
    thresholds: &Storage<FloatThreshold>,
) -> Result<([Dispatch; 2], Storage<u32>)> {
    let (conv, sums) = encode(gpu, shape, input, weights)?;
    let sums = Storage::<u32>::reinterpret(sums);
    let (th, bits) = threshold::encode_f32(gpu, &sums, thresholds)?;
    Ok(([conv, th], bits))
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
    let w = gpu.upload(weights, "first weights")?;
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
                gpu.run(&d)?;
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

/// Scalar reference, summing over ky, kx, c in order as the shader does.
pub fn reference_sum(shape: &ConvShape, input: &[f32], weights: &[u32]) -> Vec<f32> {
    let (oh, ow, wpp) = (shape.out_h(), shape.out_w(), shape.in_words());
    let mut out = Vec::with_capacity(shape.batch * oh * ow * shape.out_c);
    for n in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..shape.out_c {
                    let mut sum = 0.0f32;
                    for ky in 0..shape.kernel_h {
                        for kx in 0..shape.kernel_w {
                            let iy = (oy * shape.stride + ky) as isize - shape.pad as isize;
                            let ix = (ox * shape.stride + kx) as isize - shape.pad as isize;
                            if iy < 0
                                || ix < 0
                                || iy as usize >= shape.in_h
                                || ix as usize >= shape.in_w
                            {
                                continue;
                            }
                            let a = ((n * shape.in_h + iy as usize) * shape.in_w + ix as usize)
                                * shape.in_c;
                            let w = ((o * shape.kernel_h + ky) * shape.kernel_w + kx) * wpp;
                            for c in 0..shape.in_c {
                                let x = input[a + c];
                                let negative = (weights[w + c / 32] >> (c % 32)) & 1 == 1;
                                sum += if negative { -x } else { x };
                            }
                        }
                    }
                    out.push(sum);
                }
            }
        }
    }
    out
}
