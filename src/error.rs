//! The library's typed errors. `main` wraps them with anyhow context.

use std::path::PathBuf;

/// The library's result type, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with; the message says what to do where there is a fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// wgpu found no adapter (or none matching `WGPU_ADAPTER_NAME`).
    #[error(
        "no GPU adapter found{detail}. On a machine without a GPU install Mesa's lavapipe \
         (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers libvulkan1`) and retry; \
         WGPU_BACKEND and WGPU_ADAPTER_NAME select among several adapters (see `bnn devices`)"
    )]
    NoAdapter {
        /// Appended to the message: what was wanted and which adapters exist, or wgpu's error;
        /// empty, or starting with a space.
        detail: String,
    },
    /// The adapter exists but opening a device on it failed.
    #[error("could not open the GPU device on '{adapter}': {message}")]
    RequestDevice {
        /// Name of the adapter.
        adapter: String,
        /// wgpu's (or burn-wgpu's) error.
        message: String,
    },
    /// A WGSL kernel failed validation or pipeline creation.
    #[error("shader '{kernel}' failed to compile: {message}")]
    ShaderCompile {
        /// The shader's name.
        kernel: String,
        /// wgpu's error.
        message: String,
    },
    /// A GPU operation failed: a dispatch's validation error, mapping a buffer, waiting on the
    /// device, or a burn operation or device.
    #[error("GPU error in '{context}': {message}")]
    Gpu {
        /// What was being done: the dispatches' labels, `map`, `poll`, `burn`, …
        context: String,
        /// wgpu's (or burn's) error.
        message: String,
    },
    /// Sizes that do not fit together: buffer lengths against a shape, an invalid shape or tile.
    #[error("shape error: {0}")]
    Shape(String),
    /// The device's limits (buffer size, workgroups, dispatch budget) are too small for this.
    #[error("the device cannot run this: {0}")]
    Limits(String),
    /// A data set that is missing, malformed or not what the command needs.
    #[error("data set error: {0}")]
    Dataset(String),
    /// A setting (a command-line flag or a config field) that cannot work; the message names it
    /// and says what would.
    #[error("{0}")]
    Config(String),

    /// Training produced a non-finite loss; nothing of that step was applied or saved.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// A tar archive that ends early or is corrupt: where reading stopped and the last entry read
    /// whole before it. Never skipped: every entry after the damage would be lost.
    #[error(
        "tar archive {path} is damaged at byte {offset}{}: {message}. Re-download or re-create \
         the archive",
        last_good.as_deref().map_or(String::new(), |e| format!(", after its last complete entry '{e}'"))
    )]
    DamagedArchive {
        /// The archive.
        path: PathBuf,
        /// The last entry read whole, if any.
        last_good: Option<String>,
        /// Byte offset in the archive where reading stopped.
        offset: u64,
        /// What went wrong there.
        message: String,
    },
    /// A model, checkpoint, head or feature-cache file that is missing, malformed or does not
    /// match what it is used with.
    #[error("model file {path}: {message}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Another error, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        /// What was being done (`opening split 'val' of data/flowers`, …).
        context: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Adds what was being done to an error ([`Error::Context`]), like anyhow's `with_context`.
#[cfg(feature = "train")]
pub(crate) trait ResultExt<T> {
    /// Wraps the error, if any, with `context()`.
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T>;
}

#[cfg(feature = "train")]
impl<T> ResultExt<T> for Result<T> {
    fn context_with(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context(),
            source: Box::new(e),
        })
    }
}

impl Error {
    /// An [`Error::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
