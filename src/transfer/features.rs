//! Features of a whole split for transfer learning: the frozen extractor run over a data set at
//! one or more cut points in one pass (on a wgpu device, or on the CPU when there is none), and
//! the feature cache that makes the second run of `bnn transfer` skip extraction.
//!
//! A cache file is named `<backbone>-<cut>-<split>-<key>.safetensors` (the [`FeatureCache`]
//! format of `bnn extract`), where `key` fingerprints everything the features depend on: the
//! backbone's bytes, the cut, the data set ([`data_fingerprint`]: class names, every sample's name
//! and label, and a directory's path and each file's size + modification time, or each sample's
//! content in a tar), the preprocessing (size, mean, std) and the crate and format versions. A file
//! with the right prefix and another key is stale: it is replaced.

use std::path::PathBuf;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

#[cfg(not(target_arch = "wasm32"))]
use crate::data::ImageFolder;
#[cfg(not(target_arch = "wasm32"))]
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::extractor::FeatureCache;
#[cfg(not(target_arch = "wasm32"))]
use crate::extractor::cache::CacheInfo;
#[cfg(not(target_arch = "wasm32"))]
use crate::extractor::{Features, Output};
#[cfg(not(target_arch = "wasm32"))]
use crate::feature_extractor::{FeatureExtractor, FeatureSet, loader_batch, signs};
use crate::progress::Observer;
#[cfg(not(target_arch = "wasm32"))]
use crate::progress::Task;

pub use crate::fingerprint::Fingerprint;

pub use crate::data::data_fingerprint;

/// Changes whenever what a cached feature means could change: the crate version (kernels, decoder
/// and preprocessing code) and the extractor format version.
#[cfg(not(target_arch = "wasm32"))]
fn cache_key_version() -> String {
    format!(
        "bnn-transfer {}, extractor format {}",
        env!("CARGO_PKG_VERSION"),
        crate::extractor::VERSION
    )
}

/// The preprocessing as it enters the cache key: size, crop mode and the exact bits of every
/// mean and std.
#[cfg(not(target_arch = "wasm32"))]
fn preprocess_key(pre: &Preprocess) -> String {
    let bits = |v: &[f32; 3]| v.map(f32::to_bits);
    format!(
        "size {} augment {} mean {:?} std {:?}",
        pre.size,
        pre.augment,
        bits(&pre.mean),
        bits(&pre.std)
    )
}

/// A feature-cache directory.
#[derive(Debug)]
pub struct Cache {
    /// The directory the cache files live in.
    pub dir: PathBuf,
}

impl Cache {
    /// `$XDG_CACHE_HOME/bnn-transfer`, else `$HOME/.cache/bnn-transfer`, else `.bnn-cache`.
    pub fn default_dir() -> PathBuf {
        crate::cache_dir::default_cache_dir()
    }

    fn prefix(backbone: &str, cut: &str, split: &str) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!("{}-{}-{}-", clean(backbone), clean(cut), clean(split))
    }

    fn path(&self, backbone: &str, cut: &str, split: &str, key: &str) -> PathBuf {
        self.dir.join(format!(
            "{}{key}.safetensors",
            Self::prefix(backbone, cut, split)
        ))
    }

    /// The cached features, if a valid file with this key exists and lists the data set's
    /// `classes` (the labels index them: a file whose class list differs, edited or written for
    /// another set, would name every prediction wrong). A corrupt or mismatched file is reported
    /// to `observer` and treated as missing (it is rebuilt).
    pub fn get(
        &self,
        (backbone, cut, split): (&str, &str, &str),
        key: &str,
        classes: &[String],
        observer: &dyn Observer,
    ) -> Option<FeatureCache> {
        let path = self.path(backbone, cut, split, key);
        if !path.exists() {
            return None;
        }
        match FeatureCache::load(&path) {
            Ok(c) if c.info.key != key => None,
            Ok(c) if c.info.classes != classes => {
                observer.note(&format!(
                    "ignoring the feature cache {}: it lists {} classes ({}), the data set {} \
                     ({}); rebuilding it",
                    path.display(),
                    c.info.classes.len(),
                    preview(&c.info.classes),
                    classes.len(),
                    preview(classes)
                ));
                None
            }
            Ok(c) => Some(c),
            Err(e) => {
                observer.note(&format!(
                    "ignoring a broken feature cache ({e}); rebuilding it"
                ));
                None
            }
        }
    }

    /// Stores `cache` under its key and removes stale files of the same backbone, cut and
    /// split. Returns the path and how many stale files were removed.
    pub fn put(&self, backbone: &str, cache: &FeatureCache) -> Result<(PathBuf, usize)> {
        let i = &cache.info;
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.path(backbone, &i.cut, &i.split, &i.key);
        cache.save(&path)?;
        let prefix = Self::prefix(backbone, &i.cut, &i.split);
        let mut stale = 0;
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix)
                    && name.ends_with(".safetensors")
                    && e.path() != path
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    stale += 1;
                }
            }
        }
        Ok((path, stale))
    }
}

/// The first few names of a class list, for messages.
fn preview(classes: &[String]) -> String {
    let mut s = classes
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if classes.len() > 3 {
        s.push_str(", …");
    }
    s
}

/// Features of one split at several cuts of an extractor, from the cache where valid, otherwise
/// by one pass of the extractor over the split (then cached). Returns one [`FeatureSet`] per cut
/// and the seconds spent extracting (0 when everything came from the cache). Native only (the
/// decoding runs on the loader's runtime).
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
pub fn extractor_features(
    extractor: &FeatureExtractor,
    set: Arc<ImageFolder>,
    cuts: &[String],
    cache: &Cache,
    batch_size: usize,
    workers: usize,
    observer: &dyn Observer,
) -> Result<(Vec<FeatureSet>, f64)> {
    let file = extractor.file();
    let pre = extractor.preprocess();
    let backbone = (
        extractor.backbone().name.as_str(),
        extractor.backbone().fingerprint,
    );
    let data_fp = data_fingerprint(&set)?;
    let taps: Vec<usize> = cuts
        .iter()
        .map(|c| file.layer_index(c))
        .collect::<Result<_>>()?;
    let key = |cut: &str| {
        Fingerprint::default()
            .u64(backbone.1.value())
            .u64(data_fp.value())
            .str(cut)
            .str(&preprocess_key(pre))
            .str("bits")
            .str(&cache_key_version())
            .hex()
    };
    let mut found: Vec<Option<FeatureCache>> = cuts
        .iter()
        .map(|c| {
            let name = (backbone.0, c.as_str(), set.split());
            cache.get(name, &key(c), &set.classes, observer)
        })
        .collect();
    let missing: Vec<usize> = (0..cuts.len()).filter(|&i| found[i].is_none()).collect();
    let mut seconds = 0.0;
    if !missing.is_empty() {
        let miss_taps: Vec<usize> = missing.iter().map(|&i| taps[i]).collect();
        let names: Vec<&str> = missing.iter().map(|&i| cuts[i].as_str()).collect();
        let batching = (batch_size, workers);
        let (bits, labels, secs) =
            extract_taps(extractor, &set, (&miss_taps, &names), batching, observer)?;
        seconds = secs;
        for (&i, b) in missing.iter().zip(bits) {
            let spec = &file.layers[taps[i]].spec;
            let entry = FeatureCache {
                info: CacheInfo {
                    output: Output::Bits,
                    dim: spec.out_len(),
                    per_image: spec.out_words(),
                    shape: spec.out_shape,
                    classes: set.classes.clone(),
                    model: backbone.0.to_string(),
                    cut: cuts[i].clone(),
                    data: set.source().display().to_string(),
                    split: set.split().to_string(),
                    key: key(&cuts[i]),
                },
                features: Features::Bits(b),
                labels: labels.clone(),
            };
            put_or_warn(cache, backbone.0, &entry, observer);
            found[i] = Some(entry);
        }
    }
    let sets = found
        .into_iter()
        .map(|c| feature_set(c.expect("every cut found or extracted")))
        .collect();
    Ok((sets, seconds))
}

/// One pass of the extractor over `set`: the packed bits at layers `taps` (named `cuts`, for
/// the progress bar), one list per tap, the labels, and the seconds it took.
#[cfg(not(target_arch = "wasm32"))]
fn extract_taps(
    extractor: &FeatureExtractor,
    set: &Arc<ImageFolder>,
    (taps, cuts): (&[usize], &[&str]),
    (batch_size, workers): (usize, usize),
    observer: &dyn Observer,
) -> Result<(Vec<Vec<u32>>, Vec<u32>, f64)> {
    let (batch_size, prefetch) = loader_batch(
        extractor.image_len(),
        batch_size.max(1),
        extractor.max_batch(),
    );
    let cfg = crate::data::LoaderConfig {
        batch_size,
        prefetch,
        shuffle_seed: None,
        workers,
        ..crate::data::LoaderConfig::default()
    };
    let loader = crate::data::Loader::new(set.clone(), extractor.preprocess().clone(), cfg)
        .report_to(observer);
    let name = format!("features {} ({})", set.split(), cuts.join(","));
    let task = Task::start(observer, &name, set.len() as u64);
    let start = std::time::Instant::now();
    let mut bits: Vec<Vec<u32>> = vec![Vec::new(); taps.len()];
    let mut labels: Vec<u32> = Vec::with_capacity(set.len());
    for batch in loader {
        let batch = batch?;
        for (b, part) in bits
            .iter_mut()
            .zip(extractor.taps_blocking(&batch.images, taps)?)
        {
            b.extend(part);
        }
        labels.extend(batch.labels.iter().map(|&l| l as u32));
        let rate = labels.len() as f64 / start.elapsed().as_secs_f64();
        task.set(labels.len() as u64, &format!("{rate:.0} images/s"));
    }
    Ok((bits, labels, start.elapsed().as_secs_f64()))
}

/// Stores `entry` in the cache; a cache that cannot be written costs the next run the
/// extraction, not this one (a warning; `bnn` says each warning once).
#[cfg(not(target_arch = "wasm32"))]
fn put_or_warn(cache: &Cache, model: &str, entry: &FeatureCache, observer: &dyn Observer) {
    if let Err(e) = cache.put(model, entry) {
        observer.warn(&format!(
            "the feature cache {} cannot be written ({e}); the features are not cached",
            cache.dir.display()
        ));
    }
}

/// The head-training features of a cache entry: ±1 signs (from bits), floats or integers as
/// floats, and the labels.
#[cfg(not(target_arch = "wasm32"))]
fn feature_set(c: FeatureCache) -> FeatureSet {
    let x = match &c.features {
        Features::Bits(b) => signs(b, c.info.shape[2]),
        Features::Float(v) => v.clone(),
        Features::Int(v) => v.iter().map(|&i| i as f32).collect(),
    };
    FeatureSet {
        dim: c.info.dim,
        x,
        labels: c.labels.iter().map(|&l| l as usize).collect(),
        classes: c.info.classes,
    }
}
