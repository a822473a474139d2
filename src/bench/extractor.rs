//! End-to-end rows: the frozen binary extractor against its float twin. The extractor is an
//! [`ExtractorFile`] of an architecture built with random packed weights and thresholds (what
//! `bnn export` would write, minus training); the float twin runs the same layers with the float
//! WGSL kernels: `float_conv` for every conv (the first included: with real weights the tiled
//! kernel beats a direct one like the binary extractor's `first_conv` on lavapipe, 3.1 against
//! 8.4 ms at batch 1), `float_dense` for the dense layers (its small-batch kernel up to batch 8,
//! `float_conv`'s 1×1 case from 9 on), and the f32 max-pool of `pool.wgsl` where the block
//! pools. Batch norm and ReLU are left out of the twin (elementwise passes, a small fraction of
//! its time), which favours the float side. Like the extractor, the twin records its chain once
//! per batch size (buffers, bind groups) and replays it: one buffer write, one submission, one
//! read-back.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::Mutex;

use crate::arch::{Arch, Blocks, Pool};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::extractor::{
    ExtractorFile, Graph, InputSpec, LayerData, LayerKind, LayerSpec, Projection, RealSpec,
    Shortcut, Source, Thresholds,
};
use crate::gpu::{Dispatch, Gpu, Storage};
use crate::kernels::{float_conv, float_dense, pool};
use crate::ops::real_epilogue::RealChannel;
use crate::ops::{ConvShape, FloatThreshold, Padding, PoolShape, PoolValues, Threshold};
use crate::rng::Rng;

/// What the float twin row runs, printed beside its numbers.
pub const FLOAT_TWIN: &str = "float twin = float_conv.wgsl for every conv, float_dense.wgsl \
for the dense layers up to batch 8 (float_conv's 1×1 case from 9 on) + f32 max-pool (pool.wgsl), \
same shapes as the extractor; BN/ReLU omitted (elementwise); chain recorded once per batch size \
like the extractor's; f32 images uploaded and the last layer read back, like the extractor";

/// Random packed rows of `bits` bits (tail bits clear).
fn random_rows(rng: &mut Rng, rows: usize, bits: usize) -> Vec<u32> {
    let wpr = words(bits);
    let mut v: Vec<u32> = (0..rows * wpr).map(|_| rng.next_u32()).collect();
    if !bits.is_multiple_of(32) {
        let mask = (1u32 << (bits % 32)) - 1;
        for r in v.chunks_exact_mut(wpr) {
            r[wpr - 1] &= mask;
        }
    }
    v
}

/// An extractor file for `arch` up to its last hidden layer, with random packed weights and
/// thresholds near the middle of each layer's dot range (so about half the output bits are set).
pub fn random_file(arch: &Arch, seed: u64) -> Result<ExtractorFile> {
    let mut rng = Rng::new(seed);
    let mut layers = Vec::new();
    let mut prev = [arch.input, arch.input, arch.in_channels];
    for (i, c) in arch.convs.iter().enumerate() {
        let layer = random_conv(&mut rng, arch, i, c, prev);
        prev = layer.spec.out_shape;
        layers.push(layer);
    }
    for (j, &d) in arch.dense.iter().enumerate() {
        let [h, w, ch] = prev;
        let spec = LayerSpec::dense(format!("fc{}", j + 1), prev, d);
        let (in_features, offset) = (spec.in_features, spec.dot_offset);
        // Per pixel, the padding channels' weight bits are clear (docs/FORMAT.md).
        let weights = random_rows(&mut rng, d * h * w, ch);
        let spread = in_features as f32 / 8.0;
        layers.push(LayerData {
            spec,
            weights,
            thresholds: Thresholds::Int(
                (0..d)
                    .map(|_| Threshold::at_least(offset + rng.range(-spread, spread) as i32))
                    .collect(),
            ),
            real: None,
            projection: None,
        });
        prev = [1, 1, d];
    }
    let cut = layers
        .last()
        .map(|l| l.spec.name.clone())
        .ok_or_else(|| Error::Shape(format!("arch '{}' has no layers", arch.name)))?;
    let graph = Graph {
        input: InputSpec {
            size: arch.input,
            channels: arch.in_channels,
            mean: vec![0.0; arch.in_channels],
            std: vec![1.0; arch.in_channels],
            layout: "NHWC f32".into(),
        },
        layers: layers.iter().map(|l| l.spec.clone()).collect(),
        cut,
        classifier: None,
        source: Source {
            arch: arch.clone(),
            precision: "binary".into(),
            weight_scale: false,
            bn_epsilon: 1e-5,
            val_top1: None,
            epochs: None,
            checkpoint: "random weights (bnn bench)".into(),
            trained_with: None,
            float_twin: None,
        },
    };
    graph.validate(Path::new("<bnn bench>"))?;
    Ok(ExtractorFile {
        graph,
        layers,
        classifier: None,
    })
}

/// Conv layer `i` (laid out as `c`) of `arch` reading a `prev` map, with random weights and
/// thresholds (and, in a Bi-Real arch, a random real epilogue).
fn random_conv(
    rng: &mut Rng,
    arch: &Arch,
    i: usize,
    c: &crate::arch::ConvBlock,
    prev: [usize; 3],
) -> LayerData {
    let first = i == 0;
    let spread = (c.kernel * c.kernel * prev[2]) as f32 / 8.0;
    let thresholds = if first {
        Thresholds::Float(
            (0..c.out)
                .map(|_| FloatThreshold {
                    t: rng.range(-1.0, 1.0),
                    mode: 0,
                })
                .collect(),
        )
    } else {
        Thresholds::Int(
            (0..c.out)
                .map(|_| Threshold::at_least(rng.range(-spread, spread) as i32))
                .collect(),
        )
    };
    let bireal = arch.blocks == Blocks::BiReal;
    let (real_spec, real, thresholds, projection) = if bireal {
        let (spec, real, t, projection) = random_epilogue(rng, c, prev, spread);
        (Some(spec), Some(real), t, projection)
    } else {
        (None, None, thresholds, None)
    };
    LayerData {
        spec: LayerSpec {
            real: real_spec,
            ..LayerSpec::conv(first, c, &format!("conv{}", i + 1), prev)
        },
        weights: random_rows(rng, c.out * c.kernel * c.kernel, prev[2]),
        thresholds,
        real,
        projection,
    }
}

/// A random Bi-Real epilogue for a conv laid out as `c` reading `prev` (`spread`: its dot
/// range / 8): constants that put z around 0, float thresholds near it, and a projection when
/// the shortcut changes the channel count.
fn random_epilogue(
    rng: &mut Rng,
    c: &crate::arch::ConvBlock,
    prev: [usize; 3],
    spread: f32,
) -> (RealSpec, Vec<RealChannel>, Thresholds, Option<Projection>) {
    // A Bi-Real block: epilogue constants that put z around 0, thresholds near it.
    let scale = 1.0 / spread.max(1.0);
    let real: Vec<RealChannel> = (0..c.out)
        .map(|_| RealChannel {
            scale: scale * rng.range(0.5, 2.0),
            bias: rng.range(-0.5, 0.5),
            shift_in: rng.range(-0.5, 0.5),
            slope: rng.range(-0.5, 0.5),
            shift_out: rng.range(-0.5, 0.5),
        })
        .collect();
    // RPReLU keeps positive values and shrinks negative ones: z leans positive.
    let t = (0..c.out)
        .map(|_| FloatThreshold {
            t: rng.range(-0.25, 0.75),
            mode: 0,
        })
        .collect();
    let shortcut = match (c.shortcut, c.pool) {
        (false, _) => Shortcut::None,
        (true, None) => Shortcut::Identity,
        (true, Some(_)) => Shortcut::AvgPool,
    };
    // A shortcut that changes the channel count goes through a 1×1 projection.
    let project = c.shortcut && prev[2] != c.out;
    let projection = project.then(|| {
        let limit = 1.0 / (prev[2] as f32).sqrt();
        Projection {
            weight: (0..c.out * prev[2])
                .map(|_| rng.range(-limit, limit))
                .collect(),
            bias: (0..c.out).map(|_| rng.range(-0.25, 0.25)).collect(),
        }
    });
    (
        RealSpec { shortcut, project },
        real,
        Thresholds::Float(t),
        projection,
    )
}

/// The float op of a layer and its number of weights.
fn twin_op(s: &LayerSpec) -> (TwinOp, usize) {
    let [h, w, c] = s.in_shape;
    match s.kind {
        LayerKind::XnorDense => {
            let (fin, fout) = (h * w * c, s.out_channels());
            (TwinOp::Dense { fin, fout }, fin * fout)
        }
        _ => {
            let shape = ConvShape {
                batch: 1,
                in_h: h,
                in_w: w,
                in_c: c,
                out_c: s.out_channels(),
                kernel_h: s.kernel,
                kernel_w: s.kernel,
                stride: s.stride,
                pad: s.pad,
                padding: Padding::Zero,
            };
            let n = s.kernel * s.kernel * c * shape.out_c;
            (TwinOp::Conv(shape), n)
        }
    }
}

/// Uniform weights of variance 1/fan-in for every layer of `file` (the twin's layouts).
pub fn random_weights(file: &ExtractorFile, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    file.layers
        .iter()
        .map(|l| {
            let (op, n) = twin_op(&l.spec);
            let fan_in = match op {
                TwinOp::Dense { fin, .. } => fin,
                TwinOp::Conv(s) => s.kernel_h * s.kernel_w * s.in_c,
            };
            let a = (3.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.range(-a, a)).collect()
        })
        .collect()
}

enum TwinOp {
    Conv(ConvShape),
    Dense { fin: usize, fout: usize },
}

struct TwinLayer {
    op: TwinOp,
    weights: Storage<f32>,
    pool: Option<Pool>,
}

/// The float twin of an extractor file on one device (see the module docs).
pub struct FloatTwin<'g> {
    gpu: &'g Gpu,
    layers: Vec<TwinLayer>,
    image_len: usize,
    max_batch: usize,
    plans: Mutex<HashMap<usize, TwinPlan>>,
    /// Multiply-accumulates per image.
    pub macs: u64,
}

impl std::fmt::Debug for FloatTwin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloatTwin")
            .field("device", &self.gpu.describe())
            .field("layers", &self.layers.len())
            .field("image_len", &self.image_len)
            .field("max_batch", &self.max_batch)
            .field("macs", &self.macs)
            .finish_non_exhaustive()
    }
}

impl<'g> FloatTwin<'g> {
    /// Random float weights (uniform, variance 1/fan-in) for every layer of `file`, uploaded once.
    pub fn new(gpu: &'g Gpu, file: &ExtractorFile, seed: u64) -> Result<Self> {
        FloatTwin::with_weights(gpu, file, random_weights(file, seed))
    }

    /// The twin with the given float weights per layer: OHWI for convs, `[out][in]` for dense
    /// layers (NHWC flatten order).
    pub fn with_weights(
        gpu: &'g Gpu,
        file: &ExtractorFile,
        weights: Vec<Vec<f32>>,
    ) -> Result<Self> {
        if weights.len() != file.layers.len() {
            return Err(Error::Shape(format!(
                "float twin: {} weight tensors for {} layers",
                weights.len(),
                file.layers.len()
            )));
        }
        let mut layers = Vec::new();
        let mut per_image = 0usize;
        let mut macs = 0u64;
        for (l, values) in file.layers.iter().zip(weights) {
            let s = &l.spec;
            let (op, n) = twin_op(s);
            match op {
                TwinOp::Dense { fin, fout } => {
                    macs += (fin * fout) as u64;
                    per_image = per_image.max(fin.max(fout) * 4);
                }
                TwinOp::Conv(shape) => {
                    macs += shape.macs();
                    per_image = per_image
                        .max(shape.out_pixels_per_item() * shape.out_c * 4)
                        .max(shape.in_h * shape.in_w * shape.in_c * 4);
                }
            }
            if values.len() != n {
                return Err(Error::Shape(format!(
                    "float twin: layer '{}' needs {n} weights, got {}",
                    s.name,
                    values.len()
                )));
            }
            let weights = gpu.upload(&values, "float twin weights")?;
            layers.push(TwinLayer {
                op,
                weights,
                pool: s.pool,
            });
        }
        let max_batch = (gpu.max_binding() / per_image.max(1) as u64) as usize;
        if max_batch == 0 {
            return Err(Error::Limits(format!(
                "float twin: one image needs a {per_image}-byte binding"
            )));
        }
        let i = &file.graph.input;
        Ok(FloatTwin {
            gpu,
            layers,
            image_len: i.size * i.size * i.channels,
            max_batch,
            plans: Mutex::new(HashMap::new()),
            macs,
        })
    }

    /// Features `[n][dim]` of NHWC f32 `images`.
    pub fn run(&self, images: &[f32]) -> Result<Vec<f32>> {
        if images.is_empty() || !images.len().is_multiple_of(self.image_len) {
            return Err(Error::Shape(format!(
                "{} values are not whole {}-value images",
                images.len(),
                self.image_len
            )));
        }
        let batch = images.len() / self.image_len;
        let mut out = Vec::new();
        let mut start = 0;
        while start < batch {
            let end = (start + self.max_batch).min(batch);
            out.extend(self.run_chunk(
                &images[start * self.image_len..end * self.image_len],
                end - start,
            )?);
            start = end;
        }
        Ok(out)
    }

    fn run_chunk(&self, images: &[f32], batch: usize) -> Result<Vec<f32>> {
        let mut plans = self.plans.lock().expect("twin plans");
        let plan = match plans.entry(batch) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.record(batch)?),
        };
        let gpu = self.gpu;
        gpu.queue
            .write_buffer(&plan.image.buffer, 0, bytemuck::cast_slice(images));
        let mut outs = pollster::block_on(
            gpu.run_and_read_async(&plan.dispatches, &[(&plan.output, &plan.readback)]),
        )?;
        Ok(outs.remove(0))
    }

    /// The whole chain for `batch` images: buffers, bind groups and dispatches.
    fn record(&self, batch: usize) -> Result<TwinPlan> {
        let gpu = self.gpu;
        let image = gpu.zeros::<f32>(batch * self.image_len, "images")?;
        // The running activation: the image, then each layer's output.
        let mut x: Option<Storage<f32>> = None;
        let mut keep: Vec<Storage<f32>> = Vec::new();
        let mut dispatches: Vec<Dispatch> = Vec::new();
        for l in &self.layers {
            let input = x.as_ref().unwrap_or(&image);
            let (d, mut y, pooled_from) = match l.op {
                TwinOp::Conv(s) => {
                    let s = ConvShape { batch, ..s };
                    let (d, y) = float_conv::encode(gpu, &s, input, &l.weights)?;
                    (d, y, Some((s.out_h(), s.out_w(), s.out_c)))
                }
                TwinOp::Dense { fin, fout } => {
                    let (d, y) = float_dense::encode(gpu, batch, fin, fout, input, &l.weights)?;
                    (d, y, None)
                }
            };
            dispatches.push(d);
            if let (Some(p), Some((h, w, c))) = (l.pool, pooled_from) {
                let ps = PoolShape {
                    batch,
                    in_h: h,
                    in_w: w,
                    channels: c,
                    kernel: p.kernel,
                    stride: p.stride,
                };
                let raw: Storage<u32> = Storage::reinterpret(y);
                let (d, pooled) = pool::encode(gpu, &ps, PoolValues::F32, &raw)?;
                dispatches.push(d);
                keep.push(Storage::reinterpret(raw));
                y = Storage::reinterpret(pooled);
            }
            keep.extend(x.replace(y));
        }
        let output = x.ok_or_else(|| Error::Shape("float twin: no layers".into()))?;
        let readback = gpu.readback_buffer(output.bytes().next_multiple_of(4).max(4));
        Ok(TwinPlan {
            image,
            dispatches,
            output,
            readback,
            _keep: keep,
        })
    }
}

/// The twin's recorded chain for one batch size.
struct TwinPlan {
    image: Storage<f32>,
    dispatches: Vec<Dispatch>,
    output: Storage<f32>,
    readback: wgpu::Buffer,
    _keep: Vec<Storage<f32>>,
}
