//! Image data sets for training and feature extraction.
//!
//! - [`folder`]: [`ImageFolder`], one split of a set, from a directory or straight from an
//!   uncompressed tar (the sets in `../shared/data`).
//! - [`layout`]: [`Layout`]: `<split>/<class>/<image>` or the official layouts of Flowers-102,
//!   CUB-200-2011 and MIT Indoor-67, and their detection (see `docs/DATA.md`).
//! - [`source`]: the directory walker and the tar index behind them.
//! - [`mat`]: the MATLAB v5 reader for Flowers-102's label and split files.
//! - [`preprocess`]: decode, crop, resize, flip, normalize ([`load_image`]).
//! - [`shapes`]: a procedural image set (shapes and textures) for `bnn demo`.
//! - [`loader`]: [`Loader`], batches of one pass decoded ahead on a tokio runtime, in a
//!   reproducible order.
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use bnn_transfer::data::{ImageFolder, Loader, LoaderConfig, Preprocess};
//!
//! let set = Arc::new(ImageFolder::open(Path::new("../shared/data/flowers102-tiny.tar"), "train")?);
//! let cfg = LoaderConfig { batch_size: 16, shuffle_seed: Some(1), ..LoaderConfig::default() };
//! for batch in Loader::new(set, Preprocess::train(64), cfg) {
//!     let batch = batch?; // batch.images: [n][64][64][3], batch.labels
//! }
//! # Ok::<(), bnn_transfer::Error>(())
//! ```

pub mod folder;
pub mod layout;
#[cfg(not(target_arch = "wasm32"))]
pub mod loader;
pub mod mat;
mod official;
pub mod preprocess;
pub mod shapes;
pub mod source;

pub use folder::{ImageFolder, Sample, data_fingerprint};
pub use layout::{Layout, flowers102_classes};
#[cfg(not(target_arch = "wasm32"))]
pub use loader::{Batch, Loader, LoaderConfig};
pub use official::flowers102_split;
pub use preprocess::{IMAGENET_MEAN, IMAGENET_STD, Preprocess, load_image};
pub use source::{IMAGE_EXTENSIONS, is_image_name};
