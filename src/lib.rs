#![warn(missing_docs)]
#![warn(missing_debug_implementations)]
//! bnn-transfer: binary neural networks as frozen, portable feature extractors.
//!
//! The ops and their scalar references (`ops`) are plain Rust beneath both sides. The wgpu side
//! (`gpu`, `kernels`, `extractor`) knows nothing of burn; the burn side (`model`,
//! `train`, behind the `train` feature) knows nothing of WGSL. See README.md, docs/FORMAT.md
//! (the file format and bit conventions) and docs/DATA.md.

pub mod arch;
pub mod assets;
pub mod atomic;
pub mod bench;
pub mod bits;
mod cache_dir;
pub mod classifier;
pub mod cpu;
#[cfg(feature = "train")]
mod csv_file;
pub mod data;
mod error;
pub mod eval;
#[cfg(feature = "train")]
pub mod export;
pub mod extractor;
pub mod feature_extractor;
mod fingerprint;
pub mod gpu;
pub mod kernels;
#[cfg(feature = "train")]
pub mod model;
pub mod ops;
pub mod progress;
mod reproducible;
pub mod rng;
#[cfg(feature = "train")]
pub mod teacher;
#[cfg(feature = "train")]
pub mod train;
pub mod transfer;
#[cfg(all(target_arch = "wasm32", feature = "web"))]
pub mod web;

pub use arch::Arch;
pub use classifier::Classifier;
pub use error::{Error, Result};
pub use feature_extractor::{ExtractorDevice, ExtractorOptions, FeatureExtractor};
