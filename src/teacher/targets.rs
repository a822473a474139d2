//! Teacher targets, computed once per (teacher, data set, resolution, views) and cached: for every
//! training image and view, EfficientNet-Lite0's logits over the source classes (mapped from
//! ImageNet-1k by WordNet id) and its 1280-d pooled features.
//!
//! Why precomputed views and not the teacher on every augmented batch: measured on this 2-core
//! machine, the teacher's forward at 160 px costs several times a student training step per image
//! (docs/RESULTS.md gives the numbers), so running it per batch would make every epoch several
//! times slower; the student's augmentation (a crop of 80–100 % of the image, a flip) moves the
//! teacher's output little, and the flip is covered exactly by a second view.
//!
//! A cache file `lite0-targets-<key>.safetensors` holds `logits` F32 `[views, n, classes]` (absent
//! when the classes are not ImageNet WordNet ids), `features` F32 `[views, n, 1280]`, and metadata
//! (`format`, `key`, `teacher_sha256`, `resolution`, `views`, `classes`). View 0 is the
//! centre-cropped image, view 1 its horizontal mirror. `key` fingerprints the teacher's sha256,
//! the data set ([`data_fingerprint`]), the class map, the resolution, the views and this crate's
//! version; it is written atomically, and a file with another key is ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::progress::{Observer, Task};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::efficientnet::{self, EfficientNetLite0, FEATURES};
use crate::data::{ImageFolder, Loader, data_fingerprint};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;

/// Value of a targets file's `format` metadata key.
pub const FORMAT: &str = "bnn-transfer lite0 targets v1";

/// What targets to compute, and where to keep them.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    /// The teacher's weights file.
    pub weights: PathBuf,
    /// Its sha256 (the cache key's teacher part).
    pub sha256: String,
    /// For each source class, its ImageNet output (`None`: features only).
    pub class_map: Option<Vec<usize>>,
    /// Side of the centre crop taken from each image before upscaling (the student's input).
    pub input: usize,
    /// Input side the teacher runs at.
    pub resolution: usize,
    /// 1: the centre view; 2: and its mirror.
    pub views: usize,
    /// Directory of the cache files.
    pub cache_dir: PathBuf,
}

/// The targets of every image of a split, per view.
#[derive(Clone, Debug)]
pub struct Targets {
    /// Views per image (1 or 2).
    pub views: usize,
    /// Images.
    pub n: usize,
    /// Source classes with logits (0 when features only).
    pub classes: usize,
    /// `[views][n][classes]`.
    pub logits: Vec<f32>,
    /// `[views][n][1280]`.
    pub features: Vec<f32>,
    /// Per-dimension mean of the features over view 0 (for standardised regression).
    pub feature_mean: Vec<f32>,
    /// Per-dimension standard deviation (at least 1e-3).
    pub feature_std: Vec<f32>,
}

impl Targets {
    /// The view used for an image the student sees flipped or not.
    pub fn view(&self, flipped: bool) -> usize {
        if flipped && self.views > 1 { 1 } else { 0 }
    }

    /// Logits of image `i` in view `v`.
    pub fn logits_row(&self, v: usize, i: usize) -> &[f32] {
        let c = self.classes;
        &self.logits[(v * self.n + i) * c..][..c]
    }

    /// Standardised features of image `i` in view `v`.
    pub fn standardized_row(&self, v: usize, i: usize) -> Vec<f32> {
        let row = &self.features[(v * self.n + i) * FEATURES..][..FEATURES];
        row.iter()
            .zip(&self.feature_mean)
            .zip(&self.feature_std)
            .map(|((x, m), s)| (x - m) / s)
            .collect()
    }

    fn with_statistics(mut self) -> Self {
        let n = self.n.max(1) as f64;
        let mut mean = vec![0f64; FEATURES];
        let mut sq = vec![0f64; FEATURES];
        for row in self.features[..self.n * FEATURES].chunks_exact(FEATURES) {
            for (d, &x) in row.iter().enumerate() {
                mean[d] += x as f64;
                sq[d] += (x as f64) * (x as f64);
            }
        }
        self.feature_mean = mean.iter().map(|m| (m / n) as f32).collect();
        self.feature_std = mean
            .iter()
            .zip(&sq)
            .map(|(m, s)| ((s / n - (m / n).powi(2)).max(0.0).sqrt() as f32).max(1e-3))
            .collect();
        self
    }
}

/// The cache key of `spec` over `set`.
pub fn cache_key(spec: &TargetSpec, set: &ImageFolder) -> Result<String> {
    let mut f = Fingerprint::default()
        .str(FORMAT)
        .str(env!("CARGO_PKG_VERSION"))
        .str(&spec.sha256)
        .u64(spec.input as u64)
        .u64(spec.resolution as u64)
        .u64(spec.views as u64)
        .u64(data_fingerprint(set)?.value());
    match &spec.class_map {
        Some(m) => {
            for &c in m {
                f = f.u64(c as u64);
            }
        }
        None => f = f.str("features only"),
    }
    Ok(f.hex())
}

/// Loads the targets of `set` from the cache, or computes them with `teacher` on `device`
/// (reporting to `observer`) and writes the cache. A cache that cannot be written costs a
/// warning, not the run.
pub fn load_or_compute(
    spec: &TargetSpec,
    set: Arc<ImageFolder>,
    teacher: impl FnOnce() -> Result<EfficientNetLite0>,
    device: &Device,
    observer: &dyn Observer,
) -> Result<(Targets, PathBuf, bool)> {
    let key = cache_key(spec, &set)?;
    let path = spec
        .cache_dir
        .join(format!("lite0-targets-{key}.safetensors"));
    if let Ok(bytes) = std::fs::read(&path) {
        match read(&bytes, &key, set.len()) {
            Ok(t) => return Ok((t.with_statistics(), path, true)),
            Err(why) => observer.warn(&format!(
                "ignoring the teacher-target cache {} ({why}); recomputing",
                path.display()
            )),
        }
    }
    let teacher = teacher()?;
    let targets = compute(spec, set, &teacher, device, observer)?;
    if let Err(e) = std::fs::create_dir_all(&spec.cache_dir)
        .map_err(|e| Error::io(&spec.cache_dir, e))
        .and_then(|_| write(&path, &key, spec, &targets))
    {
        observer.warn(&format!(
            "could not cache the teacher targets ({e}); they are used all the same"
        ));
    }
    Ok((targets.with_statistics(), path, false))
}

/// Runs the teacher over `set` (set order, centre crop) in every view of `spec`.
pub fn compute(
    spec: &TargetSpec,
    set: Arc<ImageFolder>,
    teacher: &EfficientNetLite0,
    device: &Device,
    observer: &dyn Observer,
) -> Result<Targets> {
    let n = set.len();
    let classes = spec.class_map.as_ref().map_or(0, Vec::len);
    let mut logits = vec![0f32; spec.views * n * classes];
    let mut features = vec![0f32; spec.views * n * FEATURES];
    let cfg = super::loader_config(0);
    let task = Task::start(observer, "teacher targets", n as u64);
    let mut done = 0usize;
    let loader = Loader::new(set.clone(), efficientnet::preprocess(spec.input), cfg);
    for batch in loader.report_to(observer) {
        let batch = batch?;
        let images = nchw(&batch.images, batch.len(), batch.size, device);
        for v in 0..spec.views {
            let x = if v == 1 {
                images.clone().flip([3])
            } else {
                images.clone()
            };
            let out = teacher.forward(efficientnet::upscale(x, spec.resolution));
            let f = to_vec(out.features)?;
            let l = to_vec(out.logits)?;
            for (r, &i) in batch.indices.iter().enumerate() {
                features[(v * n + i) * FEATURES..][..FEATURES]
                    .copy_from_slice(&f[r * FEATURES..][..FEATURES]);
                if let Some(map) = &spec.class_map {
                    let row = &l[r * efficientnet::IMAGENET_CLASSES..];
                    let dst = &mut logits[(v * n + i) * classes..][..classes];
                    for (d, &src) in dst.iter_mut().zip(map) {
                        *d = row[src];
                    }
                }
            }
        }
        done += batch.len();
        task.set_done(done as u64);
    }
    if done != n {
        return Err(Error::Dataset(format!(
            "the teacher saw {done} of {n} images of {}",
            set.source().display()
        )));
    }
    Ok(Targets {
        views: spec.views,
        n,
        classes,
        logits,
        features,
        feature_mean: Vec::new(),
        feature_std: Vec::new(),
    })
}

/// NHWC f32 images to an NCHW tensor.
pub fn nchw(images: &[f32], n: usize, s: usize, device: &Device) -> Tensor<4> {
    let mut out = vec![0f32; n * 3 * s * s];
    for i in 0..n {
        let img = &images[i * s * s * 3..][..s * s * 3];
        for p in 0..s * s {
            for c in 0..3 {
                out[(i * 3 + c) * s * s + p] = img[p * 3 + c];
            }
        }
    }
    Tensor::from_data(TensorData::new(out, [n, 3, s, s]), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("teacher output to f32: {e:?}")))
}

fn write(path: &Path, key: &str, spec: &TargetSpec, t: &Targets) -> Result<()> {
    let sh = |e: safetensors::SafeTensorError| Error::Shape(e.to_string());
    let f_bytes: &[u8] = bytemuck::cast_slice(&t.features);
    let l_bytes: &[u8] = bytemuck::cast_slice(&t.logits);
    let mut views = vec![(
        "features".to_string(),
        TensorView::new(Dtype::F32, vec![t.views, t.n, FEATURES], f_bytes).map_err(sh)?,
    )];
    if t.classes > 0 {
        views.push((
            "logits".to_string(),
            TensorView::new(Dtype::F32, vec![t.views, t.n, t.classes], l_bytes).map_err(sh)?,
        ));
    }
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("key", key.to_string()),
        ("teacher_sha256", spec.sha256.clone()),
        ("input", spec.input.to_string()),
        ("resolution", spec.resolution.to_string()),
        ("views", spec.views.to_string()),
        ("classes", t.classes.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let bytes = safetensors::serialize(views, Some(meta)).map_err(sh)?;
    crate::atomic::write_atomic(path, &bytes)
}

fn read(bytes: &[u8], key: &str, n: usize) -> std::result::Result<Targets, String> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT)
        || meta.get("key").map(String::as_str) != Some(key)
    {
        return Err("written for another teacher, data set or version".into());
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let floats = |name: &str| -> std::result::Result<(Vec<usize>, Vec<f32>), String> {
        let t = st.tensor(name).map_err(|e| e.to_string())?;
        if t.dtype() != Dtype::F32 {
            return Err(format!("{name} is {:?}, not F32", t.dtype()));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("{name} holds a non-finite value"));
        }
        Ok((t.shape().to_vec(), v))
    };
    let (fshape, features) = floats("features")?;
    let views = fshape.first().copied().unwrap_or(0);
    if fshape != [views, n, FEATURES] || !(1..=2).contains(&views) {
        return Err(format!(
            "features are {fshape:?}, expected [views, {n}, {FEATURES}]"
        ));
    }
    let (classes, logits) = match st.tensor("logits") {
        Ok(_) => {
            let (shape, l) = floats("logits")?;
            if shape.len() != 3 || shape[..2] != [views, n] {
                return Err(format!(
                    "logits are {shape:?}, expected [{views}, {n}, classes]"
                ));
            }
            (shape[2], l)
        }
        Err(_) => (0, Vec::new()),
    };
    Ok(Targets {
        views,
        n,
        classes,
        logits,
        features,
        feature_mean: Vec::new(),
        feature_std: Vec::new(),
    })
}
