//! A transfer head: the float layers retrained for a new task on top of a frozen backbone, as a
//! plain-Rust forward pass (so `bnn predict` needs no burn) and its safetensors file.
//!
//! File: tensors `mean` and `scale` (`[dim]` F32, the input standardisation `(x − mean)·scale`
//! learnt on the training features), then `layers.{i}.weight` (`[out][in]` F32) and
//! `layers.{i}.bias` (`[out]` F32); ReLU between layers, none after the last (logits). Metadata
//! `format` = `bnn-head` and `info` = a JSON [`HeadInfo`]: classes, backbone, cut, feature kind.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::feature_extractor::FeatureExtractor;

/// Value of a head file's `format` metadata key.
pub const HEAD_FORMAT: &str = "bnn-head";
/// Version of the head file layout; a loader refuses any other.
pub const HEAD_VERSION: u32 = 1;

/// Where a head's input features come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    /// A packed extractor file (`bnn export`), run by the XNOR kernels; features are ±1.
    Extractor,
    /// A burn checkpoint directory (`bnn pretrain`), run by burn: the float twin's features.
    Checkpoint,
}

/// The backbone a head was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackboneInfo {
    /// Extractor file or burn checkpoint.
    pub kind: BackboneKind,
    /// As given on the command line.
    pub path: String,
    /// Hex fingerprint of its weights (the extractor file's bytes, or the checkpoint's model).
    pub fingerprint: String,
}

/// What a head file says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// [`HEAD_VERSION`] at writing.
    pub version: u32,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// The backbone the features come from.
    pub backbone: BackboneInfo,
    /// The backbone layer whose output feeds the head.
    pub cut: String,
    /// Features per image.
    pub dim: usize,
    /// Widths of the hidden layers (empty: a linear head).
    pub hidden: Vec<usize>,
    /// Input image side the backbone expects (images are resized and center-cropped to it).
    pub input_size: usize,
    /// The data set and layout the head was trained on.
    pub data: String,
    /// The data set's layout as detected or given, e.g. `Flowers-102` ([`crate::data::Layout`]).
    pub layout: String,
}

impl HeadInfo {
    /// What a head trained on `extractor`'s features of `set` records about it (`classes`,
    /// `dim` and `hidden` are filled in by [`train_head`](crate::transfer::fit::train_head)).
    pub fn for_set(extractor: &FeatureExtractor, set: &crate::data::ImageFolder) -> HeadInfo {
        HeadInfo::for_extractor(
            extractor,
            &set.source().display().to_string(),
            &set.layout().to_string(),
        )
    }

    /// What a head trained on `extractor`'s features of the images described as `data` (laid
    /// out as `layout`) records about it.
    pub fn for_extractor(extractor: &FeatureExtractor, data: &str, layout: &str) -> HeadInfo {
        HeadInfo {
            version: HEAD_VERSION,
            classes: Vec::new(),
            backbone: BackboneInfo {
                kind: BackboneKind::Extractor,
                path: extractor.backbone().label.clone(),
                fingerprint: extractor.backbone().fingerprint.hex(),
            },
            cut: extractor.cut().to_string(),
            dim: extractor.dim(),
            hidden: Vec::new(),
            input_size: extractor.preprocess().size,
            data: data.to_string(),
            layout: layout.to_string(),
        }
    }

    /// Refuses a head trained on a burn checkpoint's features (`head` names it): only heads on
    /// an extractor file's features run with the binary extractor.
    pub fn check_extractor_kind(&self, head: &str) -> Result<()> {
        if self.backbone.kind == BackboneKind::Extractor {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{head} was trained on the features of a burn checkpoint ({}), not of an extractor \
             file; the binary extractor runs only heads trained on an extractor file's features",
            self.backbone.path
        )))
    }

    /// Refuses `backbone` unless it is the extractor this head was trained on (the same
    /// fingerprint); `head` names the head file in the message.
    pub fn check_backbone(&self, backbone: &crate::assets::Backbone, head: &str) -> Result<()> {
        if backbone.fingerprint.hex() == self.backbone.fingerprint {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{} is not the extractor {head} was trained on ({}): fingerprint {} vs {}; load that \
             extractor, or train a new head on this one",
            backbone.label,
            self.backbone.path,
            backbone.fingerprint.hex(),
            self.backbone.fingerprint
        )))
    }
}

/// One fully connected layer, `y = W·x + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Input features.
    pub inputs: usize,
    /// Outputs.
    pub outputs: usize,
    /// `[outputs][inputs]`.
    pub weight: Vec<f32>,
    /// `[outputs]`.
    pub bias: Vec<f32>,
}

/// A trained head: standardisation, then dense layers with ReLU between them.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// What the head says about itself (stored as the `info` metadata).
    pub info: HeadInfo,
    /// Per-feature mean of the training features (`[dim]`).
    pub mean: Vec<f32>,
    /// Per-feature 1/std of the training features (`[dim]`; 1 for constant features).
    pub scale: Vec<f32>,
    /// Dense layers in order, the last one producing the logits.
    pub layers: Vec<Dense>,
}

/// Per-feature mean and 1/std of `x` (`[n][dim]`); constant features get scale 1.
pub fn standardisation(x: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (x.len() / dim.max(1)).max(1) as f64;
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for row in x.chunks_exact(dim) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
            sq[j] += v as f64 * v as f64;
        }
    }
    let mut scale = vec![1f32; dim];
    for j in 0..dim {
        mean[j] /= n;
        let var = sq[j] / n - mean[j] * mean[j];
        if var > 1e-12 {
            scale[j] = (1.0 / var.sqrt()) as f32;
        }
    }
    (mean.into_iter().map(|m| m as f32).collect(), scale)
}

/// `(x − mean)·scale` in place, row by row.
pub fn standardise(x: &mut [f32], mean: &[f32], scale: &[f32]) {
    for row in x.chunks_exact_mut(mean.len()) {
        for ((v, m), s) in row.iter_mut().zip(mean).zip(scale) {
            *v = (*v - m) * s;
        }
    }
}

fn bad(path: &Path, m: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        message: m.into(),
    }
}

/// The error for bytes that are not a safetensors file at all (a photo picked as the head).
fn not_a_head(path: &Path, e: impl std::fmt::Display) -> Error {
    bad(
        path,
        format!(
            "not a head file (not a valid safetensors file: {e}); heads come from `bnn transfer` \
             or the web page's Download head"
        ),
    )
}

impl Head {
    /// Checks that the layers chain from `dim` features to one logit per class.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let dim = self.info.dim;
        if self.mean.len() != dim || self.scale.len() != dim {
            return Err(bad(
                path,
                "standardisation tensors do not match the feature size",
            ));
        }
        let mut inputs = dim;
        for (i, l) in self.layers.iter().enumerate() {
            if l.inputs != inputs
                || l.weight.len() != l.inputs * l.outputs
                || l.bias.len() != l.outputs
            {
                return Err(bad(
                    path,
                    format!("layer {i} does not chain ({inputs} inputs)"),
                ));
            }
            inputs = l.outputs;
        }
        if self.layers.is_empty() || inputs != self.info.classes.len() {
            return Err(bad(
                path,
                "the last layer does not give one logit per class",
            ));
        }
        // Finite is not enough: ±3e38 weights overflow to ±inf in the first product and give
        // NaN logits (and `NaN%` in `bnn predict`).
        let tensors = [
            ("mean".to_string(), &self.mean),
            ("scale".into(), &self.scale),
        ]
        .into_iter()
        .chain(self.layers.iter().enumerate().flat_map(|(i, l)| {
            [
                (format!("layers.{i}.weight"), &l.weight),
                (format!("layers.{i}.bias"), &l.bias),
            ]
        }));
        for (name, values) in tensors {
            if let Some(v) = values
                .iter()
                .find(|v| !v.is_finite() || v.abs() >= crate::extractor::MAX_MAGNITUDE)
            {
                return Err(bad(
                    path,
                    format!(
                        "'{name}' holds {v:e}: every value must be finite and of magnitude below \
                         {:e} (non-finite weights)",
                        crate::extractor::MAX_MAGNITUDE
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Logits `[n][classes]` of raw features `x` (`[n][dim]`, before standardisation).
    pub fn logits(&self, x: &[f32]) -> Result<Vec<f32>> {
        let dim = self.info.dim;
        if dim == 0 || !x.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!(
                "{} feature values are not a whole number of {dim}-feature rows",
                x.len()
            )));
        }
        let mut a = x.to_vec();
        standardise(&mut a, &self.mean, &self.scale);
        let n = x.len() / dim;
        for (i, l) in self.layers.iter().enumerate() {
            let relu = i + 1 < self.layers.len();
            let mut y = vec![0f32; n * l.outputs];
            for (xr, yr) in a.chunks_exact(l.inputs).zip(y.chunks_exact_mut(l.outputs)) {
                for (o, out) in yr.iter_mut().enumerate() {
                    let w = &l.weight[o * l.inputs..(o + 1) * l.inputs];
                    let s: f32 = w.iter().zip(xr).map(|(w, x)| w * x).sum::<f32>() + l.bias[o];
                    *out = if relu { s.max(0.0) } else { s };
                }
            }
            a = y;
        }
        Ok(a)
    }

    /// The `k` most probable classes of each row of raw features `x` (`[n][dim]`), as (class
    /// index, softmax probability), most probable first.
    pub fn top_k(&self, x: &[f32], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        let classes = self.info.classes.len();
        let logits = self.logits(x)?;
        Ok(logits
            .chunks_exact(classes.max(1))
            .map(|row| crate::eval::top_k(row, k))
            .collect())
    }

    /// The most probable class of each row of raw features `x` (`[n][dim]`).
    pub fn predict(&self, x: &[f32]) -> Result<Vec<usize>> {
        Ok(self.top_k(x, 1)?.into_iter().map(|r| r[0].0).collect())
    }

    /// Writes the head atomically; returns its size in bytes.
    pub fn save(&self, path: &Path) -> Result<u64> {
        let bytes = self.to_bytes_for(path)?;
        write_atomic(path, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// The head file's bytes (what [`save`](Self::save) writes).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_for(Path::new("head"))
    }

    fn to_bytes_for(&self, path: &Path) -> Result<Vec<u8>> {
        self.validate(path)?;
        let sh = |e: safetensors::SafeTensorError| Error::Shape(format!("safetensors: {e}"));
        let mut views: Vec<(String, TensorView)> = vec![
            (
                "mean".into(),
                TensorView::new(
                    Dtype::F32,
                    vec![self.info.dim],
                    bytemuck::cast_slice(&self.mean),
                )
                .map_err(sh)?,
            ),
            (
                "scale".into(),
                TensorView::new(
                    Dtype::F32,
                    vec![self.info.dim],
                    bytemuck::cast_slice(&self.scale),
                )
                .map_err(sh)?,
            ),
        ];
        for (i, l) in self.layers.iter().enumerate() {
            views.push((
                format!("layers.{i}.weight"),
                TensorView::new(
                    Dtype::F32,
                    vec![l.outputs, l.inputs],
                    bytemuck::cast_slice(&l.weight),
                )
                .map_err(sh)?,
            ));
            views.push((
                format!("layers.{i}.bias"),
                TensorView::new(Dtype::F32, vec![l.outputs], bytemuck::cast_slice(&l.bias))
                    .map_err(sh)?,
            ));
        }
        let info = serde_json::to_string(&self.info).map_err(|e| Error::Shape(e.to_string()))?;
        let meta = BTreeMap::from([
            ("format".to_string(), HEAD_FORMAT.to_string()),
            ("info".to_string(), info),
        ]);
        crate::reproducible::serialize(views, &meta)
    }

    /// Reads and validates a head file; anything malformed is an [`Error::ModelFile`].
    pub fn load(path: &Path) -> Result<Head> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and validates head file bytes; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Head> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| not_a_head(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| not_a_head(path, e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(HEAD_FORMAT) {
            return Err(bad(path, "not a head file (from `bnn transfer`)"));
        }
        let info: HeadInfo = serde_json::from_str(meta.get("info").map_or("", |s| s))
            .map_err(|e| bad(path, format!("info: {e}")))?;
        if info.version != HEAD_VERSION {
            return Err(bad(
                path,
                format!(
                    "head version {} (this build reads {HEAD_VERSION})",
                    info.version
                ),
            ));
        }
        let f32s = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .map_err(|e| bad(path, format!("{name}: {e}")))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape {
                return Err(bad(path, format!("{name}: expected F32 {shape:?}")));
            }
            Ok(bytemuck::pod_collect_to_vec(t.data()))
        };
        let dim = info.dim;
        let mean = f32s("mean", &[dim])?;
        let scale = f32s("scale", &[dim])?;
        let mut layers = Vec::new();
        let mut inputs = dim;
        let widths: Vec<usize> = info
            .hidden
            .iter()
            .copied()
            .chain([info.classes.len()])
            .collect();
        for (i, &outputs) in widths.iter().enumerate() {
            layers.push(Dense {
                inputs,
                outputs,
                weight: f32s(&format!("layers.{i}.weight"), &[outputs, inputs])?,
                bias: f32s(&format!("layers.{i}.bias"), &[outputs])?,
            });
            inputs = outputs;
        }
        let head = Head {
            info,
            mean,
            scale,
            layers,
        };
        head.validate(path)?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_accepts_only_the_extractor_it_was_trained_on() {
        let backbone = crate::assets::load_backbone(None).unwrap();
        let mut info = HeadInfo {
            version: HEAD_VERSION,
            classes: vec!["a".into(), "b".into()],
            backbone: BackboneInfo {
                kind: BackboneKind::Extractor,
                path: "other.safetensors".into(),
                fingerprint: backbone.fingerprint.hex(),
            },
            cut: "fc2".into(),
            dim: 512,
            hidden: vec![],
            input_size: 64,
            data: String::new(),
            layout: String::new(),
        };
        assert!(info.check_backbone(&backbone, "h.safetensors").is_ok());
        info.backbone.fingerprint = "0000000000000000".into();
        let msg = info
            .check_backbone(&backbone, "h.safetensors")
            .unwrap_err()
            .to_string();
        for part in [
            "h.safetensors",
            "other.safetensors",
            "0000000000000000",
            &backbone.fingerprint.hex(),
        ] {
            assert!(msg.contains(part), "{msg}");
        }
    }
}
