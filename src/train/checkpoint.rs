//! The output directory of `bnn pretrain` and its checkpoint.
//!
//! ```text
//! DIR/config.json              PretrainConfig: the model (arch, precision, options) and training settings
//! DIR/checkpoint/model.bpk     the model's parameters and batch-norm statistics (burn's burnpack format;
//!                              tensor names are the parameter paths of crate::model)
//! DIR/checkpoint/optimizer.bpk Adam's state (moments, step counts) keyed by parameter id
//! DIR/checkpoint/state.json    TrainState: epochs done, position inside the epoch, metrics history
//! DIR/metrics.csv              one row per epoch
//! DIR/curves.svg               loss and accuracy curves
//! DIR/report.json              summary of the last run
//! ```
//!
//! A checkpoint is written whole into `DIR/checkpoint.tmp/` (every file flushed to disk), then
//! swapped in with renames: `checkpoint` → `checkpoint.old`, `checkpoint.tmp` → `checkpoint`, then
//! `checkpoint.old` is removed. A process killed at any point leaves either `checkpoint` or
//! `checkpoint.old` complete, and [`checkpoint_dir`] finds it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::config::PretrainConfig;
use super::metrics::{CurvePoint, EpochMetrics};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::model::{Model, ModelConfig};

/// The run's [`PretrainConfig`], in the output directory.
pub const CONFIG_FILE: &str = "config.json";
/// The checkpoint directory, in the output directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// Model parameters and batch-norm statistics (burnpack), in the checkpoint directory.
pub const MODEL_FILE: &str = "model.bpk";
/// Adam's state (burnpack), in the checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// The [`TrainState`], in the checkpoint directory.
pub const STATE_FILE: &str = "state.json";
/// One row per epoch, in the output directory.
pub const METRICS_FILE: &str = "metrics.csv";
/// Loss and accuracy curves, in the output directory.
pub const PLOT_FILE: &str = "curves.svg";
/// The last run's report, in the output directory.
pub const REPORT_FILE: &str = "report.json";

/// Where training stands; saved with every checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs (metrics written for each).
    pub epochs_done: usize,
    /// Batches of epoch `epochs_done + 1` already trained (an interrupted epoch); 0 at a boundary.
    pub batches_done: usize,
    /// Optimizer steps so far.
    pub global_step: u64,
    /// Running sums of the interrupted epoch.
    pub partial: Option<PartialEpoch>,
    /// Metrics of every completed epoch (floats stored exactly, as strings).
    #[serde(with = "exact::history")]
    pub history: Vec<EpochMetrics>,
    /// The running training curve so far.
    #[serde(with = "exact::curve")]
    pub curve: Vec<CurvePoint>,
    /// Sizes of the files of this checkpoint, to catch a mixed or truncated checkpoint.
    pub model_bytes: u64,
    /// Size of `optimizer.bpk` in bytes (see `model_bytes`).
    pub optimizer_bytes: u64,
    /// sha256 of `model.bpk`, checked when the checkpoint is read, so a corrupt file is found
    /// then and not an epoch later (absent in checkpoints written before it was recorded).
    #[serde(default)]
    pub model_sha256: Option<String>,
    /// sha256 of `optimizer.bpk` (see `model_sha256`).
    #[serde(default)]
    pub optimizer_sha256: Option<String>,
}

/// Sums over the trained part of an interrupted epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Sum of per-image training loss (batch mean loss × batch size).
    #[serde(with = "exact")]
    pub loss_sum: f64,
    /// Training images classified correctly (top-1).
    pub correct: u64,
    /// Training images seen.
    pub seen: u64,
    /// Seconds spent in training steps.
    #[serde(with = "exact")]
    pub train_time_s: f64,
    /// Wall time of the epoch so far, seconds.
    #[serde(with = "exact")]
    pub time_s: f64,
}

/// The floats of `state.json`, written as strings of their shortest exact decimal form (`"0.1"`,
/// `"NaN"`) so that they read back bit for bit: serde_json (without its `float_roundtrip`
/// feature, which would rebuild burn) parses JSON numbers to within an ulp, and writes NaN (the
/// val metrics of a set without a val split) as `null`, which does not read back as a float at
/// all. A resumed run rewrites `metrics.csv` from this state, so any lost bit showed there as a
/// changed last digit. JSON numbers and `null` (files written before) still read.
mod exact {
    use serde::de::{self, Deserializer, Visitor};
    use serde::{Deserialize, Serialize, Serializer};

    use super::{CurvePoint, EpochMetrics};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        // `{}` is Rust's shortest representation that parses back to the same bits.
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        struct Float;
        impl Visitor<'_> for Float {
            type Value = f64;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a float, as a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
                Ok(f64::NAN)
            }
        }
        d.deserialize_any(Float)
    }

    /// An [`f64`] field stored exactly.
    #[derive(Serialize, Deserialize)]
    struct F(#[serde(with = "super::exact")] f64);

    /// [`EpochMetrics`] with exact floats.
    #[derive(Serialize, Deserialize)]
    struct Epoch {
        epoch: usize,
        lr: F,
        train_loss: F,
        train_acc: F,
        val_loss: F,
        val_top1: F,
        val_top5: F,
        time_s: F,
        images_per_s: F,
    }

    /// [`CurvePoint`] with exact floats.
    #[derive(Serialize, Deserialize)]
    struct Point {
        epoch: F,
        loss: F,
        acc: F,
    }

    pub mod history {
        use super::*;

        pub fn serialize<S: Serializer>(h: &[EpochMetrics], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(h.iter().map(|m| Epoch {
                epoch: m.epoch,
                lr: F(m.lr),
                train_loss: F(m.train_loss),
                train_acc: F(m.train_acc),
                val_loss: F(m.val_loss),
                val_top1: F(m.val_top1),
                val_top5: F(m.val_top5),
                time_s: F(m.time_s),
                images_per_s: F(m.images_per_s),
            }))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EpochMetrics>, D::Error> {
            Ok(Vec::<Epoch>::deserialize(d)?
                .into_iter()
                .map(|e| EpochMetrics {
                    epoch: e.epoch,
                    lr: e.lr.0,
                    train_loss: e.train_loss.0,
                    train_acc: e.train_acc.0,
                    val_loss: e.val_loss.0,
                    val_top1: e.val_top1.0,
                    val_top5: e.val_top5.0,
                    time_s: e.time_s.0,
                    images_per_s: e.images_per_s.0,
                })
                .collect())
        }
    }

    pub mod curve {
        use super::*;

        pub fn serialize<S: Serializer>(c: &[CurvePoint], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(c.iter().map(|p| Point {
                epoch: F(p.epoch),
                loss: F(p.loss),
                acc: F(p.acc),
            }))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<CurvePoint>, D::Error> {
            Ok(Vec::<Point>::deserialize(d)?
                .into_iter()
                .map(|p| CurvePoint {
                    epoch: p.epoch.0,
                    loss: p.loss.0,
                    acc: p.acc.0,
                })
                .collect())
        }
    }
}

fn model_file_error(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The complete checkpoint directory of run `dir` (`checkpoint`, or `checkpoint.old` after a kill
/// in the middle of the swap).
pub fn checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    let main = dir.join(CHECKPOINT_DIR);
    if main.join(STATE_FILE).is_file() {
        return Ok(main);
    }
    let old = dir.join(format!("{CHECKPOINT_DIR}.old"));
    if old.join(STATE_FILE).is_file() {
        return Ok(old);
    }
    Err(model_file_error(
        &main,
        if dir.join(CONFIG_FILE).is_file() {
            "no checkpoint yet (the run was stopped before its first checkpoint); start it again \
             without `resume`"
                .to_string()
        } else {
            format!("not the directory of a pretraining run (no {CONFIG_FILE}, no checkpoint)")
        },
    ))
}

/// Puts run `dir` back into its one consistent state after a kill, before anything reads it:
/// finishes an interrupted swap (`checkpoint.old` becomes `checkpoint` when `checkpoint` is not
/// complete; a leftover `checkpoint.old` beside a complete `checkpoint` is removed), removes an
/// unfinished `checkpoint.tmp` and the temp files of interrupted atomic writes. Files derived
/// from the checkpoint (metrics, curves, report) are rewritten by the run itself.
pub fn recover(dir: &Path) -> Result<()> {
    let main = dir.join(CHECKPOINT_DIR);
    let old = dir.join(format!("{CHECKPOINT_DIR}.old"));
    let tmp = dir.join(format!("{CHECKPOINT_DIR}.tmp"));
    let complete = |d: &Path| d.join(STATE_FILE).is_file();
    if old.exists() {
        if complete(&main) {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        } else if complete(&old) {
            if main.exists() {
                std::fs::remove_dir_all(&main).map_err(|e| Error::io(&main, e))?;
            }
            std::fs::rename(&old, &main).map_err(|e| Error::io(&old, e))?;
        }
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    crate::atomic::remove_stale_temps(dir)?;
    Ok(())
}

/// Reads `DIR/config.json`.
pub fn read_config(dir: &Path) -> Result<PretrainConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| model_file_error(&path, format!("invalid config: {e}")))
}

/// Writes `DIR/config.json` (atomically).
pub fn write_config(dir: &Path, config: &PretrainConfig) -> Result<()> {
    let text = serde_json::to_string_pretty(config).expect("config serializes");
    write_atomic(&dir.join(CONFIG_FILE), text.as_bytes())
}

/// Writes a checkpoint of `model`, `optimizer` and `state` into `DIR/checkpoint` (see the module
/// docs for how it stays consistent when killed).
pub fn save(
    dir: &Path,
    model: &Model,
    optimizer: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let tmp = dir.join(format!("{CHECKPOINT_DIR}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    // `valid()` folds pending running-statistic updates into the batch-norm state first.
    let model_bytes = model
        .valid()
        .into_record()
        .into_bytes()
        .map_err(|e| model_file_error(&tmp.join(MODEL_FILE), e.to_string()))?;
    let optimizer_bytes = optimizer
        .into_bytes()
        .map_err(|e| model_file_error(&tmp.join(OPTIMIZER_FILE), e.to_string()))?;
    let state = TrainState {
        model_bytes: model_bytes.len() as u64,
        optimizer_bytes: optimizer_bytes.len() as u64,
        model_sha256: Some(sha256(&model_bytes)),
        optimizer_sha256: Some(sha256(&optimizer_bytes)),
        ..state.clone()
    };
    write_synced(&tmp.join(MODEL_FILE), &model_bytes)?;
    write_synced(&tmp.join(OPTIMIZER_FILE), &optimizer_bytes)?;
    let text = serde_json::to_string_pretty(&state).expect("state serializes");
    write_synced(&tmp.join(STATE_FILE), text.as_bytes())?;

    let main = dir.join(CHECKPOINT_DIR);
    let old = dir.join(format!("{CHECKPOINT_DIR}.old"));
    if main.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(&main, &old).map_err(|e| Error::io(&main, e))?;
    }
    std::fs::rename(&tmp, &main).map_err(|e| Error::io(&tmp, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Reads the state of the latest checkpoint of run `dir`.
pub fn load_state(dir: &Path) -> Result<(PathBuf, TrainState)> {
    let ckpt = checkpoint_dir(dir)?;
    let path = ckpt.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let state: TrainState = serde_json::from_str(&text)
        .map_err(|e| model_file_error(&path, format!("corrupt training state: {e}")))?;
    for (file, expected, hash) in [
        (MODEL_FILE, state.model_bytes, &state.model_sha256),
        (
            OPTIMIZER_FILE,
            state.optimizer_bytes,
            &state.optimizer_sha256,
        ),
    ] {
        let p = ckpt.join(file);
        let len = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
        if len != expected {
            return Err(model_file_error(
                &p,
                format!("corrupt checkpoint: {len} bytes, the state says {expected}"),
            ));
        }
        if let Some(want) = hash {
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            let got = sha256(&bytes);
            if &got != want {
                return Err(model_file_error(
                    &p,
                    format!(
                        "corrupt checkpoint: sha256 {got}, the state says {want} (the file changed \
                         after it was written; restore it or start the run again)"
                    ),
                ));
            }
        }
    }
    Ok((ckpt, state))
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// The fingerprint of run `dir`'s latest model: the sha256 of its `model.bpk` (what a student
/// records of its teacher, so a swapped teacher is noticed on resume).
pub fn model_fingerprint(dir: &Path) -> Result<String> {
    let (ckpt, _) = load_state(dir)?;
    let p = ckpt.join(MODEL_FILE);
    let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
    Ok(sha256(&bytes))
}

/// Applies `ckpt/model.bpk` to `model` (which must have the same architecture). Parameter ids are
/// restored from the file, so a restored optimizer state matches them.
pub fn load_model_file(ckpt: &Path, model: Model) -> Result<Model> {
    let path = ckpt.join(MODEL_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| model_file_error(&path, format!("corrupt model file: {e}")))?;
    model.try_load_record(record).map_err(|e| {
        model_file_error(
            &path,
            format!("does not match the architecture in config.json: {e}"),
        )
    })
}

/// Restores the optimizer state from `ckpt/optimizer.bpk`.
pub fn load_optimizer_file(ckpt: &Path, optimizer: ModuleOptimizer) -> Result<ModuleOptimizer> {
    let path = ckpt.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    optimizer
        .from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| model_file_error(&path, format!("corrupt optimizer state: {e}")))
}

/// The architecture, precision and model of a `bnn pretrain` output directory (`config.json` +
/// the latest checkpoint) on `device` (e.g. `Device::flex()`), in eval mode (no autodiff, running
/// batch-norm statistics). A missing or corrupt checkpoint is an [`Error::ModelFile`].
pub fn load(
    dir: &Path,
    device: &Device,
) -> Result<(crate::arch::Arch, crate::model::Precision, Model)> {
    let (config, model) = load_model(dir, device)?;
    Ok((config.arch, config.precision, model))
}

/// The model of run `dir` (its latest checkpoint) on `device`, in eval mode.
pub fn load_model(dir: &Path, device: &Device) -> Result<(ModelConfig, Model)> {
    let config = read_config(dir)?;
    let (ckpt, _) = load_state(dir)?;
    let plain = device.clone().without_autodiff();
    let model = Model::new(&config.model, &plain, 0);
    let model = load_model_file(&ckpt, model)?.valid();
    Ok((config.model, model))
}
