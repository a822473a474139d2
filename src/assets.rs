//! The embedded default backbone: the packed binary `small-bireal` network (Bi-Real blocks, α,
//! distilled from the float `small`) pretrained on the Tiny-ImageNet subset
//! (`assets/bnn-small-bireal-tinyimagenet.safetensors`, made by `scripts/reproduce.sh`, described in
//! `assets/README.md`). It is compiled into the binary, so `bnn demo`, `bnn transfer`, `bnn extract`
//! and `bnn predict` work without a `--model` and without any file beside the binary.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::extractor::ExtractorFile;
use crate::fingerprint::Fingerprint;

/// Name of the embedded backbone (also its file stem under `assets/`).
pub const DEFAULT_MODEL_NAME: &str = "bnn-small-bireal-tinyimagenet";

/// What `--model` says when it names the embedded backbone (and what head files record).
pub const EMBEDDED_PREFIX: &str = "embedded:";

/// The bytes of the embedded backbone.
pub static DEFAULT_MODEL: &[u8] =
    include_bytes!("../assets/bnn-small-bireal-tinyimagenet.safetensors");

/// A linear head trained on the embedded backbone's features of the generated shapes task
/// (`bnn demo`), for the browser tests.
pub const SHAPES_HEAD: &[u8] = include_bytes!("../assets/shapes-head.safetensors");

/// The page's default head: linear, on the embedded backbone's `fc2` features, for Oxford
/// Flowers-102 (26.0 % test top-1; assets/README.md), so the page labels real photos with nothing
/// loaded.
pub const FLOWERS_HEAD: &[u8] = include_bytes!("../assets/flowers102-head.safetensors");

/// The architecture of the embedded backbone (its file's `source.arch`): what `bnn bench` times
/// end to end by default, since it is what users run.
pub fn default_arch() -> Result<crate::arch::Arch> {
    Ok(load_backbone(None)?.file.graph.source.arch)
}

/// A loaded backbone and how to name it.
#[derive(Clone, Debug)]
pub struct Backbone {
    /// The extractor.
    pub file: ExtractorFile,
    /// Fingerprint of the file's bytes (feature-cache keys, head files).
    pub fingerprint: Fingerprint,
    /// Short name for cache files (the file stem).
    pub name: String,
    /// The path as given, or `embedded:<name>`; head files record it.
    pub label: String,
}

impl Backbone {
    /// How images must be prepared for this backbone (its file's size, mean and std); an error
    /// naming the backbone when its input is not 3-channel images.
    pub fn preprocess(&self) -> Result<crate::data::Preprocess> {
        self.file.graph.input.preprocess(Path::new(&self.label))
    }
}

impl Backbone {
    /// A backbone from an extractor file's bytes (a file picked in a browser, a download);
    /// `label` names it in errors and head files.
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Backbone> {
        Ok(Backbone {
            file: ExtractorFile::from_bytes(bytes, Path::new(label))?,
            fingerprint: Fingerprint::default().bytes(bytes),
            name: Path::new(label)
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            label: label.to_string(),
        })
    }
}

/// The backbone at `path`, or the embedded one for `None` (or a path `embedded:…`).
pub fn load_backbone(path: Option<&Path>) -> Result<Backbone> {
    match path {
        Some(p) if !p.to_string_lossy().starts_with(EMBEDDED_PREFIX) => {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            Ok(Backbone {
                file: ExtractorFile::from_bytes(&bytes, p)?,
                fingerprint: Fingerprint::default().bytes(&bytes),
                name: p
                    .file_stem()
                    .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
                label: p.display().to_string(),
            })
        }
        _ => Ok(Backbone {
            file: ExtractorFile::from_bytes(
                DEFAULT_MODEL,
                &PathBuf::from(format!("{EMBEDDED_PREFIX}{DEFAULT_MODEL_NAME}")),
            )?,
            fingerprint: Fingerprint::default().bytes(DEFAULT_MODEL),
            name: DEFAULT_MODEL_NAME.into(),
            label: format!("{EMBEDDED_PREFIX}{DEFAULT_MODEL_NAME}"),
        }),
    }
}
