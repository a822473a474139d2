//! The frozen extractor and a head in a web page (feature `web`, wasm32 only): [`Classifier`]
//! runs the same library code as native — the WGSL kernels through the browser's WebGPU, or the
//! CPU binary path — on images the page hands over as PNG/JPEG bytes, and labels them with a
//! head. The embedded backbone and a Flowers-102 head ship with it
//! (`assets/flowers102-head.safetensors`); a user can load their own extractor and head files, or
//! collect labelled images in the page and train a new head there with the library's own head
//! trainer ([`crate::transfer::fit`], the same head as native training, bit for bit).
//! The page is `web/index.html` (`scripts/build-web.sh` builds it; docs/WEB.md).

use std::path::Path;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::assets::{Backbone, FLOWERS_HEAD, load_backbone};
use crate::classifier;
use crate::cpu::Threads;
use crate::data::load_image;
use crate::feature_extractor::ExtractorDevice;
use crate::rng::Rng;
use crate::transfer::examples::{Examples, PAGE_DATA, PAGE_LAYOUT};
use crate::transfer::head::{Head, HeadInfo};

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

#[derive(Serialize)]
struct Label {
    class: String,
    probability: f32,
}

#[derive(Serialize)]
struct Classified {
    labels: Vec<Label>,
    /// Decode + preprocess + extractor + head, in milliseconds.
    ms: f64,
}

/// An extractor and a head, ready to label images in the page, and the labelled images
/// collected to train a new head (their features, at the extractor's cut).
#[wasm_bindgen]
#[derive(Debug)]
pub struct Classifier {
    inner: classifier::Classifier,
    examples: Examples,
}

#[wasm_bindgen]
impl Classifier {
    /// Opens the extractor (`model`: an extractor file's bytes, empty for the embedded backbone,
    /// named `model_name` in errors) with a head (`head`: a head file's bytes, empty for the
    /// shipped Flowers-102 head, named `head_name`) on `device`: `gpu` (WebGPU), `cpu` (the CPU
    /// binary path, one thread) or `auto` (WebGPU on a real GPU; the CPU path when there is no
    /// adapter or the adapter is itself a CPU, e.g. SwiftShader, where the CPU path is several
    /// times faster). The head must have been trained on this extractor.
    pub async fn create(
        model: Vec<u8>,
        model_name: String,
        head: Vec<u8>,
        head_name: String,
        device: String,
    ) -> Result<Classifier, JsError> {
        let head_bytes = if head.is_empty() {
            FLOWERS_HEAD
        } else {
            &head[..]
        };
        let head = Head::from_bytes(head_bytes, Path::new(&head_name)).map_err(js)?;
        let backbone: Backbone = if model.is_empty() {
            load_backbone(None).map_err(js)?
        } else {
            Backbone::from_bytes(&model, &model_name).map_err(js)?
        };
        let device = match device.as_str() {
            "auto" => ExtractorDevice::Auto,
            "gpu" => ExtractorDevice::Gpu,
            "cpu" => ExtractorDevice::Cpu,
            other => return Err(JsError::new(&format!("device '{other}': auto, gpu or cpu"))),
        };
        let inner = classifier::Classifier::new(backbone, head, &head_name, device)
            .await
            .map_err(js)?;
        Ok(Classifier {
            inner,
            examples: Examples::default(),
        })
    }

    /// Where the extractor runs, in words.
    pub fn device(&self) -> String {
        self.inner.extractor().device().to_string()
    }

    /// Why `auto` chose the CPU path, if it did.
    pub fn device_note(&self) -> Option<String> {
        self.inner.extractor().device_note().map(str::to_string)
    }

    /// The head's class names, in label order.
    pub fn classes(&self) -> Vec<String> {
        self.inner.classes().to_vec()
    }

    /// The `k` most probable classes of one image (PNG or JPEG bytes) and the time it took, as
    /// JSON: `{"labels": [{"class", "probability"}…], "ms"}`.
    pub async fn classify(&self, image: Vec<u8>, k: usize) -> Result<String, JsError> {
        let start = web_time::Instant::now();
        let x = self.prepare(&image)?;
        let top = self.inner.top_k(&x, k.max(1)).await.map_err(js)?;
        let labels = top[0]
            .iter()
            .map(|&(c, p)| Label {
                class: self.inner.classes()[c].clone(),
                probability: p,
            })
            .collect();
        let out = Classified {
            labels,
            ms: start.elapsed().as_secs_f64() * 1e3,
        };
        serde_json::to_string(&out).map_err(js)
    }

    /// Adds one labelled image (PNG or JPEG bytes) for training: its features are extracted now.
    /// Returns how many images `class` has.
    pub async fn add_example(&mut self, class: String, image: Vec<u8>) -> Result<usize, JsError> {
        if class.trim().is_empty() {
            return Err(JsError::new("name the class first"));
        }
        let x = self.prepare(&image)?;
        let features = self.inner.extractor().features(&x).await.map_err(js)?;
        self.examples.add(&class, features).map_err(js)
    }

    /// Forgets every collected image.
    pub fn clear_examples(&mut self) {
        self.examples.clear();
    }

    /// Trains a linear head on the collected images ([`Examples::train`] with `seed`), holding
    /// out every fifth image of each class to score it, and uses it from now on. Returns JSON:
    /// `{classes, train_images, heldout_images, heldout_top1, epochs, ms}`.
    pub fn train(&mut self, seed: u32) -> Result<String, JsError> {
        let threads = Threads::new(1).map_err(js)?;
        let (head, trained) = self
            .examples
            .train(
                HeadInfo::for_extractor(self.inner.extractor(), PAGE_DATA, PAGE_LAYOUT),
                seed as u64,
                &threads,
            )
            .map_err(js)?;
        self.inner
            .set_head(head, "the head trained here")
            .map_err(js)?;
        serde_json::to_string(&trained).map_err(js)
    }

    /// The head in use as a head file (what `bnn predict --head` and the library read).
    pub fn head_file(&self) -> Result<Vec<u8>, JsError> {
        self.inner.head().to_bytes().map_err(js)
    }

    /// The packed feature bits at the head's cut of one image (PNG or JPEG bytes): what the
    /// native paths compute, bit for bit.
    pub async fn feature_bits(&self, image: Vec<u8>) -> Result<Vec<u32>, JsError> {
        let x = self.prepare(&image)?;
        self.inner.extractor().bits(&x).await.map_err(js)
    }
}

impl Classifier {
    /// One image's bytes (PNG or JPEG), decoded and prepared for the extractor.
    fn prepare(&self, image: &[u8]) -> Result<Vec<f32>, JsError> {
        load_image(image, self.inner.extractor().preprocess(), &mut Rng::new(0)).map_err(js)
    }
}
