//! The library's typed errors. `main` wraps them with anyhow context.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no GPU adapter found{detail}. On a machine without a GPU install Mesa's lavapipe \
         (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers libvulkan1`) and retry; \
         WGPU_BACKEND and WGPU_ADAPTER_NAME select among several adapters (see `bnn devices`)"
    )]
    NoAdapter { detail: String },
    #[error("could not open the GPU device on '{adapter}': {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("shader '{kernel}' failed to compile: {message}")]
    ShaderCompile { kernel: String, message: String },
    #[error("GPU error in '{context}': {message}")]
    Gpu { context: String, message: String },
    #[error("shape error: {0}")]
    Shape(String),
    #[error("the device cannot run this: {0}")]
    Limits(String),
    #[error("data set error: {0}")]
    Dataset(String),
    /// A setting (a command-line flag or a config field) that cannot work; the message names it
    /// and says what would.
    #[error("{0}")]
    Config(String),
    /// A tar archive that ends early or is corrupt: where reading stopped and the last entry read
    /// whole before it. Never skipped: every entry after the damage would be lost.
    #[error(
        "tar archive {path} is damaged at byte {offset}{}: {message}. Re-download or re-create \
         the archive",
        last_good.as_deref().map_or(String::new(), |e| format!(", after its last complete entry '{e}'"))
    )]
    DamagedArchive {
        path: PathBuf,
        last_good: Option<String>,
        offset: u64,
        message: String,
    },
    #[error("model file {path}: {message}")]
    ModelFile { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
