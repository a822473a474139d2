//! The extractor file: tensors and the JSON graph, (de)serialised with safetensors, and every check
//! a loaded file must pass before anything runs it. See `docs/FORMAT.md`.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Pool, out_size};
use crate::atomic::write_atomic;
use crate::bits::words;
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::kernels::{FloatThreshold, Padding, Threshold};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "bnn-extractor";
/// Version of the layout described in `docs/FORMAT.md`; a loader refuses any other.
pub const VERSION: u32 = 1;
/// The bit conventions, stored verbatim in the `conventions` metadata key.
pub const CONVENTIONS: &str = "set bit = -1, clear bit = +1, sign(0) = +1; bit i of a word is \
element i of its 32-group (LSB first); activations NHWC packed along channels, ceil(C/32) words \
per pixel; conv weights OHWI packed along input channels; dense weights [out][ceil(in/32)]; tail \
bits 0; dot = K - 2*popcount(a XOR w) with K the valid taps x channels (zero padding skips \
out-of-image taps); output +1 iff pre >= threshold (flip 0) or pre <= threshold (flip 1)";

/// Kind of a layer of the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// Real image (f32 NHWC) × packed binary weights → f32 sums → float threshold.
    FirstConv,
    /// Packed activations × packed weights → integer dots → integer threshold.
    XnorConv,
    /// Packed features × packed weights `[out][in_features/32]` → dots → integer threshold.
    XnorDense,
}

/// One layer of the graph. Tensors: `{name}.weight` (U32), `{name}.threshold` (I32, or F32 for
/// the first layer), `{name}.flip` (U8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Layer name, e.g. `conv1`, `fc1`; prefixes the layer's tensor names.
    pub name: String,
    /// What the layer computes.
    pub kind: LayerKind,
    /// Input (height, width, channels); a dense layer's is the previous layer's output.
    pub in_shape: [usize; 3],
    /// Output (height, width, channels) after pooling; `[1, 1, out]` for dense layers.
    pub out_shape: [usize; 3],
    /// Conv: kernel side, stride, padding on every side (0, 1, 0 for dense layers).
    pub kernel: usize,
    /// Conv stride (1 for dense layers).
    pub stride: usize,
    /// Conv padding on every side (0 for dense layers).
    pub pad: usize,
    /// How out-of-image taps count in the dot (`zero`: skipped).
    pub padding: Padding,
    /// Max-pool of the pre-activations (before the threshold).
    pub pool: Option<Pool>,
    /// Dense only: the length of the packed input vector in bits. A dense layer after a conv
    /// with H·W > 1 reads the NHWC packed map as is, `H·W·ceil(C/32)·32` bits, the padding
    /// channels' weight bits clear; those `dot_offset` bits add +1 each to every dot, and the
    /// thresholds include the offset. 0 for conv layers.
    pub in_features: usize,
    /// Dense only: padding-channel bits of the packed input (see `in_features`), 0 otherwise.
    pub dot_offset: i32,
}

/// The image the first layer expects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Side of the square input image, pixels.
    pub size: usize,
    /// Input channels (3: RGB).
    pub channels: usize,
    /// Per-channel normalisation, `x · (1/(255·std)) − mean/std` in f32 (docs/FORMAT.md §5); the
    /// extractor's users prepare images with these values ([`InputSpec::preprocess`]).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (see `mean`).
    pub std: Vec<f32>,
    /// How images are laid out and normalised, in words.
    pub layout: String,
}

impl InputSpec {
    /// How images must be prepared for this file: its own size and per-channel `mean`/`std`
    /// (evaluation crop, no augmentation). Images are decoded as RGB, so a file that expects
    /// another channel count is refused here, naming `path`, before anything runs.
    pub fn preprocess(&self, path: &Path) -> Result<Preprocess> {
        if self.channels != 3 || self.mean.len() != 3 || self.std.len() != 3 {
            return Err(bad(
                path,
                format!(
                    "input.channels is {}, but images are decoded as RGB (3 channels): this \
                     file cannot run on images; export it from a model with 3 input channels",
                    self.channels
                ),
            ));
        }
        let three = |v: &[f32]| [v[0], v[1], v[2]];
        Ok(Preprocess {
            mean: three(&self.mean),
            std: three(&self.std),
            ..Preprocess::eval(self.size)
        })
    }
}

/// Where the network came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The source model's architecture.
    pub arch: Arch,
    /// The source model's precision (`binary`).
    pub precision: String,
    /// Whether the source model had XNOR-Net weight scales α (folded into the thresholds).
    pub weight_scale: bool,
    /// Batch-norm ε of the source model.
    pub bn_epsilon: f64,
    /// Validation top-1 of the source model at export, if it was measured.
    pub val_top1: Option<f64>,
    /// Epochs the source model was trained for, if known.
    pub epochs: Option<usize>,
    /// The checkpoint exported from (its path at export).
    pub checkpoint: String,
}

/// The float classifier of the source model (present when the cut is its last hidden layer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifierSpec {
    /// Features the classifier reads (the cut's H·W·C).
    pub in_features: usize,
    /// Number of classes (logits).
    pub classes: usize,
}

/// The JSON graph (metadata key `graph`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// The image the first layer expects.
    pub input: InputSpec,
    /// Layers in execution order, the cut last.
    pub layers: Vec<LayerSpec>,
    /// Name of the layer whose output is the feature (the last layer stored).
    pub cut: String,
    /// The source model's classifier, when stored.
    pub classifier: Option<ClassifierSpec>,
    /// Where the network came from.
    pub source: Source,
}

/// Per-channel thresholds of a layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Thresholds {
    /// Integer thresholds on the dots of binary layers.
    Int(Vec<Threshold>),
    /// Float thresholds on the sums of the first layer.
    Float(Vec<FloatThreshold>),
}

impl Thresholds {
    /// Number of channels (one threshold each).
    pub fn len(&self) -> usize {
        match self {
            Thresholds::Int(v) => v.len(),
            Thresholds::Float(v) => v.len(),
        }
    }
    /// Whether there are no thresholds.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A layer's spec and tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerData {
    /// The layer's graph entry.
    pub spec: LayerSpec,
    /// Packed weights, laid out as [`LayerSpec::weight_shape`].
    pub weights: Vec<u32>,
    /// One threshold per output channel (float for the first layer).
    pub thresholds: Thresholds,
}

/// Classifier tensors `classifier.weight` `[classes][in]` F32 (feature order of the extractor:
/// NHWC) and `classifier.bias` `[classes]` F32.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierData {
    /// `[classes][in_features]`, row-major.
    pub weight: Vec<f32>,
    /// `[classes]`.
    pub bias: Vec<f32>,
}

/// A whole extractor file in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtractorFile {
    /// The JSON graph.
    pub graph: Graph,
    /// Every layer's spec and tensors, in graph order.
    pub layers: Vec<LayerData>,
    /// The classifier's tensors, when the graph has one.
    pub classifier: Option<ClassifierData>,
}

impl LayerSpec {
    /// A binary dense layer `name` of `out` outputs reading the previous layer's output `in_shape`
    /// (H, W, C). After a conv with H·W > 1 it reads the NHWC packed map as is (see
    /// [`in_features`](Self::in_features)): `H·W·ceil(C/32)·32` bits, of which `dot_offset` are
    /// padding channels.
    pub fn dense(name: String, in_shape: [usize; 3], out: usize) -> LayerSpec {
        let [h, w, c] = in_shape;
        let (in_features, dot_offset) = if h * w == 1 {
            (c, 0)
        } else {
            (h * w * words(c) * 32, h * w * (words(c) * 32 - c))
        };
        LayerSpec {
            name,
            kind: LayerKind::XnorDense,
            in_shape,
            out_shape: [1, 1, out],
            kernel: 0,
            stride: 1,
            pad: 0,
            padding: Padding::Zero,
            pool: None,
            in_features,
            dot_offset: dot_offset as i32,
        }
    }

    /// Packed weight words and their safetensors shape.
    pub fn weight_shape(&self) -> Vec<usize> {
        match self.kind {
            LayerKind::XnorDense => vec![self.out_shape[2], words(self.in_features)],
            _ => vec![
                self.out_shape[2],
                self.kernel,
                self.kernel,
                words(self.in_shape[2]),
            ],
        }
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_shape[2]
    }
    /// Output (height, width) of the conv before pooling.
    pub fn conv_out(&self) -> (usize, usize) {
        if self.kind == LayerKind::XnorDense {
            return (1, 1);
        }
        (
            out_size(self.in_shape[0], self.kernel, self.stride, self.pad),
            out_size(self.in_shape[1], self.kernel, self.stride, self.pad),
        )
    }
    /// Features per image at this layer's output (H·W·C).
    pub fn out_len(&self) -> usize {
        self.out_shape.iter().product()
    }
    /// Packed words per image at this layer's output.
    pub fn out_words(&self) -> usize {
        self.out_shape[0] * self.out_shape[1] * words(self.out_shape[2])
    }
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Graph {
    /// Checks the graph's internal consistency: shapes chain from the input to the cut, each
    /// layer's output shape follows from its kernel, stride, padding and pooling, names are
    /// unique and the cut is the last layer. Sizes are bounded so no later product overflows.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |m: String| Err(bad(path, m));
        const MAX_DIM: usize = 1 << 20;
        let i = &self.input;
        if i.size == 0 || i.size > 16384 || i.channels == 0 || i.channels > 4096 {
            return err(format!(
                "input {}×{}×{} out of range",
                i.size, i.size, i.channels
            ));
        }
        if i.mean.len() != i.channels || i.std.len() != i.channels {
            return err(format!(
                "input.mean has {} and input.std {} values; input.channels is {}: give one per channel",
                i.mean.len(),
                i.std.len(),
                i.channels
            ));
        }
        if let Some(m) = i.mean.iter().find(|m| !m.is_finite()) {
            return err(format!("input.mean holds {m}: every mean must be finite"));
        }
        if let Some(s) = i.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return err(format!(
                "input.std holds {s}: every std must be finite and > 0 (it divides)"
            ));
        }
        if self.layers.is_empty() {
            return err("the graph has no layers".into());
        }
        let mut prev = [i.size, i.size, i.channels];
        let mut seen = std::collections::HashSet::new();
        for (n, l) in self.layers.iter().enumerate() {
            let at = |m: String| bad(path, format!("layer {n} ('{}'): {m}", l.name));
            if l.name.is_empty() || !seen.insert(l.name.as_str()) {
                return Err(at("empty or duplicate name".into()));
            }
            if l.in_shape != prev {
                return Err(at(format!(
                    "input shape {:?} does not follow the previous output {prev:?}",
                    l.in_shape
                )));
            }
            let expected_kind = match (n, l.kind) {
                (0, LayerKind::FirstConv) => true,
                (_, LayerKind::FirstConv) => false,
                (0, _) => false,
                (_, LayerKind::XnorConv) => self.layers[n - 1].kind != LayerKind::XnorDense,
                (_, LayerKind::XnorDense) => true,
            };
            if !expected_kind {
                return Err(at(format!("a {:?} layer cannot be layer {n} here", l.kind)));
            }
            let c = l.out_shape[2];
            if c == 0 || c > MAX_DIM || l.out_shape.iter().any(|&d| d == 0 || d > MAX_DIM) {
                return Err(at(format!("output shape {:?} out of range", l.out_shape)));
            }
            match l.kind {
                LayerKind::XnorDense => {
                    let [h, w, ch] = prev;
                    let (feat, offset) = if h * w == 1 {
                        (ch, 0)
                    } else {
                        (h * w * words(ch) * 32, h * w * (words(ch) * 32 - ch))
                    };
                    if l.in_features != feat || l.dot_offset as i64 != offset as i64 {
                        return Err(at(format!(
                            "in_features {} / dot_offset {} should be {feat} / {offset} for input {prev:?}",
                            l.in_features, l.dot_offset
                        )));
                    }
                    if l.out_shape[..2] != [1, 1] || l.pool.is_some() || l.pad != 0 {
                        return Err(at(
                            "a dense layer has output [1, 1, n], no pool, no pad".into()
                        ));
                    }
                }
                _ => {
                    if l.kernel == 0
                        || l.stride == 0
                        || l.kernel > 64
                        || l.pad > 64
                        || prev[0] + 2 * l.pad < l.kernel
                        || prev[1] + 2 * l.pad < l.kernel
                        || l.in_features != 0
                        || l.dot_offset != 0
                    {
                        return Err(at("invalid kernel, stride or padding".into()));
                    }
                    if l.kind == LayerKind::FirstConv && l.padding != Padding::Zero {
                        return Err(at("the first layer pads with zeros only".into()));
                    }
                    let (mut h, mut w) = l.conv_out();
                    if let Some(p) = l.pool {
                        if p.kernel == 0 || p.stride == 0 || p.kernel > h || p.kernel > w {
                            return Err(at(format!("invalid pool {p:?} on {h}×{w}")));
                        }
                        h = out_size(h, p.kernel, p.stride, 0);
                        w = out_size(w, p.kernel, p.stride, 0);
                    }
                    if [h, w] != l.out_shape[..2] {
                        return Err(at(format!(
                            "output shape {:?} should be [{h}, {w}, {c}]",
                            l.out_shape
                        )));
                    }
                }
            }
            prev = l.out_shape;
        }
        let last = self.layers.last().expect("non-empty");
        if self.cut != last.name {
            return err(format!(
                "cut '{}' is not the last layer stored ('{}')",
                self.cut, last.name
            ));
        }
        if let Some(c) = &self.classifier
            && (c.in_features != last.out_len() || c.classes == 0 || c.classes > MAX_DIM)
        {
            return err(format!(
                "classifier of {} inputs does not fit the {} features at the cut",
                c.in_features,
                last.out_len()
            ));
        }
        Ok(())
    }
}

fn view<'a>(dtype: Dtype, shape: Vec<usize>, bytes: &'a [u8]) -> Result<TensorView<'a>> {
    TensorView::new(dtype, shape, bytes).map_err(|e| Error::Shape(format!("safetensors: {e}")))
}

impl ExtractorFile {
    /// The safetensors bytes of this file (tensors + metadata), after validating the graph.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let here = Path::new("<in memory>");
        self.graph.validate(here)?;
        self.check_tensors(here)?;
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for l in &self.layers {
            let s = &l.spec;
            owned.push((
                format!("{}.weight", s.name),
                Dtype::U32,
                s.weight_shape(),
                bytemuck::cast_slice(&l.weights).to_vec(),
            ));
            let (t, flip): (Vec<u8>, Vec<u8>) = match &l.thresholds {
                Thresholds::Int(v) => (
                    bytemuck::cast_slice(&v.iter().map(|t| t.t).collect::<Vec<i32>>()).to_vec(),
                    v.iter().map(|t| t.mode as u8).collect(),
                ),
                Thresholds::Float(v) => (
                    bytemuck::cast_slice(&v.iter().map(|t| t.t).collect::<Vec<f32>>()).to_vec(),
                    v.iter().map(|t| t.mode as u8).collect(),
                ),
            };
            let dtype = match l.thresholds {
                Thresholds::Int(_) => Dtype::I32,
                Thresholds::Float(_) => Dtype::F32,
            };
            let c = s.out_channels();
            owned.push((format!("{}.threshold", s.name), dtype, vec![c], t));
            owned.push((format!("{}.flip", s.name), Dtype::U8, vec![c], flip));
        }
        if let (Some(spec), Some(c)) = (&self.graph.classifier, &self.classifier) {
            owned.push((
                "classifier.weight".into(),
                Dtype::F32,
                vec![spec.classes, spec.in_features],
                bytemuck::cast_slice(&c.weight).to_vec(),
            ));
            owned.push((
                "classifier.bias".into(),
                Dtype::F32,
                vec![spec.classes],
                bytemuck::cast_slice(&c.bias).to_vec(),
            ));
        }
        let views = owned
            .iter()
            .map(|(n, d, s, b)| Ok((n.clone(), view(*d, s.clone(), b)?)))
            .collect::<Result<Vec<_>>>()?;
        let graph = serde_json::to_string(&self.graph)
            .map_err(|e| Error::Shape(format!("graph to JSON: {e}")))?;
        let meta = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), VERSION.to_string()),
            ("conventions".to_string(), CONVENTIONS.to_string()),
            ("graph".to_string(), graph),
        ]);
        crate::reproducible::serialize(views, &meta)
    }

    /// Writes the file atomically (temp file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<u64> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<ExtractorFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and validates file bytes; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<ExtractorFile> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(path, format!("not a valid safetensors file: {e}")))?;
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(path, format!("not a valid safetensors file: {e}")))?;
        let meta = meta
            .metadata()
            .clone()
            .ok_or_else(|| bad(path, "no metadata: not an extractor file"))?;
        let key = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(path, format!("metadata key '{k}' is missing")))
        };
        if key("format")? != FORMAT {
            return Err(bad(
                path,
                format!("format is '{}', not '{FORMAT}'", key("format")?),
            ));
        }
        let version = key("version")?;
        if version.parse::<u32>().ok() != Some(VERSION) {
            return Err(bad(
                path,
                format!("format version {version}; this build reads version {VERSION}"),
            ));
        }
        let graph: Graph = serde_json::from_str(key("graph")?)
            .map_err(|e| bad(path, format!("graph JSON: {e}")))?;
        graph.validate(path)?;
        let tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<&[u8]> {
            let t = st
                .tensor(name)
                .map_err(|_| bad(path, format!("tensor '{name}' is missing")))?;
            if t.dtype() != dtype || t.shape() != shape {
                return Err(bad(
                    path,
                    format!(
                        "tensor '{name}' is {:?} {:?}; the graph needs {dtype:?} {shape:?}",
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
            Ok(t.data())
        };
        let mut layers = Vec::new();
        for s in &graph.layers {
            let weights: Vec<u32> = bytemuck::pod_collect_to_vec(tensor(
                &format!("{}.weight", s.name),
                Dtype::U32,
                &s.weight_shape(),
            )?);
            let c = s.out_channels();
            let flip = tensor(&format!("{}.flip", s.name), Dtype::U8, &[c])?;
            if flip.iter().any(|&f| f > 1) {
                return Err(bad(
                    path,
                    format!("'{}.flip' holds values other than 0 and 1", s.name),
                ));
            }
            let name = format!("{}.threshold", s.name);
            let thresholds = if s.kind == LayerKind::FirstConv {
                let t: Vec<f32> = bytemuck::pod_collect_to_vec(tensor(&name, Dtype::F32, &[c])?);
                if t.iter().any(|t| t.is_nan()) {
                    return Err(bad(path, format!("'{name}' holds NaN")));
                }
                // ±inf (written by older exports for constant channels) becomes ±f32::MAX: the
                // same outcome for every finite pre-activation, and WGSL may assume no infinities.
                Thresholds::Float(
                    t.iter()
                        .zip(flip)
                        .map(|(&t, &m)| FloatThreshold {
                            t: t.clamp(f32::MIN, f32::MAX),
                            mode: m as u32,
                        })
                        .collect(),
                )
            } else {
                let t: Vec<i32> = bytemuck::pod_collect_to_vec(tensor(&name, Dtype::I32, &[c])?);
                Thresholds::Int(
                    t.iter()
                        .zip(flip)
                        .map(|(&t, &m)| Threshold { t, mode: m as u32 })
                        .collect(),
                )
            };
            layers.push(LayerData {
                spec: s.clone(),
                weights,
                thresholds,
            });
        }
        let classifier = match &graph.classifier {
            None => None,
            Some(c) => Some(ClassifierData {
                weight: bytemuck::pod_collect_to_vec(tensor(
                    "classifier.weight",
                    Dtype::F32,
                    &[c.classes, c.in_features],
                )?),
                bias: bytemuck::pod_collect_to_vec(tensor(
                    "classifier.bias",
                    Dtype::F32,
                    &[c.classes],
                )?),
            }),
        };
        let file = ExtractorFile {
            graph,
            layers,
            classifier,
        };
        file.check_tensors(path)?;
        Ok(file)
    }

    /// Tensor sizes match the graph, packed tail bits are clear and the classifier is finite.
    fn check_tensors(&self, path: &Path) -> Result<()> {
        if self.layers.len() != self.graph.layers.len() {
            return Err(bad(path, "layers and graph differ"));
        }
        for (l, s) in self.layers.iter().zip(&self.graph.layers) {
            let want: usize = s.weight_shape().iter().product();
            if l.spec != *s || l.weights.len() != want || l.thresholds.len() != s.out_channels() {
                return Err(bad(
                    path,
                    format!("layer '{}': tensor sizes do not fit the graph", s.name),
                ));
            }
            let float = matches!(l.thresholds, Thresholds::Float(_));
            if float != (s.kind == LayerKind::FirstConv) {
                return Err(bad(path, format!("layer '{}': threshold type", s.name)));
            }
            // Bits per packed group: a conv tap's channels; a dense row after a 1×1 map; a pixel's
            // channels of a dense row after an H×W map, whose padding channels' weight bits must
            // be clear (each adds +1 through `dot_offset`).
            let [h, w, c] = s.in_shape;
            let bits = match s.kind {
                LayerKind::XnorDense if h * w == 1 => s.in_features,
                _ => c,
            };
            if bits % 32 != 0 {
                let row = words(bits);
                let mask = !0u32 << (bits % 32);
                if l.weights.chunks_exact(row).any(|r| r[row - 1] & mask != 0) {
                    return Err(bad(
                        path,
                        format!(
                            "layer '{}': weight bits past the {bits} channels of a packed group \
                             are set (they must be 0: docs/FORMAT.md, bit conventions)",
                            s.name
                        ),
                    ));
                }
            }
        }
        match (&self.graph.classifier, &self.classifier) {
            (None, None) => Ok(()),
            (Some(s), Some(c))
                if c.weight.len() == s.classes * s.in_features && c.bias.len() == s.classes =>
            {
                if c.weight.iter().chain(&c.bias).any(|v| !v.is_finite()) {
                    return Err(bad(path, "the classifier holds NaN or infinite values"));
                }
                Ok(())
            }
            _ => Err(bad(path, "classifier tensors do not fit the graph")),
        }
    }

    /// Index of the layer called `name` (`conv1`, `fc2`, ...).
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers
            .iter()
            .position(|l| l.spec.name == name)
            .ok_or_else(|| {
                Error::Shape(format!(
                    "no layer '{name}' in this extractor; its layers: {}",
                    self.layer_names().join(", ")
                ))
            })
    }

    /// Names of the stored layers, input to cut.
    pub fn layer_names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.spec.name.clone()).collect()
    }

    /// The same extractor cut earlier, after layer `name` (the classifier is dropped unless the
    /// cut stays where it was).
    pub fn truncated(&self, name: &str) -> Result<ExtractorFile> {
        let i = self.layer_index(name)?;
        if i + 1 == self.layers.len() {
            return Ok(self.clone());
        }
        let mut graph = self.graph.clone();
        graph.layers.truncate(i + 1);
        graph.cut = name.to_string();
        graph.classifier = None;
        Ok(ExtractorFile {
            graph,
            layers: self.layers[..=i].to_vec(),
            classifier: None,
        })
    }

    /// The last layer (the cut).
    pub fn cut(&self) -> &LayerSpec {
        &self
            .layers
            .last()
            .expect("validated: at least one layer")
            .spec
    }
}
