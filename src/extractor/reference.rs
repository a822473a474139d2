//! The scalar CPU extractor, built only from the ops' `reference*` functions (`crate::ops`): the
//! oracle of the WGSL runner and a fallback where no adapter exists. It is a `Backend` of the
//! one lowering (`lowering.rs`): each step runs its op's scalar reference.

use std::borrow::Cow;

use super::lowering::{self, Backend, ConvOut, Node, conv_shape, pool_shape};
use super::{ExtractorFile, Features, LayerData, Output, Thresholds};
use crate::error::{Error, Result};
use crate::ops::{DenseShape, conv, dense, first_conv, pool, real_epilogue, threshold};

/// A layer's input.
#[derive(Debug)]
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

fn shape_err(l: &LayerData, what: &str) -> Error {
    Error::Shape(format!("layer '{}': {what}", l.spec.name))
}

/// What the scalar backend holds between steps.
struct Reference<'a> {
    layers: &'a [LayerData],
    batch: usize,
    /// The next conv's input: the image, then packed signs.
    input: Cow<'a, [u32]>,
    image: Option<&'a [f32]>,
    /// Pooled pre-activations left for a real epilogue, or the result of a preact step.
    values: Option<Preact>,
    /// The previous layer's real output (real layers only).
    real: Option<Cow<'a, [f32]>>,
    /// Packed signs of each tapped layer.
    taps: Vec<(usize, Vec<u32>)>,
}

impl<'a> Reference<'a> {
    fn new(layers: &'a [LayerData], input: LayerInput<'a>, batch: usize) -> Self {
        let (image, bits) = match input {
            LayerInput::Image(x) => (Some(x), Cow::Borrowed(&[][..])),
            LayerInput::Bits(b) => (None, Cow::Borrowed(b)),
        };
        Reference {
            layers,
            batch,
            input: bits,
            image,
            values: None,
            real: None,
            taps: Vec::new(),
        }
    }

    fn layer(&self, i: usize) -> &'a LayerData {
        &self.layers[i]
    }

    /// Packed signs of binary input, an error where the layer reads the image.
    fn bits(&self, l: &LayerData) -> Result<&[u32]> {
        match self.image {
            None => Ok(&self.input),
            Some(_) => Err(shape_err(l, "input kind does not match the layer")),
        }
    }

    /// Thresholds (or keeps, as `out` says) a layer's pooled pre-activations. Integer dots of
    /// dense layers keep the `dot_offset` until here (they compare against the stored
    /// thresholds).
    fn emit(&mut self, l: &LayerData, pre: Preact, out: ConvOut) -> Result<()> {
        match out {
            ConvOut::Signs => {
                let bits = match (pre, &l.thresholds) {
                    (Preact::Float(v), Thresholds::Float(t)) => threshold::reference_f32(&v, t),
                    (Preact::Int(v), Thresholds::Int(t)) => threshold::reference(&v, t),
                    _ => return Err(shape_err(l, "threshold type")),
                };
                self.image = None;
                self.input = Cow::Owned(bits);
                self.real = None;
            }
            ConvOut::Preact => {
                self.values = Some(match pre {
                    Preact::Int(v) if l.spec.dot_offset != 0 => {
                        Preact::Int(v.into_iter().map(|d| d - l.spec.dot_offset).collect())
                    }
                    p => p,
                })
            }
            ConvOut::Values => self.values = Some(pre),
        }
        Ok(())
    }
}

impl Backend for Reference<'_> {
    fn first_conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let (l, batch) = (self.layer(i), self.batch);
        let x = self
            .image
            .ok_or_else(|| shape_err(l, "input kind does not match the layer"))?;
        let shape = conv_shape(l, batch);
        if x.len() != batch * l.spec.in_shape.iter().product::<usize>() {
            return Err(shape_err(l, "image size"));
        }
        let sums = first_conv::reference_sum(&shape, x, &l.weights);
        let pre = match pool_shape(l, batch) {
            Some(p) => pool::reference_f32(&p, &sums),
            None => sums,
        };
        self.emit(l, Preact::Float(pre), out)
    }

    fn xnor_conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let (l, batch) = (self.layer(i), self.batch);
        let x = self.bits(l)?;
        let shape = conv_shape(l, batch);
        if x.len() != batch * shape.input_words_per_item() {
            return Err(shape_err(l, "input size"));
        }
        let dots = conv::reference_dot(&shape, x, &l.weights);
        let pre = match pool_shape(l, batch) {
            Some(p) => pool::reference_i32(&p, &dots),
            None => dots,
        };
        self.emit(l, Preact::Int(pre), out)
    }

    fn xnor_dense(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let l = self.layer(i);
        let x = self.bits(l)?;
        let shape = DenseShape {
            batch: self.batch,
            in_features: l.spec.in_features,
            out_features: l.spec.out_channels(),
        };
        if x.len() != self.batch * shape.in_words() {
            return Err(shape_err(l, "input size"));
        }
        let dots = dense::reference_dot(&shape, x, &l.weights);
        self.emit(l, Preact::Int(dots), out)
    }

    fn real_epilogue(&mut self, i: usize, _: bool, signs: bool) -> Result<()> {
        let l = self.layer(i);
        let (Some(channels), Some(pre)) = (&l.real, self.values.take()) else {
            return Err(shape_err(l, "no values for the real epilogue"));
        };
        let z = real_output(l, pre, self.real.as_deref(), channels, self.batch)?;
        if !signs {
            self.values = Some(Preact::Float(z));
            return Ok(());
        }
        let Thresholds::Float(t) = &l.thresholds else {
            return Err(shape_err(l, "threshold type"));
        };
        self.image = None;
        self.input = Cow::Owned(threshold::reference_f32(&z, t));
        self.real = Some(Cow::Owned(z));
        Ok(())
    }

    fn tap(&mut self, i: usize) -> Result<()> {
        self.taps.push((i, self.input.to_vec()));
        Ok(())
    }
}

/// One layer's pre-activations with the dense `dot_offset` removed (the values burn computes);
/// a real layer's are its conv's, before the epilogue.
pub fn layer_preact(l: &LayerData, input: LayerInput, batch: usize) -> Result<Preact> {
    let mut r = Reference::new(std::slice::from_ref(l), input, batch);
    lowering::execute(
        &[lowering::conv_step(0, l.spec.kind, ConvOut::Preact)],
        &mut r,
    )?;
    Ok(r.values.expect("a preact step leaves values"))
}

/// What one layer outputs: its packed signs and, for a real layer, its real output `z`.
#[derive(Debug)]
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
    let mut r = Reference::new(std::slice::from_ref(l), input, batch);
    r.real = shortcut.map(Cow::Borrowed);
    lowering::execute(&lowering::lower_nodes(&[Node::of(l)], &[], false), &mut r)?;
    let real = match l.real {
        Some(_) => r.real.map(Cow::into_owned),
        None => None,
    };
    Ok(LayerOutput {
        bits: r.input.into_owned(),
        real,
    })
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
    let last = file.layers.len().saturating_sub(1);
    let mut r = Reference::new(&file.layers, LayerInput::Image(images), batch);
    let steps = lowering::lower(file, &[last], output);
    lowering::execute(&steps, &mut r)?;
    if output == Output::Preact {
        return Ok(match r.values {
            Some(Preact::Int(v)) => Features::Int(v),
            Some(Preact::Float(v)) => Features::Float(v),
            None => Features::Float(Vec::new()),
        });
    }
    let bits = r.taps.pop().map(|(_, b)| b).unwrap_or_default();
    Ok(finish(file, bits, output))
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
    let mut r = Reference::new(&file.layers, LayerInput::Image(images), batch);
    let steps = lowering::lower(file, taps, Output::Bits);
    lowering::execute(&steps, &mut r)?;
    Ok(taps
        .iter()
        .map(|t| {
            let (_, b) = r
                .taps
                .iter()
                .find(|(i, _)| i == t)
                .expect("every tap lowered");
            b.clone()
        })
        .collect())
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
