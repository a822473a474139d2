//! Starting ([`pretrain`]) and resuming ([`resume`]) a pretraining run, with the checks that read
//! other runs (a distillation teacher must be finished, and unchanged since the run started). The
//! epoch loop itself — Adam, the learning-rate schedule, per-epoch validation, metrics, atomic
//! checkpoints every epoch, stop-and-save on request (Ctrl-C) — is `train::session`; one step is
//! `train::step`, the configuration `train::config`.

use burn::optim::{AdamConfig, ModuleOptimizer};

use super::checkpoint::{self, TrainState};
use crate::error::{Error, Result};
use crate::model::Model;

pub use super::config::{
    AdamSettings, PretrainConfig, PretrainReport, RunOptions, new_config, new_config_layout,
};
pub use super::step::{
    batch_tensors, distillation_loss, evaluate, score, train_step, train_step_lite0,
    train_step_with,
};

/// The checks of `config` that read its teacher run (`--teacher DIR`): it reads the same images
/// and classes, is finished, and (on resume) is the model the run started with.
pub fn check_teacher_run(config: &PretrainConfig) -> Result<()> {
    let bad = |m: String| Err(Error::Config(m));
    if let Some(dir) = &config.teacher {
        let t = checkpoint::read_config(dir).map_err(|e| {
            Error::Config(format!(
                "`teacher` {}: not the directory of a pretraining run ({e})",
                dir.display()
            ))
        })?;
        let (ta, a) = (&t.model.arch, &config.model.arch);
        if (ta.input, ta.in_channels) != (a.input, a.in_channels) || t.classes != config.classes {
            return bad(format!(
                "`teacher` {}: it reads {}×{}×{} images over {} classes; this run reads \
                     {}×{}×{} over {} classes (the teacher must see the same images and classes)",
                dir.display(),
                ta.input,
                ta.input,
                ta.in_channels,
                t.classes.len(),
                a.input,
                a.input,
                a.in_channels,
                config.classes.len()
            ));
        }
        let (_, state) = checkpoint::load_state(dir).map_err(|e| {
            Error::Config(format!(
                "`teacher` {}: no finished checkpoint to distil from ({e})",
                dir.display()
            ))
        })?;
        if state.epochs_done < t.epochs {
            return bad(format!(
                "`teacher` {}: that run stopped after {} of its {} epochs (batch {} of the \
                     next); finish it first (`resume` with `out` {}), so the student \
                     learns from the finished network",
                dir.display(),
                state.epochs_done,
                t.epochs,
                state.batches_done,
                dir.display()
            ));
        }
        if let Some(want) = &config.teacher_sha256 {
            let got = checkpoint::model_fingerprint(dir)?;
            if &got != want {
                return bad(format!(
                    "`teacher` {}: its model changed since this run started (sha256 {got}, \
                         recorded {want}); distilling from another teacher would mix two \
                         targets in one run. Restore that teacher, or start a new run",
                    dir.display()
                ));
            }
        }
    }
    Ok(())
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
    check_teacher_run(&config)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    checkpoint::recover(&opts.out)?;
    if checkpoint::checkpoint_dir(&opts.out).is_ok() {
        return Err(Error::ModelFile {
            path: opts.out.clone(),
            message:
                "already holds a training run; continue it with `resume` or choose another `out`"
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
    check_teacher_run(&config)?;
    let (ckpt, state) = checkpoint::load_state(&opts.out)?;
    let device = opts.device.device.clone().autodiff();
    let model = Model::new(&config.model, &device, config.seed);
    // Loading keeps the module's device and gradient settings and restores the parameter ids.
    let model = checkpoint::load_model_file(&ckpt, model)?;
    let optimizer = checkpoint::load_optimizer_file(&ckpt, adam(&config))?;
    super::session::run(config, state, model, optimizer, opts)
}
