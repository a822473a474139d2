//! The frozen extractor: the file format (safetensors + a JSON graph, see `docs/FORMAT.md`), its
//! loader and validator, the one lowering of a graph to steps and the backend trait
//! (`lowering.rs`), a scalar CPU runner built from the ops' `reference*` functions
//! ([`reference`](mod@reference)) and the WGSL runner ([`Extractor`]). This module knows wgpu and
//! nothing of burn; `export.rs` builds files from burn checkpoints.

pub mod cache;
mod file_io;
mod format;
pub(crate) mod lowering;
pub mod reference;
mod runtime;
mod validate;

pub use cache::FeatureCache;
pub use file_io::MAX_MAGNITUDE;
pub use format::{
    CONVENTIONS, ClassifierData, ClassifierSpec, ExtractorFile, FORMAT, FloatTwinSpec, Graph,
    InputSpec, LayerData, LayerKind, LayerSpec, Projection, RealSpec, Shortcut, Source, Thresholds,
    VERSION, VERSION_REAL,
};
pub use runtime::Extractor;

use serde::{Deserialize, Serialize};

/// What the extractor returns at the cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Packed signs, NHWC, `ceil(C/32)` words per pixel (the bit conventions of docs/FORMAT.md).
    Bits,
    /// The cut layer's pre-activations (after pooling, before the threshold): integer dots for
    /// binary layers (stored as f32 for the first layer, whose sums are real); for a real layer
    /// (Bi-Real block), its real output `z` (f32), the value its signs threshold.
    Preact,
    /// ±1.0 floats, NHWC, one per channel.
    Signs,
}

/// Features of a batch of images.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// `[n][per_image]` words.
    Bits(Vec<u32>),
    /// `[n][dim]` integer pre-activations.
    Int(Vec<i32>),
    /// `[n][dim]` real pre-activations (first layer) or ±1 signs.
    Float(Vec<f32>),
}

impl Features {
    /// Number of stored elements (words or values).
    pub fn len(&self) -> usize {
        match self {
            Features::Bits(v) => v.len(),
            Features::Int(v) => v.len(),
            Features::Float(v) => v.len(),
        }
    }
    /// Whether no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
