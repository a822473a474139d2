//! Training with burn: the pretraining loop (`bnn pretrain`), checkpoints, metrics and plots,
//! learning-rate schedules, and the choice of backend (wgpu on a GPU, flex on a CPU). This module
//! knows burn and nothing of WGSL.

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod distill;
pub mod metrics;
pub mod pretrain;
pub mod request;
pub mod schedule;
mod session;
pub mod step;

pub use checkpoint::TrainState;
pub use device::{DeviceChoice, TrainDevice};
pub use distill::Lite0Distill;
pub use metrics::{CurvePoint, EpochMetrics};
pub use pretrain::{
    AdamSettings, PretrainConfig, PretrainReport, RunOptions, new_config, pretrain, resume,
};
pub use request::PretrainRequest;
pub use schedule::{Schedule, ScheduleKind};
