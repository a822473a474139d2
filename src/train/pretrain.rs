//! The pretraining loop behind `bnn pretrain`: Adam, a learning-rate schedule, per-epoch validation,
//! metrics, atomic checkpoints every epoch, stop-and-save on request (Ctrl-C), and resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, PartialEpoch, TrainState};
use super::device::TrainDevice;
use super::metrics::{self, CurvePoint, EpochMetrics};
use super::schedule::Schedule;
use crate::atomic::write_atomic;
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
}

impl PretrainConfig {
    /// Checks the settings before anything is written or allocated; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let s = &self.schedule;
        if self.epochs == 0 {
            return bad("--epochs 0: train at least 1 epoch".into());
        }
        if self.batch_size == 0 {
            return bad("--batch-size 0: give at least 1".into());
        }
        if !(s.lr.is_finite() && s.lr > 0.0) {
            return bad(format!(
                "--lr {}: the learning rate must be a finite number > 0 (e.g. 1e-3)",
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
        Ok(())
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
    checkpoint::write_config(&opts.out, &config)?;
    let device = opts.device.device.clone().autodiff();
    let model = Model::new(&config.model, &device, config.seed);
    let optimizer = adam(&config);
    run(config, TrainState::default(), model, optimizer, opts)
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
    let (ckpt, state) = checkpoint::load_state(&opts.out)?;
    let device = opts.device.device.clone().autodiff();
    let model = Model::new(&config.model, &device, config.seed);
    // Loading keeps the module's device and gradient settings and restores the parameter ids.
    let model = checkpoint::load_model_file(&ckpt, model)?;
    let optimizer = checkpoint::load_optimizer_file(&ckpt, adam(&config))?;
    run(config, state, model, optimizer, opts)
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
    let device = images.device();
    let logits = model.forward(images);
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits.clone(), labels);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optimizer.step(lr, model, grads).clip_latent();
    let loss: f32 = loss.into_scalar();
    let logits = logits
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("logits to f32: {e:?}")))?;
    Ok((model, loss, logits))
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

/// Writes the files derived from the checkpoint's state: `metrics.csv` and `curves.svg`.
fn write_derived(out: &Path, config: &PretrainConfig, state: &TrainState) -> Result<()> {
    write_atomic(
        &out.join(checkpoint::METRICS_FILE),
        metrics::csv(&state.history)?.as_bytes(),
    )?;
    let title = format!(
        "{} {} on {}",
        config.model.arch.name,
        config.model.precision,
        config.data.display()
    );
    write_atomic(
        &out.join(checkpoint::PLOT_FILE),
        metrics::svg(&title, &state.history, &state.curve).as_bytes(),
    )
}

fn run(
    config: PretrainConfig,
    mut state: TrainState,
    mut model: Model,
    mut optimizer: ModuleOptimizer,
    opts: &RunOptions,
) -> Result<PretrainReport> {
    let start = Instant::now();
    let out = &opts.out;
    let arch = &config.model.arch;
    let device = opts.device.device.clone().autodiff();
    let train_set = Arc::new(ImageFolder::open_layout(
        &config.data,
        config.layout,
        &config.train_split,
    )?);
    if train_set.classes != config.classes {
        return Err(Error::Dataset(format!(
            "the classes of {} ({}) differ from the run's config.json ({})",
            config.data.display(),
            train_set.classes.len(),
            config.classes.len()
        )));
    }
    let val_set = match &config.val_split {
        Some(split) => Some(Arc::new(ImageFolder::open_layout(
            &config.data,
            config.layout,
            split,
        )?)),
        None => None,
    };
    let say = |line: String| {
        if opts.progress {
            eprintln!("{line}");
        }
    };
    if val_set.is_none() {
        say(format!(
            "note: {} has no val split; validation metrics will be NaN",
            config.data.display()
        ));
    }
    let size = arch.input;
    let steps = train_set.len() / config.batch_size.max(1);
    if steps == 0 {
        return Err(Error::Dataset(format!(
            "the train split has {} images, fewer than one batch of {}; pass a smaller --batch-size",
            train_set.len(),
            config.batch_size
        )));
    }
    let curve_window = (steps / 50).max(1);
    let mut report = PretrainReport {
        out: out.clone(),
        arch: arch.name.clone(),
        precision: config.model.precision.to_string(),
        params: arch.params(),
        macs_per_image: arch.macs(),
        packed_bytes: arch.packed_bytes(),
        float_bytes: arch.float_bytes(),
        backend: opts.device.backend.into(),
        device: opts.device.name.clone(),
        device_reason: opts.device.reason.clone(),
        epochs: config.epochs,
        epochs_done: state.epochs_done,
        interrupted: false,
        steps_this_session: 0,
        images_per_s: 0.0,
        wall_s: 0.0,
        last: state.history.last().cloned(),
        skipped_images: Vec::new(),
    };
    let (mut session_images, mut session_train_s) = (0u64, 0.0f64);
    // The checkpoint is the truth; a kill between its swap and these files left them behind it.
    write_derived(out, &config, &state)?;

    while state.epochs_done < config.epochs {
        let epoch = state.epochs_done;
        let skip = state.batches_done;
        let partial = state.partial.take().unwrap_or_default();
        let (mut loss_sum, mut correct, mut seen) =
            (partial.loss_sum, partial.correct, partial.seen);
        let (mut train_s, time_before) = (partial.train_time_s, partial.time_s);
        let epoch_start = Instant::now();
        let bar = if opts.progress {
            crate::progress::bar(
                steps as u64,
                &format!("epoch {}/{}", epoch + 1, config.epochs),
            )
        } else {
            ProgressBar::hidden()
        };
        bar.set_position(skip.min(steps) as u64);
        let mut lr = config
            .schedule
            .lr_at(epoch, skip.min(steps), steps, config.epochs);
        let (mut win_loss, mut win_correct, mut win_seen, mut win_steps) =
            (0.0f64, 0u64, 0u64, 0usize);
        let mut stopped = false;
        let mut batches_done = skip;
        let mut last_line = Instant::now();

        if skip < steps {
            let cfg = LoaderConfig {
                batch_size: config.batch_size,
                shuffle_seed: Some(config.epoch_seed(epoch)),
                drop_last: true,
                strict: false,
                prefetch: 4,
                workers: opts.workers,
            };
            let mut loader = Loader::new(train_set.clone(), Preprocess::train(size), cfg);
            let mut t = Instant::now();
            for (b, batch) in (&mut loader).enumerate() {
                if b < skip {
                    t = Instant::now();
                    continue;
                }
                let batch = batch?;
                lr = config.schedule.lr_at(epoch, b, steps, config.epochs);
                let (images, labels) = batch_tensors(&batch, &device);
                let (m, loss, logits) = train_step(model, &mut optimizer, images, labels, lr)?;
                model = m;
                let (_, hits, _) = score(&logits, arch.classes, &batch.labels);
                let n = batch.len() as u64;
                let dt = t.elapsed().as_secs_f64();
                t = Instant::now();
                train_s += dt;
                session_train_s += dt;
                session_images += n;
                loss_sum += loss as f64 * n as f64;
                correct += hits;
                seen += n;
                state.global_step += 1;
                report.steps_this_session += 1;
                batches_done = b + 1;
                (win_loss, win_correct, win_seen, win_steps) = (
                    win_loss + loss as f64 * n as f64,
                    win_correct + hits,
                    win_seen + n,
                    win_steps + 1,
                );
                if win_steps == curve_window || batches_done == steps {
                    state.curve.push(CurvePoint {
                        epoch: epoch as f64 + batches_done as f64 / steps as f64,
                        loss: win_loss / win_seen as f64,
                        acc: win_correct as f64 / win_seen as f64,
                    });
                    (win_loss, win_correct, win_seen, win_steps) = (0.0, 0, 0, 0);
                }
                bar.set_position(batches_done as u64);
                let status = format!(
                    "loss {:.3} acc {:.1}% {:.0} img/s lr {:.1e}",
                    loss_sum / seen as f64,
                    100.0 * correct as f64 / seen as f64,
                    (seen as f64) / train_s.max(1e-9),
                    lr
                );
                // Without a terminal the bar is hidden: a line every 30 s keeps logs informative.
                if opts.progress && bar.is_hidden() && last_line.elapsed().as_secs() >= 30 {
                    eprintln!("epoch {} batch {batches_done}/{steps}: {status}", epoch + 1);
                    last_line = Instant::now();
                }
                bar.set_message(status);
                let limit = opts
                    .max_steps
                    .is_some_and(|m| report.steps_this_session >= m);
                if opts.stop.load(Ordering::Relaxed) || limit {
                    stopped = true;
                    break;
                }
            }
            report.skipped_images.extend(loader.skipped());
        }

        // Validation (unless stopped during training).
        let mut val = Some((f64::NAN, f64::NAN, f64::NAN));
        if !stopped && let Some(set) = &val_set {
            bar.set_prefix("val");
            let cfg = LoaderConfig {
                batch_size: config.batch_size,
                shuffle_seed: None,
                drop_last: false,
                strict: false,
                prefetch: 4,
                workers: opts.workers,
            };
            val = evaluate(
                &model,
                set.clone(),
                Preprocess::eval(size),
                cfg,
                &device,
                &opts.stop,
                &bar,
            )?;
        }
        let time_s = time_before + epoch_start.elapsed().as_secs_f64();
        let Some((val_loss, val_top1, val_top5)) = val.filter(|_| !stopped) else {
            // Interrupted: save where we are inside the epoch.
            bar.abandon();
            state.batches_done = batches_done;
            state.partial = Some(PartialEpoch {
                loss_sum,
                correct,
                seen,
                train_time_s: train_s,
                time_s,
            });
            checkpoint::save(out, &model, &optimizer, &state)?;
            report.interrupted = true;
            say(format!(
                "stopped in epoch {} after batch {}/{}; checkpoint saved. Continue with: \
                 bnn pretrain --out {} --resume",
                epoch + 1,
                batches_done,
                steps,
                out.display()
            ));
            break;
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_top1,
            val_top5,
            time_s,
            images_per_s: seen as f64 / train_s.max(1e-9),
        };
        bar.finish_and_clear();
        say(format!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | val loss {:.4} top-1 {:.2}% top-5 {:.2}% | \
             {:.0} s, {:.1} img/s",
            m.epoch,
            config.epochs,
            m.train_loss,
            100.0 * m.train_acc,
            m.val_loss,
            100.0 * m.val_top1,
            100.0 * m.val_top5,
            m.time_s,
            m.images_per_s
        ));
        state.history.push(m);
        state.epochs_done = epoch + 1;
        state.batches_done = 0;
        state.partial = None;
        checkpoint::save(out, &model, &optimizer, &state)?;
        write_derived(out, &config, &state)?;
        if opts.stop.load(Ordering::Relaxed) {
            report.interrupted = state.epochs_done < config.epochs;
            if report.interrupted {
                say(format!(
                    "stopped after epoch {}; continue with --resume",
                    state.epochs_done
                ));
            }
            break;
        }
    }

    report.epochs = config.epochs;
    report.epochs_done = state.epochs_done;
    report.last = state.history.last().cloned();
    report.images_per_s = session_images as f64 / session_train_s.max(1e-9);
    report.wall_s = start.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&report).expect("report serializes");
    write_atomic(&out.join(checkpoint::REPORT_FILE), text.as_bytes())?;
    Ok(report)
}
