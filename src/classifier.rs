//! A frozen binary extractor and a transfer head together: [`Classifier`] checks that the head
//! was trained on the extractor (its kind, fingerprint and feature size), opens the extractor at
//! the head's cut on the device asked for, and labels prepared images. `bnn predict`, the web
//! page and the `predict` example all label images through it.
//!
//! ```
//! use bnn_transfer::{Classifier, ExtractorDevice};
//! use bnn_transfer::assets::load_backbone;
//! use bnn_transfer::transfer::Head;
//!
//! // The embedded backbone with the shipped Flowers-102 head (`bnn predict --head FILE` loads
//! // one from a file: `Classifier::open_blocking`).
//! let head = Head::from_bytes(bnn_transfer::assets::FLOWERS_HEAD, "flowers102-head.safetensors".as_ref())?;
//! let classifier = Classifier::new_blocking(load_backbone(None)?, head, "flowers102-head", ExtractorDevice::Cpu)?;
//! let image = vec![0.0f32; classifier.extractor().image_len()];
//! let top = classifier.top_k_blocking(&image, 3)?; // per image: (class index, probability)
//! assert_eq!(top[0].len(), 3);
//! println!("{}", classifier.classes()[top[0][0].0]);
//! # Ok::<(), bnn_transfer::Error>(())
//! ```

use crate::assets::Backbone;
use crate::error::{Error, Result};
use crate::feature_extractor::{ExtractorDevice, FeatureExtractor};
use crate::transfer::head::Head;

/// An extractor and the head trained on its features (see the module docs).
#[derive(Debug)]
pub struct Classifier {
    extractor: FeatureExtractor,
    head: Head,
}

impl Classifier {
    /// `head` (named `head_name` in errors) on `backbone`, cut where the head was trained, on
    /// `device`. An error, naming the head, unless it was trained on this extractor's features.
    pub async fn new(
        backbone: Backbone,
        head: Head,
        head_name: &str,
        device: ExtractorDevice,
    ) -> Result<Self> {
        head.info.check_extractor_kind(head_name)?;
        head.info.check_backbone(&backbone, head_name)?;
        let extractor =
            FeatureExtractor::from_backbone(backbone, Some(&head.info.cut), device).await?;
        check_dim(&head, head_name, &extractor)?;
        Ok(Classifier { extractor, head })
    }

    /// [`new`](Self::new), blocking until the extractor is ready (not on the web).
    pub fn new_blocking(
        backbone: Backbone,
        head: Head,
        head_name: &str,
        device: ExtractorDevice,
    ) -> Result<Self> {
        pollster::block_on(Classifier::new(backbone, head, head_name, device))
    }

    /// The head file at `head` on the extractor file at `model`, or, for `None`, on the one the
    /// head records (a path, or `embedded:…` for the embedded backbone); blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_blocking(
        head: &std::path::Path,
        model: Option<&std::path::Path>,
        device: ExtractorDevice,
    ) -> Result<Self> {
        let loaded = Head::load(head)?;
        let recorded = std::path::PathBuf::from(&loaded.info.backbone.path);
        let backbone = crate::assets::load_backbone(Some(model.unwrap_or(&recorded)))?;
        Classifier::new_blocking(backbone, loaded, &head.display().to_string(), device)
    }

    /// The extractor (its device, preprocessing and image loading).
    pub fn extractor(&self) -> &FeatureExtractor {
        &self.extractor
    }

    /// The head in use.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// The head's class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.head.info.classes
    }

    /// Uses `head` (named `head_name` in errors) from now on, under the same checks as
    /// [`new`](Self::new); its cut must be the extractor's.
    pub fn set_head(&mut self, head: Head, head_name: &str) -> Result<()> {
        head.info.check_extractor_kind(head_name)?;
        head.info
            .check_backbone(self.extractor.backbone(), head_name)?;
        if head.info.cut != self.extractor.cut() {
            return Err(Error::Config(format!(
                "{head_name} reads the features at '{}', this classifier's extractor is cut at \
                 '{}': open a new classifier for it",
                head.info.cut,
                self.extractor.cut()
            )));
        }
        check_dim(&head, head_name, &self.extractor)?;
        self.head = head;
        Ok(())
    }

    /// The head's logits for prepared `images`: `[n][classes]`.
    pub async fn logits(&self, images: &[f32]) -> Result<Vec<f32>> {
        self.head.logits(&self.extractor.features(images).await?)
    }

    /// The `k` most probable classes of each prepared image, most probable first:
    /// `(class index, probability)`.
    pub async fn top_k(&self, images: &[f32], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        self.head.top_k(&self.extractor.features(images).await?, k)
    }

    /// [`top_k`](Self::top_k), blocking (not on the web).
    pub fn top_k_blocking(&self, images: &[f32], k: usize) -> Result<Vec<Vec<(usize, f32)>>> {
        pollster::block_on(self.top_k(images, k))
    }
}

/// Refuses a head whose input size is not the extractor's features per image.
fn check_dim(head: &Head, head_name: &str, extractor: &FeatureExtractor) -> Result<()> {
    if head.info.dim == extractor.dim() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{head_name} takes {} features per image, the extractor gives {} at '{}'",
        head.info.dim,
        extractor.dim(),
        extractor.cut()
    )))
}
