//! What defines a pretraining run ([`PretrainConfig`], saved as `config.json`), how to run it
//! ([`RunOptions`]) and what it reports ([`PretrainReport`]); a new run's configuration from a data
//! set ([`new_config`]). The settings are checked here; the checks that read other runs (a
//! teacher) are in [`super::pretrain`](mod@super::pretrain).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::device::TrainDevice;
use super::distill::Lite0Distill;
use super::metrics::EpochMetrics;
use super::schedule::Schedule;
use crate::data::{ImageFolder, Layout};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::progress::{Observer, Silent};

/// Adam's hyper-parameters (Kingma & Ba; ε as in Keras/Larq, which the paper's models used).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// Decay of the first-moment (mean) estimate.
    pub beta1: f32,
    /// Decay of the second-moment (uncentred variance) estimate.
    pub beta2: f32,
    /// Added to the denominator for numerical stability.
    pub epsilon: f32,
}

impl Default for AdamSettings {
    fn default() -> Self {
        AdamSettings {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }
}

/// Everything that defines a pretraining run; saved as `config.json` in the output directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// The network to train.
    pub model: ModelConfig,
    /// The data set (directory or tar) as given on the command line.
    pub data: PathBuf,
    /// Its layout as detected or given (`auto` in configs written before layouts existed).
    #[serde(default)]
    pub layout: Layout,
    /// Name of the training split (`train`).
    pub train_split: String,
    /// `None` when the set has no `val` split (validation metrics are then NaN).
    pub val_split: Option<String>,
    /// Class folder names, index = label.
    pub classes: Vec<String>,
    /// Epochs to train in total (a resumed run continues up to this).
    pub epochs: usize,
    /// Images per optimizer step.
    pub batch_size: usize,
    /// Learning rate over the epochs.
    pub schedule: Schedule,
    /// Optimizer hyper-parameters.
    pub adam: AdamSettings,
    /// Seed of the weight initialisation; per-epoch shuffle/augmentation seeds derive from it
    /// ([`PretrainConfig::epoch_seed`]).
    pub seed: u64,
    /// Distillation from a teacher (`--teacher`): the output directory of a finished run over the
    /// same images and classes (typically a float network; its architecture may differ). Its softmax outputs replace the
    /// labels as training targets (ReActNet's distributional loss, [`super::step::distillation_loss`]); `None`
    /// trains on the labels (cross-entropy). Validation always scores against the labels.
    #[serde(default)]
    pub teacher: Option<PathBuf>,
    /// The sha256 of the teacher run's `model.bpk` when this run started
    /// ([`super::checkpoint::model_fingerprint`]): a resume refuses a teacher that changed since.
    #[serde(default)]
    pub teacher_sha256: Option<String>,
    /// Two-step training (ReActNet; `--float-weight-epochs`): the first this many epochs train
    /// the binary net's activations with real-valued weights (no sign, no α on them), the rest
    /// binarize the weights too, continuing from the first step's weights, optimizer state and
    /// learning-rate schedule (one schedule over all epochs, so runs stay comparable). 0: one step.
    #[serde(default)]
    pub float_weight_epochs: usize,
    /// Distillation from EfficientNet-Lite0 (`--teacher FILE.pth`, [`Lite0Distill`]): labels, the
    /// teacher's soft logits over the source classes and its features, weighted. Exclusive with
    /// `teacher`.
    #[serde(default)]
    pub lite0: Option<Lite0Distill>,
}

impl PretrainConfig {
    /// Checks the settings before anything is written or allocated; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let s = &self.schedule;
        if let Err(e) = self.model.arch.check() {
            return bad(format!("architecture '{}': {e}", self.model.arch.name));
        }
        if self.epochs == 0 {
            return bad("`epochs` 0: train at least 1 epoch".into());
        }
        if self.batch_size == 0 {
            return bad("`batch_size` 0: give at least 1".into());
        }
        if !(s.lr.is_finite() && s.lr > 0.0 && s.lr <= 10.0) {
            return bad(format!(
                "`lr` {}: the learning rate must be a number in (0, 10] (e.g. 1e-3); larger \
                 steps only diverge",
                s.lr
            ));
        }
        if !(s.gamma.is_finite() && s.gamma > 0.0) {
            return bad(format!(
                "`lr_gamma` {}: must be a finite number > 0",
                s.gamma
            ));
        }
        if s.step_epochs == 0 {
            return bad("`lr_step_epochs` 0: give at least 1".into());
        }
        if self.float_weight_epochs > 0
            && (self.model.precision != crate::model::Precision::Binary
                || self.float_weight_epochs >= self.epochs)
        {
            return bad(format!(
                "`float_weight_epochs` {}: two-step training needs a binary network and fewer \
                 real-weight epochs than `epochs` ({}), so the last epochs binarize the weights",
                self.float_weight_epochs, self.epochs
            ));
        }
        if let Some(d) = &self.lite0 {
            if self.teacher.is_some() {
                return bad(
                    "give one teacher: a run directory or EfficientNet-Lite0's .pth".into(),
                );
            }
            d.validate()?;
            if self.model.feature_head != d.feature_head() {
                return bad(format!(
                    "the model's feature projection ({}) does not match `kd.features` {}",
                    self.model.feature_head, d.feature_weight
                ));
            }
        }
        Ok(())
    }

    /// Whether epoch `epoch` (0-based) binarizes the weights (two-step training's second step,
    /// or every epoch of a one-step run).
    pub fn binary_weights_at(&self, epoch: usize) -> bool {
        epoch >= self.float_weight_epochs
    }

    /// What the run trains, in a few lines (printed when it starts): the network, its options,
    /// the data and the schedule over `epochs` epochs, and where it writes.
    pub fn describe(&self, epochs: usize, out: &std::path::Path) -> String {
        let mut s = format!("{} {}", self.model.precision, self.model.arch);
        if self.model.weight_scale {
            s.push_str("  (XNOR-Net α)\n");
        }
        if let Some(t) = &self.teacher {
            s.push_str(&format!(
                "distilling from {}: its softmax outputs are the targets\n",
                t.display()
            ));
        }
        if let Some(d) = &self.lite0 {
            s.push_str(&format!(
                "distilling from EfficientNet-Lite0 ({}, {} px, {} view(s)): labels ×{}, soft \
                 logits (T = {}) ×{}, features ×{}\n",
                d.weights.display(),
                d.resolution,
                d.views,
                d.label_weight,
                d.temperature,
                d.logit_weight,
                d.feature_weight
            ));
        }
        if self.float_weight_epochs > 0 {
            s.push_str(&format!(
                "two-step: epochs 1-{} train binary activations with real-valued weights, the \
                 rest binarize the weights too\n",
                self.float_weight_epochs
            ));
        }
        s.push_str(&format!(
            "data: {} ({}, {} classes), {epochs} epochs of batch {}, Adam lr {} ({:?}), seed {}; \
             output: {}\n",
            self.data.display(),
            self.layout,
            self.classes.len(),
            self.batch_size,
            self.schedule.lr,
            self.schedule.kind,
            self.seed,
            out.display()
        ));
        s
    }

    /// The `bnn pretrain` command that trains this run into `out` (every setting spelled out, so
    /// it does not depend on defaults; export records it in the extractor file).
    pub fn command(&self, out: &std::path::Path) -> String {
        let s = &self.schedule;
        let kind = s.kind;
        let mut c = format!(
            "bnn pretrain --data {} --arch {} --precision {} --epochs {} --batch-size {} --lr {} \
             --schedule {kind}",
            self.data.display(),
            self.model.arch.name,
            self.model.precision,
            self.epochs,
            self.batch_size,
            s.lr,
        );
        if s.kind == super::ScheduleKind::Step {
            c.push_str(&format!(
                " --lr-step-epochs {} --lr-gamma {}",
                s.step_epochs, s.gamma
            ));
        }
        c.push_str(&format!(" --seed {}", self.seed));
        if self.model.weight_scale {
            c.push_str(" --weight-scale");
        }
        if let Some(t) = &self.teacher {
            c.push_str(&format!(" --teacher {}", t.display()));
        }
        if let Some(d) = &self.lite0 {
            c.push_str(&format!(
                " --teacher {} --teacher-resolution {} --teacher-views {} --kd-temperature {} \
                 --kd-labels {} --kd-logits {} --kd-features {}",
                d.weights.display(),
                d.resolution,
                d.views,
                d.temperature,
                d.label_weight,
                d.logit_weight,
                d.feature_weight
            ));
        }
        if self.float_weight_epochs > 0 {
            c.push_str(&format!(
                " --float-weight-epochs {}",
                self.float_weight_epochs
            ));
        }
        c.push_str(&format!(" --out {}", out.display()));
        c
    }

    /// The shuffle/augmentation seed of epoch `epoch` (0-based).
    pub fn epoch_seed(&self, epoch: usize) -> u64 {
        self.seed.wrapping_add(1 + epoch as u64)
    }
}

/// How to run (not part of the saved configuration).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Output directory: config, checkpoint, metrics, curves and report.
    pub out: PathBuf,
    /// The burn device to train on.
    pub device: TrainDevice,
    /// Set (e.g. by a Ctrl-C handler) to stop after the current step, save and return.
    pub stop: Arc<AtomicBool>,
    /// Stop as if interrupted after this many optimizer steps in this session (tests, smoke runs).
    pub max_steps: Option<u64>,
    /// Image decoding threads (0: all cores).
    pub workers: usize,
    /// Where progress, notes and warnings go.
    pub observer: Arc<dyn Observer>,
}

impl RunOptions {
    /// Options with the defaults: no stop requested, no step limit, all cores, progress dropped
    /// ([`Silent`]).
    pub fn new(out: impl Into<PathBuf>, device: TrainDevice) -> Self {
        RunOptions {
            out: out.into(),
            device,
            stop: Arc::new(AtomicBool::new(false)),
            max_steps: None,
            workers: 0,
            observer: Arc::new(Silent),
        }
    }
}

/// What a run did; also written to `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainReport {
    /// The run's output directory.
    pub out: PathBuf,
    /// Architecture name.
    pub arch: String,
    /// `binary` or `float`.
    pub precision: String,
    /// Trainable parameters ([`Arch::params`](crate::arch::Arch::params)).
    pub params: u64,
    /// Multiply-accumulates per image.
    pub macs_per_image: u64,
    /// Bytes of the frozen binary model ([`Arch::packed_bytes`](crate::arch::Arch::packed_bytes)).
    pub packed_bytes: u64,
    /// Bytes of the float twin for inference
    /// ([`Arch::float_bytes`](crate::arch::Arch::float_bytes)).
    pub float_bytes: u64,
    /// burn backend, `wgpu` or `flex`.
    pub backend: String,
    /// Adapter name (wgpu) or `cpu` (flex).
    pub device: String,
    /// Why this device was chosen.
    pub device_reason: String,
    /// Epochs the configuration asks for.
    pub epochs: usize,
    /// Epochs completed so far (previous sessions included).
    pub epochs_done: usize,
    /// Stopped early (Ctrl-C or `max_steps`); resume with `--resume`.
    pub interrupted: bool,
    /// Optimizer steps taken in this session.
    pub steps_this_session: u64,
    /// Training images per second over this session's steps.
    pub images_per_s: f64,
    /// Wall time of this session, seconds.
    pub wall_s: f64,
    /// Metrics of the last completed epoch, if any.
    pub last: Option<EpochMetrics>,
    /// Unreadable images skipped this session.
    pub skipped_images: Vec<String>,
}

/// Builds the configuration of a new run on the data set at `data` (layout detected): reads the
/// class list of its `train` split and sizes the classifier to it.
pub fn new_config(
    data: &Path,
    arch: &str,
    precision: crate::model::Precision,
    epochs: usize,
    batch_size: usize,
    schedule: Schedule,
    seed: u64,
) -> Result<PretrainConfig> {
    new_config_layout(
        data,
        Layout::Auto,
        arch,
        precision,
        epochs,
        batch_size,
        schedule,
        seed,
    )
}

/// [`new_config`] on a data set in layout `layout` (`Auto`: detected).
#[allow(clippy::too_many_arguments)]
pub fn new_config_layout(
    data: &Path,
    layout: Layout,
    arch: &str,
    precision: crate::model::Precision,
    epochs: usize,
    batch_size: usize,
    schedule: Schedule,
    seed: u64,
) -> Result<PretrainConfig> {
    let layout = layout.resolve(data)?;
    let splits = layout.splits(data)?;
    if !splits.iter().any(|s| s == "train") {
        return Err(Error::Dataset(format!(
            "{} has no train split (splits: {})",
            data.display(),
            splits.join(", ")
        )));
    }
    let train = ImageFolder::open_layout(data, layout, "train")?;
    let arch = crate::arch::Arch::by_name(arch, train.classes.len()).ok_or_else(|| {
        Error::Shape(format!(
            "unknown architecture '{arch}'; known: {}",
            crate::arch::ARCH_NAMES.map(|(n, _)| n).join(", ")
        ))
    })?;
    Ok(PretrainConfig {
        model: ModelConfig::new(arch, precision),
        data: data.to_path_buf(),
        layout,
        train_split: "train".into(),
        val_split: splits.iter().any(|s| s == "val").then(|| "val".into()),
        classes: train.classes.clone(),
        epochs,
        batch_size,
        schedule,
        adam: AdamSettings::default(),
        seed,
        teacher: None,
        teacher_sha256: None,
        float_weight_epochs: 0,
        lite0: None,
    })
}
