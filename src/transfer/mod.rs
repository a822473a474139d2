//! Transfer learning, the paper's workflow: one frozen binary extractor, a new float head per
//! task.
//!
//! - [`features`]: the extractor run over a data set at one or more cut points in one pass, on a
//!   wgpu device or the CPU, with a fingerprinted feature cache.
//! - [`head`]: the head file and its plain-Rust forward pass (what `bnn predict` runs).
//! - [`chart`]: the results as an SVG bar chart.
//! - [`eval`]: top-1/top-5, per-class accuracy, confusions, softmax top-k.
//! - [`examples`]: labelled images collected one by one (the web page) and their head.
//! - [`mlp`], [`fit`]: head training with early stopping, in plain Rust (the same head natively
//!   and in the web page).
//! - [`twin`] (burn, feature `train`): the float twin's features from a burn checkpoint.
//! - [`experiment`] (feature `train`): the whole experiment behind `bnn transfer` and
//!   `bnn demo`, configured by a [`TransferConfig`](experiment::TransferConfig).

#[cfg(feature = "train")]
pub mod baseline;
pub mod chart;
#[cfg(feature = "train")]
pub mod experiment;
/// Scoring lives below both pretraining and transfer ([`crate::eval`]); re-exported here.
pub use crate::eval;
pub mod examples;
pub mod features;
pub mod fit;
pub mod head;
pub mod mlp;
#[cfg(feature = "train")]
pub mod twin;

pub use crate::feature_extractor::FeatureSet;
pub use eval::{Evaluation, evaluate, top_k};
pub use features::{Cache, Fingerprint};
pub use head::{BackboneInfo, BackboneKind, Dense, Head, HeadInfo};
