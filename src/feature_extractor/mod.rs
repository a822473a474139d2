//! The library's front door: [`FeatureExtractor`] opens a frozen binary extractor (a file, or the
//! embedded default backbone) at a cut point on the best device — the WGSL kernels on a GPU, the
//! CPU binary path otherwise — and turns images into ±1 features. Async underneath (what the
//! web needs), with blocking conveniences on top; it owns its device and is `Send + Sync`, so a
//! server or an app can keep one and share it across threads.
//!
//! ```
//! use bnn_transfer::{ExtractorDevice, ExtractorOptions, FeatureExtractor};
//!
//! // The embedded default backbone at its own cut; `ExtractorDevice::Auto` picks a real GPU
//! // when there is one (the CPU path here keeps the example quick anywhere).
//! let ex = FeatureExtractor::open_blocking(&ExtractorOptions {
//!     device: ExtractorDevice::Cpu,
//!     ..ExtractorOptions::default()
//! })?;
//! // Prepared images: `ex.load_images(&["cat.jpg", "dog.png"])?` decodes and resizes files.
//! let images = vec![0.0f32; 2 * ex.image_len()];
//! let features = ex.features_blocking(&images)?; // [2][ex.dim()] of ±1.0
//! assert_eq!(features.len(), 2 * ex.dim());
//! assert!(features.iter().all(|&v| v == 1.0 || v == -1.0));
//! # Ok::<(), bnn_transfer::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::assets::{Backbone, load_backbone};
use crate::data::{ImageFolder, Preprocess, load_image};
use crate::error::{Error, Result};
use crate::extractor::{ExtractorFile, Features, Output, reference};
use crate::rng::Rng;

mod device;
pub(crate) use device::Runner;
pub use device::{
    ExtractorDevice, FeatureSet, LOADER_PREFETCH, loader_batch, select_gpu_async, signs,
};

/// What to open: which extractor, cut where, on which device.
#[derive(Clone, Debug)]
pub struct ExtractorOptions {
    /// An extractor file (`bnn export`); `None` is the embedded default backbone.
    pub model: Option<PathBuf>,
    /// The layer whose output are the features; `None` is the file's own cut.
    pub cut: Option<String>,
    /// Where it runs ([`ExtractorDevice::Auto`]: a real GPU if there is one, else the CPU path).
    pub device: ExtractorDevice,
}

impl Default for ExtractorOptions {
    fn default() -> Self {
        ExtractorOptions {
            model: None,
            cut: None,
            device: ExtractorDevice::Auto,
        }
    }
}

/// A frozen binary extractor, ready to turn images into features (see the module docs).
#[derive(Debug)]
pub struct FeatureExtractor {
    backbone: Backbone,
    cut: String,
    dim: usize,
    channels: usize,
    preprocess: Preprocess,
    runner: Runner,
    device: String,
    note: Option<String>,
}

impl FeatureExtractor {
    /// Loads the extractor and prepares it on the device `options` asks for: uploads and
    /// compiles the WGSL pipelines on a GPU, or regroups the weights for the CPU path.
    pub async fn open(options: &ExtractorOptions) -> Result<Self> {
        let backbone = load_backbone(options.model.as_deref())?;
        FeatureExtractor::from_backbone(backbone, options.cut.as_deref(), options.device).await
    }

    /// [`open`](Self::open) for a backbone already in memory (e.g. the bytes of a file picked in
    /// a browser: [`Backbone::from_bytes`]), cut at `cut` (`None`: the file's own cut).
    pub async fn from_backbone(
        backbone: Backbone,
        cut: Option<&str>,
        device: ExtractorDevice,
    ) -> Result<Self> {
        let preprocess = backbone.preprocess()?;
        let cut = cut.map_or_else(|| backbone.file.graph.cut.clone(), str::to_string);
        let file = backbone.file.truncated(&cut)?;
        let spec = file.cut().clone();
        let (runner, note) = Runner::open_async(file, device).await?;
        let device = runner.describe();
        Ok(FeatureExtractor {
            backbone,
            cut,
            dim: spec.out_len(),
            channels: spec.out_channels(),
            preprocess,
            runner,
            device,
            note,
        })
    }

    /// [`from_backbone`](Self::from_backbone), blocking (not on the web).
    pub fn from_backbone_blocking(
        backbone: Backbone,
        cut: Option<&str>,
        device: ExtractorDevice,
    ) -> Result<Self> {
        pollster::block_on(FeatureExtractor::from_backbone(backbone, cut, device))
    }

    /// [`open`](Self::open), blocking until the extractor is ready (not on the web).
    pub fn open_blocking(options: &ExtractorOptions) -> Result<Self> {
        pollster::block_on(FeatureExtractor::open(options))
    }

    /// The loaded backbone (its file, fingerprint and label).
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The layer whose output are the features.
    pub fn cut(&self) -> &str {
        &self.cut
    }

    /// Features per image.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Where the extractor runs, in words.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Whether it runs on the library's CPU binary path (else the WGSL kernels on a wgpu device).
    pub fn on_cpu_path(&self) -> bool {
        matches!(self.runner, Runner::Cpu(_))
    }

    /// Why the device is not the obvious one (a CPU adapter passed over, no adapter), if so.
    pub fn device_note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The extractor file as it runs: the backbone's layers up to the cut.
    pub fn file(&self) -> &ExtractorFile {
        self.runner.file()
    }

    /// Images the device runs in one go (larger inputs are split by the callers that batch:
    /// [`feature_set`](Self::feature_set), [`loader_batch`]).
    pub fn max_batch(&self) -> usize {
        self.runner.max_batch()
    }

    /// How images are prepared for this extractor (size, crop, mean and std from its file).
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// f32 values per prepared image (size × size × 3, NHWC).
    pub fn image_len(&self) -> usize {
        self.preprocess.image_len()
    }

    /// Decodes and prepares image files (JPEG or PNG) as the extractor expects them, in order:
    /// `[n][image_len]` NHWC f32. Errors name the file.
    pub fn load_images<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(paths.len() * self.image_len());
        let mut rng = Rng::new(0);
        for p in paths {
            let p = p.as_ref();
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            let image = load_image(&bytes, &self.preprocess, &mut rng)
                .map_err(|e| Error::Dataset(format!("{}: {e}", p.display())))?;
            out.extend(image);
        }
        Ok(out)
    }

    /// Features of prepared `images` (a whole number of [`image_len`](Self::image_len) values):
    /// `[n][dim]` of ±1.0, the extractor's packed bits at the cut unpacked in NHWC order.
    pub async fn features(&self, images: &[f32]) -> Result<Vec<f32>> {
        Ok(signs(&self.bits(images).await?, self.channels))
    }

    /// The packed bits at the cut of prepared `images`: `[n][out_words]` u32 words, a set bit is
    /// −1 (docs/FORMAT.md) — what every path (WGSL, CPU, reference) computes bit for bit.
    pub async fn bits(&self, images: &[f32]) -> Result<Vec<u32>> {
        let last = self.file().layers.len() - 1;
        Ok(self.taps(images, &[last]).await?.remove(0))
    }

    /// The packed bits of prepared `images` at each layer index of `taps` (indices into
    /// [`file`](Self::file)'s layers, the cut and any layer before it), in one pass: one
    /// `[n][out_words]` list per tap.
    pub async fn taps(&self, images: &[f32], taps: &[usize]) -> Result<Vec<Vec<u32>>> {
        let n = self.images_in(images)?;
        match &self.runner {
            Runner::Gpu(e) => e.run_taps_async(images, taps).await,
            Runner::Cpu(c) => c.1.run_taps(images, n, taps),
        }
    }

    /// The cut layer's `output` for prepared `images`: its packed bits, its ±1 signs, or its
    /// integer pre-activations (docs/FORMAT.md). The CPU binary path computes bits only;
    /// pre-activations come from the scalar reference there (the same integers, slower).
    pub async fn run(&self, images: &[f32], output: Output) -> Result<Features> {
        let n = self.images_in(images)?;
        match (&self.runner, output) {
            (Runner::Gpu(e), output) => e.run_async(images, output).await,
            (Runner::Cpu(c), Output::Preact) => reference::run(&c.0, images, n, Output::Preact),
            (Runner::Cpu(c), Output::Bits) => Ok(Features::Bits(c.1.run_bits(images, n)?)),
            (Runner::Cpu(c), Output::Signs) => Ok(Features::Float(signs(
                &c.1.run_bits(images, n)?,
                self.channels,
            ))),
        }
    }

    /// How many images `images` holds; an error unless it is a whole, non-zero number of
    /// [`image_len`](Self::image_len) values.
    fn images_in(&self, images: &[f32]) -> Result<usize> {
        let len = self.image_len();
        if images.is_empty() || !images.len().is_multiple_of(len) {
            return Err(Error::Shape(format!(
                "{} values are not a whole number of {len}-value images",
                images.len()
            )));
        }
        Ok(images.len() / len)
    }

    /// The features and labels of every image of a data set split (64 images per extractor
    /// pass, fewer when the images are large: [`loader_batch`]), in sample order. No cache:
    /// `bnn transfer` caches them on disk.
    pub async fn feature_set(&self, set: &ImageFolder) -> Result<FeatureSet> {
        let mut x = Vec::with_capacity(set.len() * self.dim);
        let mut rng = Rng::new(0);
        let order: Vec<usize> = (0..set.len()).collect();
        let (per_pass, _) = loader_batch(self.image_len(), 64, self.max_batch());
        for chunk in order.chunks(per_pass) {
            let mut images = Vec::with_capacity(chunk.len() * self.image_len());
            for &i in chunk {
                images.extend(load_image(&set.read(i)?, &self.preprocess, &mut rng)?);
            }
            x.extend(self.features(&images).await?);
        }
        Ok(FeatureSet {
            dim: self.dim,
            x,
            labels: set.samples.iter().map(|s| s.label).collect(),
            classes: set.classes.clone(),
        })
    }

    /// [`feature_set`](Self::feature_set), blocking (not on the web).
    pub fn feature_set_blocking(&self, set: &ImageFolder) -> Result<FeatureSet> {
        pollster::block_on(self.feature_set(set))
    }

    /// [`bits`](Self::bits), blocking (not on the web).
    pub fn bits_blocking(&self, images: &[f32]) -> Result<Vec<u32>> {
        pollster::block_on(self.bits(images))
    }

    /// [`taps`](Self::taps), blocking (not on the web).
    pub fn taps_blocking(&self, images: &[f32], taps: &[usize]) -> Result<Vec<Vec<u32>>> {
        pollster::block_on(self.taps(images, taps))
    }

    /// [`run`](Self::run), blocking (not on the web).
    pub fn run_blocking(&self, images: &[f32], output: Output) -> Result<Features> {
        pollster::block_on(self.run(images, output))
    }

    /// [`features`](Self::features), blocking (not on the web).
    pub fn features_blocking(&self, images: &[f32]) -> Result<Vec<f32>> {
        pollster::block_on(self.features(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_door_owns_its_device_and_can_be_shared() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<FeatureExtractor>();
        shareable::<crate::gpu::Gpu>();
        shareable::<crate::cpu::CpuExtractor>();
    }
}
