//! Atomic file writes: every file that matters (checkpoints, configs, exported models, feature
//! caches, reports) is written to a temp file beside its target, flushed, then renamed over it, so
//! a killed run never leaves a half-written file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Temp names handed out by this process so far: with the pid, every temp name is unique across
/// the processes and the threads that write into one directory.
static TEMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: a temp file in the same directory
/// (`.<name>.<n>.tmp<pid>`, unique per process and per write), flushed to disk, then renamed
/// over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = temp_path(path);
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

/// A fresh temp path beside `path` for an atomic write (see [`write_atomic`]): no other write,
/// of this process or another, uses the same name.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!(".{name}.{n}.tmp{}", std::process::id()))
}

/// How old a temp file of a process that may still be running must be before it counts as stale,
/// where whether a process runs cannot be seen (no `/proc`).
pub const STALE_AGE: Duration = Duration::from_secs(3600);

/// Whether process `pid` may be running: on Linux (a mounted `/proc`), whether `/proc/<pid>`
/// exists; elsewhere `None` (unknown).
fn process_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// Removes the temp files that [`write_atomic`] leaves in `dir` when a process is killed between
/// creating and renaming them (`.<name>.tmp<pid>`) — only those of processes that no longer run
/// (on Linux, no `/proc/<pid>`; where that cannot be seen, only temps older than [`STALE_AGE`]),
/// so that runs sharing an output or cache directory never delete each other's files. Returns how
/// many were removed. Cleanup never fails a run: a missing `dir`, a file that vanished meanwhile
/// (another run removed or renamed it) or one that cannot be removed is left alone.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp"))
            .filter(|(stem, pid)| {
                !stem.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
            })
            .and_then(|(_, pid)| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let stale = match process_alive(pid) {
            Some(alive) => !alive,
            None => meta
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AGE),
        };
        if stale && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `path` made absolute with every link resolved, also when it does not exist yet: its nearest
/// existing ancestor canonicalized, the rest appended (`None` if not even that resolves).
fn resolve(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        let name = at.file_name()?;
        rest.push(name.to_os_string());
        at = match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(mut p) = std::fs::canonicalize(at) {
            for c in rest.iter().rev() {
                p.push(c);
            }
            return Some(p);
        }
    }
}

/// Refuses an output path that would destroy an input: `out` (given as flag `out_flag`) may not
/// be any of `inputs` (flag, path) nor lie inside one that is a directory (a run being read, a
/// data set). Paths are compared canonicalized (links, `..`, relative forms); an output that does
/// not exist yet is resolved through its nearest existing ancestor. Inputs that do not exist are
/// not compared (they are reported when they are read).
pub fn check_output(out_flag: &str, out: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let Some(target) = resolve(out) else {
        return Ok(());
    };
    for (flag, input) in inputs {
        let Ok(source) = std::fs::canonicalize(input) else {
            continue;
        };
        let why = if target == source {
            "is"
        } else if source.is_dir() && target.starts_with(&source) {
            "lies inside"
        } else {
            continue;
        };
        return Err(Error::Config(format!(
            "{out_flag} {} {why} {flag} {}: writing it would destroy what is being read; choose \
             an output outside it",
            out.display(),
            input.display()
        )));
    }
    Ok(())
}

/// Checks early that files can be written in directory `dir`, by creating and removing a temp
/// file there (and the missing folders on the way, removed again: the check leaves nothing
/// behind); the error names `flag` (the option that chose `dir`).
pub fn check_writable(flag: &str, dir: &Path) -> Result<()> {
    let mut created = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        created.push(d.to_path_buf());
        at = d.parent();
    }
    let probe = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = temp_path(&dir.join("write-check"));
        std::fs::File::create(&tmp)?;
        std::fs::remove_file(&tmp)
    };
    let result = probe();
    for d in &created {
        let _ = std::fs::remove_dir(d);
    }
    result.map_err(|e| {
        Error::Config(format!(
            "{flag} {}: cannot write there ({e}); choose a writable directory",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid of a process that has exited (and been reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn stale_temps_go_and_everything_else_stays() {
        let dir = std::env::temp_dir().join(format!("bnn-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Issue 25: a temp of another process that still runs (here a `sleep` child) is that
        // process's write in progress: it must stay.
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let keep = [
            "metrics.csv",
            ".hidden",
            "data.tmp",
            ".x.tmpabc",
            &format!(".mine.tmp{}", std::process::id()),
            &format!(".head.safetensors.0.tmp{}", live.id()),
        ];
        let dead = dead_pid();
        let stale = [
            format!(".metrics.csv.tmp{dead}"),
            format!(".report.json.3.tmp{dead}"),
        ];
        for n in keep.iter().copied().chain(stale.iter().map(String::as_str)) {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        write_atomic(&dir.join("metrics.csv"), b"new").unwrap();
        let removed = remove_stale_temps(&dir).unwrap();
        let _ = live.kill();
        let _ = live.wait();
        if Path::new("/proc/self").exists() {
            assert_eq!(removed, 2);
        }
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        if !Path::new("/proc/self").exists() {
            // Without /proc only old temps go: these are fresh.
            want.extend(stale.iter().cloned());
        }
        want.sort();
        assert_eq!(left, want);
        assert_eq!(std::fs::read(dir.join("metrics.csv")).unwrap(), b"new");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cleanup_never_fails_on_files_that_vanish_or_cannot_be_removed() {
        let dir = std::env::temp_dir().join(format!("bnn-atomic-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dead = dead_pid();
        // Many stale temps, removed by several cleanups at once: each file vanishes under all
        // but one of them, and none may fail.
        for i in 0..200 {
            std::fs::write(dir.join(format!(".f{i}.tmp{dead}")), b"x").unwrap();
        }
        let total: usize = std::thread::scope(|s| {
            let jobs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| remove_stale_temps(&dir).unwrap()))
                .collect();
            jobs.into_iter().map(|j| j.join().unwrap()).sum()
        });
        if Path::new("/proc/self").exists() {
            assert_eq!(total, 200);
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        }
        // A directory named like a temp is not a file: left alone, no error.
        std::fs::create_dir_all(dir.join(format!(".d.tmp{dead}"))).unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), 0);
        assert_eq!(remove_stale_temps(&dir.join("missing")).unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_write_gets_its_own_temp_name() {
        let p = Path::new("out/head.safetensors");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        let dir = std::env::temp_dir().join(format!("bnn-atomic-threads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Threads of one process writing the same file: every write lands whole.
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let path = dir.join("same.bin");
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(&path, &[t; 4096]).unwrap();
                    }
                });
            }
        });
        let bytes = std::fs::read(dir.join("same.bin")).unwrap();
        assert_eq!(bytes.len(), 4096);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
