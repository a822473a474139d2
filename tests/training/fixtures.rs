//! What the training tests share: a scratch path per test, the learning-rate schedule of the
//! fixture runs, and the run options (burn flex, one decoding thread, progress dropped).

use std::path::{Path, PathBuf};

use bnn_transfer::train::{RunOptions, Schedule, ScheduleKind, TrainDevice};

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
