//! What the training tests share: a scratch path per test, the learning-rate schedule of the
//! fixture runs, the run options (burn flex, one decoding thread, progress dropped), and the
//! fixture network trained once for the whole binary (`mini`, binary) and its extractor file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bnn_transfer::model::Precision;
use bnn_transfer::train::{self, RunOptions, Schedule, ScheduleKind, TrainDevice};

/// `$TMPDIR/bnn-{name}-{pid}`, removed if it was there. The tests of this binary share one
/// process, so each names its own (`"{module}-{what}"`).
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bnn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// [`scratch`], created empty.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A schedule of `kind` from `lr` (the step kind halves it every 10 epochs).
pub fn schedule(kind: ScheduleKind, lr: f64) -> Schedule {
    Schedule {
        kind,
        lr,
        step_epochs: 10,
        gamma: 0.5,
    }
}

/// Options for a run into `out`: burn flex, one decoding thread, progress dropped.
pub fn options(out: &Path) -> RunOptions {
    let mut o = RunOptions::new(out, TrainDevice::flex("test"));
    o.workers = 1;
    o
}

/// The binary `mini` network trained once on the fixture set `data` (10 epochs of batch 10,
/// cosine from 5e-3, seed 3) and shared by every test of this binary that needs a trained
/// network of no particular shape: its run directory and its export (every layer, the run's own
/// cut) as an extractor file.
pub fn mini(data: &Path) -> (PathBuf, PathBuf) {
    static MINI: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MINI.get_or_init(|| {
        let dir = scratch_dir("fixtures-mini");
        let run = dir.join("run");
        let cfg = train::new_config(
            data,
            "mini",
            Precision::Binary,
            10,
            10,
            schedule(ScheduleKind::Cosine, 5e-3),
            3,
        )
        .unwrap();
        train::pretrain(cfg, &options(&run)).unwrap();
        let device = burn::tensor::Device::flex();
        let (config, model) = train::checkpoint::load_model(&run, &device).unwrap();
        let src = bnn_transfer::export::ExportSource {
            val_top1: None,
            epochs: None,
            checkpoint: run.display().to_string(),
        };
        let file = bnn_transfer::export::build(&model, &config, None, src).unwrap();
        let path = dir.join("mini.safetensors");
        file.save(&path).unwrap();
        (run, path)
    })
    .clone()
}
