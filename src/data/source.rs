//! Where a data set's bytes come from: a directory tree, or an uncompressed (ustar/GNU/pax) tar
//! archive that is indexed once (entry offsets) and then read by position, without extraction.
//!
//! Both readers produce the same [`Tree`]: the split folders, the class folders of each split and
//! the image files of one split, named by their `/`-separated path inside the set
//! (`train/001.pink_primrose/image_06734.jpg`). The layout rules (what counts as an image, hidden
//! files) live here so that the two readers cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name endings that count as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// Whether a file name is an image by its extension (`.jpg`, `.jpeg`, `.png`, any case).
pub fn is_image_name(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e))
        }
        _ => false,
    }
}

fn is_hidden(component: &str) -> bool {
    component.starts_with('.')
}

/// Where the bytes of one image are.
#[derive(Debug)]
pub(crate) enum Loc {
    File(PathBuf),
    Span { offset: u64, len: u64 },
}

/// The layout of a set as seen by one scan.
#[derive(Default, Debug)]
pub(crate) struct Tree {
    /// split folder → its (non-hidden) class folders.
    pub splits: BTreeMap<String, BTreeSet<String>>,
    /// Images of the requested split, by name: (class folder, location). Sorted and de-duplicated
    /// by name (in a tar, a later entry with the same path replaces an earlier one).
    pub images: BTreeMap<String, (String, Loc)>,
}

/// An opened archive: the file the spans of [`Loc::Span`] refer to.
#[derive(Debug)]
pub(crate) enum Store {
    Dir,
    Tar(File),
}

/// Scans a directory or a tar (detected) and collects the images of `split` (none when `None`).
pub(crate) fn scan(path: &Path, split: Option<&str>) -> Result<(Store, Tree)> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::Dataset(format!(
                "data set path {} does not exist (expected a directory or a .tar file)",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.is_dir() {
        Ok((Store::Dir, scan_dir(path, split)?))
    } else {
        let (file, tree) = scan_tar(path, split)?;
        Ok((Store::Tar(file), tree))
    }
}

// ---------------------------------------------------------------------------------------------
// Directory

fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf, std::fs::FileType)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_hidden(&name) {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        out.push((name, entry.path(), file_type));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Whether `path` (following a symlink) is a directory.
fn is_dir(path: &Path, file_type: std::fs::FileType) -> bool {
    file_type.is_dir() || (file_type.is_symlink() && path.is_dir())
}

fn scan_dir(root: &Path, split: Option<&str>) -> Result<Tree> {
    let mut tree = Tree::default();
    for (split_name, split_path, ft) in sorted_entries(root)? {
        if !is_dir(&split_path, ft) {
            continue;
        }
        let mut classes = BTreeSet::new();
        for (class_name, class_path, ft) in sorted_entries(&split_path)? {
            if !is_dir(&class_path, ft) {
                continue;
            }
            if split == Some(split_name.as_str()) {
                let prefix = format!("{split_name}/{class_name}");
                walk_images(&class_path, &prefix, &class_name, &mut tree.images)?;
            }
            classes.insert(class_name);
        }
        tree.splits.insert(split_name, classes);
    }
    Ok(tree)
}

/// Collects the image files under a class folder, recursively (sub-folders of a class belong to
/// that class). Symlinked files are followed; symlinked sub-folders are not (no cycles).
fn walk_images(
    dir: &Path,
    prefix: &str,
    class: &str,
    out: &mut BTreeMap<String, (String, Loc)>,
) -> Result<()> {
    for (name, path, ft) in sorted_entries(dir)? {
        let rel = format!("{prefix}/{name}");
        if ft.is_dir() {
            walk_images(&path, &rel, class, out)?;
        } else if is_image_name(&name) && (ft.is_file() || path.is_file()) {
            out.insert(rel, (class.to_string(), Loc::File(path)));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tar

const BLOCK: usize = 512;

/// Checks the first block of a file for a tar header and gives a clear error for the usual
/// mistakes (a compressed archive, a zip, some other file). Returns `false` for an archive whose
/// first block is the all-zero end marker (an empty archive).
fn sniff_tar(path: &Path, file: &mut File) -> Result<bool> {
    let mut head = [0u8; BLOCK];
    let mut got = 0;
    while got < BLOCK {
        let n = file
            .read(&mut head[got..])
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let not_tar = |why: &str| {
        Error::Dataset(format!(
            "{} is not a directory or an uncompressed tar archive: {why}",
            path.display()
        ))
    };
    let compressed = [
        (&b"\x1f\x8b"[..], "gzip (decompress it first: gunzip)"),
        (&b"BZh"[..], "bzip2 (decompress it first: bunzip2)"),
        (&b"\xfd7zXZ\x00"[..], "xz (decompress it first: unxz)"),
        (
            &b"\x28\xb5\x2f\xfd"[..],
            "zstd (decompress it first: unzstd)",
        ),
        (
            &b"PK\x03\x04"[..],
            "zip (unpack it to a directory, or repack as tar)",
        ),
    ];
    for (magic, what) in compressed {
        if head[..got].starts_with(magic) {
            return Err(not_tar(&format!("it is compressed with {what}")));
        }
    }
    if got == 0 {
        return Err(not_tar("the file is empty"));
    }
    if got < BLOCK {
        return Err(not_tar(&format!(
            "the file is {got} bytes, shorter than one tar header"
        )));
    }
    if head.iter().all(|&b| b == 0) {
        return Ok(false);
    }
    if !header_checksum_ok(&head) {
        return Err(not_tar(
            "the first block is not a tar header (checksum mismatch)",
        ));
    }
    Ok(true)
}

/// The tar header checksum: the sum of the header's bytes with the checksum field (bytes
/// 148..156) counted as spaces, stored as octal. Some old tars summed signed bytes; accept both.
fn header_checksum_ok(head: &[u8; BLOCK]) -> bool {
    let field = &head[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in head.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    stored == unsigned || stored as i32 == signed
}

/// Splits a tar entry path into its components, dropping `.` and empty ones. `None` for a path
/// that leaves the archive root (`..`).
fn components(path: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(path);
    let mut out = Vec::new();
    for c in text.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c.to_string()),
        }
    }
    Some(out)
}

fn scan_tar(path: &Path, split: Option<&str>) -> Result<(File, Tree)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut tree = Tree::default();
    let mut entries_seen = 0usize;
    if sniff_tar(path, &mut file)? {
        let reader = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut archive = tar::Archive::new(reader);
        let corrupt = |e: io::Error, after: usize| {
            Error::Dataset(format!(
                "tar archive {} is damaged after {after} entries: {e}",
                path.display()
            ))
        };
        for entry in archive.entries_with_seek().map_err(|e| corrupt(e, 0))? {
            let entry = entry.map_err(|e| corrupt(e, entries_seen))?;
            entries_seen += 1;
            let kind = entry.header().entry_type();
            let (is_file, is_dir) = (kind.is_file(), kind.is_dir());
            if !is_file && !is_dir {
                continue; // links, devices, pax/GNU metadata
            }
            let Some(parts) = components(&entry.path_bytes()) else {
                continue;
            };
            if parts.iter().any(|c| is_hidden(c)) {
                continue;
            }
            // Folders: <split>/ and <split>/<class>/ (also implied by any deeper path).
            let folder_depth = if is_dir { parts.len() } else { parts.len() - 1 };
            if folder_depth >= 1 {
                let classes = tree.splits.entry(parts[0].clone()).or_default();
                if folder_depth >= 2 {
                    classes.insert(parts[1].clone());
                }
            }
            if is_file
                && parts.len() >= 3
                && split == Some(parts[0].as_str())
                && is_image_name(&parts[parts.len() - 1])
            {
                let loc = Loc::Span {
                    offset: entry.raw_file_position(),
                    len: entry.size(),
                };
                tree.images.insert(parts.join("/"), (parts[1].clone(), loc));
            }
        }
    }
    if entries_seen == 0 {
        return Err(Error::Dataset(format!(
            "tar archive {} has no entries (no images)",
            path.display()
        )));
    }
    Ok((file, tree))
}

/// Reads `len` bytes at `offset` of a file, without moving a shared cursor (safe from many
/// threads at once).
pub(crate) fn read_span(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "entry too large"))?;
    let mut buf = vec![0u8; len];
    read_exact_at(file, &mut buf, offset)?;
    Ok(buf)
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(not(any(unix, windows)))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        for yes in ["a.jpg", "a.JPG", "b.jpeg", "c.Png", "x.y.jpg"] {
            assert!(is_image_name(yes), "{yes}");
        }
        for no in ["a.gif", "jpg", ".jpg", "a.jpg.txt", "a", "a.webp"] {
            assert!(!is_image_name(no), "{no}");
        }
    }

    #[test]
    fn path_components() {
        assert_eq!(
            components(b"./train/a/x.jpg").unwrap(),
            vec!["train", "a", "x.jpg"]
        );
        assert_eq!(components(b"train/a/").unwrap(), vec!["train", "a"]);
        assert!(components(b"../etc/passwd").is_none());
    }

    #[test]
    fn checksum_of_a_real_header() {
        let mut h = tar::Header::new_ustar();
        h.set_path("train/a/x.jpg").unwrap();
        h.set_size(3);
        h.set_cksum();
        let block: &[u8; BLOCK] = h.as_bytes();
        assert!(header_checksum_ok(block));
        let mut bad = *block;
        bad[0] ^= 1;
        assert!(!header_checksum_ok(&bad));
    }
}
