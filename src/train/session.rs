//! One pretraining session (`pretrain` or `resume` in [`super::pretrain`]): epochs from where the
//! checkpoint left off, each a training pass ([`Session::train_pass`], resumable mid-epoch),
//! validation, metrics and an atomic checkpoint ([`Session::finish_epoch`]); a stop request saves
//! the partial epoch instead. Writes `metrics.csv`, `curves.svg` and `report.json` beside the
//! checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::tensor::Device;

use super::checkpoint::{self, PartialEpoch, TrainState};
use super::config::{PretrainConfig, PretrainReport, RunOptions};
use super::distill::{Lite0Distill, batch_targets};
use super::metrics::{self, CurvePoint, EpochMetrics};
use super::step::{batch_tensors, evaluate, score, train_step_lite0, train_step_with};
use crate::atomic::write_atomic;
use crate::data::{Batch, ImageFolder, Loader, LoaderConfig, Preprocess};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::progress::Task;
use crate::teacher::efficientnet;
use crate::teacher::targets::{TargetSpec, Targets, load_or_compute};

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

/// What one training pass over (the rest of) an epoch added up.
struct Pass {
    loss_sum: f64,
    correct: u64,
    seen: u64,
    /// Seconds in training steps (not waiting for data), this epoch so far.
    train_s: f64,
    batches_done: usize,
    /// The learning rate of the last step.
    lr: f64,
    /// A stop was requested (or `--max-steps` reached) during the pass.
    stopped: bool,
}

/// The loss and accuracy of the curve's current window of steps.
#[derive(Default)]
struct Window {
    loss: f64,
    correct: u64,
    seen: u64,
    steps: usize,
}

/// The fixed parts of a session and what it has done so far.
struct Session<'a> {
    config: &'a PretrainConfig,
    opts: &'a RunOptions,
    device: Device,
    train_set: Arc<ImageFolder>,
    val_set: Option<Arc<ImageFolder>>,
    /// Optimizer steps per epoch.
    steps: usize,
    /// Steps per point of the loss curve (about 50 per epoch).
    curve_window: usize,
    report: PretrainReport,
    session_images: u64,
    session_train_s: f64,
    /// The distillation teacher (`config.teacher`), in eval mode without autodiff.
    teacher: Option<Model>,
    /// EfficientNet-Lite0's targets for every training image (`config.lite0`).
    lite0: Option<Targets>,
}

impl<'a> Session<'a> {
    fn say(&self, line: String) {
        self.opts.observer.note(&line);
    }

    fn task(&self, epoch: usize) -> Task<'a> {
        let name = format!("epoch {}/{}", epoch + 1, self.config.epochs);
        Task::start(&*self.opts.observer, &name, self.steps as u64)
    }

    /// Trains over epoch `epoch` from batch `state.batches_done` on (the batches before it are
    /// skipped in the same shuffled order), continuing `partial`'s sums.
    fn train_pass(
        &mut self,
        epoch: usize,
        state: &mut TrainState,
        mut model: Model,
        optimizer: &mut ModuleOptimizer,
        partial: &PartialEpoch,
        task: &Task,
    ) -> Result<(Model, Pass)> {
        let (config, steps) = (self.config, self.steps);
        let skip = state.batches_done;
        let mut pass = Pass {
            loss_sum: partial.loss_sum,
            correct: partial.correct,
            seen: partial.seen,
            train_s: partial.train_time_s,
            batches_done: skip,
            lr: config
                .schedule
                .lr_at(epoch, skip.min(steps), steps, config.epochs),
            stopped: false,
        };
        task.set_done(skip.min(steps) as u64);
        if skip >= steps {
            return Ok((model, pass));
        }
        let mut window = Window::default();
        let mut loader = self.train_loader(epoch);
        let mut t = Instant::now();
        for (b, batch) in (&mut loader).enumerate() {
            if b < skip {
                t = Instant::now();
                continue;
            }
            let batch = batch?;
            pass.lr = config.schedule.lr_at(epoch, b, steps, config.epochs);
            let (m, loss, hits) = self.train_step(model, optimizer, &batch, pass.lr)?;
            model = m;
            let n = batch.len() as u64;
            let dt = t.elapsed().as_secs_f64();
            t = Instant::now();
            pass.train_s += dt;
            self.session_train_s += dt;
            self.session_images += n;
            pass.loss_sum += loss as f64 * n as f64;
            pass.correct += hits;
            pass.seen += n;
            state.global_step += 1;
            self.report.steps_this_session += 1;
            pass.batches_done = b + 1;
            window.loss += loss as f64 * n as f64;
            window.correct += hits;
            window.seen += n;
            window.steps += 1;
            if window.steps == self.curve_window || pass.batches_done == steps {
                state.curve.push(CurvePoint {
                    epoch: epoch as f64 + pass.batches_done as f64 / steps as f64,
                    loss: window.loss / window.seen as f64,
                    acc: window.correct as f64 / window.seen as f64,
                });
                window = Window::default();
            }
            show_progress(task, &pass);
            let limit = self
                .opts
                .max_steps
                .is_some_and(|m| self.report.steps_this_session >= m);
            if self.opts.stop.load(Ordering::Relaxed) || limit {
                pass.stopped = true;
                break;
            }
        }
        self.report.skipped_images.extend(loader.skipped());
        Ok((model, pass))
    }

    /// The shuffled, augmented loader of epoch `epoch`'s training batches.
    fn train_loader(&self, epoch: usize) -> Loader<'a> {
        let config = self.config;
        let cfg = LoaderConfig {
            batch_size: config.batch_size,
            shuffle_seed: Some(config.epoch_seed(epoch)),
            drop_last: true,
            strict: false,
            prefetch: 4,
            workers: self.opts.workers,
        };
        let size = config.model.arch.input;
        Loader::new(self.train_set.clone(), Preprocess::train(size), cfg)
            .report_to(&*self.opts.observer)
    }

    /// One optimizer step on `batch` at learning rate `lr` (distilling from Lite0's targets or
    /// the teacher, if any): the updated model, the batch's loss and its top-1 hits.
    fn train_step(
        &self,
        model: Model,
        optimizer: &mut ModuleOptimizer,
        batch: &Batch,
        lr: f64,
    ) -> Result<(Model, f32, u64)> {
        let (images, labels) = batch_tensors(batch, &self.device);
        let (model, loss, logits) = match (&self.lite0, &self.config.lite0) {
            (Some(targets), Some(cfg)) => {
                let t = batch_targets(targets, batch, &self.device);
                train_step_lite0(model, optimizer, images, labels, cfg, t, lr)?
            }
            _ => {
                let teacher = self.teacher.as_ref();
                train_step_with(model, optimizer, images, labels, teacher, lr)?
            }
        };
        let (_, hits, _) = score(&logits, self.config.model.arch.classes, &batch.labels);
        Ok((model, loss, hits))
    }
}

/// Shows the pass so far: the batches done and the live metrics.
fn show_progress(task: &Task, pass: &Pass) {
    let status = format!(
        "loss {:.3} acc {:.1}% {:.0} img/s lr {:.1e}",
        pass.loss_sum / pass.seen as f64,
        100.0 * pass.correct as f64 / pass.seen as f64,
        (pass.seen as f64) / pass.train_s.max(1e-9),
        pass.lr
    );
    task.set(pass.batches_done as u64, &status);
}

impl Session<'_> {
    /// Validation loss, top-1 and top-5 (NaN without a val split), or `None` if a stop was
    /// requested during validation.
    fn validate(&self, model: &Model) -> Result<Option<(f64, f64, f64)>> {
        let Some(set) = &self.val_set else {
            return Ok(Some((f64::NAN, f64::NAN, f64::NAN)));
        };
        let cfg = LoaderConfig {
            batch_size: self.config.batch_size,
            shuffle_seed: None,
            drop_last: false,
            strict: false,
            prefetch: 4,
            workers: self.opts.workers,
        };
        evaluate(
            model,
            set.clone(),
            Preprocess::eval(self.config.model.arch.input),
            cfg,
            &self.device,
            &self.opts.stop,
            &*self.opts.observer,
        )
    }

    /// Records a finished epoch (metrics, checkpoint, derived files).
    #[allow(clippy::too_many_arguments)]
    fn finish_epoch(
        &self,
        epoch: usize,
        state: &mut TrainState,
        model: &Model,
        optimizer: &ModuleOptimizer,
        pass: &Pass,
        (val_loss, val_top1, val_top5): (f64, f64, f64),
        time_s: f64,
    ) -> Result<()> {
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr: pass.lr,
            train_loss: pass.loss_sum / pass.seen.max(1) as f64,
            train_acc: pass.correct as f64 / pass.seen.max(1) as f64,
            val_loss,
            val_top1,
            val_top5,
            time_s,
            images_per_s: pass.seen as f64 / pass.train_s.max(1e-9),
        };
        self.say(format!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | val loss {:.4} top-1 {:.2}% top-5 {:.2}% | \
             {:.0} s, {:.1} img/s",
            m.epoch,
            self.config.epochs,
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
        checkpoint::save(&self.opts.out, model, optimizer, state)?;
        write_derived(&self.opts.out, self.config, state)
    }

    /// Saves a stopped epoch where it is (batch, sums, times), to be resumed.
    fn save_partial(
        &self,
        state: &mut TrainState,
        model: &Model,
        optimizer: &ModuleOptimizer,
        pass: &Pass,
        time_s: f64,
    ) -> Result<()> {
        state.batches_done = pass.batches_done;
        state.partial = Some(PartialEpoch {
            loss_sum: pass.loss_sum,
            correct: pass.correct,
            seen: pass.seen,
            train_time_s: pass.train_s,
            time_s,
        });
        checkpoint::save(&self.opts.out, model, optimizer, state)
    }
}

/// EfficientNet-Lite0's targets for the training split: from the cache, or computed once (the
/// teacher's file must still be the one the run recorded).
fn lite0_targets(
    config: &PretrainConfig,
    d: &Lite0Distill,
    set: Arc<ImageFolder>,
    opts: &RunOptions,
) -> Result<Targets> {
    let say = |m: String| opts.observer.note(&m);
    let class_map = if d.logit_weight > 0.0 {
        let wnids = efficientnet::wnids_beside(&d.weights)?;
        let map = wnids.and_then(|w| efficientnet::class_map(&config.classes, &w));
        if map.is_none() {
            say(format!(
                "note: the classes of {} are not ImageNet-1k WordNet ids (or {} is missing beside \
                 the weights): distilling the teacher's features only",
                config.data.display(),
                efficientnet::WNIDS_FILE
            ));
        }
        map
    } else {
        None
    };
    let spec = TargetSpec {
        weights: d.weights.clone(),
        sha256: d.sha256.clone(),
        class_map,
        input: config.model.arch.input,
        resolution: d.resolution,
        views: d.views,
        cache_dir: d.cache_dir.clone(),
    };
    let load_teacher = || {
        let sha = efficientnet::sha256_file(&d.weights)?;
        if sha != d.sha256 {
            return Err(Error::Config(format!(
                "`teacher` {}: its sha256 is {sha}, but the run started with {}; the teacher \
                 changed under the run (restore the file, or start a new run)",
                d.weights.display(),
                d.sha256
            )));
        }
        efficientnet::load(&d.weights, &opts.device.device)
    };
    let start = Instant::now();
    let (targets, path, cached) = load_or_compute(
        &spec,
        set,
        load_teacher,
        &opts.device.device,
        &*opts.observer,
    )?;
    say(format!(
        "teacher targets: {} images × {} view(s), {} logits + {} features each, {} {} ({:.0} s)",
        targets.n,
        targets.views,
        targets.classes,
        efficientnet::FEATURES,
        if cached {
            "read from"
        } else {
            "computed and cached in"
        },
        path.display(),
        start.elapsed().as_secs_f64()
    ));
    Ok(targets)
}

/// The session loop: opens the splits, checks them against the run's config, then runs epochs
/// until the run's total or a stop.
pub(super) fn run(
    config: PretrainConfig,
    mut state: TrainState,
    model: Model,
    mut optimizer: ModuleOptimizer,
    opts: &RunOptions,
) -> Result<PretrainReport> {
    let start = Instant::now();
    let out = &opts.out;
    let (train_set, val_set, steps) = open_splits(&config)?;
    for set in std::iter::once(&train_set).chain(&val_set) {
        if let Some(w) = set.warning() {
            opts.observer.warn(w);
        }
    }
    let teacher = match &config.teacher {
        Some(dir) => Some(load_teacher(&config, dir, opts)?),
        None => None,
    };
    let lite0 = match &config.lite0 {
        Some(d) => Some(lite0_targets(&config, d, train_set.clone(), opts)?),
        None => None,
    };
    let mut session = Session {
        config: &config,
        opts,
        device: opts.device.device.clone().autodiff(),
        train_set,
        val_set,
        steps,
        curve_window: (steps / 50).max(1),
        report: first_report(&config, &state, opts),
        session_images: 0,
        session_train_s: 0.0,
        teacher,
        lite0,
    };
    if session.val_set.is_none() {
        session.say(format!(
            "note: {} has no val split; validation metrics will be NaN",
            config.data.display()
        ));
    }
    // The checkpoint is the truth; a kill between its swap and these files left them behind it.
    write_derived(out, &config, &state)?;
    run_epochs(&mut session, &mut state, model, &mut optimizer)?;

    let mut report = session.report;
    report.epochs = config.epochs;
    report.epochs_done = state.epochs_done;
    report.last = state.history.last().cloned();
    report.images_per_s = session.session_images as f64 / session.session_train_s.max(1e-9);
    report.wall_s = start.elapsed().as_secs_f64();
    let text = serde_json::to_string_pretty(&report).expect("report serializes");
    write_atomic(&out.join(checkpoint::REPORT_FILE), text.as_bytes())?;
    Ok(report)
}

/// Opens the train split (checking its classes against the run's) and the val split, if any;
/// also returns the optimizer steps per epoch (at least one).
fn open_splits(
    config: &PretrainConfig,
) -> Result<(Arc<ImageFolder>, Option<Arc<ImageFolder>>, usize)> {
    let open =
        |split: &str| ImageFolder::open_layout(&config.data, config.layout, split).map(Arc::new);
    let train_set = open(&config.train_split)?;
    if train_set.classes != config.classes {
        return Err(Error::Dataset(format!(
            "the classes of {} ({}) differ from the run's config.json ({})",
            config.data.display(),
            train_set.classes.len(),
            config.classes.len()
        )));
    }
    let val_set = config.val_split.as_deref().map(open).transpose()?;
    let steps = train_set.len() / config.batch_size.max(1);
    if steps == 0 {
        return Err(Error::Dataset(format!(
            "the train split has {} images, fewer than one batch of {}; pass a smaller `batch_size`",
            train_set.len(),
            config.batch_size
        )));
    }
    Ok((train_set, val_set, steps))
}

/// Loads the distillation teacher (`--teacher`) and refuses one whose outputs are not finite.
fn load_teacher(config: &PretrainConfig, dir: &Path, opts: &RunOptions) -> Result<Model> {
    let arch = &config.model.arch;
    let (_, t) = checkpoint::load_model(dir, &opts.device.device)
        .map_err(|e| Error::Config(format!("`teacher` {}: {e}", dir.display())))?;
    // Once at load: a teacher whose outputs are not finite would only show as a NaN loss.
    let probe = burn::tensor::Tensor::<4>::zeros(
        [1, arch.in_channels, arch.input, arch.input],
        &opts.device.device,
    );
    let out: Vec<f32> = t
        .forward(probe)
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap_or_default();
    if out.is_empty() || out.iter().any(|v| !v.is_finite()) {
        return Err(Error::Config(format!(
            "`teacher` {}: its outputs are not finite numbers (a diverged or corrupt \
             run); choose another teacher",
            dir.display()
        )));
    }
    Ok(t)
}

/// The session's report before any epoch: the run's model and device, where `state` stands.
fn first_report(config: &PretrainConfig, state: &TrainState, opts: &RunOptions) -> PretrainReport {
    let arch = &config.model.arch;
    PretrainReport {
        out: opts.out.clone(),
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
    }
}

/// Runs epochs until the run's total or a stop; a stop inside an epoch saves a partial
/// checkpoint, one after an epoch ends the loop there.
fn run_epochs(
    session: &mut Session,
    state: &mut TrainState,
    mut model: Model,
    optimizer: &mut ModuleOptimizer,
) -> Result<()> {
    let (config, opts) = (session.config, session.opts);
    while state.epochs_done < config.epochs {
        let epoch = state.epochs_done;
        let partial = state.partial.take().unwrap_or_default();
        let epoch_start = Instant::now();
        let task = session.task(epoch);
        // Two-step training: real-valued weights first, binary ones after (and when resumed).
        model = model.with_binary_weights(config.binary_weights_at(epoch));
        let (m, pass) = session.train_pass(epoch, state, model, optimizer, &partial, &task)?;
        model = m;
        // Validation, unless stopped during training.
        let val = if pass.stopped {
            None
        } else {
            session.validate(&model)?
        };
        let time_s = partial.time_s + epoch_start.elapsed().as_secs_f64();
        let Some(val) = val else {
            // Interrupted: save where we are inside the epoch.
            drop(task);
            session.save_partial(state, &model, optimizer, &pass, time_s)?;
            session.report.interrupted = true;
            session.say(format!(
                "stopped in epoch {} after batch {}/{}; checkpoint saved. Continue with \
                 `resume` and `out` {}",
                epoch + 1,
                pass.batches_done,
                session.steps,
                opts.out.display()
            ));
            break;
        };
        drop(task);
        session.finish_epoch(epoch, state, &model, optimizer, &pass, val, time_s)?;
        if opts.stop.load(Ordering::Relaxed) {
            session.report.interrupted = state.epochs_done < config.epochs;
            if session.report.interrupted {
                session.say(format!(
                    "stopped after epoch {}; continue with `resume`",
                    state.epochs_done
                ));
            }
            break;
        }
    }
    Ok(())
}
