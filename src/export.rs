//! burn checkpoint → frozen extractor file: the one bridge between `model/` (burn) and
//! `extractor/` (wgpu). Packs the signs of the latent weights (OHWI, NHWC feature order), folds
//! batch norm (+ α) + sign into per-channel integer thresholds (float ones for the first layer,
//! whose input is the real image), keeps the float classifier, and verifies the result against the
//! burn model in eval mode before anything is written.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::arch::Arch;
use crate::bits::{pack_rows, words};
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::extractor::reference::{self, LayerInput};
use crate::extractor::{
    ClassifierData, ExtractorFile, Graph, InputSpec, LayerData, LayerKind, LayerSpec, Projection,
    RealSpec, Shortcut, Source, Thresholds,
};
use crate::model::{Model, ModelConfig, Precision};
use crate::ops::real_epilogue::RealChannel;
use crate::ops::{FloatThreshold, Threshold};
use crate::rng::Rng;

/// |BN output| below which a sign disagreement between the burn model (f32 batch norm) and the
/// exact threshold counts as a tie rather than an error.
pub const TIE_TOLERANCE: f32 = 1e-3;

/// Largest difference allowed between a real layer's output and burn's, relative to
/// `1 + |burn's value|`: the folded batch norm and the fused multiply-adds round differently from
/// burn's op-by-op f32 (a few units in the last place per op).
pub const REAL_TOLERANCE: f32 = 1e-4;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("f32 tensor data")
}

/// Names of the exportable layers: conv1…convN, fc1…fcM.
pub fn layer_names(arch: &Arch) -> Vec<String> {
    (1..=arch.convs.len())
        .map(|i| format!("conv{i}"))
        .chain((1..=arch.dense.len()).map(|i| format!("fc{i}")))
        .collect()
}

struct Bn {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    eps: f64,
}

/// The batch norm of layer `layer`, refused when a statistic could not have come from training
/// (non-finite values, a negative running variance): the thresholds would be meaningless.
fn bn(b: &burn::nn::BatchNorm, layer: &str) -> Result<Bn> {
    let bn = Bn {
        gamma: values(b.gamma.val()),
        beta: values(b.beta.val()),
        mean: values(b.running_mean.value()),
        var: values(b.running_var.value()),
        eps: b.epsilon,
    };
    let bad = |what: &str, c: usize, v: f64| {
        Err(Error::Shape(format!(
            "layer '{layer}': batch norm {what} is {v} at channel {c}; the checkpoint is corrupt \
             (or training diverged): retrain or resume from an earlier checkpoint"
        )))
    };
    for (what, v) in [
        ("gamma", &bn.gamma),
        ("beta", &bn.beta),
        ("running mean", &bn.mean),
        ("running variance", &bn.var),
    ] {
        if let Some(c) = v.iter().position(|x| !x.is_finite()) {
            return bad(what, c, v[c] as f64);
        }
    }
    if let Some(c) = bn.var.iter().position(|&v| v < 0.0) {
        return bad("running variance", c, bn.var[c] as f64);
    }
    if !(bn.eps.is_finite() && bn.eps > 0.0) {
        return bad("epsilon", 0, bn.eps);
    }
    Ok(bn)
}

/// The bound `μ − βs/γ` on the pre-activation (divided by α), per channel, and γ's sign.
fn bounds(bn: &Bn, alpha: Option<&[f32]>) -> Vec<(f64, f64, f64)> {
    (0..bn.gamma.len())
        .map(|c| {
            let (g, b) = (bn.gamma[c] as f64, bn.beta[c] as f64);
            let s = (bn.var[c] as f64 + bn.eps).sqrt();
            let a = alpha.map_or(1.0, |a| a[c] as f64);
            let m = bn.mean[c] as f64;
            // (bound, gamma, constant sign value when the bound is undefined)
            let constant = if g == 0.0 || a == 0.0 {
                // pre = 0 when α = 0: z = γ(0 − μ)/s + β.
                if g * (0.0 - m) / s + b >= 0.0 {
                    1.0
                } else {
                    -1.0
                }
            } else {
                0.0
            };
            ((m - b * s / g) / a, g, constant)
        })
        .collect()
}

fn int_thresholds(bn: &Bn, alpha: Option<&[f32]>, offset: i32) -> Vec<Threshold> {
    let lim = |x: f64| x.clamp(i32::MIN as f64 + 1.0, i32::MAX as f64 - 1.0) as i64;
    bounds(bn, alpha)
        .into_iter()
        .map(|(b, g, constant)| {
            if constant > 0.0 {
                Threshold::ALWAYS_PLUS
            } else if constant < 0.0 {
                Threshold::ALWAYS_MINUS
            } else if g > 0.0 {
                Threshold::at_least(
                    (lim(b.ceil()) + offset as i64).clamp(-i32::MAX as i64, i32::MAX as i64) as i32,
                )
            } else {
                Threshold::at_most(
                    (lim(b.floor()) + offset as i64).clamp(-i32::MAX as i64, i32::MAX as i64)
                        as i32,
                )
            }
        })
        .collect()
}

fn float_thresholds(bn: &Bn, alpha: Option<&[f32]>) -> Vec<FloatThreshold> {
    bounds(bn, alpha)
        .into_iter()
        .map(|(b, g, constant)| {
            if constant > 0.0 {
                FloatThreshold::ALWAYS_PLUS
            } else if constant < 0.0 {
                FloatThreshold::ALWAYS_MINUS
            } else {
                FloatThreshold {
                    t: b as f32,
                    mode: if g > 0.0 { 0 } else { 1 },
                }
            }
        })
        .collect()
}

/// α = mean |latent weight| per output row (rows of `per_row` values), in f32 like burn.
fn alpha(w: &[f32], per_row: usize) -> Vec<f32> {
    w.chunks_exact(per_row)
        .map(|r| r.iter().map(|x| x.abs()).sum::<f32>() / per_row as f32)
        .collect()
}

/// A Bi-Real block's epilogue constants: batch norm (with α) folded to `scale = α·γ/s` and
/// `bias = β − μ·γ/s` (s = √(var + ε), in f64, rounded to f32), then RPReLU's vectors.
fn real_channels(bn: &Bn, alpha: Option<&[f32]>, r: &crate::model::Rprelu) -> Vec<RealChannel> {
    let (shift_in, slope, shift_out) = (
        values(r.shift_in.val()),
        values(r.slope.val()),
        values(r.shift_out.val()),
    );
    (0..bn.gamma.len())
        .map(|c| {
            let g = bn.gamma[c] as f64 / (bn.var[c] as f64 + bn.eps).sqrt();
            let a = alpha.map_or(1.0, |a| a[c] as f64);
            RealChannel {
                scale: (a * g) as f32,
                bias: (bn.beta[c] as f64 - bn.mean[c] as f64 * g) as f32,
                shift_in: shift_in[c],
                slope: slope[c],
                shift_out: shift_out[c],
            }
        })
        .collect()
}

/// A downsampling shortcut's 1×1 conv with its batch norm folded in: `weight[o][c]·γ/s` and
/// `β − μ·γ/s` (`s = √(var + ε)`, in f64, rounded to f32).
fn projection(p: &crate::model::Projection, layer: &str) -> Result<Projection> {
    let b = bn(&p.bn, &format!("{layer} shortcut"))?;
    let w = values(p.weight.val());
    let out = b.gamma.len();
    let cin = w.len() / out;
    let g = |o: usize| b.gamma[o] as f64 / (b.var[o] as f64 + b.eps).sqrt();
    Ok(Projection {
        weight: (0..out * cin)
            .map(|i| (w[i] as f64 * g(i / cin)) as f32)
            .collect(),
        bias: (0..out)
            .map(|o| (b.beta[o] as f64 - b.mean[o] as f64 * g(o)) as f32)
            .collect(),
    })
}

/// What the block after conv block `i` subtracts before its sign (RSign), per channel of block
/// `i`'s output: the next conv block's, or the first dense block's after the last conv; zeros
/// when there is none (the signs of `z` itself).
fn next_rsign(model: &Model, i: usize) -> Vec<f32> {
    let next = match model.convs.get(i + 1) {
        Some(b) => b.rsign.as_ref(),
        None => model.dense.first().and_then(|d| d.rsign.as_ref()),
    };
    match next {
        Some(t) => values(t.val()),
        None => vec![0.0; values(model.convs[i].bn.gamma.val()).len()],
    }
}

/// What went into the file besides the model.
#[derive(Clone, Debug)]
pub struct ExportSource {
    /// Validation top-1 of the source model's last epoch, if measured.
    pub val_top1: Option<f64>,
    /// Epochs the source model was trained for, if its state was found.
    pub epochs: Option<usize>,
    /// The checkpoint directory exported from.
    pub checkpoint: String,
}

/// Builds the extractor of `model` up to layer `cut` (a name of [`layer_names`]; the last hidden
/// layer by default). Only binary models can be frozen.
pub fn build(
    model: &Model,
    config: &ModelConfig,
    cut: Option<&str>,
    src: ExportSource,
) -> Result<ExtractorFile> {
    let arch = &config.arch;
    if config.precision != Precision::Binary || !model.binary {
        return Err(Error::Shape(
            "only a binary network can be frozen into packed bits (this is a float twin)".into(),
        ));
    }
    let names = layer_names(arch);
    let cut = match cut {
        Some(c) => c.to_string(),
        None => names
            .last()
            .cloned()
            .ok_or_else(|| Error::Shape("the architecture has no layers".into()))?,
    };
    let stop = names
        .iter()
        .position(|n| *n == cut)
        .ok_or_else(|| Error::Shape(format!("no layer '{cut}'; layers: {}", names.join(", "))))?;
    let mut layers = Vec::new();
    let mut prev = [arch.input, arch.input, arch.in_channels];
    for (i, (block, c)) in model.convs.iter().zip(&arch.convs).enumerate() {
        if i > stop {
            break;
        }
        let layer = conv_layer(model, i, block, c, &names[i], prev)?;
        prev = layer.spec.out_shape;
        layers.push(layer);
    }
    let nconv = arch.convs.len();
    for (j, (block, &d)) in model.dense.iter().zip(&arch.dense).enumerate() {
        if nconv + j > stop {
            break;
        }
        layers.push(dense_layer(model, block, d, &names[nconv + j], prev)?);
        prev = [1, 1, d];
    }
    let classifier = (stop + 1 == names.len()).then(|| classifier_data(model, arch, prev));
    let graph = Graph {
        input: input_spec(arch),
        layers: layers.iter().map(|l| l.spec.clone()).collect(),
        cut,
        classifier: classifier
            .as_ref()
            .map(|_| crate::extractor::ClassifierSpec {
                in_features: prev.iter().product(),
                classes: arch.classes,
            }),
        source: Source {
            arch: arch.clone(),
            precision: config.precision.to_string(),
            weight_scale: model.weight_scale,
            bn_epsilon: config.bn_epsilon,
            val_top1: src.val_top1,
            epochs: src.epochs,
            checkpoint: src.checkpoint,
            trained_with: None,
            float_twin: None,
        },
    };
    Ok(ExtractorFile {
        graph,
        layers,
        classifier,
    })
}

/// The extractor's input: the architecture's size and channels, and the eval preprocessing.
fn input_spec(arch: &Arch) -> InputSpec {
    let pre = Preprocess::eval(arch.input);
    InputSpec {
        size: arch.input,
        channels: arch.in_channels,
        mean: pre.mean.to_vec(),
        std: pre.std.to_vec(),
        layout: "NHWC f32, x = p*(1/(255*std)) - mean/std, center crop resized to size".into(),
    }
}

/// Conv block `i` (named `name`, laid out as `c`) as an extractor layer reading a `prev`
/// (h, w, channels) map: packed OHWI weights and thresholds, or a Bi-Real real epilogue.
fn conv_layer(
    model: &Model,
    i: usize,
    block: &crate::model::ConvBlock,
    c: &crate::arch::ConvBlock,
    name: &str,
    prev: [usize; 3],
) -> Result<LayerData> {
    let w = values(block.weight.val());
    let cin = prev[2];
    let k = c.kernel;
    // OIHW → OHWI rows of cin values.
    let mut ohwi = vec![0f32; w.len()];
    for o in 0..c.out {
        for ci in 0..cin {
            for ky in 0..k {
                for kx in 0..k {
                    ohwi[((o * k + ky) * k + kx) * cin + ci] =
                        w[((o * cin + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    let a = model.weight_scale.then(|| alpha(&w, cin * k * k));
    let b = bn(&block.bn, name)?;
    let first = i == 0;
    let spec = LayerSpec::conv(first, c, name, prev);
    let layer = match &block.rprelu {
        Some(r) if model.bireal => {
            let shortcut = match (block.shortcut, c.pool) {
                (false, _) => Shortcut::None,
                (true, None) => Shortcut::Identity,
                (true, Some(_)) => Shortcut::AvgPool,
            };
            let t = next_rsign(model, i);
            let projection = match &block.project {
                Some(p) => Some(projection(p, name)?),
                None => None,
            };
            LayerData {
                spec: LayerSpec {
                    real: Some(RealSpec {
                        shortcut,
                        project: projection.is_some(),
                    }),
                    ..spec
                },
                weights: pack_rows(&ohwi, cin),
                thresholds: Thresholds::Float(
                    t.into_iter()
                        .map(|t| FloatThreshold { t, mode: 0 })
                        .collect(),
                ),
                real: Some(real_channels(&b, a.as_deref(), r)),
                projection,
            }
        }
        _ => LayerData {
            spec,
            weights: pack_rows(&ohwi, cin),
            thresholds: if first {
                Thresholds::Float(float_thresholds(&b, a.as_deref()))
            } else {
                Thresholds::Int(int_thresholds(&b, a.as_deref(), 0))
            },
            real: None,
            projection: None,
        },
    };
    Ok(layer)
}

/// Hidden dense block `block` (named `name`, `d` outputs) as an extractor layer reading a
/// `prev` (h, w, channels) map: its weights reordered to the packed NHWC map, and thresholds.
fn dense_layer(
    model: &Model,
    block: &crate::model::DenseBlock,
    d: usize,
    name: &str,
    prev: [usize; 3],
) -> Result<LayerData> {
    let w = values(block.weight.val());
    let [h, wd, ch] = prev;
    let fin = h * wd * ch;
    let spec = LayerSpec::dense(name.to_string(), prev, d);
    let (in_features, offset) = (spec.in_features, spec.dot_offset);
    // burn flattens C, H, W; the extractor reads the NHWC packed map (padded channels +1).
    let mut rows = vec![0f32; d * in_features];
    for o in 0..d {
        let src = &w[o * fin..(o + 1) * fin];
        let dst = &mut rows[o * in_features..(o + 1) * in_features];
        if h * wd == 1 {
            dst.copy_from_slice(src);
            continue;
        }
        let cp = words(ch) * 32;
        for y in 0..h {
            for x in 0..wd {
                for c in 0..cp {
                    dst[(y * wd + x) * cp + c] = if c < ch {
                        src[c * h * wd + y * wd + x]
                    } else {
                        1.0
                    };
                }
            }
        }
    }
    let a = model.weight_scale.then(|| alpha(&w, fin));
    let b = bn(&block.bn, name)?;
    Ok(LayerData {
        spec,
        weights: pack_rows(&rows, in_features),
        thresholds: Thresholds::Int(int_thresholds(&b, a.as_deref(), offset)),
        real: None,
        projection: None,
    })
}

/// The float classifier reading a `prev` (h, w, channels) map, its weights reordered from
/// burn's C, H, W flattening to NHWC.
fn classifier_data(model: &Model, arch: &Arch, prev: [usize; 3]) -> ClassifierData {
    let w = values(model.classifier.weight.val());
    let [h, wd, ch] = prev;
    let fin = h * wd * ch;
    let mut weight = w.clone();
    if h * wd > 1 {
        for o in 0..arch.classes {
            for y in 0..h {
                for x in 0..wd {
                    for c in 0..ch {
                        weight[o * fin + (y * wd + x) * ch + c] =
                            w[o * fin + c * h * wd + y * wd + x];
                    }
                }
            }
        }
    }
    ClassifierData {
        weight,
        bias: values(model.classifier.bias.val()),
    }
}

/// The burn model's eval-mode values at every exported layer, NHWC: (pre-BN, post-BN, act).
#[derive(Debug)]
pub struct BurnLayer {
    /// Pre-activations: the block's conv/dense output before batch norm (after pooling, times α
    /// when weight scaling is on).
    pub pre: Vec<f32>,
    /// What the sign is taken of: the batch-norm output; in a Bi-Real conv block, `z − rsign` of
    /// the block after (its distance from the threshold).
    pub post: Vec<f32>,
    /// Activation: the sign (±1) of `post`, the next layer's input bits.
    pub act: Vec<f32>,
    /// A Bi-Real conv block's real output `z` (after the shortcut and RPReLU).
    pub real: Option<Vec<f32>>,
}

/// Runs the burn model (eval mode) on NHWC images and returns every block's values in NHWC.
pub fn burn_layers(
    model: &Model,
    images: &[f32],
    n: usize,
    size: usize,
    device: &Device,
) -> Vec<BurnLayer> {
    let c = images.len() / (n * size * size);
    let x = Tensor::<4>::from_data(TensorData::new(images.to_vec(), [n, size, size, c]), device)
        .permute([0, 3, 1, 2]);
    let trace = model.trace(x);
    let nhwc = |t: Tensor<4>| values(t.permute([0, 2, 3, 1]));
    let nconv = trace.convs.len();
    trace
        .convs
        .into_iter()
        .chain(trace.dense)
        .enumerate()
        .map(|(i, b)| {
            if model.bireal && i < nconv {
                let z = nhwc(b.act);
                let t = next_rsign(model, i);
                let post: Vec<f32> = z
                    .iter()
                    .enumerate()
                    .map(|(j, z)| z - t[j % t.len()])
                    .collect();
                let act = post
                    .iter()
                    .map(|d| if *d >= 0.0 { 1.0 } else { -1.0 })
                    .collect();
                return BurnLayer {
                    pre: nhwc(b.pre_bn),
                    post,
                    act,
                    real: Some(z),
                };
            }
            BurnLayer {
                pre: nhwc(b.pre_bn),
                post: nhwc(b.post_bn),
                act: nhwc(b.act),
                real: None,
            }
        })
        .collect()
}

/// Sign disagreements between packed bits and burn's activations, split into ties (|BN output|
/// ≤ [`TIE_TOLERANCE`]) and real mismatches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// Bits compared.
    pub bits: u64,
    /// Disagreements where |BN output| ≤ [`TIE_TOLERANCE`].
    pub ties: u64,
    /// Disagreements with a larger |BN output|: real errors.
    pub mismatches: u64,
}

impl Agreement {
    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: Agreement) {
        self.bits += o.bits;
        self.ties += o.ties;
        self.mismatches += o.mismatches;
    }
}

/// Compares packed NHWC bits with burn's NHWC act/post-BN values of `channels` per pixel.
pub fn compare_bits(bits: &[u32], act: &[f32], post: &[f32], channels: usize) -> Agreement {
    let ours = crate::bits::unpack_rows(bits, channels);
    let mut a = Agreement {
        bits: ours.len() as u64,
        ..Agreement::default()
    };
    for ((o, b), p) in ours.iter().zip(act).zip(post) {
        if o != b {
            if p.abs() <= TIE_TOLERANCE {
                a.ties += 1;
            } else {
                a.mismatches += 1;
            }
        }
    }
    a
}

/// What `bnn export` did.
#[derive(Clone, Debug, Serialize)]
pub struct ExportReport {
    /// The extractor file written.
    pub out: PathBuf,
    /// Architecture name of the source model.
    pub arch: String,
    /// Name of the last layer stored (whose output is the feature).
    pub cut: String,
    /// Layers stored.
    pub layers: usize,
    /// Size of the written file, bytes.
    pub file_bytes: u64,
    /// f32 size of the source model's weights up to the cut (+ classifier when kept), with batch
    /// norm as 4 f32 per channel.
    pub float_bytes: u64,
    /// Validation top-1 of the source model, if measured.
    pub val_top1: Option<f64>,
    /// The checks the file passed before it was written.
    pub verification: Verification,
}

/// One path that will run the file (the CPU binary path, the WGSL kernels on an adapter)
/// against the scalar reference, every layer, every bit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PathCheck {
    /// Which path: `cpu (…)` or `wgsl (adapter)`.
    pub path: String,
    /// Bits compared over every layer's output.
    pub bits: u64,
    /// Bits that differ from the reference.
    pub mismatches: u64,
}

/// The verification run at export.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    /// Images run through both burn and the file.
    pub images: usize,
    /// Where the images came from (a data set and split).
    pub image_source: String,
    /// Every layer fed burn's own input, compared with burn's signs.
    pub per_layer: Agreement,
    /// Integer pre-activations that differ from burn's (layers without α, after the first).
    pub preact_mismatches: u64,
    /// Real layers (Bi-Real blocks) fed burn's own input: the largest difference between their
    /// real output and burn's, relative to `1 + |burn's value|` (must stay under
    /// [`REAL_TOLERANCE`]).
    pub real_error: f32,
    /// The whole extractor (scalar reference) against burn's features at the cut.
    pub end_to_end: Agreement,
    /// The kernels that run the file against the scalar reference.
    pub paths: Vec<PathCheck>,
}

impl Verification {
    /// Whether the file may be written: no real mismatch on any layer or pre-activation, ties
    /// under 1 per 1000 bits (at least 1 allowed), every kernel path bit-identical to the
    /// reference, and end to end no mismatch unless an earlier layer had a tie (a tie flips one
    /// bit, which may flip later ones), and then under 1 %.
    pub fn check(&self) -> std::result::Result<(), String> {
        let mut why = Vec::new();
        let p = &self.per_layer;
        if p.mismatches > 0 {
            why.push(format!("{} sign mismatches with burn", p.mismatches));
        }
        if self.preact_mismatches > 0 {
            why.push(format!(
                "{} pre-activations differ from burn's",
                self.preact_mismatches
            ));
        }
        if self.real_error > REAL_TOLERANCE {
            why.push(format!(
                "real outputs differ from burn's by up to {:.2e} (relative; at most {REAL_TOLERANCE:.0e})",
                self.real_error
            ));
        }
        if p.ties > (p.bits / 1000).max(1) {
            why.push(format!(
                "{} ties in {} bits (over 1 per 1000)",
                p.ties, p.bits
            ));
        }
        for k in &self.paths {
            if k.mismatches > 0 {
                why.push(format!(
                    "the {} path differs from the reference in {} of {} bits",
                    k.path, k.mismatches, k.bits
                ));
            }
        }
        let e = &self.end_to_end;
        if p.ties == 0 && e.mismatches > 0 {
            why.push(format!(
                "{} end-to-end mismatches although no layer had a tie",
                e.mismatches
            ));
        } else if e.mismatches * 100 > e.bits {
            why.push(format!(
                "{} end-to-end mismatches in {} bits",
                e.mismatches, e.bits
            ));
        }
        if why.is_empty() {
            Ok(())
        } else {
            Err(why.join("; "))
        }
    }
}

/// Bits that differ between two packed outputs (`a` and `b` of equal length; a length
/// difference counts every missing word's 32 bits).
fn bit_differences(a: &[u32], b: &[u32]) -> u64 {
    let common: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x ^ y).count_ones() as u64)
        .sum();
    common + 32 * a.len().abs_diff(b.len()) as u64
}

/// Checks `file` against `model` on `images` (NHWC, normalised): each layer and the whole
/// extractor with the scalar reference against burn, then each path of `gpu` (when given) and the
/// CPU binary path against the reference at every layer.
pub fn verify(
    model: &Model,
    file: &ExtractorFile,
    images: &[f32],
    n: usize,
    device: &Device,
    gpu: Option<&crate::gpu::Gpu>,
) -> Result<Verification> {
    let size = file.graph.input.size;
    let burn = burn_layers(model, images, n, size, device);
    let mut v = Verification {
        images: n,
        ..Verification::default()
    };
    for (i, l) in file.layers.iter().enumerate() {
        let b = &burn[i];
        let c = l.spec.out_channels();
        let packed_prev = if i == 0 {
            Vec::new()
        } else {
            pack_rows(&burn[i - 1].act, file.layers[i - 1].spec.out_channels())
        };
        let input = if i == 0 {
            LayerInput::Image(images)
        } else {
            LayerInput::Bits(&packed_prev)
        };
        let shortcut = i.checked_sub(1).and_then(|p| burn[p].real.as_deref());
        let out = reference::layer_output(l, input, shortcut, n)?;
        v.per_layer.add(compare_bits(&out.bits, &b.act, &b.post, c));
        if let (Some(ours), Some(theirs)) = (&out.real, &b.real) {
            let worst = ours
                .iter()
                .zip(theirs)
                .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                .fold(0f32, f32::max);
            v.real_error = v.real_error.max(worst);
        }
        if i > 0 && !model.weight_scale {
            let input = LayerInput::Bits(&packed_prev);
            if let reference::Preact::Int(p) = reference::layer_preact(l, input, n)? {
                v.preact_mismatches += p
                    .iter()
                    .zip(&b.pre)
                    .filter(|(x, y)| **x as f32 != **y)
                    .count() as u64;
            }
        }
    }
    let taps: Vec<usize> = (0..file.layers.len()).collect();
    let want = reference::run_taps(file, images, n, &taps)?;
    let last = file.layers.len() - 1;
    v.end_to_end = compare_bits(
        &want[last],
        &burn[last].act,
        &burn[last].post,
        file.cut().out_channels(),
    );
    let mut check = |path: String, got: Vec<Vec<u32>>| {
        let bits = want.iter().map(|w| 32 * w.len() as u64).sum();
        let mismatches = want
            .iter()
            .zip(&got)
            .map(|(w, g)| bit_differences(w, g))
            .sum();
        v.paths.push(PathCheck {
            path,
            bits,
            mismatches,
        });
    };
    let cpu = crate::cpu::CpuExtractor::new(file, &crate::cpu::Threads::all()?)?;
    check(
        format!("cpu ({})", cpu.isa()),
        cpu.run_taps(images, n, &taps)?,
    );
    if let Some(gpu) = gpu {
        let ex = crate::extractor::Extractor::new(gpu, file.clone())?;
        check(
            format!("wgsl ({})", gpu.info.name),
            ex.run_taps(images, &taps)?,
        );
    }
    Ok(v)
}

/// How `bnn export` chooses and checks what it writes.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Layer whose output is the feature; the last hidden layer when `None`.
    pub cut: Option<String>,
    /// Number of images the file is verified on (at least 1).
    pub verify_images: usize,
    /// The image set to verify on; the run's own data (its validation split) when `None`.
    pub verify_data: Option<PathBuf>,
    /// Also verify the WGSL kernels on the default adapter (when one exists).
    pub use_gpu: bool,
    /// The source model's float twin (a `bnn pretrain --precision float` run), recorded in the
    /// file's `source.float_twin` with its accuracy and command.
    pub float_twin: Option<PathBuf>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            cut: None,
            verify_images: 16,
            verify_data: None,
            use_gpu: true,
            float_twin: None,
        }
    }
}

/// The first `n` images of the validation split (else the first split) of `data`, prepared as
/// `file` says, and a description of where they came from.
fn verification_images(
    data: &Path,
    layout: crate::data::Layout,
    val_split: Option<&str>,
    file: &ExtractorFile,
    n: usize,
) -> Result<(Vec<f32>, usize, String)> {
    let hint = "pass `verify_data` with any image set in a layout bnn reads";
    let split = match val_split {
        Some(s) => s.to_string(),
        None => crate::data::ImageFolder::splits(data)
            .map_err(|e| Error::Dataset(format!("verification images: {e}; {hint}")))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Dataset(format!(
                    "{} has no split to verify on; {hint}",
                    data.display()
                ))
            })?,
    };
    let set = crate::data::ImageFolder::open_layout(data, layout, &split)
        .map_err(|e| Error::Dataset(format!("verification images: {e}; {hint}")))?;
    let pre = file.graph.input.preprocess(data)?;
    let n = n.min(set.len());
    if n == 0 {
        return Err(Error::Dataset(format!(
            "split '{split}' of {} has no images to verify on; {hint}",
            data.display()
        )));
    }
    let mut images = vec![0f32; n * pre.image_len()];
    let mut rng = Rng::new(0);
    for (i, out) in images.chunks_exact_mut(pre.image_len()).enumerate() {
        crate::data::preprocess::load_image_into(&set.read(i)?, &pre, &mut rng, out)?;
    }
    Ok((images, n, format!("{} ({split})", data.display())))
}

/// `bnn export`: checkpoint directory → extractor file, verified, written atomically.
pub fn export(checkpoint: &Path, out: &Path, options: &ExportOptions) -> Result<ExportReport> {
    // `--out RUN/config.json` (or a file of RUN/checkpoint/) would destroy the run being read.
    let mut inputs = vec![("`checkpoint`", checkpoint)];
    inputs.extend(options.float_twin.as_deref().map(|d| ("`float_twin`", d)));
    inputs.extend(options.verify_data.as_deref().map(|d| ("`verify_data`", d)));
    crate::atomic::check_output("`out`", out, &inputs)?;
    let device = Device::flex();
    let (config, model) = crate::train::checkpoint::load_model(checkpoint, &device)?;
    let run = crate::train::checkpoint::read_config(checkpoint)?;
    let state = crate::train::checkpoint::load_state(checkpoint)
        .ok()
        .map(|(_, s)| s);
    let last = state.as_ref().and_then(|s| s.history.last().cloned());
    let src = ExportSource {
        val_top1: last.as_ref().map(|m| m.val_top1),
        epochs: state.as_ref().map(|s| s.epochs_done),
        checkpoint: checkpoint.display().to_string(),
    };
    let mut file = build(&model, &config, options.cut.as_deref(), src.clone())?;
    file.graph.source.trained_with = Some(run.command(checkpoint));
    if let Some(dir) = &options.float_twin {
        file.graph.source.float_twin = Some(float_twin(dir)?);
    }
    let (data, layout, split) = match &options.verify_data {
        Some(d) => (d.clone(), crate::data::Layout::Auto, None),
        None => (run.data.clone(), run.layout, run.val_split.clone()),
    };
    let (images, n, image_source) = verification_images(
        &data,
        layout,
        split.as_deref(),
        &file,
        options.verify_images.max(1),
    )?;
    let gpu = if options.use_gpu {
        crate::gpu::Gpu::new().ok()
    } else {
        None
    };
    let mut verification = verify(&model, &file, &images, n, &device, gpu.as_ref())?;
    verification.image_source = image_source;
    write_verified(&file, &verification, out)?;
    Ok(ExportReport {
        out: out.to_path_buf(),
        arch: config.arch.name.clone(),
        cut: file.graph.cut.clone(),
        layers: file.layers.len(),
        file_bytes: std::fs::metadata(out).map_err(|e| Error::io(out, e))?.len(),
        float_bytes: float_bytes(&file),
        val_top1: src.val_top1,
        verification,
    })
}

/// The float twin run `dir` as the extractor file records it (`bnn export --float-twin`).
fn float_twin(dir: &Path) -> Result<crate::extractor::FloatTwinSpec> {
    let bad = |m: String| Error::Config(format!("`float_twin` {}: {m}", dir.display()));
    let run = crate::train::checkpoint::read_config(dir).map_err(|e| bad(e.to_string()))?;
    if run.model.precision != Precision::Float {
        return Err(bad(format!(
            "a {} network; name the run of the float twin (`precision` float)",
            run.model.precision
        )));
    }
    let (_, state) = crate::train::checkpoint::load_state(dir).map_err(|e| bad(e.to_string()))?;
    Ok(crate::extractor::FloatTwinSpec {
        checkpoint: dir.display().to_string(),
        arch: run.model.arch.name.clone(),
        val_top1: state.history.last().map(|m| m.val_top1),
        trained_with: run.command(dir),
    })
}

/// Writes `file` to `out` (atomically) only when `verification` passes [`Verification::check`]
/// and the serialised bytes read back identically; otherwise nothing is written.
pub fn write_verified(file: &ExtractorFile, verification: &Verification, out: &Path) -> Result<()> {
    if let Err(why) = verification.check() {
        return Err(Error::ModelFile {
            path: out.to_path_buf(),
            message: format!("verification failed, nothing written: {why}"),
        });
    }
    let bytes = file.to_bytes()?;
    let back = ExtractorFile::from_bytes(&bytes, out)?;
    if back != *file {
        return Err(Error::ModelFile {
            path: out.to_path_buf(),
            message: "the serialised file does not read back identically, nothing written".into(),
        });
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    crate::atomic::write_atomic(out, &bytes)
}

/// f32 bytes of the same layers in a float model (weights + 4 BN values per channel, classifier).
pub fn float_bytes(file: &ExtractorFile) -> u64 {
    let mut total = 0u64;
    for l in &file.layers {
        let s = &l.spec;
        let fan_in = match s.kind {
            LayerKind::XnorDense => s.in_shape.iter().product::<usize>(),
            _ => s.kernel * s.kernel * s.in_shape[2],
        };
        total += 4 * (fan_in * s.out_channels() + 4 * s.out_channels()) as u64;
    }
    if let Some(c) = &file.classifier {
        total += 4 * (c.weight.len() + c.bias.len()) as u64;
    }
    total
}
