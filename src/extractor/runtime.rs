//! The WGSL runner: weights and thresholds uploaded once, pipelines compiled once (a warm-up batch
//! at construction), then each batch of images runs as one chain of dispatches in one compute pass.

use super::reference::{conv_shape, pool_shape};
use super::{ExtractorFile, Features, LayerKind, Output, Thresholds};
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Storage};
use crate::kernels::pool::{self, PoolValues};
use crate::kernels::xnor_dense::{self, DenseShape};
use crate::kernels::{FloatThreshold, Threshold, first_conv, threshold, xnor_conv};

enum GpuThresholds {
    Int(Storage<Threshold>),
    Float(Storage<FloatThreshold>),
}

struct GpuLayer {
    weights: Storage<u32>,
    thresholds: GpuThresholds,
}

/// A loaded extractor on one device.
pub struct Extractor<'g> {
    gpu: &'g Gpu,
    file: ExtractorFile,
    layers: Vec<GpuLayer>,
    /// Images per dispatch chain (the largest intermediate tensor fits one storage binding).
    max_batch: usize,
}

impl<'g> Extractor<'g> {
    /// Uploads the file's tensors, checks the device's limits and compiles every pipeline (a
    /// warm-up batch of one blank image). A graph the device cannot run is an [`Error::Limits`].
    pub fn new(gpu: &'g Gpu, file: ExtractorFile) -> Result<Self> {
        let max = gpu.max_binding();
        let mut per_image = 0usize;
        let i = &file.graph.input;
        per_image = per_image.max(i.size * i.size * i.channels * 4);
        let mut layers = Vec::new();
        for l in &file.layers {
            let s = &l.spec;
            let (h, w) = s.conv_out();
            // Largest buffer of the layer per image: the unpooled pre-activations.
            let pre = h * w * s.out_channels() * 4;
            per_image = per_image.max(pre).max(s.out_words() * 4);
            let wbytes = (l.weights.len() * 4) as u64;
            if wbytes > max {
                return Err(Error::Limits(format!(
                    "layer '{}' has {wbytes} bytes of weights; the device binds at most {max}",
                    s.name
                )));
            }
            let weights = gpu.upload(&l.weights, "extractor weights")?;
            let thresholds = match &l.thresholds {
                Thresholds::Int(t) => GpuThresholds::Int(gpu.upload(t, "thresholds")?),
                Thresholds::Float(t) => GpuThresholds::Float(gpu.upload(t, "thresholds")?),
            };
            layers.push(GpuLayer {
                weights,
                thresholds,
            });
        }
        let max_batch = (max / per_image.max(1) as u64) as usize;
        if max_batch == 0 {
            return Err(Error::Limits(format!(
                "one image needs a {per_image}-byte storage binding; the device allows {max}"
            )));
        }
        let ex = Extractor {
            gpu,
            file,
            layers,
            max_batch: max_batch.min(1 << 16),
        };
        let blank = vec![0f32; ex.image_len()];
        ex.run(&blank, Output::Bits)?;
        Ok(ex)
    }

    pub fn file(&self) -> &ExtractorFile {
        &self.file
    }

    /// f32 values per input image (size × size × channels, NHWC).
    pub fn image_len(&self) -> usize {
        let i = &self.file.graph.input;
        i.size * i.size * i.channels
    }

    /// Images per dispatch chain on this device.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Features of `images` (NHWC f32, a whole number of images), split into chunks that fit the
    /// device.
    pub fn run(&self, images: &[f32], output: Output) -> Result<Features> {
        let len = self.image_len();
        if images.is_empty() || !images.len().is_multiple_of(len) {
            return Err(Error::Shape(format!(
                "{} input values are not a whole number of {len}-value images",
                images.len()
            )));
        }
        let batch = images.len() / len;
        let mut out: Option<Features> = None;
        let mut start = 0;
        while start < batch {
            let end = (start + self.max_batch).min(batch);
            let part = self.run_chunk(&images[start * len..end * len], end - start, output)?;
            out = Some(match (out, part) {
                (None, p) => p,
                (Some(Features::Bits(mut a)), Features::Bits(b)) => {
                    a.extend(b);
                    Features::Bits(a)
                }
                (Some(Features::Int(mut a)), Features::Int(b)) => {
                    a.extend(b);
                    Features::Int(a)
                }
                (Some(Features::Float(mut a)), Features::Float(b)) => {
                    a.extend(b);
                    Features::Float(a)
                }
                _ => unreachable!("one output kind per run"),
            });
            start = end;
        }
        Ok(out.expect("batch > 0"))
    }

    fn run_chunk(&self, images: &[f32], batch: usize, output: Output) -> Result<Features> {
        let gpu = self.gpu;
        let n = self.layers.len();
        let mut dispatches: Vec<Dispatch> = Vec::new();
        let image = gpu.upload(images, "images")?;
        let mut bits: Option<Storage<u32>> = None;
        let mut keep: Vec<Storage<u32>> = Vec::new();
        for (i, (l, g)) in self.file.layers.iter().zip(&self.layers).enumerate() {
            let last = i + 1 == n;
            let preact = last && output == Output::Preact;
            let s = &l.spec;
            // Pre-activations (after pooling), as raw 32-bit words, and whether they are f32.
            let values: Storage<u32> = match (s.kind, &g.thresholds) {
                (LayerKind::FirstConv, GpuThresholds::Float(t)) => {
                    let shape = conv_shape(l, batch);
                    if s.pool.is_none() && !preact {
                        let (d, out) = first_conv::encode_bits(gpu, &shape, &image, &g.weights, t)?;
                        dispatches.extend(d);
                        if let Some(old) = bits.replace(out) {
                            keep.push(old);
                        }
                        continue;
                    }
                    let (d, sums) = first_conv::encode(gpu, &shape, &image, &g.weights)?;
                    dispatches.push(d);
                    Storage::reinterpret(sums)
                }
                (LayerKind::XnorConv, GpuThresholds::Int(t)) => {
                    let input = bits
                        .as_ref()
                        .ok_or_else(|| Error::Shape("no input".into()))?;
                    let shape = conv_shape(l, batch);
                    if s.pool.is_none() && !preact {
                        let (d, out) = xnor_conv::encode(gpu, &shape, input, &g.weights, Some(t))?;
                        dispatches.push(d);
                        if let Some(old) = bits.replace(out) {
                            keep.push(old);
                        }
                        continue;
                    }
                    let (d, dots) = xnor_conv::encode(gpu, &shape, input, &g.weights, None)?;
                    dispatches.push(d);
                    dots
                }
                (LayerKind::XnorDense, GpuThresholds::Int(t)) => {
                    let input = bits
                        .as_ref()
                        .ok_or_else(|| Error::Shape("no input".into()))?;
                    let shape = DenseShape {
                        batch,
                        in_features: s.in_features,
                        out_features: s.out_channels(),
                    };
                    let th = (!preact).then_some(t);
                    let (d, out) = xnor_dense::encode(gpu, &shape, input, &g.weights, th)?;
                    dispatches.push(d);
                    if preact {
                        out
                    } else {
                        if let Some(old) = bits.replace(out) {
                            keep.push(old);
                        }
                        continue;
                    }
                }
                _ => {
                    return Err(Error::Shape(format!(
                        "layer '{}': threshold type does not match the layer kind",
                        s.name
                    )));
                }
            };
            let float = s.kind == LayerKind::FirstConv;
            let values = match pool_shape(l, batch) {
                Some(p) => {
                    let kind = if float {
                        PoolValues::F32
                    } else {
                        PoolValues::I32
                    };
                    let (d, pooled) = pool::encode(gpu, &p, kind, &values)?;
                    dispatches.push(d);
                    keep.push(values);
                    pooled
                }
                None => values,
            };
            if preact {
                gpu.run(&dispatches)?;
                let raw = gpu.read(&values)?;
                return Ok(if float {
                    Features::Float(bytemuck::cast_vec(raw))
                } else {
                    let off = s.dot_offset;
                    Features::Int(raw.into_iter().map(|w| w as i32 - off).collect())
                });
            }
            let (d, out) = match &g.thresholds {
                GpuThresholds::Int(t) => threshold::encode(gpu, &values, t)?,
                GpuThresholds::Float(t) => threshold::encode_f32(gpu, &values, t)?,
            };
            dispatches.push(d);
            keep.push(values);
            if let Some(old) = bits.replace(out) {
                keep.push(old);
            }
        }
        gpu.run(&dispatches)?;
        let out = bits.ok_or_else(|| Error::Shape("empty graph".into()))?;
        debug_assert_eq!(out.len, batch * self.file.cut().out_words());
        Ok(super::reference::finish(
            &self.file,
            gpu.read(&out)?,
            output,
        ))
    }
}
