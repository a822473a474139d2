//! The per-user cache directory that feature caches and teacher targets share:
//! `$XDG_CACHE_HOME/bnn-transfer`, else `~/.cache/bnn-transfer`, else `.bnn-cache`. Bottom-level
//! (no crate imports), so `train` and `transfer` both use it without depending on each other.

use std::path::PathBuf;

/// The default cache directory (see the module doc).
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("bnn-transfer");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(h).join(".cache").join("bnn-transfer");
    }
    PathBuf::from(".bnn-cache")
}
