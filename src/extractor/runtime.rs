//! The WGSL runner: weights, thresholds and pooling masks uploaded once, pipelines compiled once
//! (a warm-up batch at construction), and the whole chain of dispatches recorded once per batch
//! size ([`Plan`]: persistent buffers and bind groups). A batch of images is then one buffer write,
//! one submission (the compute pass and the read-back copies) and one map of the features read.
//!
//! The chain is the lowering's steps (`lowering.rs`) recorded by `Recorder`, this runner's
//! `Backend`. Per layer: the conv with its threshold fused (the first layer: a direct kernel on
//! the signs as ±1.0 weights), then max-pooling on the packed signs (AND/OR per channel,
//! exact: docs/FORMAT.md, Pooling). The pre-activations only exist for `Output::Preact`, and in
//! real layers (Bi-Real blocks): the conv's values → `real_epilogue.wgsl` (max-pool, epilogue; its
//! real output is kept for the next layer's shortcut) → `threshold.wgsl` to packed signs.

use std::collections::HashMap;
use std::sync::Mutex;

use super::lowering::{self, Backend, ConvOut, conv_shape, pool_shape};
use super::{ExtractorFile, Features, LayerData, LayerKind, Output, Thresholds};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, Storage, Timing};
use crate::kernels::first_conv::{self, FirstWeights};
use crate::kernels::{pool, real_epilogue, threshold, xnor_conv, xnor_dense};
use crate::ops::real_epilogue::{ProjectionRef, Window};
use crate::ops::{DenseShape, FloatThreshold, PoolShape, PoolValues, Threshold};

enum GpuThresholds {
    Int(Storage<Threshold>),
    Float(Storage<FloatThreshold>),
}

struct GpuLayer {
    /// Packed weights (XNOR layers; the first layer's are also kept packed).
    weights: Storage<u32>,
    /// The first layer's signs as ±1.0 f32 in the first-layer kernel's layout.
    first_weights: Option<FirstWeights>,
    thresholds: GpuThresholds,
    /// For a pooled layer: per output word, the bits pooled by AND (flip-0 channels); the others
    /// are pooled by OR.
    and_mask: Option<Storage<u32>>,
    /// A real layer's epilogue constants (and its projection's), `real_epilogue::constants`.
    real: Option<Storage<f32>>,
}

/// A loaded extractor on one device.
pub struct Extractor {
    gpu: Gpu,
    file: ExtractorFile,
    layers: Vec<GpuLayer>,
    /// Images per dispatch chain (the largest intermediate tensor fits one storage binding).
    max_batch: usize,
    /// Recorded chains, by batch size and output kind.
    plans: Mutex<Vec<Plan>>,
}

impl std::fmt::Debug for Extractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extractor")
            .field("device", &self.gpu.describe())
            .field("layers", &self.layers.len())
            .field("cut", &self.file.graph.cut)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
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
            let first_weights = match s.kind {
                LayerKind::FirstConv => Some(FirstWeights::upload_signs(
                    &gpu,
                    &conv_shape(l, 1),
                    &l.weights,
                )?),
                _ => None,
            };
            let (thresholds, flip) = match &l.thresholds {
                Thresholds::Int(t) => (
                    GpuThresholds::Int(gpu.upload(t, "thresholds")?),
                    t.iter().map(|t| t.mode == 1).collect::<Vec<_>>(),
                ),
                Thresholds::Float(t) => (
                    GpuThresholds::Float(gpu.upload(t, "thresholds")?),
                    t.iter().map(|t| t.mode == 1).collect(),
                ),
            };
            let and_mask = match (s.pool, &l.real) {
                (Some(_), None) => Some(gpu.upload(&and_mask(&flip), "pooling and-mask")?),
                _ => None,
            };
            let real = match &l.real {
                Some(r) => {
                    let projection = l.projection.as_ref().map(|p| ProjectionRef {
                        weight: &p.weight,
                        bias: &p.bias,
                    });
                    let k = real_epilogue::constants(r, projection);
                    Some(gpu.upload(&k, "real epilogue constants")?)
                }
                None => None,
            };
            layers.push(GpuLayer {
                weights,
                first_weights,
                thresholds,
                and_mask,
                real,
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
            plans: Mutex::new(Vec::new()),
        };
        let blank = vec![0f32; ex.image_len()];
        ex.run_async(&blank, Output::Bits).await?;
        Ok(ex)
    }

    /// The device it runs on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
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

    /// Where the time goes: the GPU time of each dispatch of the recorded chain for `batch` images
    /// (packed output), each timed alone (timestamp queries where the adapter has them, else
    /// synchronized wall time) after one full run has filled every buffer. Returns
    /// `(layer name, kernel, time)` in chain order.
    pub fn profile(&self, batch: usize) -> Result<Vec<(String, &'static str, Timing)>> {
        if batch == 0 || batch > self.max_batch {
            return Err(Error::Shape(format!(
                "profile batch {batch}: 1 to {} on this device",
                self.max_batch
            )));
        }
        let images = vec![0f32; batch * self.image_len()];
        self.run(&images, Output::Bits)?;
        let plan = self.take_plan(batch, false)?;
        let times = plan
            .dispatches
            .iter()
            .zip(&plan.owners)
            .map(|(d, &i)| {
                let t = self.gpu.time(std::slice::from_ref(d))?;
                Ok((self.file.layers[i].spec.name.clone(), d.label, t))
            })
            .collect::<Result<Vec<_>>>();
        self.put_plan(plan);
        times
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

    /// Replays the recorded chain of this batch size over a chunk that fits the device: the packed
    /// bits of each tapped layer, or the last layer's pre-activations when `preact_last`.
    async fn chain(
        &self,
        images: &[f32],
        batch: usize,
        preact_last: bool,
        taps: &[usize],
    ) -> Result<(Vec<Vec<u32>>, Option<Features>)> {
        let mut plan = self.take_plan(batch, preact_last)?;
        let result = plan.replay(&self.gpu, images, taps).await;
        self.put_plan(plan);
        let (outs, preact) = result?;
        let preact = preact.map(|(raw, float)| {
            if float {
                Features::Float(bytemuck::cast_vec(raw))
            } else {
                let off = self.file.layers[self.layers.len() - 1].spec.dot_offset;
                Features::Int(raw.into_iter().map(|w| w as i32 - off).collect())
            }
        });
        Ok((outs, preact))
    }

    /// A recorded chain for `batch` images from the pool, or a new one.
    fn take_plan(&self, batch: usize, preact_last: bool) -> Result<Plan> {
        let mut plans = self.plans.lock().expect("plan pool");
        if let Some(i) = plans
            .iter()
            .position(|p| p.batch == batch && p.preact_last == preact_last)
        {
            return Ok(plans.remove(i));
        }
        drop(plans);
        self.record(batch, preact_last)
    }

    /// Returns a plan to the pool, which keeps the [`KEPT_PLANS`] most recently used.
    fn put_plan(&self, plan: Plan) {
        let mut plans = self.plans.lock().expect("plan pool");
        plans.push(plan);
        if plans.len() > KEPT_PLANS {
            plans.remove(0);
        }
    }

    /// Records the whole chain for `batch` images: every buffer, bind group and dispatch, the
    /// lowering's steps over every layer (each one a tap: a replay reads back the ones asked for).
    fn record(&self, batch: usize, preact_last: bool) -> Result<Plan> {
        let n = self.layers.len();
        let mut rec = Recorder {
            ex: self,
            batch,
            image: self.gpu.zeros::<f32>(batch * self.image_len(), "images")?,
            dispatches: Vec::new(),
            owners: Vec::new(),
            bits: (0..n).map(|_| None).collect(),
            signs: None,
            values: None,
            preact: None,
            real: None,
            keep: Vec::new(),
        };
        let all: Vec<usize> = (0..n).collect();
        let output = if preact_last {
            Output::Preact
        } else {
            Output::Bits
        };
        lowering::execute(&lowering::lower(&self.file, &all, output), &mut rec)?;
        Ok(Plan {
            batch,
            preact_last,
            image: rec.image,
            dispatches: rec.dispatches,
            owners: rec.owners,
            bits: rec.bits,
            preact: rec.preact,
            readback: HashMap::new(),
            _keep: rec.keep,
        })
    }
}

/// The recording of one plan as a [`Backend`] of the lowering: each step adds its dispatches.
struct Recorder<'a> {
    ex: &'a Extractor,
    batch: usize,
    image: Storage<f32>,
    dispatches: Vec<Dispatch>,
    /// The layer index of each dispatch.
    owners: Vec<usize>,
    /// Each tapped layer's packed output.
    bits: Vec<Option<Storage<u32>>>,
    /// The packed signs the next conv reads.
    signs: Option<Storage<u32>>,
    /// A conv's values before pooling (raw 32-bit words) for the real epilogue, and whether f32.
    values: Option<(Storage<u32>, bool)>,
    /// The last layer's pre-activations, and whether f32.
    preact: Option<(Storage<u32>, bool)>,
    /// The previous layer's real output (real layers only).
    real: Option<Storage<f32>>,
    keep: Vec<Storage<u32>>,
}

impl<'a> Recorder<'a> {
    fn push(&mut self, i: usize, d: Dispatch) {
        self.dispatches.push(d);
        self.owners.push(i);
    }

    fn layer(&self, i: usize) -> (&'a LayerData, &'a GpuLayer) {
        (&self.ex.file.layers[i], &self.ex.layers[i])
    }

    /// The packed signs the layer reads.
    fn input(&self, i: usize) -> Result<&Storage<u32>> {
        self.signs.as_ref().ok_or_else(|| {
            Error::Shape(format!(
                "layer '{}' has no input",
                self.ex.file.layers[i].spec.name
            ))
        })
    }

    /// A binary layer's thresholded signs (before pooling) become its output: AND/OR pooled on
    /// the packed signs when it pools (docs/FORMAT.md, Pooling), at 1/32 of the bytes.
    fn signs(&mut self, i: usize, signs: Storage<u32>) -> Result<()> {
        let (l, g) = self.layer(i);
        let out = match (pool_shape(l, self.batch), &g.and_mask) {
            (Some(p), Some(mask)) => {
                let words = PoolShape {
                    channels: words(l.spec.out_channels()),
                    ..p
                };
                let (d, pooled) = pool::encode_bits(&self.ex.gpu, &words, &signs, mask)?;
                self.push(i, d);
                self.keep.push(signs);
                pooled
            }
            _ => signs,
        };
        self.real = None;
        self.signs = Some(out);
        Ok(())
    }

    /// A conv's values before pooling (`float`: f32) become a real epilogue's input or, max-pooled,
    /// the last layer's pre-activations.
    fn values(&mut self, i: usize, values: Storage<u32>, float: bool, out: ConvOut) -> Result<()> {
        if out == ConvOut::Values {
            self.values = Some((values, float));
            return Ok(());
        }
        let kind = if float {
            PoolValues::F32
        } else {
            PoolValues::I32
        };
        let values = match pool_shape(self.layer(i).0, self.batch) {
            Some(p) => {
                let (d, pooled) = pool::encode(&self.ex.gpu, &p, kind, &values)?;
                self.push(i, d);
                pooled
            }
            None => values,
        };
        self.preact = Some((values, float));
        Ok(())
    }
}

impl Backend for Recorder<'_> {
    fn first_conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let (l, g) = self.layer(i);
        let (gpu, shape) = (&self.ex.gpu, conv_shape(l, self.batch));
        let Some(w) = &g.first_weights else {
            return Err(mismatch(l));
        };
        if out == ConvOut::Signs {
            let GpuThresholds::Float(t) = &g.thresholds else {
                return Err(mismatch(l));
            };
            let (d, signs) = first_conv::encode_bits(gpu, &shape, &self.image, w, t)?;
            self.push(i, d);
            return self.signs(i, signs);
        }
        let (d, sums) = first_conv::encode(gpu, &shape, &self.image, w)?;
        self.push(i, d);
        self.values(i, Storage::reinterpret(sums), true, out)
    }

    fn xnor_conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let (l, g) = self.layer(i);
        let (gpu, shape) = (&self.ex.gpu, conv_shape(l, self.batch));
        let fused = fused_int(l, g, out)?;
        let (d, v) = xnor_conv::encode(gpu, &shape, self.input(i)?, &g.weights, fused)?;
        self.push(i, d);
        match out {
            ConvOut::Signs => self.signs(i, v),
            _ => self.values(i, v, false, out),
        }
    }

    fn xnor_dense(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let (l, g) = self.layer(i);
        let (gpu, shape) = (&self.ex.gpu, dense_shape(l, self.batch));
        if out == ConvOut::Values {
            return Err(mismatch(l));
        }
        let fused = fused_int(l, g, out)?;
        let (d, v) = xnor_dense::encode(gpu, &shape, self.input(i)?, &g.weights, fused)?;
        self.push(i, d);
        match out {
            ConvOut::Signs => self.signs(i, v),
            _ => self.values(i, v, false, out),
        }
    }

    /// `real_epilogue.wgsl` max-pools the conv's values itself (one dispatch less); its real
    /// output is kept for the next layer's shortcut; `threshold.wgsl` makes its signs.
    fn real_epilogue(&mut self, i: usize, shortcut: bool, signs: bool) -> Result<()> {
        let (l, g) = self.layer(i);
        let (gpu, s) = (&self.ex.gpu, &l.spec);
        let (Some(channels), GpuThresholds::Float(t), Some((values, float))) =
            (&g.real, &g.thresholds, self.values.take())
        else {
            return Err(mismatch(l));
        };
        let shape = s.epilogue_shape(self.batch);
        let shortcut = self.real.as_ref().filter(|_| shortcut);
        let (h, w) = s.conv_out();
        let pool = s.pool.map(|p| Window {
            in_h: h,
            in_w: w,
            kernel: p.kernel,
            stride: p.stride,
        });
        let pre = (&values, float);
        // Signs wanted: the epilogue packs them in the same dispatch where the driver's loop
        // budget allows, else threshold.wgsl does in a second one.
        let fused = match signs {
            true => real_epilogue::encode_signs(gpu, &shape, pool, pre, channels, shortcut, t)?,
            false => None,
        };
        let (z, out) = match fused {
            Some((d, z, out)) => {
                self.push(i, d);
                (z, Some(out))
            }
            None => {
                let (d, z) = real_epilogue::encode(gpu, &shape, pool, pre, channels, shortcut)?;
                self.push(i, d);
                (z, None)
            }
        };
        self.keep.push(values);
        if !signs {
            self.preact = Some((z.view(), true));
            return Ok(());
        }
        let out = match out {
            Some(out) => out,
            None => {
                let (d, out) = threshold::encode_f32(gpu, &z.view(), t)?;
                self.push(i, d);
                out
            }
        };
        self.real = Some(z);
        self.signs = Some(out);
        Ok(())
    }

    fn tap(&mut self, i: usize) -> Result<()> {
        self.bits[i] = self.signs.as_ref().map(|s| s.view());
        Ok(())
    }
}

/// Per output word, a set bit for each channel pooled by AND (flip 0, `pre ≥ t`).
fn and_mask(flip: &[bool]) -> Vec<u32> {
    let mut mask = vec![0u32; words(flip.len())];
    for (o, _) in flip.iter().enumerate().filter(|(_, f)| !**f) {
        mask[o / 32] |= 1 << (o % 32);
    }
    mask
}

/// Plans kept per extractor: typically the full chunk size and one remainder, per output kind.
const KEPT_PLANS: usize = 4;

fn mismatch(l: &LayerData) -> Error {
    Error::Shape(format!(
        "layer '{}': threshold type does not match the layer kind",
        l.spec.name
    ))
}

/// A binary layer's integer thresholds when `out` fuses them into the kernel (its signs), `None`
/// when the kernel writes the dots.
fn fused_int<'a>(
    l: &LayerData,
    g: &'a GpuLayer,
    out: ConvOut,
) -> Result<Option<&'a Storage<Threshold>>> {
    match (&g.thresholds, &g.first_weights, out) {
        (_, Some(_), _) => Err(mismatch(l)),
        (GpuThresholds::Int(t), None, ConvOut::Signs) => Ok(Some(t)),
        (_, None, ConvOut::Signs) => Err(mismatch(l)),
        (_, None, _) => Ok(None),
    }
}

fn dense_shape(l: &LayerData, batch: usize) -> DenseShape {
    DenseShape {
        batch,
        in_features: l.spec.in_features,
        out_features: l.spec.out_channels(),
    }
}

/// The whole chain for one batch size, recorded once and replayed: the image buffer, every
/// layer's buffers, bind groups and dispatches, and read-back buffers made on first use. A run
/// writes the images, submits the dispatches and the read-back copies as one command buffer, and
/// maps only what it reads.
struct Plan {
    batch: usize,
    preact_last: bool,
    image: Storage<f32>,
    dispatches: Vec<Dispatch>,
    /// The layer index of each dispatch.
    owners: Vec<usize>,
    /// Each layer's packed output (pooled); `None` for a last layer recorded to pre-activations.
    bits: Vec<Option<Storage<u32>>>,
    /// The last layer's pre-activations when `preact_last`, and whether they are f32.
    preact: Option<(Storage<u32>, bool)>,
    /// Read-back buffers by layer index.
    readback: HashMap<usize, wgpu::Buffer>,
    /// Intermediate buffers the dispatches use (also held by their bind groups).
    _keep: Vec<Storage<u32>>,
}

impl Plan {
    async fn replay(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        taps: &[usize],
    ) -> Result<(Vec<Vec<u32>>, Option<(Vec<u32>, bool)>)> {
        debug_assert_eq!(images.len(), self.image.len);
        gpu.queue
            .write_buffer(&self.image.buffer, 0, bytemuck::cast_slice(images));
        // What to read: the tapped layers' bits, or the pre-activations (at index len).
        let sources: Vec<(usize, &Storage<u32>)> = match &self.preact {
            Some((values, _)) => vec![(self.bits.len(), values)],
            None => taps
                .iter()
                .map(|&t| {
                    self.bits[t]
                        .as_ref()
                        .map(|b| (t, b))
                        .ok_or_else(|| Error::Shape(format!("tap {t} has no packed output")))
                })
                .collect::<Result<_>>()?,
        };
        for &(i, s) in &sources {
            self.readback
                .entry(i)
                .or_insert_with(|| gpu.readback_buffer(s.bytes().next_multiple_of(4).max(4)));
        }
        let reads: Vec<(&Storage<u32>, &wgpu::Buffer)> = sources
            .iter()
            .map(|&(i, s)| (s, &self.readback[&i]))
            .collect();
        let mut outs = gpu.run_and_read_async(&self.dispatches, &reads).await?;
        Ok(match &self.preact {
            Some((_, float)) => (vec![], Some((outs.remove(0), *float))),
            None => (outs, None),
        })
    }
}
