//! Data set layouts: how the images, classes and splits of a set are laid out on disk, and their
//! detection. The readers of the official layouts of the paper's target sets are
//! `data/official.rs`.
//!
//! - [`Layout::ImageFolder`]: `<split>/<class>/<image>` (read by [`ImageFolder`](super::ImageFolder)).
//! - [`Layout::Flowers102`]: the Oxford download: `jpg/image_00001.jpg`…, `imagelabels.mat`
//!   (`labels`, 1-based classes), `setid.mat` (`trnid`, `valid`, `tstid`: 1-based image ids).
//! - [`Layout::Cub200`]: CUB-200-2011: `images.txt`, `image_class_labels.txt`,
//!   `train_test_split.txt`, `classes.txt`, images under `images/`.
//! - [`Layout::Mit67`]: MIT Indoor-67: `Images/<class>/<image>`, `TrainImages.txt`,
//!   `TestImages.txt`.
//!
//! Each can be a directory or an uncompressed tar, at its root or under one wrapper folder
//! (`CUB_200_2011/images.txt`). The list files are checked in full when a split is opened (ids,
//! labels, duplicates); the images of the opened split must exist. Errors name the file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::source::{self, Listing};
use crate::error::{Error, Result};

/// How a data set is laid out. `Auto` detects it from the files (see [`Layout::detect`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Detect from the files.
    #[default]
    Auto,
    /// `<split>/<class>/<image>`; splits are the top-level folders.
    ImageFolder,
    /// Oxford Flowers-102 (`jpg/`, `imagelabels.mat`, `setid.mat`); splits train, val, test.
    Flowers102,
    /// CUB-200-2011 (`images.txt`, `image_class_labels.txt`, `train_test_split.txt`,
    /// `classes.txt`, `images/`); splits train, test.
    Cub200,
    /// MIT Indoor-67 (`Images/<class>/`, `TrainImages.txt`, `TestImages.txt`); splits train, test.
    Mit67,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Auto => "auto",
            Layout::ImageFolder => "ImageFolder",
            Layout::Flowers102 => "Flowers-102",
            Layout::Cub200 => "CUB-200-2011",
            Layout::Mit67 => "MIT Indoor-67",
        })
    }
}

/// The splits of the official layouts, and what defines each.
pub(super) const FLOWERS_SPLITS: [(&str, &str); 3] =
    [("train", "trnid"), ("val", "valid"), ("test", "tstid")];
pub(super) const FLOWERS_LABELS: &str = "imagelabels.mat";
pub(super) const FLOWERS_SETID: &str = "setid.mat";
pub(super) const CUB_IMAGES: &str = "images.txt";
pub(super) const CUB_LABELS: &str = "image_class_labels.txt";
pub(super) const CUB_SPLIT: &str = "train_test_split.txt";
pub(super) const CUB_CLASSES: &str = "classes.txt";
pub(super) const MIT_LISTS: [(&str, &str); 2] =
    [("train", "TrainImages.txt"), ("test", "TestImages.txt")];

/// The 102 Flowers-102 class names in label order (label 1 first), as `NNN.name`: the same
/// names as the class folders of an ImageFolder copy (`../shared/data/flowers102-64.tar`), so a
/// head trained on either layout names classes the same way. The official download has none.
pub fn flowers102_classes() -> Vec<String> {
    include_str!("flowers102-classes.txt")
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, name)| name.trim().to_string()))
        .collect()
}

impl Layout {
    /// The concrete layouts, in detection order.
    pub const ALL: [Layout; 4] = [
        Layout::ImageFolder,
        Layout::Flowers102,
        Layout::Cub200,
        Layout::Mit67,
    ];

    /// Detects the layout of the set at `path` (a directory or a tar), looking at its top level
    /// and, when that holds a single folder, inside it:
    /// `imagelabels.mat` or `setid.mat` → Flowers-102; `images.txt`, `image_class_labels.txt`
    /// or `train_test_split.txt` → CUB-200-2011; `TrainImages.txt` or `TestImages.txt` →
    /// MIT Indoor-67; otherwise any folder → ImageFolder. Never returns `Auto`.
    pub fn detect(path: &Path) -> Result<Layout> {
        Ok(locate(path, Layout::Auto)?.0)
    }

    /// `self`, or the detected layout for `Auto`.
    pub fn resolve(self, path: &Path) -> Result<Layout> {
        match self {
            Layout::Auto => Layout::detect(path),
            l => Ok(l),
        }
    }

    /// The splits of the set at `path` in this layout (`Auto`: detected): the split folders
    /// (sorted) for ImageFolder, the fixed splits of an official layout (train, val, test for
    /// Flowers-102; train, test for CUB-200-2011 and MIT Indoor-67).
    pub fn splits(self, path: &Path) -> Result<Vec<String>> {
        let (layout, prefix) = locate(path, self)?;
        Ok(match layout {
            Layout::ImageFolder => source::scan(path, &prefix, None)?
                .1
                .splits
                .into_keys()
                .collect(),
            l => l.fixed_splits().iter().map(|s| s.to_string()).collect(),
        })
    }

    pub(super) fn fixed_splits(self) -> &'static [&'static str] {
        match self {
            Layout::Flowers102 => &["train", "val", "test"],
            Layout::Cub200 | Layout::Mit67 => &["train", "test"],
            Layout::Auto | Layout::ImageFolder => &[],
        }
    }

    /// The files that mark an official layout (any one of them is enough for detection).
    fn markers(self) -> &'static [&'static str] {
        match self {
            Layout::Flowers102 => &[FLOWERS_LABELS, FLOWERS_SETID],
            Layout::Cub200 => &[CUB_IMAGES, CUB_LABELS, CUB_SPLIT],
            Layout::Mit67 => &["TrainImages.txt", "TestImages.txt"],
            Layout::Auto | Layout::ImageFolder => &[],
        }
    }

    /// What the layout looks like, for messages.
    pub(super) fn expected(self) -> &'static str {
        match self {
            Layout::Auto | Layout::ImageFolder => "<split>/<class>/<image>",
            Layout::Flowers102 => "jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat",
            Layout::Cub200 => {
                "images/, images.txt, image_class_labels.txt, train_test_split.txt, classes.txt"
            }
            Layout::Mit67 => "Images/<class>/<image>, TrainImages.txt, TestImages.txt",
        }
    }
}

/// The official layout whose marker files are among `names`.
fn marked(names: &BTreeMap<String, bool>) -> Option<Layout> {
    Layout::ALL.into_iter().find(|l| {
        l.markers()
            .iter()
            .any(|m| names.get(*m).is_some_and(|&is_dir| !is_dir))
    })
}

/// Split folder names that tell a wrapper folder from a lone split.
const SPLIT_NAMES: [&str; 5] = ["train", "val", "valid", "validation", "test"];

/// Whether the lone top-level folder `name` holding `inner` wraps an ImageFolder set: it is not
/// itself named like a split and holds a `train`, `val`(`id`/`idation`) or `test` folder.
fn wraps_image_folder(name: &str, inner: &BTreeMap<String, bool>) -> bool {
    !SPLIT_NAMES.contains(&name)
        && SPLIT_NAMES
            .iter()
            .any(|s| inner.get(*s).is_some_and(|&is_dir| is_dir))
}

/// The concrete layout of the set at `path` (`layout`, or detected for `Auto`) and the wrapper
/// folder its files are under (`""`: none).
pub(crate) fn locate(path: &Path, layout: Layout) -> Result<(Layout, String)> {
    let listing = source::list(path)?;
    let Listing { top, lone_folder } = &listing;
    let wrapped = |want: &dyn Fn(&str, &BTreeMap<String, bool>) -> bool| {
        lone_folder
            .as_ref()
            .filter(|(name, inner)| want(name, inner))
            .map(|(name, _)| name.clone())
    };
    match layout {
        Layout::Auto => {
            if let Some(l) = marked(top) {
                return Ok((l, String::new()));
            }
            if let Some((name, inner)) = lone_folder {
                if let Some(l) = marked(inner) {
                    return Ok((l, name.clone()));
                }
                if wraps_image_folder(name, inner) {
                    return Ok((Layout::ImageFolder, name.clone()));
                }
            }
            if top.values().any(|&is_dir| is_dir) {
                return Ok((Layout::ImageFolder, String::new()));
            }
            let found: Vec<&str> = top.keys().take(10).map(String::as_str).collect();
            Err(Error::Dataset(format!(
                "cannot detect the layout of {}: no folders and no list files at its top level \
                 (found: {}). Expected one of: {}; or pass `layout`",
                path.display(),
                if found.is_empty() {
                    "nothing".to_string()
                } else {
                    found.join(", ")
                },
                Layout::ALL
                    .iter()
                    .map(|l| format!("{l} ({})", l.expected()))
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
        Layout::ImageFolder => Ok((
            layout,
            wrapped(&|name, inner| marked(top).is_none() && wraps_image_folder(name, inner))
                .unwrap_or_default(),
        )),
        l => {
            let prefix = if marked(top) == Some(l) {
                None
            } else {
                wrapped(&|_, inner| marked(inner) == Some(l))
            };
            Ok((l, prefix.unwrap_or_default()))
        }
    }
}

/// One image of a split: its path inside the set and its class index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sample {
    /// `/`-separated path inside the set (below a wrapper folder, if any), e.g.
    /// `train/001.pink_primrose/image_06734.jpg` or `jpg/image_06734.jpg` (Flowers-102).
    pub name: String,
    /// Class index into the split's classes.
    pub label: usize,
}

/// An image named by a list file: its path in the set, its label, and where it was listed.
pub(super) struct Listed {
    pub(super) name: String,
    pub(super) label: usize,
    pub(super) listed_in: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flowers_class_names_are_in_label_order() {
        let classes = flowers102_classes();
        assert_eq!(classes.len(), 102);
        for (i, c) in classes.iter().enumerate() {
            assert!(c.starts_with(&format!("{:03}.", i + 1)), "{c}");
        }
        let mut sorted = classes.clone();
        sorted.sort();
        assert_eq!(
            sorted, classes,
            "byte order = label order, as ImageFolder sorts"
        );
    }

    #[test]
    fn split_names_guard_the_image_folder_wrapper() {
        let inner: BTreeMap<String, bool> = [("train".to_string(), true)].into();
        assert!(wraps_image_folder("flowers", &inner));
        assert!(!wraps_image_folder("train", &inner));
        let files: BTreeMap<String, bool> = [("train".to_string(), false)].into();
        assert!(!wraps_image_folder("flowers", &files));
    }
}
