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
pub struct Extractor {
    gpu: Gpu,
    file: ExtractorFile,
    layers: Vec<GpuLayer>,
    /// Images per dispatch chain (the largest intermediate tensor fits one storage binding).
    max_batch: usize,
}

impl Extractor {
    /// Uploads the file's tensors, checks the device's limits and compiles every pipeline (a
    /// warm-up batch of one blank image). A graph the device cannot run is an [`Error::Limits`].
    pub fn new(gpu: &Gpu, file: ExtractorFile) -> Result<Self> {
        pollster::block_on(Extractor::new_async(gpu, file))
    }

    /// [`Extractor::new`] without blocking (the warm-up batch is awaited).
    pub async fn new_async(gpu: &Gpu, file: ExtractorFile) -> Result<Self> {
        let gpu = gpu.clone();
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
        ex.run_async(&blank, Output::Bits).await?;
        Ok(ex)
    }

    /// The extractor file this runs.
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
    /// device. Blocks until they are read back; [`run_async`](Self::run_async) does not.
    pub fn run(&self, images: &[f32], output: Output) -> Result<Features> {
        pollster::block_on(self.run_async(images, output))
    }

    /// [`Extractor::run`] as a future: submission, then the read-back is awaited.
    pub async fn run_async(&self, images: &[f32], output: Output) -> Result<Features> {
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
            let part = self
                .run_chunk(&images[start * len..end * len], end - start, output)
                .await?;
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

    /// Packed bits at several layers in one pass: `taps` are layer indices (ascending or not),
    /// the result holds one `[batch][out_words]` vector per tap, in the order of `taps`. This is
    /// how `bnn transfer` gets the features of several cut points for the price of one run.
    pub fn run_taps(&self, images: &[f32], taps: &[usize]) -> Result<Vec<Vec<u32>>> {
        pollster::block_on(self.run_taps_async(images, taps))
    }

    /// [`Extractor::run_taps`] as a future.
    pub async fn run_taps_async(&self, images: &[f32], taps: &[usize]) -> Result<Vec<Vec<u32>>> {
        let len = self.image_len();
        if images.is_empty() || !images.len().is_multiple_of(len) {
            return Err(Error::Shape(format!(
                "{} input values are not a whole number of {len}-value images",
                images.len()
            )));
        }
        if let Some(&t) = taps.iter().find(|&&t| t >= self.layers.len()) {
            return Err(Error::Shape(format!(
                "tap {t}: the extractor has {} layers",
                self.layers.len()
            )));
        }
        let batch = images.len() / len;
        let mut out = vec![Vec::new(); taps.len()];
        let mut start = 0;
        while start < batch {
            let end = (start + self.max_batch).min(batch);
            let (outs, _) = self
                .chain(&images[start * len..end * len], end - start, false, taps)
                .await?;
            for (o, part) in out.iter_mut().zip(outs) {
                o.extend(part);
            }
            start = end;
        }
        Ok(out)
    }

    async fn run_chunk(&self, images: &[f32], batch: usize, output: Output) -> Result<Features> {
        let last = self.layers.len() - 1;
        let (mut outs, preact) = self
            .chain(images, batch, output == Output::Preact, &[last])
            .await?;
        if let Some(p) = preact {
            return Ok(p);
        }
        Ok(super::reference::finish(&self.file, outs.remove(0), output))
    }

    /// One dispatch chain over a chunk that fits the device: the packed bits of each tapped layer,
    /// or the last layer's pre-activations when `preact_last`.
    async fn chain(
        &self,
        images: &[f32],
        batch: usize,
        preact_last: bool,
        taps: &[usize],
    ) -> Result<(Vec<Vec<u32>>, Option<Features>)> {
        let gpu = &self.gpu;
        let n = self.layers.len();
        let mut dispatches: Vec<Dispatch> = Vec::new();
        let image = gpu.upload(images, "images")?;
        // Each layer's packed output; the last one is the next layer's input.
        let mut layer_out: Vec<Storage<u32>> = Vec::with_capacity(n);
        let mut keep: Vec<Storage<u32>> = Vec::new();
        for (i, (l, g)) in self.file.layers.iter().zip(&self.layers).enumerate() {
            let last = i + 1 == n;
            let preact = last && preact_last;
            let s = &l.spec;
            // Pre-activations (after pooling), as raw 32-bit words, and whether they are f32.
            let values: Storage<u32> = match (s.kind, &g.thresholds) {
                (LayerKind::FirstConv, GpuThresholds::Float(t)) => {
                    let shape = conv_shape(l, batch);
                    if s.pool.is_none() && !preact {
                        let (d, out) = first_conv::encode_bits(gpu, &shape, &image, &g.weights, t)?;
                        dispatches.extend(d);
                        layer_out.push(out);
                        continue;
                    }
                    let (d, sums) = first_conv::encode(gpu, &shape, &image, &g.weights)?;
                    dispatches.push(d);
                    Storage::reinterpret(sums)
                }
                (LayerKind::XnorConv, GpuThresholds::Int(t)) => {
                    let input = layer_out
                        .last()
                        .ok_or_else(|| Error::Shape("no input".into()))?;
                    let shape = conv_shape(l, batch);
                    if s.pool.is_none() && !preact {
                        let (d, out) = xnor_conv::encode(gpu, &shape, input, &g.weights, Some(t))?;
                        dispatches.push(d);
                        layer_out.push(out);
                        continue;
                    }
                    let (d, dots) = xnor_conv::encode(gpu, &shape, input, &g.weights, None)?;
                    dispatches.push(d);
                    dots
                }
                (LayerKind::XnorDense, GpuThresholds::Int(t)) => {
                    let input = layer_out
                        .last()
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
                        layer_out.push(out);
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
                gpu.submit_async(&dispatches).await?;
                let raw = gpu.read_async(&values).await?;
                return Ok((
                    vec![],
                    Some(if float {
                        Features::Float(bytemuck::cast_vec(raw))
                    } else {
                        let off = s.dot_offset;
                        Features::Int(raw.into_iter().map(|w| w as i32 - off).collect())
                    }),
                ));
            }
            let (d, out) = match &g.thresholds {
                GpuThresholds::Int(t) => threshold::encode(gpu, &values, t)?,
                GpuThresholds::Float(t) => threshold::encode_f32(gpu, &values, t)?,
            };
            dispatches.push(d);
            keep.push(values);
            layer_out.push(out);
        }
        gpu.submit_async(&dispatches).await?;
        let mut outs = Vec::with_capacity(taps.len());
        for &t in taps {
            let o = &layer_out[t];
            debug_assert_eq!(o.len, batch * self.file.layers[t].spec.out_words());
            outs.push(gpu.read_async(o).await?);
        }
        Ok((outs, None))
    }
}
