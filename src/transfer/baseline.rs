//! The float network a user would pick instead of the binary backbone, in the same table
//! (`bnn transfer --baseline efficientnet-lite0`): EfficientNet-Lite0's 1280-d pooled features
//! (ImageNet-1k weights, images upscaled to 160 px) with the same linear head, and beside both
//! backbones the milliseconds per image on this machine (batch 1, medians, in the same run) and
//! the model's bytes.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::Device;

use super::fit::{self, FitConfig};
use super::head::{self, BackboneInfo, BackboneKind, HeadInfo};
use super::{FeatureSet, evaluate};
use crate::data::{ImageFolder, Loader};
use crate::error::{Error, Result};
use crate::feature_extractor::FeatureExtractor;
use crate::progress::{Observer, Task};
use crate::teacher::{self, efficientnet};

/// Runs timed per backbone for the per-image medians.
const TIMED_RUNS: usize = 20;

/// Median milliseconds of one image through the binary extractor (batch 1, every layer to the
/// last one, no decoding), on the extractor the experiment used.
pub fn binary_ms_per_image(extractor: &FeatureExtractor) -> Result<f64> {
    let image = vec![0.25f32; extractor.image_len()];
    extractor.bits_blocking(&image)?;
    let mut times = Vec::with_capacity(TIMED_RUNS);
    for _ in 0..TIMED_RUNS {
        let t = Instant::now();
        extractor.bits_blocking(&image)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The teacher's 1280-d pooled features of every image of `set` (set order, centre crop at
/// `input`, upscaled to `resolution`) as a [`FeatureSet`] for heads, and the seconds it took.
pub fn lite0_features(
    teacher: &teacher::EfficientNetLite0,
    set: Arc<ImageFolder>,
    input: usize,
    resolution: usize,
    workers: usize,
    device: &Device,
    observer: &dyn Observer,
) -> Result<(FeatureSet, f64)> {
    let cfg = teacher::loader_config(workers);
    let name = format!("features {} (EfficientNet-Lite0, burn)", set.split());
    let task = Task::start(observer, &name, set.len() as u64);
    let start = Instant::now();
    let mut x = Vec::with_capacity(set.len() * efficientnet::FEATURES);
    let mut labels = Vec::with_capacity(set.len());
    let loader = Loader::new(set.clone(), efficientnet::preprocess(input), cfg);
    for batch in loader.report_to(observer) {
        let batch = batch?;
        let images = teacher::targets::nchw(&batch.images, batch.len(), batch.size, device);
        let out = teacher.forward(efficientnet::upscale(images, resolution));
        x.extend(
            out.features
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| Error::Shape(format!("teacher features to f32: {e:?}")))?,
        );
        labels.extend_from_slice(&batch.labels);
        task.advance(batch.len() as u64);
    }
    Ok((
        FeatureSet {
            dim: efficientnet::FEATURES,
            x,
            labels,
            classes: set.classes.clone(),
        },
        start.elapsed().as_secs_f64(),
    ))
}

/// What the baseline produced: its row's pieces and the seconds its features took.
#[derive(Debug)]
pub struct Lite0Baseline {
    /// Test scores of the linear head.
    pub test: super::Evaluation,
    /// Val top-1 of the kept epoch.
    pub val_top1: Option<f64>,
    /// Epochs run and the kept one.
    pub epochs: (usize, usize),
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Head-training seconds.
    pub head_train_s: f64,
    /// Seconds computing the features of every split.
    pub feature_s: f64,
    /// Median ms per image at batch 1 (160 px, flex).
    pub ms_per_image: f64,
    /// Bytes of the weights file.
    pub model_bytes: u64,
}

/// Trains the linear head of `fit_cfg` on EfficientNet-Lite0's features of `splits` (train, then
/// val when `val` is set, test last) and scores it on the test split.
pub fn lite0(
    weights: &Path,
    splits: &[Arc<ImageFolder>],
    val: bool,
    input: usize,
    fit_cfg: &FitConfig,
    workers: usize,
    observer: &dyn Observer,
) -> Result<Lite0Baseline> {
    let device = Device::flex();
    let model = efficientnet::load(weights, &device)?;
    let model_bytes = std::fs::metadata(weights).map_or(0, |m| m.len());
    let res = efficientnet::RESOLUTION;
    let mut sets: Vec<FeatureSet> = Vec::new();
    let mut feature_s = 0.0;
    for s in splits {
        let (f, secs) = lite0_features(&model, s.clone(), input, res, workers, &device, observer)?;
        observer.note(&format!(
            "  {} EfficientNet-Lite0 features: {secs:.1} s ({:.1} images/s, burn flex)",
            s.split(),
            s.len() as f64 / secs.max(1e-9)
        ));
        feature_s += secs;
        sets.push(f);
    }
    let ms_per_image = teacher::ms_per_image(&model, input, res, TIMED_RUNS, &device);
    let about = HeadInfo {
        version: head::HEAD_VERSION,
        classes: vec![],
        backbone: BackboneInfo {
            kind: BackboneKind::Checkpoint,
            path: weights.display().to_string(),
            fingerprint: efficientnet::WEIGHTS_SHA256.into(),
        },
        cut: "pool".into(),
        dim: 0,
        hidden: vec![],
        input_size: input,
        data: String::new(),
        layout: String::new(),
    };
    let settings = FitConfig {
        hidden: vec![],
        ..fit_cfg.clone()
    };
    let task = Task::start(
        observer,
        "efficientnet-lite0 linear",
        settings.epochs as u64,
    );
    let (tr, te) = (&sets[0], &sets[sets.len() - 1]);
    let va = val.then(|| &sets[1]);
    let threads = crate::cpu::Threads::all()?;
    let (head, fitted) = fit::train_head_with(tr, va, &settings, about, &threads, &mut |e| {
        task.set(task.done() + 1, &e.summary());
    })?;
    drop(task);
    let logits = head.logits(&te.x)?;
    let test = evaluate(&logits, &te.labels, &tr.classes, 10);
    let val_top1 = fitted
        .history
        .get(fitted.best_epoch - 1)
        .and_then(|e| e.val_top1);
    Ok(Lite0Baseline {
        test,
        val_top1,
        epochs: (fitted.history.len(), fitted.best_epoch),
        stopped_early: fitted.stopped_early,
        head_train_s: fitted.seconds,
        feature_s,
        ms_per_image,
        model_bytes,
    })
}
