//! The float baseline (`shaders/float_conv.wgsl`): conv2d as a tiled implicit GEMM, and the dense
//! layer as its 1×1 case. f32 NHWC input, f32 OHWI weights, zero padding.

use super::tuning::{ConvTile, Tuning};
use super::xnor_conv::{ConvShape, Padding};
use super::{Shader, batch_chunk, over_chunks};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};

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
    shape.validate()?;
    tile.validate_float(gpu)?;
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    if input.len != shape.batch * shape.in_h * shape.in_w * shape.in_c
        || weights.len != shape.out_c * k
    {
        return Err(Error::Shape(format!(
            "float_conv: {} input values and {} weights for {shape:?}",
            input.len, weights.len
        )));
    }
    if shape.padding != Padding::Zero {
        return Err(Error::Shape("float_conv supports zero padding only".into()));
    }
    let m = shape.batch * shape.out_pixels_per_item();
    let out = gpu.zeros::<f32>(m * shape.out_c, "float conv out")?;
    let params = gpu.uniform(&shape.params());
    let pipeline = gpu.pipeline(PipelineKey::new(
        Shader::FloatConv,
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
        &[&params, &input.buffer, &weights.buffer, &out.buffer],
    );
    let tiles = (m.div_ceil(tile.tile_m()) * shape.out_c.div_ceil(tile.tile_n())) as u32;
    let d = Dispatch {
        pipeline,
        bind_group,
        workgroups: gpu.grid(tiles),
        label: "float_conv",
    };
    Ok((d, out))
}

/// On the device, host in and out, the batch split to fit the binding limit.
pub fn run(gpu: &Gpu, shape: &ConvShape, input: &[f32], weights: &[f32]) -> Result<Vec<f32>> {
    shape.validate()?;
    let in_item = shape.in_h * shape.in_w * shape.in_c;
    if input.len() != shape.batch * in_item {
        return Err(Error::Shape(format!(
            "float_conv: {} input values for {shape:?}",
            input.len()
        )));
    }
    let out_item = shape.out_pixels_per_item() * shape.out_c;
    let chunk = batch_chunk(gpu, shape.batch, &[in_item * 4, out_item * 4])?;
    let w = gpu.upload(weights, "float weights")?;
    over_chunks(shape.batch, chunk, |r| {
        let part = ConvShape {
            batch: r.len(),
            ..*shape
        };
        let x = gpu.upload(&input[r.start * in_item..r.end * in_item], "float input")?;
        let (d, out) = encode(gpu, &part, &x, &w)?;
        gpu.run(&[d])?;
        gpu.read(&out)
    })
}

/// The dense layer `[B][in] × [out][in]ᵀ` as a 1×1 conv.
pub fn dense_shape(batch: usize, in_features: usize, out_features: usize) -> ConvShape {
    ConvShape {
        batch,
        in_h: 1,
        in_w: 1,
        in_c: in_features,
        out_c: out_features,
        kernel_h: 1,
        kernel_w: 1,
        stride: 1,
        pad: 0,
        padding: Padding::Zero,
    }
}

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
        &dense_shape(batch, in_features, out_features),
        input,
        weights,
    )
}

/// Scalar reference: sums in increasing k = (ky, kx, c) order, as the kernel does.
pub fn reference(shape: &ConvShape, input: &[f32], weights: &[f32]) -> Vec<f32> {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
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
                            let w = o * k + (ky * shape.kernel_w + kx) * shape.in_c;
                            for c in 0..shape.in_c {
                                sum += input[a + c] * weights[w + c];
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
