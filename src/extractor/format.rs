//! The extractor file's types: the JSON graph (input, layers, cut, classifier, source) and the
//! tensors beside it. Reading and writing them is `file_io.rs`; every check a loaded graph must
//! pass is `validate.rs`. See `docs/FORMAT.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Pool, out_size};
use crate::bits::words;
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::ops::real_epilogue::RealChannel;
use crate::ops::{FloatThreshold, Padding, Threshold};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "bnn-extractor";
/// Version of the layout described in `docs/FORMAT.md` written for graphs of plain layers; a loader
/// reads it and [`VERSION_REAL`], and refuses any other.
pub const VERSION: u32 = 1;
/// Version written when a layer has a real epilogue ([`LayerSpec::real`], Bi-Real blocks), so a
/// reader of version 1 refuses the file instead of ignoring the field.
pub const VERSION_REAL: u32 = 2;
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
    /// A Bi-Real block's real-valued epilogue (conv layers only): the pooled pre-activation goes
    /// through the folded batch norm, the shortcut and RPReLU (tensor `{name}.real`) to a real
    /// output, whose signs (`z ≥ threshold`, flip 0, an f32 threshold) are the layer's bits.
    /// Absent in plain layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealSpec>,
}

/// A real layer's epilogue (docs/FORMAT.md, real layers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealSpec {
    /// What is added before RPReLU.
    pub shortcut: Shortcut,
    /// The shortcut goes through a real-valued 1×1 conv (tensors `{name}.shortcut_weight`,
    /// `{name}.shortcut_bias`, batch norm folded in) after its window average: the downsampling
    /// path of a block that changes the channel count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub project: bool,
}

/// The shortcut of a real layer, read from the previous layer's real output (which must be a real
/// layer with as many channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shortcut {
    /// Nothing is added.
    None,
    /// The previous real output, same pixel (the conv keeps the side and the layer does not pool).
    Identity,
    /// The previous real output averaged over the layer's `pool` window.
    AvgPool,
}

impl LayerSpec {
    /// The spec of a plain conv layer (the first: real image input) laid out as `c`, reading a
    /// `prev` (h, w, channels) map: its output shape after the stride and the pool; no real layer
    /// (export and the bench's random files add theirs).
    pub fn conv(
        first: bool,
        c: &crate::arch::ConvBlock,
        name: &str,
        prev: [usize; 3],
    ) -> LayerSpec {
        let side = |s: usize| crate::arch::out_size(s, c.kernel, c.stride, c.pad);
        let (mut h, mut wd) = (side(prev[0]), side(prev[1]));
        if let Some(p) = c.pool {
            h = crate::arch::out_size(h, p.kernel, p.stride, 0);
            wd = crate::arch::out_size(wd, p.kernel, p.stride, 0);
        }
        LayerSpec {
            name: name.to_string(),
            kind: if first {
                LayerKind::FirstConv
            } else {
                LayerKind::XnorConv
            },
            in_shape: prev,
            out_shape: [h, wd, c.out],
            kernel: c.kernel,
            stride: c.stride,
            pad: c.pad,
            padding: Padding::Zero,
            pool: c.pool,
            in_features: 0,
            dot_offset: 0,
            real: None,
        }
    }

    /// The shortcut's window over the previous layer's real output, if the layer has one.
    pub fn shortcut_window(&self) -> Option<crate::ops::real_epilogue::Window> {
        use crate::ops::real_epilogue::Window;
        let [in_h, in_w, _] = self.in_shape;
        match self.real.map(|r| r.shortcut) {
            Some(Shortcut::Identity) => Some(Window {
                in_h,
                in_w,
                kernel: 1,
                stride: 1,
            }),
            Some(Shortcut::AvgPool) => self.pool.map(|p| Window {
                in_h,
                in_w,
                kernel: p.kernel,
                stride: p.stride,
            }),
            _ => None,
        }
    }

    /// The epilogue shape of a real layer over `batch` images.
    pub fn epilogue_shape(&self, batch: usize) -> crate::ops::real_epilogue::EpilogueShape {
        crate::ops::real_epilogue::EpilogueShape {
            batch,
            h: self.out_shape[0],
            w: self.out_shape[1],
            channels: self.out_channels(),
            shortcut: self.shortcut_window(),
            project: self
                .real
                .filter(|r| r.project && r.shortcut != Shortcut::None)
                .map(|_| self.in_shape[2]),
        }
    }
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
    /// The `bnn pretrain` command that trained the source model, rebuilt from its `config.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_with: Option<String>,
    /// The source model's float twin, when `bnn export --float-twin` named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub float_twin: Option<FloatTwinSpec>,
}

/// The float twin a binary network is compared with (informational).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatTwinSpec {
    /// Its run directory at export.
    pub checkpoint: String,
    /// Its architecture name.
    pub arch: String,
    /// Its validation top-1 (last epoch), a fraction.
    pub val_top1: Option<f64>,
    /// The `bnn pretrain` command that trained it.
    pub trained_with: String,
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
    /// One threshold per output channel (float for the first layer and for real layers).
    pub thresholds: Thresholds,
    /// A real layer's per-channel epilogue constants (tensor `{name}.real`), `None` otherwise.
    pub real: Option<Vec<RealChannel>>,
    /// A projection shortcut's 1×1 weights and bias, `None` otherwise.
    pub projection: Option<Projection>,
}

/// The real-valued 1×1 conv of a downsampling shortcut, batch norm folded in.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    /// `[out][in]` (the layer's output channels × the previous layer's), row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
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
            real: None,
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

pub(super) fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}
