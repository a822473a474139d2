//! Atomic file writes: every file that matters (checkpoints, configs, exported models, feature
//! caches, reports) is written to a temp file beside its target, flushed, then renamed over it, so
//! a killed run never leaves a half-written file.

use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically: a temp file in the same directory, flushed to disk, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Removes the temp files that [`write_atomic`] leaves in `dir` when a process is killed between
/// creating and renaming them (`.<name>.tmp<pid>`, from any process but this one). Returns how
/// many were removed; a missing `dir` removes nothing.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let ours = format!(".tmp{}", std::process::id());
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with('.')
            && !name.ends_with(&ours)
            && name.rsplit_once(".tmp").is_some_and(|(stem, pid)| {
                stem.len() > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
            });
        if stale && e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temps_go_and_everything_else_stays() {
        let dir = std::env::temp_dir().join(format!("bnn-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keep = [
            "metrics.csv",
            ".hidden",
            "data.tmp",
            ".x.tmpabc",
            &format!(".mine.tmp{}", std::process::id()),
        ];
        for n in keep
            .iter()
            .chain(&[".metrics.csv.tmp123", ".report.json.tmp9"])
        {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        write_atomic(&dir.join("metrics.csv"), b"new").unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
        assert_eq!(std::fs::read(dir.join("metrics.csv")).unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
