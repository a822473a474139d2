//! The scalar CPU extractor, built only from the ops' `reference*` functions (`crate::ops`): the
//! oracle of the WGSL runner and a fallback where no adapter exists.

use super::{ExtractorFile, Features, LayerData, LayerKind, Output, Thresholds};
use crate::error::{Error, Result};
use crate::ops::{
    ConvShape, DenseShape, PoolShape, conv, dense, first_conv, pool, real_epilogue, threshold,
};

/// A layer's input.
pub enum LayerInput<'a> {
    /// Real images, NHWC f32 (first layer).
    Image(&'a [f32]),
    /// Packed signs, NHWC.
    Bits(&'a [u32]),
}

/// Pre-activations of a layer (after pooling, before the threshold).
#[derive(Clone, Debug, PartialEq)]
pub enum Preact {
    /// Real sums of the first layer.
    Float(Vec<f32>),
    /// Integer dots with the dense `dot_offset` already removed.
    Int(Vec<i32>),
}

pub(crate) fn conv_shape(l: &LayerData, batch: usize) -> ConvShape {
    let s = &l.spec;
    ConvShape {
        batch,
        in_h: s.in_shape[0],
        in_w: s.in_shape[1],
        in_c: s.in_shape[2],
        out_c: s.out_channels(),
        kernel_h: s.kernel,
        kernel_w: s.kernel,
        stride: s.stride,
        pad: s.pad,
        padding: s.padding,
    }
}

pub(crate) fn pool_shape(l: &LayerData, batch: usize) -> Option<PoolShape> {
    let (h, w) = l.spec.conv_out();
    l.spec.pool.map(|p| PoolShape {
        batch,
        in_h: h,
        in_w: w,
        channels: l.spec.out_channels(),
        kernel: p.kernel,
        stride: p.stride,
    })
}

fn shape_err(l: &LayerData, what: &str) -> Error {
    Error::Shape(format!("layer '{}': {what}", l.spec.name))
}

/// One layer: pre-activations (after pooling, before the threshold). Integer dots of dense
/// layers keep the `dot_offset` (they compare against the stored thresholds).
fn raw_preact(l: &LayerData, input: LayerInput, batch: usize) -> Result<Preact> {
    let s = &l.spec;
    Ok(match (s.kind, input) {
        (LayerKind::FirstConv, LayerInput::Image(x)) => {
            let shape = conv_shape(l, batch);
            if x.len() != batch * s.in_shape.iter().product::<usize>() {
                return Err(shape_err(l, "image size"));
            }
            let sums = first_conv::reference_sum(&shape, x, &l.weights);
            Preact::Float(match pool_shape(l, batch) {
                Some(p) => pool::reference_f32(&p, &sums),
                None => sums,
            })
        }
        (LayerKind::XnorConv, LayerInput::Bits(x)) => {
            let shape = conv_shape(l, batch);
            if x.len() != batch * shape.input_words_per_item() {
                return Err(shape_err(l, "input size"));
            }
            let dots = conv::reference_dot(&shape, x, &l.weights);
            Preact::Int(match pool_shape(l, batch) {
                Some(p) => pool::reference_i32(&p, &dots),
                None => dots,
            })
        }
        (LayerKind::XnorDense, LayerInput::Bits(x)) => {
            let shape = DenseShape {
                batch,
                in_features: s.in_features,
                out_features: s.out_channels(),
            };
            if x.len() != batch * shape.in_words() {
                return Err(shape_err(l, "input size"));
            }
            Preact::Int(dense::reference_dot(&shape, x, &l.weights))
        }
        _ => return Err(shape_err(l, "input kind does not match the layer")),
    })
}

/// One layer's pre-activations with the dense `dot_offset` removed (the values burn computes).
pub fn layer_preact(l: &LayerData, input: LayerInput, batch: usize) -> Result<Preact> {
    Ok(match raw_preact(l, input, batch)? {
        Preact::Int(v) if l.spec.dot_offset != 0 => {
            Preact::Int(v.into_iter().map(|d| d - l.spec.dot_offset).collect())
        }
        p => p,
    })
}

/// What one layer outputs: its packed signs and, for a real layer, its real output `z`.
pub struct LayerOutput {
    /// Packed signs, NHWC.
    pub bits: Vec<u32>,
    /// A real layer's output (`[batch][H'][W'][C]` f32), `None` for plain layers.
    pub real: Option<Vec<f32>>,
}

/// One layer to packed signs (and a real layer's real output). `shortcut` is the previous layer's
/// real output, read when the layer has a shortcut.
pub fn layer_output(
    l: &LayerData,
    input: LayerInput,
    shortcut: Option<&[f32]>,
    batch: usize,
) -> Result<LayerOutput> {
    let pre = raw_preact(l, input, batch)?;
    if let Some(channels) = &l.real {
        let z = real_output(l, pre, shortcut, channels, batch)?;
        let Thresholds::Float(t) = &l.thresholds else {
            return Err(shape_err(l, "threshold type"));
        };
        return Ok(LayerOutput {
            bits: threshold::reference_f32(&z, t),
            real: Some(z),
        });
    }
    let bits = match (pre, &l.thresholds) {
        (Preact::Float(v), Thresholds::Float(t)) => threshold::reference_f32(&v, t),
        (Preact::Int(v), Thresholds::Int(t)) => threshold::reference(&v, t),
        _ => return Err(shape_err(l, "threshold type")),
    };
    Ok(LayerOutput { bits, real: None })
}

/// A real layer's epilogue over its pooled pre-activations.
fn real_output(
    l: &LayerData,
    pre: Preact,
    shortcut: Option<&[f32]>,
    channels: &[real_epilogue::RealChannel],
    batch: usize,
) -> Result<Vec<f32>> {
    let pre = match pre {
        Preact::Float(v) => v,
        Preact::Int(v) => v.into_iter().map(|d| d as f32).collect(),
    };
    let shape = l.spec.epilogue_shape(batch);
    let shortcut = match shape.shortcut {
        Some(_) => Some(shortcut.ok_or_else(|| shape_err(l, "no real input for the shortcut"))?),
        None => None,
    };
    let projection = l.projection.as_ref().map(|p| real_epilogue::ProjectionRef {
        weight: &p.weight,
        bias: &p.bias,
    });
    real_epilogue::reference(&shape, &pre, channels, shortcut, projection)
}

/// One plain layer to packed signs (a real layer without a shortcut too).
pub fn layer_bits(l: &LayerData, input: LayerInput, batch: usize) -> Result<Vec<u32>> {
    Ok(layer_output(l, input, None, batch)?.bits)
}

/// The whole extractor on the CPU: `images` NHWC f32, `batch` of them. `Output::Preact` of a real
/// layer is its real output `z`.
pub fn run(file: &ExtractorFile, images: &[f32], batch: usize, output: Output) -> Result<Features> {
    let n = file.layers.len();
    let mut prev = LayerOutput {
        bits: Vec::new(),
        real: None,
    };
    for (i, l) in file.layers.iter().enumerate() {
        let input = if i == 0 {
            LayerInput::Image(images)
        } else {
            LayerInput::Bits(&prev.bits)
        };
        if i + 1 == n && output == Output::Preact && l.real.is_none() {
            return Ok(match layer_preact(l, input, batch)? {
                Preact::Float(v) => Features::Float(v),
                Preact::Int(v) => Features::Int(v),
            });
        }
        prev = layer_output(l, input, prev.real.as_deref(), batch)?;
        if i + 1 == n && output == Output::Preact {
            return Ok(Features::Float(prev.real.unwrap_or_default()));
        }
    }
    Ok(finish(file, prev.bits, output))
}

/// Packed bits at several layers (indices `taps`, any order) on the CPU; one
/// `[batch][out_words]` vector per tap. The scalar twin of [`Extractor::run_taps`].
///
/// [`Extractor::run_taps`]: super::Extractor::run_taps
pub fn run_taps(
    file: &ExtractorFile,
    images: &[f32],
    batch: usize,
    taps: &[usize],
) -> Result<Vec<Vec<u32>>> {
    let last = taps.iter().copied().max().unwrap_or(0);
    if last >= file.layers.len() {
        return Err(Error::Shape(format!(
            "tap {last}: the extractor has {} layers",
            file.layers.len()
        )));
    }
    let mut outs: Vec<Vec<u32>> = Vec::with_capacity(last + 1);
    let mut real: Option<Vec<f32>> = None;
    for l in file.layers.iter().take(last + 1) {
        let input = match outs.last() {
            None => LayerInput::Image(images),
            Some(b) => LayerInput::Bits(b),
        };
        let out = layer_output(l, input, real.as_deref(), batch)?;
        real = out.real;
        outs.push(out.bits);
    }
    Ok(taps.iter().map(|&t| outs[t].clone()).collect())
}

/// Packed bits at the cut to the requested output (bits or ±1 floats).
pub(crate) fn finish(file: &ExtractorFile, bits: Vec<u32>, output: Output) -> Features {
    match output {
        Output::Signs => {
            Features::Float(crate::bits::unpack_rows(&bits, file.cut().out_channels()))
        }
        _ => Features::Bits(bits),
    }
}
