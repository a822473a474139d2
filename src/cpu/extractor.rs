//! The whole frozen extractor on the CPU, prepared once per file: [`CpuExtractor`]. Each layer's
//! weights are regrouped when it is built; a run reuses its buffers and a persistent thread pool
//! ([`Threads`]); a run executes the lowering's steps (`extractor/lowering.rs`) as `CpuRun`, this
//! path's `Backend`. Per layer, conv → threshold → pack is fused per output pixel (the integer or
//! float pre-activation map never reaches memory) and max-pooling runs on the packed signs:
//! because a threshold is monotone, `max` then threshold equals threshold then AND of the −1 bits
//! (channels with `pre ≥ t`) or OR (channels with `pre ≤ t`), exactly. Bit-exact with
//! [`extractor::reference::run`](crate::extractor::reference::run) and the WGSL runner
//! (tests/extractor/cpu_extractor.rs); `bnn bench` times it as the `cpu_binary_extractor` row.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Isa;
use super::conv::{XnorLayer, pack};
use super::first::FirstLayer;
use super::parallel::{Split, Threads};
use super::real::{PerImage, RealLayer, Source, Values};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::extractor::lowering::{self, Backend, ConvOut, Node, conv_shape};
use crate::extractor::{ExtractorFile, LayerData, LayerKind, Thresholds};
use crate::ops::{ConvShape, FloatThreshold, Threshold};

/// Most bytes one image may need on the CPU path: the image and the buffers live at once while a
/// layer runs ([`CpuExtractor::image_bytes`]). A file whose input needs more is refused when it
/// is prepared, before anything is read or allocated.
pub const MAX_IMAGE_BYTES: u64 = 2 << 30;

/// The bytes a batch's buffers aim at: a run of more images than fit is split into runs of
/// [`CpuExtractor::max_batch`] images, as the WGSL runner splits a batch by the device's
/// storage-binding limit.
pub const BATCH_BYTES: u64 = 1 << 30;

enum Op {
    First(FirstLayer, Vec<FloatThreshold>),
    /// A binary conv, or a dense layer as the 1×1 conv of one pixel.
    Xnor(XnorLayer, Vec<Threshold>),
}

/// Max-pooling on packed signs.
struct PoolBits {
    kernel: usize,
    stride: usize,
    out_h: usize,
    out_w: usize,
    /// Per word: set bits are channels pooled by AND (`pre ≥ t`), clear ones by OR (`pre ≤ t`).
    and_mask: Vec<u32>,
}

struct Layer {
    name: String,
    op: Op,
    /// A real layer's epilogue (its pooling included), `None` for plain layers.
    real: Option<RealLayer>,
    /// Output channels.
    channels: usize,
    /// Conv output before pooling.
    conv_h: usize,
    conv_w: usize,
    /// Packed words per pixel.
    wpo: usize,
    pool: Option<PoolBits>,
}

impl Layer {
    fn conv_words(&self) -> usize {
        self.conv_h * self.conv_w * self.wpo
    }
}

/// Time spent in one stage of a profiled run ([`CpuExtractor::profile`]).
#[derive(Clone, Debug)]
pub struct StageTime {
    /// `conv1 (first layer: conv + threshold)`, `conv1 pool (packed)`, …
    pub stage: String,
    /// Wall time of the stage.
    pub time: Duration,
}

/// The extractor prepared for the CPU; share it across threads freely (`Send + Sync`).
///
/// ```
/// use bnn_transfer::Arch;
/// use bnn_transfer::bench::extractor::random_file;
/// use bnn_transfer::cpu::{CpuExtractor, Threads};
/// use bnn_transfer::extractor::{Features, Output, reference};
///
/// let file = random_file(&Arch::mini(10), 1)?; // a 32×32 network with random weights
/// let cpu = CpuExtractor::new(&file, &Threads::new(2)?)?;
/// let images = vec![0.25f32; 2 * 32 * 32 * 3];
/// let bits = cpu.run_bits(&images, 2)?;
/// // Bit for bit what the scalar reference computes.
/// assert_eq!(Features::Bits(bits), reference::run(&file, &images, 2, Output::Bits)?);
/// # Ok::<(), bnn_transfer::Error>(())
/// ```
pub struct CpuExtractor {
    layers: Vec<Layer>,
    /// What the lowering reads of each layer.
    nodes: Vec<Node>,
    image_len: usize,
    size: usize,
    channels: usize,
    isa: Isa,
    threads: Threads,
    /// Bytes one image needs while the deepest layer's buffers are live (see `image_bytes`).
    image_bytes: u64,
    /// Images per run: as many as fit [`BATCH_BYTES`], at least 1.
    max_batch: usize,
    /// Every buffer of a run, reused by the next.
    buffers: Mutex<Buffers>,
}

/// The buffers of a run, kept by the extractor so that a run allocates (and the OS zero-fills)
/// nothing once they have grown to the largest layer.
#[derive(Default)]
struct Buffers {
    /// The activations (packed signs), the next layer's, and the packed map before pooling.
    bits: [Vec<u32>; 3],
    /// A real layer's conv values: the first layer's f32 sums, or the i32 dots.
    sums: Vec<f32>,
    dots: Vec<i32>,
    /// The previous real layer's output (the shortcut's input) and the one being written.
    real: Vec<f32>,
    real_next: Vec<f32>,
}

/// Bytes one image needs on the CPU path while each layer runs, the largest: the image itself
/// (held for the whole run), the layer's input (packed signs, and a real layer's f32 shortcut
/// input), and what the layer writes (the packed map before pooling and the pooled output, or a
/// real layer's f32/i32 conv values, their pooled copy, its f32 output and signs).
fn image_bytes(file: &ExtractorFile) -> u64 {
    let i = &file.graph.input;
    let image = (i.size as u64) * (i.size as u64) * (i.channels as u64) * 4;
    let mut input = 0u64;
    let mut peak = 0u64;
    for l in &file.layers {
        let s = &l.spec;
        let (ch, cw) = s.conv_out();
        let conv_px = (ch as u64) * (cw as u64);
        let out_px = (s.out_shape[0] as u64) * (s.out_shape[1] as u64);
        let c = s.out_channels() as u64;
        let wpo = words(s.out_channels()) as u64;
        let (work, output) = if l.real.is_some() {
            // Conv values, a pooled copy per task (counted once), the output z and its signs.
            let z = out_px * c * 4;
            (
                conv_px * c * 4 * 2 + z + out_px * wpo * 4,
                z + out_px * wpo * 4,
            )
        } else {
            (conv_px * wpo * 4 + out_px * wpo * 4, out_px * wpo * 4)
        };
        peak = peak.max(input.saturating_add(work));
        input = output;
    }
    image.saturating_add(peak)
}

/// `[1 if the channel's threshold is `pre ≥ t`]` packed like the layer's output.
fn and_mask(channels: usize, ge: impl Fn(usize) -> bool) -> Vec<u32> {
    let mut mask = vec![0u32; words(channels)];
    for o in (0..channels).filter(|&o| ge(o)) {
        mask[o / 32] |= 1 << (o % 32);
    }
    mask
}

impl std::fmt::Debug for CpuExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuExtractor")
            .field("layers", &self.layers.len())
            .field("image_len", &self.image_len)
            .field("isa", &self.isa)
            .field("threads", &self.threads)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl CpuExtractor {
    /// Prepares `file` with the fastest kernels this CPU has (or `BNN_CPU_ISA`).
    pub fn new(file: &ExtractorFile, threads: &Threads) -> Result<Self> {
        CpuExtractor::with_isa(file, threads, Isa::from_env()?)
    }

    /// Prepares `file` with the kernels of `isa` (an error if this CPU cannot run them).
    pub fn with_isa(file: &ExtractorFile, threads: &Threads, isa: Isa) -> Result<Self> {
        let isa = isa.require()?;
        let layers = file
            .layers
            .iter()
            .map(prepare)
            .collect::<Result<Vec<_>>>()?;
        let i = &file.graph.input;
        let image_bytes = image_bytes(file);
        if image_bytes > MAX_IMAGE_BYTES {
            return Err(Error::Limits(format!(
                "one {}×{} image (input.size {}) needs {:.1} GiB on the CPU path, more than its \
                 {} GiB per image: use a model with a smaller input (input.size), or run the \
                 extractor on a GPU (`device` gpu)",
                i.size,
                i.size,
                i.size,
                image_bytes as f64 / (1u64 << 30) as f64,
                MAX_IMAGE_BYTES >> 30
            )));
        }
        Ok(CpuExtractor {
            layers,
            nodes: file.layers.iter().map(Node::of).collect(),
            image_len: i.size * i.size * i.channels,
            size: i.size,
            channels: i.channels,
            isa,
            threads: threads.clone(),
            image_bytes,
            max_batch: (BATCH_BYTES / image_bytes.max(1)).clamp(1, 1 << 16) as usize,
            buffers: Mutex::new(Default::default()),
        })
    }

    /// Images per run: a run of more is split into runs of this many, so the buffers of one stay
    /// near [`BATCH_BYTES`]. Callers that hold a batch's images in memory (a data loader) should
    /// not ask for many more at once either.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The same extractor with runs split into runs of at most `max_batch` images (at least 1),
    /// e.g. to keep a smaller memory budget than [`BATCH_BYTES`].
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Bytes one image needs on the CPU path while the largest layer runs (its f32 values
    /// included); at most [`MAX_IMAGE_BYTES`].
    pub fn image_bytes(&self) -> u64 {
        self.image_bytes
    }

    /// The instruction set the kernels run with.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Threads the pool runs.
    pub fn threads(&self) -> usize {
        self.threads.count()
    }

    /// Packed signs at the cut (the last layer) for `batch` NHWC f32 images.
    pub fn run_bits(&self, images: &[f32], batch: usize) -> Result<Vec<u32>> {
        let last = self.layers.len().saturating_sub(1);
        Ok(self.run_taps(images, batch, &[last])?.remove(0))
    }

    /// Packed signs at each layer index of `taps` (any order) in one pass: one
    /// `[batch][out_words]` vector per tap, as
    /// [`Extractor::run_taps`](crate::extractor::Extractor::run_taps) returns.
    pub fn run_taps(&self, images: &[f32], batch: usize, taps: &[usize]) -> Result<Vec<Vec<u32>>> {
        self.run(images, batch, taps, None)
    }

    /// Runs to the cut and returns the time of each stage (conv + threshold, pooling) in order.
    pub fn profile(&self, images: &[f32], batch: usize) -> Result<Vec<StageTime>> {
        let mut stages = Vec::new();
        let last = self.layers.len().saturating_sub(1);
        self.run(images, batch, &[last], Some(&mut stages))?;
        Ok(stages)
    }

    fn check(&self, images: &[f32], batch: usize, stop: usize) -> Result<()> {
        if stop >= self.layers.len() {
            return Err(Error::Shape(format!(
                "tap {stop}: the extractor has {} layers",
                self.layers.len()
            )));
        }
        // Every buffer is bounded by `image_bytes` per image (checked in `with_isa`) and a run's
        // batch by `max_batch`: nothing here can be huge.
        if batch == 0 || images.len() != batch * self.image_len {
            return Err(Error::Shape(format!(
                "{} input values for {batch} images of {}×{}×{}",
                images.len(),
                self.size,
                self.size,
                self.channels
            )));
        }
        Ok(())
    }

    fn run(
        &self,
        images: &[f32],
        batch: usize,
        taps: &[usize],
        mut profile: Option<&mut Vec<StageTime>>,
    ) -> Result<Vec<Vec<u32>>> {
        let stop = taps.iter().copied().max().unwrap_or(0);
        self.check(images, batch, stop)?;
        if batch > self.max_batch {
            // Runs of `max_batch` images, their outputs concatenated (each image's are its own).
            let mut outs: Vec<Vec<u32>> = vec![Vec::new(); taps.len()];
            for (k, chunk) in images.chunks(self.max_batch * self.image_len).enumerate() {
                let n = chunk.len() / self.image_len;
                let p = profile.as_deref_mut().filter(|_| k == 0);
                for (o, part) in outs.iter_mut().zip(self.run(chunk, n, taps, p)?) {
                    o.extend(part);
                }
            }
            return Ok(outs);
        }
        let mut fresh = Buffers::default();
        let mut guard = self.buffers.try_lock().ok();
        let buffers = match guard.as_deref_mut() {
            Some(b) => b,
            None => &mut fresh,
        };
        let mut run = CpuRun {
            ex: self,
            images,
            batch,
            buffers,
            values: None,
            real: false,
            taps,
            outs: vec![Vec::new(); taps.len()],
            profile,
            started: None,
        };
        lowering::execute(&lowering::lower_nodes(&self.nodes, taps, false), &mut run)?;
        Ok(run.outs)
    }

    /// Conv (or dense) + threshold + pack of one layer into `out` (`[batch][conv_words]`).
    fn conv(&self, layer: &Layer, images: &[f32], input: &[u32], batch: usize, out: &mut [u32]) {
        let (ow, wpo) = (layer.conv_w, layer.wpo);
        let rows = batch * layer.conv_h;
        match &layer.op {
            Op::First(first, th) => {
                let split = Split::new(rows, 1, self.threads.count());
                let chunk = split.rows_per_task * ow * wpo;
                self.threads.for_chunks(out, chunk, |task, chunk| {
                    let r0 = task * split.rows_per_task;
                    let rows = r0..(r0 + split.rows_per_task).min(rows);
                    first.run(self.isa, images, rows, &mut |row, ox, sums| {
                        let at = ((row - r0) * ow + ox) * wpo;
                        for (w, word) in chunk[at..at + wpo].iter_mut().enumerate() {
                            *word = pack(sums, &th[..], w * 32, |s, t| t.plus_one(s));
                        }
                    });
                });
            }
            Op::Xnor(conv, th) => conv.bits_into(self.isa, &self.threads, input, batch, th, out),
        }
    }

    /// A conv's values before pooling, the input of [`RealLayer::run`]: the first layer's f32
    /// sums into `sums`, or the i32 dots into `dots` (each resized; every element written).
    fn values(
        &self,
        layer: &Layer,
        (images, input): (&[f32], &[u32]),
        batch: usize,
        (sums, dots): (&mut Vec<f32>, &mut Vec<i32>),
    ) -> ValueKind {
        let rows = batch * layer.conv_h;
        let (ow, oc) = (layer.conv_w, layer.channels);
        match &layer.op {
            Op::First(first, _) => {
                sums.resize(rows * ow * oc, 0.0);
                let split = Split::new(rows, 1, self.threads.count());
                let chunk = split.rows_per_task * ow * oc;
                self.threads.for_chunks(sums, chunk, |task, chunk| {
                    let r0 = task * split.rows_per_task;
                    let rows = r0..(r0 + split.rows_per_task).min(rows);
                    first.run(self.isa, images, rows, &mut |row, ox, s| {
                        let at = ((row - r0) * ow + ox) * oc;
                        chunk[at..at + oc].copy_from_slice(&s[..oc]);
                    });
                });
                ValueKind::Float
            }
            Op::Xnor(conv, _) => {
                dots.resize(rows * ow * oc, 0);
                conv.dots_into(self.isa, &self.threads, input, batch, dots);
                ValueKind::Int
            }
        }
    }

    /// Max-pooling of `map` (`[batch][conv_h][conv_w][wpo]`) into `out` on packed signs.
    fn pool(&self, layer: &Layer, pool: &PoolBits, map: &[u32], out: &mut [u32]) {
        let (cw, wpo) = (layer.conv_w, layer.wpo);
        let per_in = layer.conv_h * cw * wpo;
        let per_out = pool.out_h * pool.out_w * wpo;
        self.threads.for_chunks(out, per_out, |n, out| {
            let map = &map[n * per_in..(n + 1) * per_in];
            for py in 0..pool.out_h {
                for px in 0..pool.out_w {
                    for w in 0..wpo {
                        let (mut all, mut any) = (!0u32, 0u32);
                        for ky in 0..pool.kernel {
                            for kx in 0..pool.kernel {
                                let (y, x) = (py * pool.stride + ky, px * pool.stride + kx);
                                let v = map[(y * cw + x) * wpo + w];
                                all &= v;
                                any |= v;
                            }
                        }
                        let m = pool.and_mask[w];
                        out[(py * pool.out_w + px) * wpo + w] = (all & m) | (any & !m);
                    }
                }
            }
        });
    }
}

/// Which buffer holds a conv's values between the conv step and the real epilogue.
#[derive(Clone, Copy)]
enum ValueKind {
    /// [`Buffers::sums`].
    Float,
    /// [`Buffers::dots`].
    Int,
    /// None: the epilogue computes them one image per task (a batch of at least two images per
    /// thread), so each image's values are read back from cache, not memory.
    PerImage,
}

/// One run of the CPU path as a [`Backend`] of the lowering: the current packed signs in
/// `buffers.bits[0]`, a real layer's pending values and the previous real output.
struct CpuRun<'a> {
    ex: &'a CpuExtractor,
    images: &'a [f32],
    batch: usize,
    buffers: &'a mut Buffers,
    /// Where the pending conv values are, if a real epilogue is to read them.
    values: Option<ValueKind>,
    /// Whether `buffers.real` holds the previous layer's real output.
    real: bool,
    taps: &'a [usize],
    outs: Vec<Vec<u32>>,
    profile: Option<&'a mut Vec<StageTime>>,
    /// When the current layer's first step began (profiling only).
    started: Option<Instant>,
}

impl CpuRun<'_> {
    /// The clock is read only when profiling (wasm32 in a browser has no `Instant`).
    fn now(&self) -> Option<Instant> {
        self.profile.is_some().then(Instant::now)
    }

    fn stage(&mut self, layer: &Layer, what: &str, since: Option<Instant>) {
        if let (Some(p), Some(t)) = (self.profile.as_deref_mut(), since) {
            p.push(StageTime {
                stage: format!("{} {what}", layer.name),
                time: t.elapsed(),
            });
        }
    }

    /// A conv step: fused conv + threshold + pack, then max-pool on the packed signs
    /// ([`ConvOut::Signs`]), or the values a real epilogue reads ([`ConvOut::Values`]).
    fn conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        let ex = self.ex;
        let layer = &ex.layers[i];
        let t = self.now();
        let b = &mut *self.buffers;
        let [act, next, map] = &mut b.bits;
        match out {
            ConvOut::Values if self.batch >= 2 * ex.threads.count() => {
                self.values = Some(ValueKind::PerImage);
                self.started = t;
                return Ok(());
            }
            ConvOut::Values => {
                let into = (&mut b.sums, &mut b.dots);
                self.values = Some(ex.values(layer, (self.images, act), self.batch, into));
                self.started = t;
                return Ok(());
            }
            ConvOut::Preact => {
                return Err(Error::Shape(format!(
                    "layer '{}': the CPU path computes packed signs only",
                    layer.name
                )));
            }
            ConvOut::Signs => {}
        }
        self.real = false;
        let target = if layer.pool.is_some() {
            &mut *map
        } else {
            &mut *next
        };
        target.resize(self.batch * layer.conv_words(), 0);
        ex.conv(layer, self.images, act, self.batch, target);
        if let Some(pool) = &layer.pool {
            self.stage(layer, "conv+threshold", t);
            let t = self.now();
            let [act, next, map] = &mut self.buffers.bits;
            next.resize(self.batch * pool.out_h * pool.out_w * layer.wpo, 0);
            ex.pool(layer, pool, map, next);
            std::mem::swap(act, next);
            self.stage(layer, "max-pool (packed)", t);
        } else {
            std::mem::swap(act, next);
            self.stage(layer, "conv+threshold", t);
        }
        Ok(())
    }
}

impl Backend for CpuRun<'_> {
    fn first_conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        self.conv(i, out)
    }

    fn xnor_conv(&mut self, i: usize, out: ConvOut) -> Result<()> {
        self.conv(i, out)
    }

    fn xnor_dense(&mut self, i: usize, out: ConvOut) -> Result<()> {
        self.conv(i, out)
    }

    /// [`RealLayer::run`]: pool, epilogue with the previous real output as shortcut, signs.
    fn real_epilogue(&mut self, i: usize, _: bool, signs: bool) -> Result<()> {
        let ex = self.ex;
        let layer = &ex.layers[i];
        let (Some(r), Some(values), true) = (&layer.real, self.values.take(), signs) else {
            return Err(Error::Shape(format!(
                "layer '{}': the CPU path runs a real epilogue after its conv, to packed signs",
                layer.name
            )));
        };
        let b = &mut *self.buffers;
        let [act, next, _] = &mut b.bits;
        let (isa, images, input) = (ex.isa, self.images, &act[..]);
        let (conv_h, ow, oc) = (layer.conv_h, layer.conv_w, layer.channels);
        // Image `n`'s values of the first layer or of a binary conv, `[conv_h][conv_w][C]`.
        let first_values = |n: usize, out: &mut [f32]| {
            if let Op::First(first, _) = &layer.op {
                let r0 = n * conv_h;
                first.run(isa, images, r0..r0 + conv_h, &mut |row, ox, s| {
                    let at = ((row - r0) * ow + ox) * oc;
                    out[at..at + oc].copy_from_slice(&s[..oc]);
                });
            }
        };
        let dots = |n: usize, out: &mut [i32]| {
            if let Op::Xnor(conv, _) = &layer.op {
                let r0 = n * conv_h;
                conv.run(
                    isa,
                    input,
                    r0..r0 + conv_h,
                    conv.all_blocks(),
                    &mut |row, ox, f, d| {
                        let at = ((row - r0) * ow + ox) * oc + f;
                        out[at..at + d.len()].copy_from_slice(d);
                    },
                );
            }
        };
        let source = match (values, &layer.op) {
            (ValueKind::Float, _) => Source::Values(Values::Float(&b.sums)),
            (ValueKind::Int, _) => Source::Values(Values::Int(&b.dots)),
            (ValueKind::PerImage, Op::First(..)) => {
                Source::PerImage(PerImage::Float(&first_values))
            }
            (ValueKind::PerImage, Op::Xnor(..)) => Source::PerImage(PerImage::Int(&dots)),
        };
        let shortcut = self.real.then_some(&b.real[..]);
        r.run(
            &ex.threads,
            source,
            self.batch,
            shortcut,
            (next, &mut b.real_next),
        )?;
        std::mem::swap(act, next);
        std::mem::swap(&mut b.real, &mut b.real_next);
        self.real = true;
        let t = self.started.take();
        self.stage(layer, "conv+real epilogue", t);
        Ok(())
    }

    fn tap(&mut self, i: usize) -> Result<()> {
        let act = &self.buffers.bits[0];
        for (o, _) in self
            .outs
            .iter_mut()
            .zip(self.taps)
            .filter(|(_, t)| **t == i)
        {
            o.clone_from(act);
        }
        Ok(())
    }
}

fn prepare(l: &LayerData) -> Result<Layer> {
    let s = &l.spec;
    let err = || Error::Shape(format!("layer '{}': threshold type", s.name));
    if let (Some(channels), Thresholds::Float(t)) = (&l.real, &l.thresholds) {
        let op = match s.kind {
            LayerKind::FirstConv => {
                Op::First(FirstLayer::new(&conv_shape(l, 1), &l.weights)?, t.clone())
            }
            LayerKind::XnorConv => {
                Op::Xnor(XnorLayer::new(&conv_shape(l, 1), &l.weights)?, Vec::new())
            }
            LayerKind::XnorDense => return Err(err()),
        };
        let (conv_h, conv_w) = s.conv_out();
        return Ok(Layer {
            name: s.name.clone(),
            op,
            real: Some(RealLayer::new(s, channels, t, l.projection.as_ref())),
            channels: s.out_channels(),
            conv_h,
            conv_w,
            wpo: words(s.out_channels()),
            pool: None,
        });
    }
    let (op, ge): (Op, Vec<bool>) = match (s.kind, &l.thresholds) {
        (LayerKind::FirstConv, Thresholds::Float(t)) => (
            Op::First(FirstLayer::new(&conv_shape(l, 1), &l.weights)?, t.clone()),
            t.iter().map(|t| t.mode != 1).collect(),
        ),
        (LayerKind::XnorConv, Thresholds::Int(t)) => (
            Op::Xnor(XnorLayer::new(&conv_shape(l, 1), &l.weights)?, t.clone()),
            t.iter().map(|t| t.mode != 1).collect(),
        ),
        (LayerKind::XnorDense, Thresholds::Int(t)) => {
            let shape = ConvShape::dense(1, s.in_features, s.out_channels());
            (
                Op::Xnor(XnorLayer::new(&shape, &l.weights)?, t.clone()),
                Vec::new(),
            )
        }
        _ => return Err(err()),
    };
    let (conv_h, conv_w) = s.conv_out();
    let channels = s.out_channels();
    if l.thresholds.len() != channels {
        return Err(Error::Shape(format!(
            "layer '{}': {} thresholds for {channels} channels",
            s.name,
            l.thresholds.len()
        )));
    }
    let pool = s.pool.map(|p| PoolBits {
        kernel: p.kernel,
        stride: p.stride,
        out_h: s.out_shape[0],
        out_w: s.out_shape[1],
        and_mask: and_mask(channels, |o| ge[o]),
    });
    Ok(Layer {
        name: s.name.clone(),
        op,
        real: None,
        channels,
        conv_h,
        conv_w,
        wpo: words(channels),
        pool,
    })
}
