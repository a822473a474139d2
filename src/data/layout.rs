//! Data set layouts: how the images, classes and splits of a set are laid out on disk, their
//! detection, and the readers of the official layouts of the paper's target sets.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::folder::Sample;
use super::mat;
use super::source::{self, Files, Listing, Loc};
use crate::error::{Error, Result};

/// How a data set is laid out. `Auto` detects it from the files (see [`Layout::detect`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, Serialize, Deserialize,
)]
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
const FLOWERS_SPLITS: [(&str, &str); 3] = [("train", "trnid"), ("val", "valid"), ("test", "tstid")];
const FLOWERS_LABELS: &str = "imagelabels.mat";
const FLOWERS_SETID: &str = "setid.mat";
const CUB_IMAGES: &str = "images.txt";
const CUB_LABELS: &str = "image_class_labels.txt";
const CUB_SPLIT: &str = "train_test_split.txt";
const CUB_CLASSES: &str = "classes.txt";
const MIT_LISTS: [(&str, &str); 2] = [("train", "TrainImages.txt"), ("test", "TestImages.txt")];

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

    fn fixed_splits(self) -> &'static [&'static str] {
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
    fn expected(self) -> &'static str {
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
                 (found: {}). Expected one of: {}; or pass --layout",
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

/// One split of an official layout: the class list (index = label) and the samples, sorted by
/// name, with where their bytes are.
pub(crate) struct SplitSamples {
    pub classes: Vec<String>,
    pub samples: Vec<(Sample, Loc)>,
}

/// Reads split `split` of the set at `path` (for messages) in the official layout `layout`.
pub(crate) fn read_split(
    layout: Layout,
    files: &Files,
    path: &Path,
    split: &str,
) -> Result<SplitSamples> {
    let splits = layout.fixed_splits();
    if !splits.contains(&split) {
        let no_val = if split.starts_with("val") && layout != Layout::Flowers102 {
            format!(
                " ({layout} has no validation split: hold out part of train, or validate on test)"
            )
        } else {
            String::new()
        };
        return Err(Error::Dataset(format!(
            "split '{split}' not found in {} ({layout} layout); available splits: {}{no_val}",
            path.display(),
            splits.join(", ")
        )));
    }
    let (classes, listed) = match layout {
        Layout::Flowers102 => flowers102(files, split)?,
        Layout::Cub200 => cub200(files, split)?,
        Layout::Mit67 => mit67(files, split)?,
        Layout::Auto | Layout::ImageFolder => unreachable!("official layouts only"),
    };
    if listed.is_empty() {
        return Err(Error::Dataset(format!(
            "split '{split}' of {} ({layout} layout) is empty: its list names no images",
            path.display()
        )));
    }
    let mut samples = Vec::with_capacity(listed.len());
    for Listed {
        name,
        label,
        listed_in,
    } in listed
    {
        let Some(loc) = files.loc(&name) else {
            return Err(Error::Dataset(format!(
                "{} does not exist (listed in {listed_in})",
                files.describe(&name)
            )));
        };
        samples.push((Sample { name, label }, loc));
    }
    samples.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    Ok(SplitSamples { classes, samples })
}

/// An image named by a list file: its path in the set, its label, and where it was listed.
struct Listed {
    name: String,
    label: usize,
    listed_in: String,
}

fn missing(files: &Files, rel: &str, layout: Layout) -> Error {
    Error::Dataset(format!(
        "{} is missing (the {layout} layout needs {})",
        files.describe(rel),
        layout.expected()
    ))
}

fn read_required(files: &Files, rel: &str, layout: Layout) -> Result<Vec<u8>> {
    files.read(rel)?.ok_or_else(|| missing(files, rel, layout))
}

// ---------------------------------------------------------------------------------------------
// Flowers-102

/// The integer values of variable `var` of a .mat file (any numeric class; column-major order,
/// which for the 1×N vectors of Flowers-102 is their order).
fn mat_integers(arrays: &[mat::MatArray], file: &str, var: &str) -> Result<Vec<i64>> {
    let Some(array) = arrays.iter().find(|a| a.name == var) else {
        let found: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
        return Err(Error::Dataset(format!(
            "{file} has no numeric variable '{var}' (found: {})",
            if found.is_empty() {
                "none".to_string()
            } else {
                found.join(", ")
            }
        )));
    };
    let values = &array.values;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(Error::Dataset(format!(
                    "{file}: {var}({}) = {v} is not an integer",
                    i + 1
                )))
            }
        })
        .collect()
}

fn parse_mat(bytes: &[u8], name: &str) -> Result<Vec<mat::MatArray>> {
    mat::parse(bytes).map_err(|e| {
        Error::Dataset(format!(
            "{name} is not a readable MATLAB v5 .mat file ({e}; v7.3/HDF5 files are not supported: \
             re-save with save(..., '-v7'))"
        ))
    })
}

fn flowers102(files: &Files, split: &str) -> Result<(Vec<String>, Vec<Listed>)> {
    let labels = read_required(files, FLOWERS_LABELS, Layout::Flowers102)?;
    let setid = read_required(files, FLOWERS_SETID, Layout::Flowers102)?;
    let setid_name = files.describe(FLOWERS_SETID);
    let listed_in = match FLOWERS_SPLITS.iter().find(|(name, _)| *name == split) {
        Some((_, var)) => format!("{setid_name}, '{var}'"),
        None => setid_name.clone(),
    };
    let images = flowers102_split(
        &labels,
        &files.describe(FLOWERS_LABELS),
        &setid,
        &setid_name,
        split,
    )?;
    let out = images
        .into_iter()
        .map(|(name, label)| Listed {
            name,
            label,
            listed_in: listed_in.clone(),
        })
        .collect();
    Ok((flowers102_classes(), out))
}

/// Split `split` (`train`, `val`, `test`) of Flowers-102 from the bytes of its `imagelabels.mat`
/// and `setid.mat` (called `labels_name` and `setid_name` in errors): each image's path in the
/// set (`jpg/image_NNNNN.jpg`) and its 0-based label, in list order. Both files are checked whole
/// (every label in range, every split non-empty, every id labelled and listed once), whichever
/// split is asked for. What [`Layout::Flowers102`] reads.
pub fn flowers102_split(
    labels_mat: &[u8],
    labels_name: &str,
    setid_mat: &[u8],
    setid_name: &str,
    split: &str,
) -> Result<Vec<(String, usize)>> {
    let classes = flowers102_classes();
    let labels = mat_integers(&parse_mat(labels_mat, labels_name)?, labels_name, "labels")?;
    for (i, &l) in labels.iter().enumerate() {
        if !(1..=classes.len() as i64).contains(&l) {
            return Err(Error::Dataset(format!(
                "{labels_name}: labels({}) = {l} is out of range 1..={} (image {})",
                i + 1,
                classes.len(),
                image_name(i as i64 + 1)
            )));
        }
    }
    let setid = parse_mat(setid_mat, setid_name)?;
    // Every split is checked, so that a broken file is reported whichever split is opened.
    let mut seen: HashMap<i64, &str> = HashMap::new();
    let mut out = Vec::new();
    for (name, var) in FLOWERS_SPLITS {
        let ids = mat_integers(&setid, setid_name, var)?;
        if ids.is_empty() {
            return Err(Error::Dataset(format!(
                "{setid_name}: '{var}' (split '{name}') is empty"
            )));
        }
        for (i, &id) in ids.iter().enumerate() {
            if !(1..=labels.len() as i64).contains(&id) {
                return Err(Error::Dataset(format!(
                    "{setid_name}: {var}({}) = image id {id} has no label in {labels_name} \
                     (it has {} labels, ids 1..={})",
                    i + 1,
                    labels.len(),
                    labels.len()
                )));
            }
            if let Some(other) = seen.insert(id, var) {
                return Err(Error::Dataset(format!(
                    "{setid_name}: image id {id} is listed twice (in '{other}' and '{var}')"
                )));
            }
            if name == split {
                out.push((image_name(id), labels[id as usize - 1] as usize - 1));
            }
        }
    }
    Ok(out)
}

/// The official file name of Flowers-102 image `id` (1-based).
fn image_name(id: i64) -> String {
    format!("jpg/image_{id:05}.jpg")
}

// ---------------------------------------------------------------------------------------------
// Text list files (CUB-200-2011, MIT Indoor-67)

/// The non-empty lines of a text file with their 1-based line numbers.
fn text_lines(files: &Files, rel: &str, layout: Layout) -> Result<Vec<(usize, String)>> {
    let bytes = read_required(files, rel, layout)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::Dataset(format!("{} is not UTF-8 text: {e}", files.describe(rel))))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

/// A CUB list file `id value` per line, by id; errors on a malformed line or a duplicate id.
/// Values keep their line number.
fn id_table(files: &Files, rel: &str) -> Result<BTreeMap<u64, (usize, String)>> {
    let name = files.describe(rel);
    let mut out: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for (line, text) in text_lines(files, rel, Layout::Cub200)? {
        let parsed = text
            .split_once(char::is_whitespace)
            .and_then(|(id, rest)| Some((id.parse::<u64>().ok()?, rest.trim())));
        let Some((id, value)) = parsed.filter(|(_, v)| !v.is_empty()) else {
            return Err(Error::Dataset(format!(
                "{name} line {line}: expected '<id> <value>', got '{text}'"
            )));
        };
        if let Some((first, _)) = out.get(&id) {
            return Err(Error::Dataset(format!(
                "{name} line {line}: duplicate id {id} (first on line {first})"
            )));
        }
        out.insert(id, (line, value.to_string()));
    }
    Ok(out)
}

fn cub200(files: &Files, split: &str) -> Result<(Vec<String>, Vec<Listed>)> {
    let class_table = id_table(files, CUB_CLASSES)?;
    let classes_name = files.describe(CUB_CLASSES);
    for (expect, (&id, (line, _))) in (1u64..).zip(&class_table) {
        if id != expect {
            return Err(Error::Dataset(format!(
                "{classes_name} line {line}: class ids must be 1, 2, 3, …; id {expect} is missing \
                 (next is {id})"
            )));
        }
    }
    if class_table.is_empty() {
        return Err(Error::Dataset(format!("{classes_name} lists no classes")));
    }
    let classes: Vec<String> = class_table.into_values().map(|(_, name)| name).collect();

    let images = id_table(files, CUB_IMAGES)?;
    let labels = id_table(files, CUB_LABELS)?;
    let is_train = id_table(files, CUB_SPLIT)?;
    let (images_name, labels_name, split_name) = (
        files.describe(CUB_IMAGES),
        files.describe(CUB_LABELS),
        files.describe(CUB_SPLIT),
    );
    // Ids of the two per-image tables must be those of images.txt, both ways.
    for (table, table_name) in [(&labels, &labels_name), (&is_train, &split_name)] {
        if let Some((id, (line, _))) = table.iter().find(|(id, _)| !images.contains_key(id)) {
            return Err(Error::Dataset(format!(
                "{table_name} line {line}: image id {id} is not in {images_name}"
            )));
        }
        if let Some((id, (line, _))) = images.iter().find(|(id, _)| !table.contains_key(id)) {
            return Err(Error::Dataset(format!(
                "image id {id} ({images_name} line {line}) has no entry in {table_name}"
            )));
        }
    }
    let want_train = split == "train";
    let mut out = Vec::new();
    for (id, (_, path)) in &images {
        let (line, label) = &labels[id];
        let label = match label.parse::<usize>() {
            Ok(l) if (1..=classes.len()).contains(&l) => l - 1,
            _ => {
                return Err(Error::Dataset(format!(
                    "{labels_name} line {line}: label '{label}' is out of range 1..={} \
                     ({classes_name} has {} classes)",
                    classes.len(),
                    classes.len()
                )));
            }
        };
        let (line, flag) = &is_train[id];
        let train = match flag.as_str() {
            "1" => true,
            "0" => false,
            _ => {
                return Err(Error::Dataset(format!(
                    "{split_name} line {line}: is_training_image must be 0 or 1, got '{flag}'"
                )));
            }
        };
        if train == want_train {
            out.push(Listed {
                name: format!("images/{path}"),
                label,
                listed_in: format!("{images_name} line {}", images[id].0),
            });
        }
    }
    Ok((classes, out))
}

fn mit67(files: &Files, split: &str) -> Result<(Vec<String>, Vec<Listed>)> {
    // Both lists are read whatever the split, so that the class list (the sorted union of the
    // classes they name) is the same for train and test.
    let mut first_seen: HashMap<String, (String, usize)> = HashMap::new();
    let mut classes = BTreeSet::new();
    let mut wanted = Vec::new(); // (class, path, where listed) of the requested split
    for (name, rel) in MIT_LISTS {
        let file_name = files.describe(rel);
        for (line, text) in text_lines(files, rel, Layout::Mit67)? {
            let path = text.replace('\\', "/");
            let Some((class, _)) = path
                .split_once('/')
                .filter(|(c, f)| !c.is_empty() && !f.is_empty())
            else {
                return Err(Error::Dataset(format!(
                    "{file_name} line {line}: expected '<class>/<image>', got '{text}'"
                )));
            };
            let class = class.to_string();
            if let Some((other, other_line)) =
                first_seen.insert(path.clone(), (file_name.clone(), line))
            {
                return Err(Error::Dataset(format!(
                    "{file_name} line {line}: '{path}' is listed twice (also {other} line \
                     {other_line})"
                )));
            }
            classes.insert(class.clone());
            if name == split {
                wanted.push((class, path, format!("{file_name} line {line}")));
            }
        }
    }
    let classes: Vec<String> = classes.into_iter().collect();
    let out = wanted
        .into_iter()
        .map(|(class, path, listed_in)| Listed {
            name: format!("Images/{path}"),
            label: classes
                .binary_search(&class)
                .expect("every listed class is in the class list"),
            listed_in,
        })
        .collect();
    Ok((classes, out))
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
