//! The feature cache written by `bnn extract`: a safetensors file with `features` (U32 packed
//! words, I32 pre-activations or F32 signs, `[n][per_image]`), `labels` (U32 `[n]`), and metadata
//! `format` (`bnn-features`) and `info` (a JSON [`CacheInfo`]: output kind, dimensions, class
//! names, model, data set, split, key).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::{Features, Output};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// Value of a cache file's `format` metadata key.
pub const CACHE_FORMAT: &str = "bnn-features";

/// What a cache holds, besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheInfo {
    /// What the features are: packed bits, pre-activations or signs.
    pub output: Output,
    /// Features per image (H·W·C at the cut).
    pub dim: usize,
    /// Stored elements per image (words for `bits`, `dim` otherwise).
    pub per_image: usize,
    /// Cut shape (height, width, channels).
    pub shape: [usize; 3],
    /// Class names, index = label.
    pub classes: Vec<String>,
    /// The backbone: as given to `bnn extract` (a path or `embedded:<name>`), or its short name in
    /// `bnn transfer`'s cache.
    pub model: String,
    /// Name of the layer whose output the features are.
    pub cut: String,
    /// The data set's path.
    pub data: String,
    /// The split extracted.
    pub split: String,
    /// Fingerprint of everything the features depend on (`bnn transfer`'s cache; empty for
    /// `bnn extract`).
    #[serde(default)]
    pub key: String,
}

impl CacheInfo {
    /// `dim` and `per_image` follow from the cut shape (a reader slices rows by them).
    fn check(&self, path: &Path) -> Result<()> {
        let [h, w, c] = self.shape;
        let dim = h.checked_mul(w).and_then(|hw| hw.checked_mul(c));
        if dim != Some(self.dim) {
            return Err(bad(
                path,
                format!(
                    "dim {} is not the size of the cut shape {:?}",
                    self.dim, self.shape
                ),
            ));
        }
        let per_image = match self.output {
            Output::Bits => h * w * c.div_ceil(32),
            Output::Preact | Output::Signs => self.dim,
        };
        if self.per_image != per_image {
            return Err(bad(
                path,
                format!(
                    "per_image {} should be {per_image} for {:?} output of shape {:?}",
                    self.per_image, self.output, self.shape
                ),
            ));
        }
        Ok(())
    }
}

/// Features of a whole data set with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureCache {
    /// What the cache holds.
    pub info: CacheInfo,
    /// `[n][per_image]`.
    pub features: Features,
    /// Label of each image.
    pub labels: Vec<u32>,
}

fn bad(path: &Path, m: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        message: m.into(),
    }
}

impl FeatureCache {
    /// Writes the cache atomically; returns its size in bytes.
    pub fn save(&self, path: &Path) -> Result<u64> {
        let n = self.labels.len();
        let (dtype, bytes): (Dtype, &[u8]) = match &self.features {
            Features::Bits(v) => (Dtype::U32, bytemuck::cast_slice(v)),
            Features::Int(v) => (Dtype::I32, bytemuck::cast_slice(v)),
            Features::Float(v) => (Dtype::F32, bytemuck::cast_slice(v)),
        };
        if self.features.len() != n * self.info.per_image {
            return Err(Error::Shape(format!(
                "{} feature values for {n} images of {}",
                self.features.len(),
                self.info.per_image
            )));
        }
        let sh = |e: safetensors::SafeTensorError| Error::Shape(format!("safetensors: {e}"));
        let labels: &[u8] = bytemuck::cast_slice(&self.labels);
        let views = vec![
            (
                "features",
                TensorView::new(dtype, vec![n, self.info.per_image], bytes).map_err(sh)?,
            ),
            (
                "labels",
                TensorView::new(Dtype::U32, vec![n], labels).map_err(sh)?,
            ),
        ];
        let info = serde_json::to_string(&self.info).map_err(|e| Error::Shape(e.to_string()))?;
        let meta = BTreeMap::from([
            ("format".to_string(), CACHE_FORMAT.to_string()),
            ("info".to_string(), info),
        ]);
        let out = crate::reproducible::serialize(views, &meta)?;
        write_atomic(path, &out)?;
        Ok(out.len() as u64)
    }

    /// Reads a cache file; anything malformed is an [`Error::ModelFile`] naming it.
    pub fn load(path: &Path) -> Result<FeatureCache> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and checks cache file bytes; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<FeatureCache> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(path, e.to_string()))?;
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(path, e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(CACHE_FORMAT) {
            return Err(bad(path, "not a feature cache"));
        }
        let info: CacheInfo = serde_json::from_str(meta.get("info").map_or("", |s| s))
            .map_err(|e| bad(path, format!("info: {e}")))?;
        let f = st
            .tensor("features")
            .map_err(|e| bad(path, e.to_string()))?;
        let l = st.tensor("labels").map_err(|e| bad(path, e.to_string()))?;
        let &[n] = l.shape() else {
            return Err(bad(
                path,
                format!("labels: shape {:?}, expected [images]", l.shape()),
            ));
        };
        if l.dtype() != Dtype::U32 || f.shape() != [n, info.per_image] {
            return Err(bad(path, "tensor shapes do not match"));
        }
        info.check(path)?;
        let labels: Vec<u32> = bytemuck::pod_collect_to_vec(l.data());
        if let Some(bad_label) = labels.iter().find(|&&l| l as usize >= info.classes.len()) {
            return Err(bad(
                path,
                format!(
                    "label {bad_label} is out of range: the cache lists {} classes",
                    info.classes.len()
                ),
            ));
        }
        let features = match (f.dtype(), info.output) {
            (Dtype::U32, Output::Bits) => Features::Bits(bytemuck::pod_collect_to_vec(f.data())),
            (Dtype::I32, Output::Preact) => Features::Int(bytemuck::pod_collect_to_vec(f.data())),
            (Dtype::F32, _) => Features::Float(bytemuck::pod_collect_to_vec(f.data())),
            _ => return Err(bad(path, "feature dtype does not match its kind")),
        };
        Ok(FeatureCache {
            info,
            features,
            labels,
        })
    }
}
