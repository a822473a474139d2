//! Learning-rate schedules: step (the paper's "halve every 10 epochs"), cosine (per step, to 0
//! at the end of the last epoch) and constant.

use serde::{Deserialize, Serialize};

/// `--schedule`: the shape of the learning rate over a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// `lr · gamma^⌊epoch / step_epochs⌋` (BNN AlexNet: lr 1e-2 halved every 10 epochs).
    Step,
    /// Cosine from `lr` down to 0 over all steps of all epochs.
    Cosine,
    /// `lr` throughout.
    Constant,
}

impl std::fmt::Display for ScheduleKind {
    /// The `--schedule` value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScheduleKind::Step => "step",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Constant => "constant",
        })
    }
}

/// A learning-rate schedule and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Shape of the schedule.
    pub kind: ScheduleKind,
    /// Initial learning rate.
    pub lr: f64,
    /// Step schedule: epochs between decays.
    pub step_epochs: usize,
    /// Step schedule: decay factor.
    pub gamma: f64,
}

impl Schedule {
    /// The learning rate for step `step` (0-based) of epoch `epoch` (0-based), with
    /// `steps_per_epoch` steps per epoch and `epochs` epochs in the run.
    pub fn lr_at(&self, epoch: usize, step: usize, steps_per_epoch: usize, epochs: usize) -> f64 {
        match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Step => {
                self.lr * self.gamma.powi((epoch / self.step_epochs.max(1)) as i32)
            }
            ScheduleKind::Cosine => {
                let total = (steps_per_epoch.max(1) * epochs.max(1)) as f64;
                let t = (epoch * steps_per_epoch.max(1) + step) as f64 / total;
                0.5 * self.lr * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let s = Schedule {
            kind: ScheduleKind::Step,
            lr: 0.01,
            step_epochs: 10,
            gamma: 0.5,
        };
        assert_eq!(s.lr_at(0, 5, 100, 30), 0.01);
        assert_eq!(s.lr_at(9, 99, 100, 30), 0.01);
        assert_eq!(s.lr_at(10, 0, 100, 30), 0.005);
        assert_eq!(s.lr_at(25, 0, 100, 30), 0.0025);
        let c = Schedule {
            kind: ScheduleKind::Cosine,
            ..s.clone()
        };
        assert_eq!(c.lr_at(0, 0, 100, 2), 0.01);
        assert!((c.lr_at(1, 0, 100, 2) - 0.005).abs() < 1e-12);
        assert!(c.lr_at(1, 99, 100, 2) < 1e-5);
        let k = Schedule {
            kind: ScheduleKind::Constant,
            ..s
        };
        assert_eq!(k.lr_at(7, 3, 10, 9), 0.01);
    }
}
