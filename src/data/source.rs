//! Where a data set's bytes come from: a directory tree, or an uncompressed (ustar/GNU/pax) tar
//! archive that is indexed once (entry offsets) and then read by position, without extraction.
//!
//! Three views of a set, each from either reader, so that the two cannot drift apart:
//! - `scan`: the `Tree` of an ImageFolder set: the split folders, the class folders of each
//!   split and the image files of one split, named by their `/`-separated path inside the set
//!   (`train/001.pink_primrose/image_06734.jpg`);
//! - `list`: the `Listing` of the top level (and of a lone top-level folder), which layout
//!   detection looks at;
//! - `Files`: any file of the set by its relative path, for the layouts that name their images
//!   in list files (Flowers-102, CUB-200-2011, MIT Indoor-67).
//!
//! Each view can start below a wrapper folder (`prefix`, e.g. `CUB_200_2011`), as when a set was
//! packed with its top folder. The layout rules (what counts as an image, hidden files) live here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

/// Whether `path` is a directory (else it is read as a tar); a clear error when it is missing.
fn is_dir_source(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::Dataset(format!(
            "data set path {} does not exist (expected a directory or a .tar file)",
            path.display()
        ))),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Scans a directory or a tar (detected) below the wrapper folder `prefix` (`""`: none) and
/// collects the images of `split` (none when `None`); with the warning about skipped tar entries,
/// if any.
pub(crate) fn scan(
    path: &Path,
    prefix: &str,
    split: Option<&str>,
) -> Result<(Store, Tree, Option<String>)> {
    if is_dir_source(path)? {
        Ok((Store::Dir, scan_dir(&path.join(prefix), split)?, None))
    } else {
        let mut tree = Tree::default();
        let (file, warning) = walk_tar(path, |parts, is_dir, span| {
            if let Some(parts) = strip_prefix(parts, prefix) {
                add_to_tree(&mut tree, parts, is_dir, span, split);
            }
        })?;
        Ok((Store::Tar(file), tree, warning))
    }
}

/// `parts` below the wrapper folder `prefix` (`""`: all of them), or `None` outside it.
fn strip_prefix<'a>(parts: &'a [String], prefix: &str) -> Option<&'a [String]> {
    if prefix.is_empty() {
        Some(parts)
    } else {
        match parts.split_first() {
            Some((first, rest)) if first == prefix => Some(rest),
            _ => None,
        }
    }
}

/// The top level of a set, which layout detection looks at.
#[derive(Default, Debug)]
pub(crate) struct Listing {
    /// Non-hidden names at the root → whether each is a folder.
    pub top: BTreeMap<String, bool>,
    /// When the root holds exactly one folder (files beside it allowed): its name and its
    /// non-hidden contents (name → is a folder).
    pub lone_folder: Option<(String, BTreeMap<String, bool>)>,
}

/// Lists the top level of a directory or a tar (one pass over its headers).
pub(crate) fn list(path: &Path) -> Result<Listing> {
    let mut top = BTreeMap::new();
    let mut inner: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    if is_dir_source(path)? {
        for (name, p, ft) in sorted_entries(path)? {
            top.insert(name, is_dir(&p, ft));
        }
        let folders: Vec<&String> = top.iter().filter(|e| *e.1).map(|e| e.0).collect();
        if let [folder] = folders[..] {
            let children = sorted_entries(&path.join(folder))?
                .into_iter()
                .map(|(name, p, ft)| (name, is_dir(&p, ft)))
                .collect();
            inner.insert(folder.clone(), children);
        }
    } else {
        walk_tar(path, |parts, is_dir, _| {
            // A deeper path implies its folders.
            let folder_at = |depth: usize| is_dir || parts.len() > depth + 1;
            let Some(first) = parts.first() else { return };
            let first_is_dir = folder_at(0);
            *top.entry(first.clone()).or_insert(first_is_dir) |= first_is_dir;
            if let Some(second) = parts.get(1) {
                let second_is_dir = folder_at(1);
                *inner
                    .entry(first.clone())
                    .or_default()
                    .entry(second.clone())
                    .or_insert(second_is_dir) |= second_is_dir;
            }
        })?;
    }
    let folders: Vec<&String> = top.iter().filter(|e| *e.1).map(|e| e.0).collect();
    let lone_folder = match folders[..] {
        [folder] => Some((folder.clone(), inner.remove(folder).unwrap_or_default())),
        _ => None,
    };
    Ok(Listing { top, lone_folder })
}

/// Every file of a set below a wrapper folder, by relative path: the reader behind the layouts
/// whose list files name their images. A directory is looked up on demand; a tar is indexed once.
#[derive(Debug)]
pub(crate) enum Files {
    Dir {
        /// The set's directory joined with the wrapper folder.
        root: PathBuf,
    },
    Tar {
        path: PathBuf,
        prefix: String,
        file: File,
        /// Relative path (below `prefix`) → (offset, length) of the entry's bytes.
        index: HashMap<String, (u64, u64)>,
        /// Entries skipped because their path leaves the archive, said as a warning.
        warning: Option<String>,
    },
}

impl Files {
    /// Opens the set at `path` (a directory or a tar) below the wrapper folder `prefix`.
    pub(crate) fn open(path: &Path, prefix: &str) -> Result<Files> {
        if is_dir_source(path)? {
            return Ok(Files::Dir {
                root: path.join(prefix),
            });
        }
        let mut index = HashMap::new();
        let (file, warning) = walk_tar(path, |parts, is_dir, span| {
            if !is_dir && let Some(rel) = strip_prefix(parts, prefix) {
                index.insert(rel.join("/"), span);
            }
        })?;
        Ok(Files::Tar {
            path: path.to_path_buf(),
            prefix: prefix.to_string(),
            file,
            index,
            warning,
        })
    }

    /// The warning about tar entries skipped because their path leaves the archive, if any.
    pub(crate) fn warning(&self) -> Option<String> {
        match self {
            Files::Dir { .. } => None,
            Files::Tar { warning, .. } => warning.clone(),
        }
    }

    /// Where the file `rel` (`/`-separated, relative to the set) is, or `None` when it is not
    /// there (or its path leaves the set).
    pub(crate) fn loc(&self, rel: &str) -> Option<Loc> {
        let parts = components(rel.as_bytes())?;
        match self {
            Files::Dir { root } => {
                let p = parts.iter().fold(root.clone(), |p, c| p.join(c));
                p.is_file().then_some(Loc::File(p))
            }
            Files::Tar { index, .. } => index
                .get(&parts.join("/"))
                .map(|&(offset, len)| Loc::Span { offset, len }),
        }
    }

    /// The bytes of file `rel`, `None` when it is not there.
    pub(crate) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match (self.loc(rel), self) {
            (None, _) => Ok(None),
            (Some(Loc::File(p)), _) => std::fs::read(&p).map(Some).map_err(|e| Error::io(p, e)),
            (Some(Loc::Span { offset, len }), Files::Tar { file, .. }) => {
                let path = match self {
                    Files::Tar { path, .. } => path.as_path(),
                    Files::Dir { root } => root.as_path(),
                };
                read_span(file, offset, len)
                    .map(Some)
                    .map_err(|e| span_unreadable(path, rel, offset, len, e))
            }
            (Some(Loc::Span { .. }), Files::Dir { .. }) => unreachable!("spans come from a tar"),
        }
    }

    /// How to name file `rel` in a message: its path, or `<tar>/<wrapper>/<rel>` in a tar.
    pub(crate) fn describe(&self, rel: &str) -> String {
        match self {
            Files::Dir { root } => root.join(rel).display().to_string(),
            Files::Tar { path, prefix, .. } if prefix.is_empty() => {
                format!("{}/{rel}", path.display())
            }
            Files::Tar { path, prefix, .. } => format!("{}/{prefix}/{rel}", path.display()),
        }
    }

    /// The store the [`Loc`]s of [`loc`](Self::loc) refer to.
    pub(crate) fn into_store(self) -> Store {
        match self {
            Files::Dir { .. } => Store::Dir,
            Files::Tar { file, .. } => Store::Tar(file),
        }
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

/// The warning that `count` entries of the tar at `path` were skipped because their path
/// leaves the archive.
fn escaping_warning(path: &Path, count: usize, first: &str) -> String {
    format!(
        "{}: {count} entr{} with '..' in the path (first: '{first}') skipped: they would leave \
         the archive",
        path.display(),
        if count == 1 { "y" } else { "ies" }
    )
}

/// Calls `f(components, is_dir, (offset, len))` for every file and folder entry of the tar at
/// `path` whose path stays inside the archive and has no hidden component; returns the opened
/// file (for [`read_span`]) and a warning when entries were skipped because their path leaves
/// the archive. Links, devices and pax/GNU metadata entries are skipped.
///
/// A damaged archive is an [`Error::DamagedArchive`]: a corrupt header, an entry whose data runs
/// past the end of the file, or an end without the end-of-archive marker (the zero block every
/// tar writer ends with), which is how a copy cut short at an entry boundary looks. The tar
/// crate alone takes a file that ends early for a complete archive and drops every later entry.
fn walk_tar(
    path: &Path,
    mut f: impl FnMut(&[String], bool, (u64, u64)),
) -> Result<(File, Option<String>)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut entries_seen = 0usize;
    let mut warning = None;
    if sniff_tar(path, &mut file)? {
        let reader = File::open(path).map_err(|e| Error::io(path, e))?;
        let mut archive = tar::Archive::new(reader);
        let mut last_good: Option<String> = None;
        // Entries whose path leaves the archive (`..`): skipped, and said in one warning.
        let (mut escaping, mut escaped): (Option<String>, usize) = (None, 0);
        // End of the last entry's data, padded to whole blocks: where the next header starts.
        let mut next_header = 0u64;
        let damaged =
            |message: String, offset: u64, last_good: &Option<String>| Error::DamagedArchive {
                path: path.to_path_buf(),
                last_good: last_good.clone(),
                offset,
                message,
            };
        let entries = archive
            .entries_with_seek()
            .map_err(|e| damaged(e.to_string(), 0, &None))?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                damaged(
                    format!("unreadable entry header ({e})"),
                    next_header,
                    &last_good,
                )
            })?;
            entries_seen += 1;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            // Bytes of data stored after the header (a sparse entry's size is its expanded one).
            let stored = if kind == tar::EntryType::GNUSparse {
                entry.header().entry_size().unwrap_or(u64::MAX)
            } else {
                entry.size()
            };
            let start = entry.raw_file_position();
            let end = start.saturating_add(stored);
            if end > file_len {
                return Err(damaged(
                    format!(
                        "entry '{name}' needs {stored} bytes from byte {start} but the file ends \
                         at byte {file_len} (cut short?)"
                    ),
                    file_len,
                    &last_good,
                ));
            }
            next_header = end.div_ceil(BLOCK as u64) * BLOCK as u64;
            last_good = Some(name.clone());
            let (is_file, is_dir) = (kind.is_file(), kind.is_dir());
            if !is_file && !is_dir {
                continue;
            }
            let Some(parts) = components(&entry.path_bytes()) else {
                escaping.get_or_insert(name);
                escaped += 1;
                continue;
            };
            if parts.is_empty() || parts.iter().any(|c| is_hidden(c)) {
                continue;
            }
            f(&parts, is_dir, (start, entry.size()));
        }
        warning = escaping.map(|first| escaping_warning(path, escaped, &first));
        // The iterator stops at a zero block or at the end of the file; only the first is the
        // end of a whole archive.
        if entries_seen > 0 && file_len < next_header.saturating_add(BLOCK as u64) {
            return Err(damaged(
                format!(
                    "the file ends at byte {file_len} without the end-of-archive marker (a zero \
                     block after the last entry): it was cut short"
                ),
                file_len,
                &last_good,
            ));
        }
    }
    if entries_seen == 0 {
        return Err(Error::Dataset(format!(
            "tar archive {} has no entries (no images)",
            path.display()
        )));
    }
    Ok((file, warning))
}

/// Adds one tar entry (its components below the wrapper folder) to an ImageFolder tree.
fn add_to_tree(
    tree: &mut Tree,
    parts: &[String],
    is_dir: bool,
    (offset, len): (u64, u64),
    split: Option<&str>,
) {
    // Folders: <split>/ and <split>/<class>/ (also implied by any deeper path).
    let folder_depth = if is_dir { parts.len() } else { parts.len() - 1 };
    if folder_depth >= 1 {
        let classes = tree.splits.entry(parts[0].clone()).or_default();
        if folder_depth >= 2 {
            classes.insert(parts[1].clone());
        }
    }
    if !is_dir
        && parts.len() >= 3
        && split == Some(parts[0].as_str())
        && is_image_name(&parts[parts.len() - 1])
    {
        let loc = Loc::Span { offset, len };
        tree.images.insert(parts.join("/"), (parts[1].clone(), loc));
    }
}

/// The error for entry `name` of the tar at `path` whose indexed bytes can no longer be read.
pub(crate) fn span_unreadable(
    path: &Path,
    name: &str,
    offset: u64,
    len: u64,
    e: io::Error,
) -> Error {
    Error::DamagedArchive {
        path: path.to_path_buf(),
        last_good: None,
        offset,
        message: format!(
            "entry '{name}' ({len} bytes) can no longer be read ({e}): the archive changed after \
             it was indexed"
        ),
    }
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
