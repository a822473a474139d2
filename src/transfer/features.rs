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

use std::path::{Path, PathBuf};
#[cfg(not(target_arch = "wasm32"))]
use std::sync::Arc;

use crate::bits::unpack_rows;
use crate::cpu::{CpuExtractor, Threads};
#[cfg(not(target_arch = "wasm32"))]
use crate::data::ImageFolder;
#[cfg(not(target_arch = "wasm32"))]
use crate::data::Preprocess;
use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::extractor::cache::CacheInfo;
use crate::extractor::{Extractor, ExtractorFile, FeatureCache};
#[cfg(not(target_arch = "wasm32"))]
use crate::extractor::{Features, Output};
use crate::gpu::Gpu;
use crate::progress::Observer;
#[cfg(not(target_arch = "wasm32"))]
use crate::progress::Task;

/// Features of one split: `x` is `[n][dim]` f32 (±1 for the binary extractor).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureSet {
    /// Features per image.
    pub dim: usize,
    /// `[n][dim]`, row-major.
    pub x: Vec<f32>,
    /// Label of each row.
    pub labels: Vec<usize>,
    /// Class names, index = label.
    pub classes: Vec<String>,
}

impl FeatureSet {
    /// Images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

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

/// Where the extractor runs.
#[derive(Debug)]
pub enum Runner {
    /// The WGSL kernels on a wgpu device.
    Gpu(Box<Extractor>),
    /// The library's CPU binary path (no wgpu adapter): the file and its prepared extractor.
    Cpu(Box<(ExtractorFile, CpuExtractor)>),
}

impl Runner {
    /// The CPU binary path for `file`, prepared once, on every core.
    pub fn cpu(file: ExtractorFile) -> Result<Self> {
        let ex = CpuExtractor::new(&file, &Threads::all()?)?;
        Ok(Runner::Cpu(Box::new((file, ex))))
    }

    /// The runner `device` asks for (the one device policy, [`select_gpu_async`]): the XNOR kernels on
    /// the chosen wgpu device, else the CPU binary path; with the note to show the user when the
    /// choice was not the obvious one.
    pub async fn open_async(
        file: ExtractorFile,
        device: ExtractorDevice,
    ) -> Result<(Self, Option<String>)> {
        let (gpu, note) = select_gpu_async(device).await?;
        let runner = match gpu {
            Some(g) => Runner::Gpu(Box::new(Extractor::new_async(&g, file).await?)),
            None => Runner::cpu(file)?,
        };
        Ok((runner, note))
    }

    /// [`open_async`](Self::open_async), blocking (not on the web).
    pub fn open(file: ExtractorFile, device: ExtractorDevice) -> Result<(Self, Option<String>)> {
        pollster::block_on(Runner::open_async(file, device))
    }

    /// Where it runs: the wgpu device, or the CPU path with its threads and kernels.
    pub fn describe(&self) -> String {
        match self {
            Runner::Gpu(e) => e.gpu().describe(),
            Runner::Cpu(c) => format!(
                "the CPU binary path ({} threads, {} kernels)",
                c.1.threads(),
                c.1.isa()
            ),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn file(&self) -> &ExtractorFile {
        match self {
            Runner::Gpu(e) => e.file(),
            Runner::Cpu(c) => &c.0,
        }
    }

    /// Images the device runs in one go: the CPU path's [`CpuExtractor::max_batch`] (its buffers
    /// near [`BATCH_BYTES`](crate::cpu::extractor::BATCH_BYTES)), the WGSL runner's
    /// storage-binding limit.
    pub fn max_batch(&self) -> usize {
        match self {
            Runner::Gpu(e) => e.max_batch(),
            Runner::Cpu(c) => c.1.max_batch(),
        }
    }

    /// Packed bits at each layer index of `taps` for `batch` NHWC images.
    pub fn taps(&self, images: &[f32], batch: usize, taps: &[usize]) -> Result<Vec<Vec<u32>>> {
        match self {
            Runner::Gpu(e) => e.run_taps(images, taps),
            Runner::Cpu(c) => c.1.run_taps(images, batch, taps),
        }
    }
}

/// Batches a data loader decodes ahead by default (`LoaderConfig::default().prefetch`, which the
/// loader module, absent on wasm32, defines; a test keeps the two equal).
pub const LOADER_PREFETCH: usize = 4;

/// The batch size and prefetch depth for a data loader that feeds an extractor of images of
/// `image_len` f32 values: at most `requested` images and `device_max` (what the device runs in
/// one go, [`Runner::max_batch`]), and few enough that the batches a loader holds at once
/// (`prefetch` decoded ahead, one waiting, one in use) keep their images near
/// [`BATCH_BYTES`](crate::cpu::extractor::BATCH_BYTES); at least one image and one batch ahead.
/// A large input size shrinks the batch instead of exhausting memory.
pub fn loader_batch(image_len: usize, requested: usize, device_max: usize) -> (usize, usize) {
    let budget = crate::cpu::extractor::BATCH_BYTES;
    let image = (image_len as u64).saturating_mul(4).max(1);
    let prefetch = LOADER_PREFETCH;
    let fit = |prefetch: usize| (budget / image / (prefetch as u64 + 2)) as usize;
    let batch = requested.min(device_max).min(fit(prefetch)).max(1);
    let prefetch = if fit(prefetch) >= 1 {
        prefetch
    } else {
        ((budget / image) as usize)
            .saturating_sub(2)
            .clamp(1, prefetch)
    };
    (batch, prefetch)
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

/// ±1 features `[n][h·w·c]` (NHWC) from packed bits of a layer with `channels` channels.
pub fn signs(bits: &[u32], channels: usize) -> Vec<f32> {
    unpack_rows(bits, channels)
}

/// Features of one split at several cuts of an extractor, from the cache where valid, otherwise
/// by one pass of the extractor over the split (then cached). Returns one [`FeatureSet`] per cut
/// and the seconds spent extracting (0 when everything came from the cache). Native only (the
/// decoding runs on the loader's runtime).
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::too_many_arguments)]
pub fn extractor_features(
    runner: &Runner,
    backbone: (&str, Fingerprint),
    set: Arc<ImageFolder>,
    cuts: &[String],
    cache: &Cache,
    batch_size: usize,
    workers: usize,
    observer: &dyn Observer,
) -> Result<(Vec<FeatureSet>, f64)> {
    let file = runner.file();
    let pre = file.graph.input.preprocess(Path::new(backbone.0))?;
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
            .str(&preprocess_key(&pre))
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
            extract_taps(runner, &set, &pre, (&miss_taps, &names), batching, observer)?;
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
    runner: &Runner,
    set: &Arc<ImageFolder>,
    pre: &Preprocess,
    (taps, cuts): (&[usize], &[&str]),
    (batch_size, workers): (usize, usize),
    observer: &dyn Observer,
) -> Result<(Vec<Vec<u32>>, Vec<u32>, f64)> {
    let (batch_size, prefetch) =
        loader_batch(pre.image_len(), batch_size.max(1), runner.max_batch());
    let cfg = crate::data::LoaderConfig {
        batch_size,
        prefetch,
        shuffle_seed: None,
        workers,
        ..crate::data::LoaderConfig::default()
    };
    let loader = crate::data::Loader::new(set.clone(), pre.clone(), cfg).report_to(observer);
    let name = format!("features {} ({})", set.split(), cuts.join(","));
    let task = Task::start(observer, &name, set.len() as u64);
    let start = std::time::Instant::now();
    let mut bits: Vec<Vec<u32>> = vec![Vec::new(); taps.len()];
    let mut labels: Vec<u32> = Vec::with_capacity(set.len());
    for batch in loader {
        let batch = batch?;
        for (b, part) in bits
            .iter_mut()
            .zip(runner.taps(&batch.images, batch.len(), taps)?)
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

/// Where the frozen extractor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExtractorDevice {
    /// The XNOR kernels on a real GPU; the CPU binary path when the only adapter is a CPU (on
    /// lavapipe the CPU path is far faster: see `bnn bench`) or there is none.
    Auto,
    /// The XNOR kernels on whatever adapter wgpu selects, lavapipe included; the CPU path only
    /// when there is no adapter at all.
    Adapter,
    /// The XNOR kernels on the selected adapter; an error without one.
    Gpu,
    /// The library's CPU binary path (u64 popcount on every core).
    Cpu,
}

/// The wgpu device `device` asks for, or `None` for the CPU binary path, with a note to show the
/// user when the choice was not the obvious one (a CPU adapter passed over, no adapter at all).
pub async fn select_gpu_async(device: ExtractorDevice) -> Result<(Option<Gpu>, Option<String>)> {
    Ok(match device {
        ExtractorDevice::Cpu => (None, None),
        ExtractorDevice::Gpu => (Some(Gpu::new_async().await?), None),
        ExtractorDevice::Auto | ExtractorDevice::Adapter => {
            match Gpu::new_async().await.map_err(|e| e.to_string()) {
                Ok(g)
                    if device == ExtractorDevice::Auto
                        && g.info.device_type == wgpu::DeviceType::Cpu =>
                {
                    let name = if g.info.name.is_empty() {
                        "(unnamed)"
                    } else {
                        &g.info.name
                    };
                    let note = format!(
                        "the adapter {name} is a CPU: running the extractor on the CPU binary \
                         path, which is faster there (device `adapter` runs the kernels on it \
                         anyway)"
                    );
                    (None, Some(note))
                }
                Ok(g) => (Some(g), None),
                Err(why) => (
                    None,
                    Some(format!(
                        "no wgpu adapter ({why}); running the extractor on the CPU binary path"
                    )),
                ),
            }
        }
    })
}

/// The fingerprint of an extractor file's bytes.
pub fn file_fingerprint(path: &Path) -> Result<Fingerprint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(Fingerprint::default().bytes(&bytes))
}
