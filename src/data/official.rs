//! The readers of the official layouts of the paper's target sets (docs/DATA.md): Oxford
//! Flowers-102 (`imagelabels.mat`, `setid.mat`), CUB-200-2011 (`images.txt`,
//! `image_class_labels.txt`, `train_test_split.txt`, `classes.txt`) and MIT Indoor-67
//! (`TrainImages.txt`, `TestImages.txt`). Each returns a split's classes and listed images; every
//! list file is checked in full (ids, labels, duplicates), and errors name the file and line.
//! `read_split` checks the split name and finds every listed image (what `ImageFolder` opens).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use super::layout::{
    CUB_CLASSES, CUB_IMAGES, CUB_LABELS, CUB_SPLIT, FLOWERS_LABELS, FLOWERS_SETID, FLOWERS_SPLITS,
    Layout, Listed, MIT_LISTS, Sample, flowers102_classes,
};
use super::mat;
use super::source::{Files, Loc};
use crate::error::{Error, Result};

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

/// The arrays of a .mat file that were read, and the names of the numeric ones skipped.
type MatArrays = (Vec<mat::MatArray>, Vec<String>);

/// The integer values of variable `var` of a .mat file (any numeric class; column-major order,
/// which for the 1×N vectors of Flowers-102 is their order).
fn mat_integers((arrays, skipped): &MatArrays, file: &str, var: &str) -> Result<Vec<i64>> {
    let Some(array) = arrays.iter().find(|a| a.name == var) else {
        let found: Vec<&str> = arrays
            .iter()
            .map(|a| a.name.as_str())
            .chain(skipped.iter().map(String::as_str))
            .collect();
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

/// The numeric variables `wanted` of a .mat file (the others are skipped unread: a file of many
/// large variables cannot exhaust memory).
fn parse_mat(bytes: &[u8], name: &str, wanted: &[&str]) -> Result<MatArrays> {
    mat::parse_only(bytes, wanted).map_err(|e| {
        Error::Dataset(format!(
            "{name} is not a readable MATLAB v5 .mat file ({e}; v7.3/HDF5 files are not supported: \
             re-save with save(..., '-v7'))"
        ))
    })
}

pub(super) fn flowers102(files: &Files, split: &str) -> Result<(Vec<String>, Vec<Listed>)> {
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
    let labels = mat_integers(
        &parse_mat(labels_mat, labels_name, &["labels"])?,
        labels_name,
        "labels",
    )?;
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
    let vars: Vec<&str> = FLOWERS_SPLITS.iter().map(|(_, var)| *var).collect();
    let setid = parse_mat(setid_mat, setid_name, &vars)?;
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

pub(super) fn cub200(files: &Files, split: &str) -> Result<(Vec<String>, Vec<Listed>)> {
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

pub(super) fn mit67(files: &Files, split: &str) -> Result<(Vec<String>, Vec<Listed>)> {
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
