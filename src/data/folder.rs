//! `ImageFolder`: one split of an image data set, read from a directory or straight from an
//! uncompressed tar archive, in any [`Layout`]: `<split>/<class>/<image>` (the layout this type is
//! named after, whose rules follow) or an official one (Flowers-102, CUB-200-2011, MIT Indoor-67,
//! read by `data/official.rs`). Either way a split is a class list, samples and `read(i)`.
//!
//! Labels: class index = position of the class folder name in the byte-sorted list of the
//! split's class folders. Every split of a set that has class folders must have the same list
//! (checked on open), so a label means the same class in train, val and test. Only image files
//! count (`.jpg`, `.jpeg`, `.png`, any case); other files, hidden files and folders (a name
//! starting with `.`) are skipped; images in sub-folders of a class folder belong to that class.
//! A set packed with one wrapper folder around its splits (`flowers/train/...`, the wrapper not
//! itself named like a split) is read as if the wrapper were not there.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

pub use super::layout::Sample;
use super::layout::{self, Layout};
use super::official;
use super::source::{self, Files, Loc, Store};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;

/// One split of an image data set. Samples are sorted by name.
pub struct ImageFolder {
    /// Class names, index = label.
    pub classes: Vec<String>,
    /// Every image of the split, sorted by name.
    pub samples: Vec<Sample>,
    path: PathBuf,
    split: String,
    layout: Layout,
    store: Store,
    locs: Vec<Loc>,
    warning: Option<String>,
}

impl ImageFolder {
    /// What was skipped while opening the set that the user should hear of (tar entries whose
    /// path leaves the archive), for the caller to report.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Opens split `split` of the set at `path` in the ImageFolder layout: the shortcut for
    /// [`open_layout`](Self::open_layout) with [`Layout::ImageFolder`].
    pub fn open(path: &Path, split: &str) -> Result<ImageFolder> {
        Self::open_layout(path, Layout::ImageFolder, split)
    }

    /// Opens split `split` of the set at `path`, a directory or a tar file (detected from the
    /// file; read straight from the tar, no extraction), laid out as `layout` (`Auto`: detected,
    /// see [`Layout::detect`]). A tar is indexed once (one pass over its headers, after one
    /// for the layout); afterwards [`read`](Self::read) is one positional read.
    pub fn open_layout(path: &Path, layout: Layout, split: &str) -> Result<ImageFolder> {
        let (layout, prefix) = layout::locate(path, layout)?;
        if layout != Layout::ImageFolder {
            let files = Files::open(path, &prefix)?;
            let set = official::read_split(layout, &files, path, split)?;
            let (samples, locs) = set.samples.into_iter().unzip();
            let warning = files.warning();
            return Ok(ImageFolder {
                classes: set.classes,
                samples,
                path: path.to_path_buf(),
                split: split.to_string(),
                layout,
                store: files.into_store(),
                locs,
                warning,
            });
        }
        let (store, tree, warning) = source::scan(path, &prefix, Some(split))?;
        let Some(classes) = tree.splits.get(split) else {
            return Err(Error::Dataset(if tree.splits.is_empty() {
                format!(
                    "split '{split}' not found in {}: it has no split folders at all (expected \
                     the layout <split>/<class>/<image>, e.g. train/cat/001.jpg)",
                    path.display()
                )
            } else {
                format!(
                    "split '{split}' not found in {}; available splits: {}",
                    path.display(),
                    join(tree.splits.keys())
                )
            }));
        };
        if classes.is_empty() {
            return Err(Error::Dataset(format!(
                "split '{split}' of {} has no class folders (expected {split}/<class>/<image>)",
                path.display()
            )));
        }
        check_same_classes(path, split, classes, &tree.splits)?;

        let classes: Vec<String> = classes.iter().cloned().collect();
        let mut counts = vec![0usize; classes.len()];
        let mut samples = Vec::with_capacity(tree.images.len());
        let mut locs = Vec::with_capacity(tree.images.len());
        for (name, (class, loc)) in tree.images {
            let label = classes
                .binary_search(&class)
                .expect("every image's class folder is in the class list");
            counts[label] += 1;
            samples.push(Sample { name, label });
            locs.push(loc);
        }
        if samples.is_empty() {
            return Err(Error::Dataset(format!(
                "split '{split}' of {} has {} class folder{} but no images (.jpg/.jpeg/.png)",
                path.display(),
                classes.len(),
                if classes.len() > 1 { "s" } else { "" },
            )));
        }
        let empty: Vec<&String> = classes
            .iter()
            .zip(&counts)
            .filter(|&(_, &n)| n == 0)
            .map(|(c, _)| c)
            .collect();
        if !empty.is_empty() {
            return Err(Error::Dataset(format!(
                "{} of {}: class folder{} {} ha{} no images (.jpg/.jpeg/.png)",
                split,
                path.display(),
                if empty.len() > 1 { "s" } else { "" },
                join(empty.iter().take(10).map(|c| format!("'{split}/{c}'"))),
                if empty.len() > 1 { "ve" } else { "s" },
            )));
        }
        Ok(ImageFolder {
            classes,
            samples,
            path: path.to_path_buf(),
            split: split.to_string(),
            layout,
            store,
            locs,
            warning,
        })
    }

    /// The split folders present in the ImageFolder set at `path`, sorted (any layout:
    /// [`Layout::splits`]).
    pub fn splits(path: &Path) -> Result<Vec<String>> {
        Layout::ImageFolder.splits(path)
    }

    /// Images in the split.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the split has no images.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The raw encoded bytes (JPEG/PNG) of sample `i`.
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        let Some(loc) = self.locs.get(i) else {
            return Err(Error::Dataset(format!(
                "sample index {i} out of range: split '{}' of {} has {} images",
                self.split,
                self.path.display(),
                self.len()
            )));
        };
        match (loc, &self.store) {
            (Loc::File(p), _) => std::fs::read(p).map_err(|e| Error::io(p, e)),
            (Loc::Span { offset, len }, Store::Tar(file)) => source::read_span(file, *offset, *len)
                .map_err(|e| {
                    source::span_unreadable(&self.path, &self.samples[i].name, *offset, *len, e)
                }),
            (Loc::Span { .. }, Store::Dir) => unreachable!("tar spans come with a tar store"),
        }
    }

    /// The file that holds sample `i` when the set is a directory; `None` for a tar entry (whose
    /// bytes [`read`](Self::read) returns) or an index out of range.
    pub fn file_path(&self, i: usize) -> Option<&Path> {
        match self.locs.get(i) {
            Some(Loc::File(p)) => Some(p),
            _ => None,
        }
    }

    /// The directory or tar file the set was opened from.
    pub fn source(&self) -> &Path {
        &self.path
    }

    /// The split this folder holds (`train`, `val`, ...).
    pub fn split(&self) -> &str {
        &self.split
    }

    /// The layout the set was read in (never `Auto`).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of images per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for s in &self.samples {
            counts[s.label] += 1;
        }
        counts
    }
}

impl fmt::Debug for ImageFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageFolder")
            .field("source", &self.path)
            .field("split", &self.split)
            .field("layout", &self.layout)
            .field("tar", &matches!(self.store, Store::Tar(_)))
            .field("classes", &self.classes.len())
            .field("samples", &self.samples.len())
            .finish()
    }
}

fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every split with class folders must have the same class list as `split`.
fn check_same_classes(
    path: &Path,
    split: &str,
    classes: &BTreeSet<String>,
    splits: &std::collections::BTreeMap<String, BTreeSet<String>>,
) -> Result<()> {
    for (other, other_classes) in splits {
        if other == split || other_classes.is_empty() || other_classes == classes {
            continue;
        }
        let only_here: Vec<&String> = classes.difference(other_classes).collect();
        let only_there: Vec<&String> = other_classes.difference(classes).collect();
        let list = |v: &[&String]| {
            let mut s = join(v.iter().take(5));
            if v.len() > 5 {
                s.push_str(&format!(", ... ({} in all)", v.len()));
            }
            if v.is_empty() { "none".to_string() } else { s }
        };
        return Err(Error::Dataset(format!(
            "class lists differ between splits of {}: '{split}' has {} classes, '{other}' has {}; \
             only in '{split}': {}; only in '{other}': {} (labels would not match across splits)",
            path.display(),
            classes.len(),
            other_classes.len(),
            list(&only_here),
            list(&only_there),
        )));
    }
    Ok(())
}

/// Fingerprint of one split of a data set: its class names and every sample's name and label,
/// plus what identifies each sample's bytes. A directory set adds its canonical path, size and
/// modification time, and each file's size and modification time (reading every image would cost
/// more than the features it guards); a tar set hashes each sample's content instead and nothing
/// about the tar file itself, so a tar copied, moved or re-mounted with new time stamps keeps its
/// caches (the teacher's targets cost minutes), while a tar rewritten with other bytes — even with
/// the same size and time stamps — is a different set.
pub fn data_fingerprint(set: &ImageFolder) -> Result<Fingerprint> {
    let path = set.source();
    let mut f = Fingerprint::default().str(set.split());
    let stamp = |f: Fingerprint, p: &Path| -> Result<Fingerprint> {
        let m = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let nanos = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(f.u64(m.len()).u64(nanos))
    };
    if path.is_dir() {
        let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        f = stamp(f.str(&canon.to_string_lossy()), path)?;
    }
    for c in &set.classes {
        f = f.str(c);
    }
    for (i, s) in set.samples.iter().enumerate() {
        f = f.str(&s.name).u64(s.label as u64);
        f = match set.file_path(i) {
            Some(p) => stamp(f, p)?,
            None => f.bytes(&set.read(i)?),
        };
    }
    Ok(f)
}
