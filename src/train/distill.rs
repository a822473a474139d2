//! Distillation from EfficientNet-Lite0 (`bnn pretrain --teacher FILE.pth`): the settings saved in
//! `config.json` ([`Lite0Distill`]), the teacher's targets for one batch ([`batch_targets`], from
//! the cache of [`crate::teacher::targets`]) and the loss ([`lite0_loss`]):
//!
//! ```text
//! loss = label_weight   · CE(student logits, labels)
//!      + logit_weight   · T² · CE(softmax(teacher logits / T), log_softmax(student logits / T))
//!      + feature_weight · mean over images and dimensions of (P·f − z)²
//! ```
//!
//! with T the temperature (Hinton et al.'s T² keeps the soft term's gradients on the labels'
//! scale), f the student's transfer features (the classifier's input: the last binary dense layer's
//! ±1 outputs, through the straight-through estimator), P its learned projection
//! ([`crate::model::Model::feature_head`], `[1280, features]` + bias) and z the teacher's 1280-d
//! pooled features standardised per dimension over the training set. The logit term needs source
//! classes that are ImageNet WordNet ids; without them the run distils features only, and says so.

use std::path::PathBuf;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::Batch;
use crate::error::{Error, Result};
use crate::teacher::efficientnet::FEATURES;
use crate::teacher::targets::Targets;

/// Temperature of the soft-logit term unless asked otherwise: 1, ReActNet's distributional loss
/// (the recipe that gave the float-twin-distilled default its +3 points).
pub const DEFAULT_TEMPERATURE: f32 = 1.0;
/// Weight of the label term unless asked otherwise: 0, the teacher's soft targets alone (as
/// ReActNet); measured, labels + T = 2 + features ×8 learned far slower (docs/RESULTS.md).
pub const DEFAULT_LABEL_WEIGHT: f32 = 0.0;
/// Weight of the soft-logit term unless asked otherwise.
pub const DEFAULT_LOGIT_WEIGHT: f32 = 1.0;
/// Weight of the feature term unless asked otherwise. At 8 (with labels and T = 2) the feature
/// regression pulled the ±1 transfer features hard enough to stall learning (10.4 % val top-1
/// after 5 of 14 epochs, against 17.8 % after 5 of 6 for the float-twin teacher); 1 keeps it a
/// regulariser beside the soft logits.
pub const DEFAULT_FEATURE_WEIGHT: f32 = 1.0;
/// Teacher views per image unless asked otherwise: the centre view only. A second (mirror) view
/// doubles the one-off cost of the targets (the teacher costs about 28 ms per image on flex here,
/// 14 minutes per view of the 30,000-image set) for a target the teacher gives almost unchanged.
pub const DEFAULT_VIEWS: usize = 1;

/// How a run distils from EfficientNet-Lite0; saved in `config.json` (`lite0`), so a resume
/// continues it the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lite0Distill {
    /// The weights file as given.
    pub weights: PathBuf,
    /// Its sha256 when the run started (a resume refuses another file).
    pub sha256: String,
    /// Side the teacher ran at.
    pub resolution: usize,
    /// Teacher views per image: 1 (centre) or 2 (and its mirror, used for flipped crops).
    pub views: usize,
    /// Temperature T of the soft-logit term.
    pub temperature: f32,
    /// Weight of the cross-entropy on the labels.
    pub label_weight: f32,
    /// Weight of the soft-logit term (0: features only; also when the classes are not WordNet ids).
    pub logit_weight: f32,
    /// Weight of the feature-regression term (0: logits only).
    pub feature_weight: f32,
    /// Where the teacher's targets are cached.
    pub cache_dir: PathBuf,
}

impl Lite0Distill {
    /// Checks the numbers; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let w = [
            ("`kd.labels`", self.label_weight),
            ("`kd.logits`", self.logit_weight),
            ("`kd.features`", self.feature_weight),
        ];
        for (flag, v) in w {
            if !(v.is_finite() && (0.0..=1e3).contains(&v)) {
                return bad(format!("{flag} {v}: a weight in 0..=1000"));
            }
        }
        if w.iter().all(|&(_, v)| v == 0.0) {
            return bad(
                "`kd.labels`, `kd.logits` and `kd.features` are all 0: nothing to learn from"
                    .into(),
            );
        }
        if !(self.temperature.is_finite() && (0.05..=100.0).contains(&self.temperature)) {
            return bad(format!(
                "`kd.temperature` {}: give 0.05..=100",
                self.temperature
            ));
        }
        if !(1..=2).contains(&self.views) {
            return bad(format!("`kd.views` {}: 1 or 2", self.views));
        }
        if !(32..=1024).contains(&self.resolution) {
            return bad(format!("`kd.resolution` {}: 32..=1024", self.resolution));
        }
        Ok(())
    }

    /// Width of the student's feature projection this run needs (0 without the feature term).
    pub fn feature_head(&self) -> usize {
        if self.feature_weight > 0.0 {
            FEATURES
        } else {
            0
        }
    }
}

/// The teacher's targets for the images of `batch`: soft logits `[n, classes]` (when the targets
/// have them) and standardised features `[n, 1280]`, each image in the view its crop was flipped to.
pub fn batch_targets(
    targets: &Targets,
    batch: &Batch,
    device: &Device,
) -> (Option<Tensor<2>>, Tensor<2>) {
    let n = batch.len();
    let mut feats = Vec::with_capacity(n * FEATURES);
    let mut logits = Vec::with_capacity(n * targets.classes);
    for (&i, &flipped) in batch.indices.iter().zip(&batch.flipped) {
        let v = targets.view(flipped);
        feats.extend(targets.standardized_row(v, i));
        if targets.classes > 0 {
            logits.extend_from_slice(targets.logits_row(v, i));
        }
    }
    let feats = Tensor::from_data(TensorData::new(feats, [n, FEATURES]), device);
    let logits = (targets.classes > 0)
        .then(|| Tensor::from_data(TensorData::new(logits, [n, targets.classes]), device));
    (logits, feats)
}

/// The loss of the module doc for one batch. `projected` is the student's projection of its
/// features (needed when `feature_weight > 0`), `teacher_logits` the mapped logits (the logit term
/// is left out without them).
pub fn lite0_loss(
    cfg: &Lite0Distill,
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    projected: Option<Tensor<2>>,
    teacher_logits: Option<Tensor<2>>,
    teacher_features: Tensor<2>,
) -> Result<Tensor<1>> {
    let device = logits.device();
    let mut loss: Option<Tensor<1>> = None;
    let mut add = |t: Tensor<1>| {
        loss = Some(match loss.take() {
            Some(l) => l + t,
            None => t,
        })
    };
    if cfg.label_weight > 0.0 {
        let ce = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), labels);
        add(ce.mul_scalar(cfg.label_weight));
    }
    if let (true, Some(t)) = (cfg.logit_weight > 0.0, teacher_logits) {
        let temp = cfg.temperature;
        let target = softmax(t.without_autodiff().div_scalar(temp), 1);
        let soft = (target * log_softmax(logits.div_scalar(temp), 1))
            .sum_dim(1)
            .mean()
            .neg();
        add(soft.mul_scalar(cfg.logit_weight * temp * temp));
    }
    if cfg.feature_weight > 0.0 {
        let p = projected.ok_or_else(|| {
            Error::Config("feature distillation needs the model's feature projection".into())
        })?;
        let diff = p - teacher_features.without_autodiff();
        add((diff.clone() * diff).mean().mul_scalar(cfg.feature_weight));
    }
    loss.ok_or_else(|| Error::Config("distillation with every weight 0".into()))
}
