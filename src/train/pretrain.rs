//! Pretraining behind `bnn pretrain`: the run's configuration, starting ([`pretrain`]) and
//! resuming ([`resume`]) a run, one optimizer step, and validation. The epoch loop itself —
//! Adam, the learning-rate schedule, per-epoch validation, metrics, atomic checkpoints every
//! epoch, stop-and-save on request (Ctrl-C) — is `train::session`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, TrainState};
use super::device::TrainDevice;
use super::distill::{Lite0Distill, lite0_loss};
use super::metrics::EpochMetrics;
use super::schedule::Schedule;
use crate::data::{Batch, ImageFolder, Layout, Loader, LoaderConfig, Preprocess};
use crate::error::{Error, Result};
use crate::model::{Model, ModelConfig};

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
    /// labels as training targets (ReActNet's distributional loss, [`distillation_loss`]); `None`
    /// trains on the labels (cross-entropy). Validation always scores against the labels.
    #[serde(default)]
    pub teacher: Option<PathBuf>,
    /// The sha256 of the teacher run's `model.bpk` when this run started
    /// ([`checkpoint::model_fingerprint`]): a resume refuses a teacher that changed since.
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
            return bad("--epochs 0: train at least 1 epoch".into());
        }
        if self.batch_size == 0 {
            return bad("--batch-size 0: give at least 1".into());
        }
        if !(s.lr.is_finite() && s.lr > 0.0 && s.lr <= 10.0) {
            return bad(format!(
                "--lr {}: the learning rate must be a number in (0, 10] (e.g. 1e-3); larger \
                 steps only diverge",
                s.lr
            ));
        }
        if !(s.gamma.is_finite() && s.gamma > 0.0) {
            return bad(format!(
                "--lr-gamma {}: must be a finite number > 0",
                s.gamma
            ));
        }
        if s.step_epochs == 0 {
            return bad("--lr-step-epochs 0: give at least 1".into());
        }
        if self.float_weight_epochs > 0
            && (self.model.precision != crate::model::Precision::Binary
                || self.float_weight_epochs >= self.epochs)
        {
            return bad(format!(
                "--float-weight-epochs {}: two-step training needs a binary network and fewer \
                 real-weight epochs than --epochs ({}), so the last epochs binarize the weights",
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
                    "the model's feature projection ({}) does not match --kd-features {}",
                    self.model.feature_head, d.feature_weight
                ));
            }
        }
        if let Some(dir) = &self.teacher {
            let t = checkpoint::read_config(dir).map_err(|e| {
                Error::Config(format!(
                    "--teacher {}: not the output directory of a `bnn pretrain` run ({e})",
                    dir.display()
                ))
            })?;
            let (ta, a) = (&t.model.arch, &self.model.arch);
            if (ta.input, ta.in_channels) != (a.input, a.in_channels) || t.classes != self.classes {
                return bad(format!(
                    "--teacher {}: it reads {}×{}×{} images over {} classes; this run reads \
                     {}×{}×{} over {} classes (the teacher must see the same images and classes)",
                    dir.display(),
                    ta.input,
                    ta.input,
                    ta.in_channels,
                    t.classes.len(),
                    a.input,
                    a.input,
                    a.in_channels,
                    self.classes.len()
                ));
            }
            let (_, state) = checkpoint::load_state(dir).map_err(|e| {
                Error::Config(format!(
                    "--teacher {}: no finished checkpoint to distil from ({e})",
                    dir.display()
                ))
            })?;
            if state.epochs_done < t.epochs {
                return bad(format!(
                    "--teacher {}: that run stopped after {} of its {} epochs (batch {} of the \
                     next); finish it first (bnn pretrain --out {} --resume), so the student \
                     learns from the finished network",
                    dir.display(),
                    state.epochs_done,
                    t.epochs,
                    state.batches_done,
                    dir.display()
                ));
            }
            if let Some(want) = &self.teacher_sha256 {
                let got = checkpoint::model_fingerprint(dir)?;
                if &got != want {
                    return bad(format!(
                        "--teacher {}: its model changed since this run started (sha256 {got}, \
                         recorded {want}); distilling from another teacher would mix two \
                         targets in one run. Restore that teacher, or start a new run",
                        dir.display()
                    ));
                }
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
        use clap::ValueEnum;
        let s = &self.schedule;
        let kind = s
            .kind
            .to_possible_value()
            .map_or_else(|| format!("{:?}", s.kind), |v| v.get_name().to_string());
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
    /// Draw progress bars and print epoch lines.
    pub progress: bool,
}

impl RunOptions {
    /// Options with the defaults: no stop requested, no step limit, all cores, progress shown.
    pub fn new(out: impl Into<PathBuf>, device: TrainDevice) -> Self {
        RunOptions {
            out: out.into(),
            device,
            stop: Arc::new(AtomicBool::new(false)),
            max_steps: None,
            workers: 0,
            progress: true,
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

fn adam(config: &PretrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(config.adam.beta1)
        .with_beta_2(config.adam.beta2)
        .with_epsilon(config.adam.epsilon)
        .init()
}

/// Starts a new run in `opts.out` (which must not hold a checkpoint already).
pub fn pretrain(config: PretrainConfig, opts: &RunOptions) -> Result<PretrainReport> {
    config.validate()?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    checkpoint::recover(&opts.out)?;
    if checkpoint::checkpoint_dir(&opts.out).is_ok() {
        return Err(Error::ModelFile {
            path: opts.out.clone(),
            message:
                "already holds a training run; continue it with --resume or choose another --out"
                    .into(),
        });
    }
    let mut config = config;
    if let Some(dir) = &config.teacher {
        config.teacher_sha256 = Some(checkpoint::model_fingerprint(dir)?);
    }
    checkpoint::write_config(&opts.out, &config)?;
    let device = opts.device.device.clone().autodiff();
    let model = Model::new(&config.model, &device, config.seed);
    let optimizer = adam(&config);
    super::session::run(config, TrainState::default(), model, optimizer, opts)
}

/// Continues the run in `opts.out` from its latest checkpoint, at the epoch (and batch) where it
/// stopped, with the optimizer state. `epochs` changes the total number of epochs.
pub fn resume(opts: &RunOptions, epochs: Option<usize>) -> Result<PretrainReport> {
    checkpoint::recover(&opts.out)?;
    let mut config = checkpoint::read_config(&opts.out)?;
    if let Some(e) = epochs
        && e != config.epochs
    {
        config.epochs = e;
        config.validate()?;
        checkpoint::write_config(&opts.out, &config)?;
    }
    config.validate()?;
    let (ckpt, state) = checkpoint::load_state(&opts.out)?;
    let device = opts.device.device.clone().autodiff();
    let model = Model::new(&config.model, &device, config.seed);
    // Loading keeps the module's device and gradient settings and restores the parameter ids.
    let model = checkpoint::load_model_file(&ckpt, model)?;
    let optimizer = checkpoint::load_optimizer_file(&ckpt, adam(&config))?;
    super::session::run(config, state, model, optimizer, opts)
}

pub use crate::eval::score;

/// Images `[n, 3, s, s]` (NCHW) and labels of a batch (the loader's NHWC transposed on the CPU).
pub fn batch_tensors(batch: &Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let (n, s) = (batch.len(), batch.size);
    let mut nchw = vec![0f32; n * 3 * s * s];
    for i in 0..n {
        let img = batch.image(i);
        for p in 0..s * s {
            for c in 0..3 {
                nchw[(i * 3 + c) * s * s + p] = img[p * 3 + c];
            }
        }
    }
    let images = Tensor::<4>::from_data(TensorData::new(nchw, [n, 3, s, s]), device);
    let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
    (images, labels)
}

/// One optimizer step: forward, cross-entropy, backward, Adam, clip. Returns the updated model,
/// the batch loss and the logits (for accuracy).
pub fn train_step(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    train_step_with(model, optimizer, images, labels, None, lr)
}

/// [`train_step`] with an optional `teacher` (a model in eval mode, no autodiff): with one, the
/// loss is the [`distillation_loss`] against its outputs on the same images instead of the
/// cross-entropy on `labels`.
pub fn train_step_with(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    teacher: Option<&Model>,
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    let device = images.device();
    let target = teacher.map(|t| t.forward(images.clone().without_autodiff()));
    let logits = model.forward(images);
    let loss = match target {
        Some(t) => distillation_loss(logits.clone(), t),
        None => CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), labels),
    };
    apply_step(model, optimizer, loss, logits, lr)
}

/// One optimizer step distilling from EfficientNet-Lite0: `targets` are the teacher's (soft
/// logits, standardised features) for these images ([`super::distill::batch_targets`]); the loss
/// is [`lite0_loss`].
pub fn train_step_lite0(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    cfg: &Lite0Distill,
    targets: (Option<Tensor<2>>, Tensor<2>),
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    let (logits, projected) = model.forward_distill(images);
    let loss = lite0_loss(cfg, logits.clone(), labels, projected, targets.0, targets.1)?;
    apply_step(model, optimizer, loss, logits, lr)
}

/// Backward, Adam, clip; the loss must be finite (a diverged step is an error, and the step is not
/// applied, so the last checkpoint stays usable).
fn apply_step(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    loss: Tensor<1>,
    logits: Tensor<2>,
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    let value: f32 = loss.clone().into_scalar();
    if !value.is_finite() {
        return Err(Error::Diverged(format!(
            "the training loss is {value}: the run diverged (a learning rate too high for this \
             network, --lr {lr:e}, or a teacher whose outputs are not finite). The last saved \
             checkpoint is untouched; resume it with a smaller --lr in a new run, or check the \
             teacher"
        )));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optimizer.step(lr, model, grads).clip_latent();
    let logits = logits
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("logits to f32: {e:?}")))?;
    Ok((model, value, logits))
}

/// ReActNet's distributional loss: the cross-entropy of the student's softmax against the
/// teacher's, `mean over the batch of −Σ_c softmax(teacher)_c · log_softmax(student)_c` (the
/// KL divergence from teacher to student plus the teacher's entropy, which has no gradient). The
/// teacher's logits carry no graph. With one-hot teacher outputs it is the ordinary cross-entropy
/// (tested).
pub fn distillation_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let target = softmax(teacher.without_autodiff(), 1);
    (target * log_softmax(student, 1)).sum_dim(1).mean().neg()
}

/// Validation: mean loss, top-1 and top-5 accuracy of `model` (eval mode) on `set`, or `None`
/// when `stop` was raised on the way.
/// `cfg` should keep the set order (`shuffle_seed: None`) and every image (`drop_last: false`).
pub fn evaluate(
    model: &Model,
    set: Arc<ImageFolder>,
    pre: Preprocess,
    cfg: LoaderConfig,
    device: &Device,
    stop: &AtomicBool,
    bar: &ProgressBar,
) -> Result<Option<(f64, f64, f64)>> {
    let eval = model.valid();
    let device = device.clone().without_autodiff();
    let classes = set.classes.len();
    let loader = Loader::new(set, pre, cfg);
    bar.set_length(loader.batches() as u64);
    bar.set_position(0);
    let (mut loss, mut top1, mut top5, mut seen) = (0.0, 0u64, 0u64, 0u64);
    for batch in loader {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let batch = batch?;
        let (images, _) = batch_tensors(&batch, &device);
        let logits = eval
            .forward(images)
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Shape(format!("logits to f32: {e:?}")))?;
        let (l, t1, t5) = score(&logits, classes, &batch.labels);
        loss += l;
        top1 += t1;
        top5 += t5;
        seen += batch.len() as u64;
        bar.inc(1);
        bar.set_message(format!("top-1 {:.1}%", 100.0 * top1 as f64 / seen as f64));
    }
    let n = seen.max(1) as f64;
    Ok(Some((loss / n, top1 as f64 / n, top5 as f64 / n)))
}
