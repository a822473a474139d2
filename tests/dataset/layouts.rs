//! Data set layouts: detection, the official Flowers-102 / CUB-200-2011 / MIT Indoor-67 readers
//! (directory, tar, and under a wrapper folder), the .mat files (plain and miCOMPRESSED, written
//! here by hand and read by `data::mat`), and the error for each kind of broken set.

use crate::common;

use crate::data_fixtures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bnn_transfer::data::{
    ImageFolder, Layout, Loader, LoaderConfig, Preprocess, flowers102_classes,
};
use data_fixtures::*;

fn floats(v: &[u32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A distinct small JPEG per index.
fn image(i: usize) -> Vec<u8> {
    let i = i as u8;
    jpeg(&solid(
        6 + u32::from(i % 3),
        5,
        [i.wrapping_mul(37), 200 - i, 9],
    ))
}

/// Flowers-102: 12 images; labels (1-based) and the official split variables.
const FL_LABELS: [u32; 12] = [3, 1, 102, 3, 1, 2, 2, 102, 1, 3, 2, 57];
const FL_TRN: [u32; 4] = [5, 1, 9, 3];
const FL_VAL: [u32; 3] = [12, 2, 7];
const FL_TST: [u32; 5] = [4, 6, 8, 10, 11];

fn flowers_mats(compressed: bool, labels: &[f64], sets: [&[u32]; 3]) -> [Entry; 2] {
    [
        file(
            "imagelabels.mat",
            mat_file(&[("labels", labels.to_vec(), Storage::U8)], compressed),
        ),
        file(
            "setid.mat",
            mat_file(
                &[
                    ("trnid", floats(sets[0]), Storage::U16),
                    ("valid", floats(sets[1]), Storage::Double),
                    ("tstid", floats(sets[2]), Storage::U16),
                ],
                compressed,
            ),
        ),
    ]
}

fn flowers_images() -> Vec<Entry> {
    (1..=FL_LABELS.len())
        .map(|id| file(&format!("jpg/image_{id:05}.jpg"), image(id)))
        .collect()
}

fn flowers_set(compressed: bool) -> Vec<Entry> {
    let mut e = flowers_images();
    e.extend(flowers_mats(
        compressed,
        &floats(&FL_LABELS),
        [&FL_TRN, &FL_VAL, &FL_TST],
    ));
    e
}

/// CUB-200-2011: 3 classes, 9 images (ids 1..=9), lines deliberately out of order.
const CUB_CLASSES: [&str; 3] = [
    "001.Black_footed_Albatross",
    "002.Laysan_Albatross",
    "003.Sooty_Albatross",
];
/// (id, class 1-based, is_train, file).
type CubRow = (u32, u32, u32, &'static str);
const CUB_IMAGES: [CubRow; 9] = [
    (1, 1, 1, "Black_Footed_Albatross_0046_18.jpg"),
    (2, 1, 0, "Black_Footed_Albatross_0009_34.jpg"),
    (3, 1, 1, "Black_Footed_Albatross_0002_55.jpg"),
    (4, 2, 0, "Laysan_Albatross_0002_1027.jpg"),
    (5, 2, 1, "Laysan_Albatross_0003_1033.jpg"),
    (6, 3, 1, "Sooty_Albatross_0031_1066.jpg"),
    (7, 3, 0, "Sooty_Albatross_0007_796.jpg"),
    (8, 3, 1, "Sooty_Albatross_0014_1039.jpg"),
    (9, 2, 0, "Laysan_Albatross_0100_735.jpg"),
];

fn cub_path(id: u32) -> String {
    let (_, class, _, name) = CUB_IMAGES[id as usize - 1];
    format!("{}/{name}", CUB_CLASSES[class as usize - 1])
}

fn lines<I: IntoIterator<Item = String>>(items: I) -> Vec<u8> {
    items
        .into_iter()
        .map(|l| l + "\n")
        .collect::<String>()
        .into_bytes()
}

/// The four list files, each a function of the rows so that a test can break one.
fn cub_lists(rows: &[CubRow]) -> Vec<Entry> {
    let order = [4usize, 0, 8, 2, 6, 1, 5, 3, 7]; // file order differs from id order
    let pick =
        |f: &dyn Fn(&CubRow) -> String| lines(order.iter().filter_map(|&i| rows.get(i)).map(f));
    vec![
        file(
            "classes.txt",
            lines(
                CUB_CLASSES
                    .iter()
                    .enumerate()
                    .map(|(i, c)| format!("{} {c}", i + 1)),
            ),
        ),
        file(
            "images.txt",
            pick(&|r| format!("{} {}", r.0, cub_path(r.0))),
        ),
        file(
            "image_class_labels.txt",
            pick(&|r| format!("{} {}", r.0, r.1)),
        ),
        file(
            "train_test_split.txt",
            pick(&|r| format!("{} {}", r.0, r.2)),
        ),
    ]
}

fn cub_images() -> Vec<Entry> {
    CUB_IMAGES
        .iter()
        .map(|r| file(&format!("images/{}", cub_path(r.0)), image(r.0 as usize)))
        .collect()
}

fn cub_set() -> Vec<Entry> {
    let mut e = cub_images();
    e.extend(cub_lists(&CUB_IMAGES));
    e.push(file("README", b"CUB-200-2011".to_vec()));
    e
}

/// MIT Indoor-67: 3 classes; each list names `class/file`.
const MIT_TRAIN: [&str; 5] = [
    "kitchen/int474.jpg",
    "airport_inside/airport_inside_0001.jpg",
    "bar/bar_0004.jpg",
    "kitchen/int12.jpg",
    "airport_inside/airport_inside_0002.jpg",
];
const MIT_TEST: [&str; 3] = [
    "bar/bar_0001.jpg",
    "kitchen/int9.jpg",
    "airport_inside/airport_inside_0010.jpg",
];

fn mit_set() -> Vec<Entry> {
    let mut e: Vec<Entry> = MIT_TRAIN
        .iter()
        .chain(&MIT_TEST)
        .enumerate()
        .map(|(i, p)| file(&format!("Images/{p}"), image(i)))
        .collect();
    // Windows line endings, as some copies of the lists have.
    let crlf = |v: &[&str]| v.iter().map(|l| format!("{l}\r\n")).collect::<String>();
    e.push(file("TrainImages.txt", crlf(&MIT_TRAIN).into_bytes()));
    e.push(file("TestImages.txt", crlf(&MIT_TEST).into_bytes()));
    e
}

/// The same entries under a wrapper folder, beside a loose top-level file (as the CUB archive
/// has `attributes.txt` beside `CUB_200_2011/`).
fn wrapped(wrapper: &str, entries: &[Entry]) -> Vec<Entry> {
    let mut e: Vec<Entry> = entries
        .iter()
        .map(|(p, b)| (format!("{wrapper}/{p}"), b.clone()))
        .collect();
    e.push(file(
        "attributes.txt",
        b"1 has_bill_shape::dagger\n".to_vec(),
    ));
    e
}

/// A directory and a tar of `entries`, and of the same wrapped: four sources of one set.
fn four_ways(tmp: &TempDir, entries: &[Entry]) -> Vec<PathBuf> {
    let (dir, tar) = write_both(tmp, entries);
    let wrapped_entries = wrapped("the_set", entries);
    let wdir = tmp.path().join("wrapped");
    let wtar = tmp.path().join("wrapped.tar");
    write_dir(&wdir, &wrapped_entries);
    write_tar(&wtar, &wrapped_entries);
    vec![dir, tar, wdir, wtar]
}

fn bytes_of<'a>(entries: &'a [Entry], name: &str) -> &'a [u8] {
    entries
        .iter()
        .find(|(p, _)| p == name)
        .and_then(|(_, b)| b.as_deref())
        .unwrap_or_else(|| panic!("{name} is not in the fixture"))
}

/// Opens every split of `path` (auto-detected) and checks what a split must satisfy: the expected
/// samples (name → label), the same class list in every split, and bytes equal to what was
/// written. Returns the class list.
fn check_splits(
    path: &Path,
    layout: Layout,
    entries: &[Entry],
    expected: &BTreeMap<&str, Vec<(String, usize)>>,
) -> Vec<String> {
    assert_eq!(Layout::detect(path).unwrap(), layout, "{}", path.display());
    let mut splits = Layout::Auto.splits(path).unwrap();
    splits.sort();
    assert_eq!(
        splits,
        expected.keys().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    let mut classes: Option<Vec<String>> = None;
    for (split, want) in expected {
        let set = ImageFolder::open_layout(path, Layout::Auto, split).unwrap();
        assert_eq!(set.layout(), layout);
        assert_eq!(set.split(), *split);
        let got: Vec<(String, usize)> = set
            .samples
            .iter()
            .map(|s| (s.name.clone(), s.label))
            .collect();
        assert_eq!(&got, want, "{split} of {}", path.display());
        for (i, s) in set.samples.iter().enumerate() {
            assert_eq!(
                set.read(i).unwrap(),
                bytes_of(entries, &s.name),
                "{}",
                s.name
            );
        }
        let explicit = ImageFolder::open_layout(path, layout, split).unwrap();
        assert_eq!(explicit.samples, set.samples);
        assert_eq!(explicit.classes, set.classes);
        match &classes {
            None => classes = Some(set.classes.clone()),
            Some(c) => assert_eq!(c, &set.classes, "classes differ between splits"),
        }
    }
    classes.unwrap()
}

fn sorted(mut v: Vec<(String, usize)>) -> Vec<(String, usize)> {
    v.sort();
    v
}

fn err_layout(path: &Path, layout: Layout, split: &str) -> String {
    match ImageFolder::open_layout(path, layout, split) {
        Ok(f) => panic!("expected an error, opened {f:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{p}' not in: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

#[test]
fn flowers102_maps_ids_to_labels_through_the_mat_files() {
    for compressed in [false, true] {
        let tmp = TempDir::new("flowers");
        let entries = flowers_set(compressed);
        let expected: BTreeMap<&str, Vec<(String, usize)>> = [
            ("train", &FL_TRN[..]),
            ("val", &FL_VAL[..]),
            ("test", &FL_TST[..]),
        ]
        .into_iter()
        .map(|(split, ids)| {
            let v = ids
                .iter()
                .map(|&id| {
                    (
                        format!("jpg/image_{id:05}.jpg"),
                        FL_LABELS[id as usize - 1] as usize - 1,
                    )
                })
                .collect();
            (split, sorted(v))
        })
        .collect();
        let paths = four_ways(&tmp, &entries);
        for path in &paths {
            let classes = check_splits(path, Layout::Flowers102, &entries, &expected);
            assert_eq!(classes, flowers102_classes());
        }
        // The fixed split order of the layout.
        assert_eq!(
            Layout::Flowers102.splits(&paths[0]).unwrap(),
            ["train", "val", "test"]
        );
    }
}

#[test]
fn cub200_reads_ids_labels_and_the_train_test_split() {
    let tmp = TempDir::new("cub");
    let entries = cub_set();
    let expected: BTreeMap<&str, Vec<(String, usize)>> = [("train", 1u32), ("test", 0)]
        .into_iter()
        .map(|(split, flag)| {
            let v = CUB_IMAGES
                .iter()
                .filter(|r| r.2 == flag)
                .map(|r| (format!("images/{}", cub_path(r.0)), r.1 as usize - 1))
                .collect();
            (split, sorted(v))
        })
        .collect();
    for path in four_ways(&tmp, &entries) {
        let classes = check_splits(&path, Layout::Cub200, &entries, &expected);
        assert_eq!(classes, CUB_CLASSES);
        let msg = err_layout(&path, Layout::Auto, "val");
        assert_has(
            &msg,
            &[
                "split 'val'",
                "available splits: train, test",
                "no validation split",
            ],
        );
    }
}

#[test]
fn mit67_reads_the_lists_with_one_class_list_for_both_splits() {
    let tmp = TempDir::new("mit");
    let entries = mit_set();
    let classes = ["airport_inside", "bar", "kitchen"];
    let expected: BTreeMap<&str, Vec<(String, usize)>> =
        [("train", &MIT_TRAIN[..]), ("test", &MIT_TEST[..])]
            .into_iter()
            .map(|(split, list)| {
                let v = list
                    .iter()
                    .map(|p| {
                        let class = p.split('/').next().unwrap();
                        (
                            format!("Images/{p}"),
                            classes.iter().position(|c| *c == class).unwrap(),
                        )
                    })
                    .collect();
                (split, sorted(v))
            })
            .collect();
    for path in four_ways(&tmp, &entries) {
        assert_eq!(
            check_splits(&path, Layout::Mit67, &entries, &expected),
            classes
        );
        assert_has(
            &err_layout(&path, Layout::Mit67, "val"),
            &["available splits: train, test"],
        );
    }
}

#[test]
fn image_folder_is_detected_and_its_wrapper_folder_skipped() {
    let tmp = TempDir::new("wrap");
    let entries = mixed_set();
    let paths = four_ways(&tmp, &entries);
    let dir = &paths[0];
    for path in &paths {
        assert_eq!(Layout::detect(path).unwrap(), Layout::ImageFolder);
        assert_eq!(
            Layout::Auto.splits(path).unwrap(),
            ["empty", "train", "val"]
        );
        assert_eq!(
            ImageFolder::splits(path).unwrap(),
            ["empty", "train", "val"]
        );
        for split in ["train", "val"] {
            let set = ImageFolder::open_layout(path, Layout::Auto, split).unwrap();
            let plain = ImageFolder::open(dir, split).unwrap();
            assert_eq!(set.samples, plain.samples, "{}", path.display());
            assert_eq!(set.classes, ["a_class", "b_class", "c"]);
            for i in 0..set.len() {
                assert_eq!(set.read(i).unwrap(), plain.read(i).unwrap());
            }
        }
    }

    // A set with a single split folder is not a wrapper: `train/<class>/…` stays a split, even
    // when a class is named like a split.
    let tmp = TempDir::new("lone");
    let img = png(&solid(2, 2, [1, 2, 3]));
    let entries = vec![
        file("train/val/1.png", img.clone()),
        file("train/b/2.png", img),
    ];
    let (dir, tar) = write_both(&tmp, &entries);
    for path in [&dir, &tar] {
        assert_eq!(ImageFolder::splits(path).unwrap(), ["train"]);
        let set = ImageFolder::open_layout(path, Layout::Auto, "train").unwrap();
        assert_eq!(set.classes, ["b", "val"]);
    }
}

#[test]
fn explicit_layouts_name_the_missing_files() {
    let tmp = TempDir::new("explicit");
    let (dir, tar) = write_both(&tmp, &mixed_set());
    for path in [&dir, &tar] {
        assert_has(
            &err_layout(path, Layout::Flowers102, "train"),
            &["imagelabels.mat is missing", "Flowers-102"],
        );
        assert_has(
            &err_layout(path, Layout::Cub200, "train"),
            &["classes.txt is missing", "CUB-200-2011"],
        );
        assert_has(
            &err_layout(path, Layout::Mit67, "test"),
            &["TrainImages.txt is missing", "MIT Indoor-67"],
        );
    }
    // A set with neither folders nor list files cannot be detected.
    let flat = tmp.path().join("flat.tar");
    write_tar(&flat, &[file("notes.txt", b"x".to_vec())]);
    assert_has(
        &Layout::detect(&flat).unwrap_err().to_string(),
        &["cannot detect the layout", "notes.txt", "`layout`"],
    );
}

#[cfg(feature = "cli")]
#[test]
fn layout_names_on_the_command_line_and_in_json() {
    use clap::ValueEnum;
    let names: Vec<String> = Layout::value_variants()
        .iter()
        .map(|l| l.to_possible_value().unwrap().get_name().to_string())
        .collect();
    assert_eq!(
        names,
        ["auto", "image-folder", "flowers102", "cub200", "mit67"]
    );
    for l in Layout::value_variants() {
        let name = l.to_possible_value().unwrap().get_name().to_string();
        assert_eq!(serde_json::to_string(l).unwrap(), format!("\"{name}\""));
        assert_eq!(Layout::from_str(&name, false).unwrap(), *l);
    }
    assert_eq!(Layout::default(), Layout::Auto);
}

#[test]
fn the_loader_batches_an_official_layout() {
    let tmp = TempDir::new("loader");
    let entries = cub_set();
    let (_, tar) = write_both(&tmp, &entries);
    let set = Arc::new(ImageFolder::open_layout(&tar, Layout::Auto, "train").unwrap());
    let cfg = LoaderConfig {
        batch_size: 3,
        ..LoaderConfig::default()
    };
    let batches: Vec<_> = Loader::new(set.clone(), Preprocess::eval(8), cfg)
        .map(|b| b.unwrap())
        .collect();
    let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    let want: Vec<usize> = set.samples.iter().map(|s| s.label).collect();
    assert_eq!(labels, want);
    assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 5);
}

/// The real smoke set: an ImageFolder tar whose class names are those of the Flowers-102 layout,
/// so a head trained on one names the classes of the other alike.
#[test]
fn real_flowers102_tiny_is_detected() {
    let Some(path) = common::real_data("flowers102-tiny.tar") else {
        return;
    };
    assert_eq!(Layout::detect(&path).unwrap(), Layout::ImageFolder);
    assert_eq!(
        Layout::Auto.splits(&path).unwrap(),
        ["test", "train", "val"]
    );
    let names = flowers102_classes();
    for split in ["train", "val", "test"] {
        let set = ImageFolder::open_layout(&path, Layout::Auto, split).unwrap();
        assert_eq!(set.len(), 50);
        assert_eq!(set.classes, names[..5]);
        assert!(set.read(0).unwrap().starts_with(&[0xff, 0xd8]), "a JPEG");
    }
}

// ---------------------------------------------------------------------------------------------
// Broken sets: each error names the file (and the line where there is one).

/// `entries` with `name` replaced by `bytes` (removed when `None`).
fn with(entries: &[Entry], name: &str, bytes: Option<Vec<u8>>) -> Vec<Entry> {
    let mut e: Vec<Entry> = entries.iter().filter(|(p, _)| p != name).cloned().collect();
    if let Some(b) = bytes {
        e.push(file(name, b));
    }
    e
}

/// Writes the broken set as a directory and a tar and checks the error of opening `split` from
/// both, auto-detected.
fn check_broken(tag: &str, entries: &[Entry], split: &str, parts: &[&str]) {
    let tmp = TempDir::new(tag);
    let (dir, tar) = write_both(&tmp, entries);
    for path in [&dir, &tar] {
        let msg = err_layout(path, Layout::Auto, split);
        assert_has(&msg, parts);
    }
}

#[test]
fn broken_flowers102_sets() {
    for compressed in [false, true] {
        let good = flowers_set(compressed);
        let sets = |trn: &[u32], val: &[u32], tst: &[u32]| {
            let [_, setid] = flowers_mats(compressed, &floats(&FL_LABELS), [trn, val, tst]);
            with(&good, "setid.mat", setid.1)
        };
        let labels = |l: Vec<f64>| {
            let [labels, _] = flowers_mats(compressed, &l, [&FL_TRN, &FL_VAL, &FL_TST]);
            with(&good, "imagelabels.mat", labels.1)
        };
        check_broken(
            "fl-nosetid",
            &with(&good, "setid.mat", None),
            "train",
            &["setid.mat is missing"],
        );
        check_broken(
            "fl-nolabels",
            &with(&good, "imagelabels.mat", None),
            "test",
            &["imagelabels.mat is missing"],
        );
        check_broken(
            "fl-nolabel",
            &sets(&[5, 1, 13], &FL_VAL, &FL_TST),
            "val",
            &[
                "setid.mat",
                "trnid(3) = image id 13 has no label",
                "imagelabels.mat",
            ],
        );
        let mut bad = FL_LABELS.map(f64::from).to_vec();
        bad[6] = 103.0;
        check_broken(
            "fl-range",
            &labels(bad),
            "train",
            &["imagelabels.mat", "labels(7) = 103 is out of range 1..=102"],
        );
        let mut half = FL_LABELS.map(f64::from).to_vec();
        half[1] = 1.5;
        // Stored as double: a uint8 cannot hold 1.5.
        let mat = mat_file(&[("labels", half, Storage::Double)], compressed);
        check_broken(
            "fl-fraction",
            &with(&good, "imagelabels.mat", Some(mat)),
            "train",
            &["imagelabels.mat", "labels(2) = 1.5 is not an integer"],
        );
        check_broken(
            "fl-dup",
            &sets(&FL_TRN, &FL_VAL, &[4, 6, 8, 10, 5]),
            "train",
            &[
                "setid.mat",
                "image id 5 is listed twice",
                "'trnid' and 'tstid'",
            ],
        );
        check_broken(
            "fl-empty",
            &sets(&FL_TRN, &[], &FL_TST),
            "train",
            &["setid.mat", "'valid' (split 'val') is empty"],
        );
        check_broken(
            "fl-noimage",
            &with(&good, "jpg/image_00009.jpg", None),
            "train",
            &["jpg/image_00009.jpg does not exist", "setid.mat, 'trnid'"],
        );
        let novar = mat_file(&[("trnid", floats(&FL_TRN), Storage::U16)], compressed);
        check_broken(
            "fl-novar",
            &with(&good, "setid.mat", Some(novar)),
            "train",
            &["setid.mat has no numeric variable 'valid' (found: trnid)"],
        );
        check_broken(
            "fl-garbage",
            &with(
                &good,
                "setid.mat",
                Some(b"not a mat file at all".repeat(10)),
            ),
            "train",
            &["setid.mat is not a readable MATLAB v5 .mat file"],
        );
    }
}

#[test]
fn broken_cub200_sets() {
    let good = cub_set();
    let list = |rows: &[CubRow], name: &str| {
        let e = cub_lists(rows);
        let bytes = bytes_of(&e, name).to_vec();
        with(&good, name, Some(bytes))
    };
    let append = |name: &str, extra: &str| {
        let mut b = bytes_of(&good, name).to_vec();
        b.extend(extra.as_bytes());
        with(&good, name, Some(b))
    };
    check_broken(
        "cub-noclasses",
        &with(&good, "classes.txt", None),
        "train",
        &["classes.txt is missing"],
    );
    check_broken(
        "cub-nosplit",
        &with(&good, "train_test_split.txt", None),
        "test",
        &["train_test_split.txt is missing"],
    );
    check_broken(
        "cub-dup",
        &append("images.txt", "3 001.Black_footed_Albatross/x.jpg\n"),
        "train",
        &["images.txt line 10: duplicate id 3 (first on line 4)"],
    );
    let mut rows = CUB_IMAGES;
    rows[4].1 = 4;
    check_broken(
        "cub-range",
        &list(&rows, "image_class_labels.txt"),
        "test",
        &[
            "image_class_labels.txt line 1: label '4' is out of range 1..=3",
            "classes.txt has 3 classes",
        ],
    );
    check_broken(
        "cub-unknown-id",
        &append("image_class_labels.txt", "42 1\n"),
        "train",
        &[
            "image_class_labels.txt line 10: image id 42 is not in",
            "images.txt",
        ],
    );
    check_broken(
        "cub-nolabel",
        &list(&CUB_IMAGES[..8], "image_class_labels.txt"),
        "train",
        &[
            "image id 9 (",
            "images.txt line 3) has no entry in",
            "image_class_labels.txt",
        ],
    );
    let mut rows = CUB_IMAGES;
    rows[0].2 = 2;
    check_broken(
        "cub-flag",
        &list(&rows, "train_test_split.txt"),
        "train",
        &["train_test_split.txt line 2: is_training_image must be 0 or 1, got '2'"],
    );
    check_broken(
        "cub-malformed",
        &append("classes.txt", "four 004.Groove_billed_Ani\n"),
        "train",
        &["classes.txt line 4: expected '<id> <value>'"],
    );
    check_broken(
        "cub-gap",
        &append("classes.txt", "5 005.Crested_Auklet\n"),
        "train",
        &[
            "classes.txt line 4: class ids must be 1, 2, 3",
            "id 4 is missing",
        ],
    );
    let missing = format!("images/{}", cub_path(6));
    check_broken(
        "cub-noimage",
        &with(&good, &missing, None),
        "train",
        &[&format!("{missing} does not exist"), "images.txt line 7"],
    );
    let rows = CUB_IMAGES.map(|mut r| {
        r.2 = 0;
        r
    });
    check_broken(
        "cub-empty",
        &list(&rows, "train_test_split.txt"),
        "train",
        &["split 'train'", "is empty"],
    );
}

#[test]
fn broken_mit67_sets() {
    let good = mit_set();
    let append = |name: &str, extra: &str| {
        let mut b = bytes_of(&good, name).to_vec();
        b.extend(extra.as_bytes());
        with(&good, name, Some(b))
    };
    check_broken(
        "mit-notest",
        &with(&good, "TestImages.txt", None),
        "train",
        &["TestImages.txt is missing"],
    );
    check_broken(
        "mit-noslash",
        &append("TrainImages.txt", "kitchen_int1.jpg\n"),
        "test",
        &["TrainImages.txt line 6: expected '<class>/<image>'"],
    );
    check_broken(
        "mit-dup",
        &append("TestImages.txt", "bar/bar_0004.jpg\n"),
        "test",
        &[
            "TestImages.txt line 4: 'bar/bar_0004.jpg' is listed twice",
            "TrainImages.txt line 3",
        ],
    );
    check_broken(
        "mit-noimage",
        &with(&good, "Images/kitchen/int9.jpg", None),
        "test",
        &[
            "Images/kitchen/int9.jpg does not exist",
            "TestImages.txt line 2",
        ],
    );
    check_broken(
        "mit-empty",
        &with(&good, "TrainImages.txt", Some(b"\r\n".to_vec())),
        "train",
        &["split 'train'", "is empty"],
    );
}

/// A compressed miMATRIX element holding `len` zero bytes as a uint8 array called `name`
/// (compressed once: a test repeats the bytes).
fn big_compressed_var(name: &str, len: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let flags: Vec<u8> = [MX_DOUBLE_CLASS, 0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    body.extend(element(MI_UINT32, &flags, false));
    let dims: Vec<u8> = [1i32, len as i32]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    body.extend(element(MI_INT32, &dims, false));
    body.extend(element(MI_INT8, name.as_bytes(), true));
    body.extend(element(2 /* miUINT8 */, &vec![0u8; len], false));
    let matrix = element(MI_MATRIX, &body, false);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &matrix).unwrap();
    let z = z.finish().unwrap();
    let mut out = MI_COMPRESSED.to_le_bytes().to_vec();
    out.extend((z.len() as u32).to_le_bytes());
    out.extend(z);
    out
}

/// Issue 25: the .mat reader was bounded per element only. 120 compressed 60 MiB elements before
/// a valid `labels` inflated (and kept, as f64) some 7 GB and aborted. Now the arrays the layout
/// does not read are skipped after their header, the inflated bytes of a file are capped in all,
/// and so are the values kept.
#[test]
fn a_mat_file_of_many_large_elements_neither_exhausts_memory_nor_takes_long() {
    use bnn_transfer::data::{flowers102_split, mat};
    let start = std::time::Instant::now();
    let header = mat_file(&[], false);
    let labels = mat_file(&[("labels", floats(&FL_LABELS), Storage::U8)], true);
    let setid = mat_file(
        &[
            ("trnid", floats(&FL_TRN), Storage::U16),
            ("valid", floats(&FL_VAL), Storage::Double),
            ("tstid", floats(&FL_TST), Storage::U16),
        ],
        true,
    );
    let junk = big_compressed_var("junk", 60 << 20);
    let with_junk = |before: &[u8], count: usize, after: &[u8]| {
        let mut f = header.clone();
        for _ in 0..count {
            f.extend(before);
        }
        f.extend(&after[header.len()..]);
        f
    };
    // 120 arrays the layout does not read, then the real one: read, quickly.
    let hostile = with_junk(&junk, 120, &labels);
    let images = flowers102_split(&hostile, "imagelabels.mat", &setid, "setid.mat", "train")
        .expect("the junk is skipped");
    assert_eq!(images.len(), FL_TRN.len());
    let (kept, skipped) = mat::parse_only(&hostile, &["labels"]).unwrap();
    assert_eq!((kept.len(), skipped.len()), (1, 120));

    // Arrays that are read until the cap: a clear error, not an abort. Each 60 MiB element is
    // a `labels` too large to keep...
    let big_labels = big_compressed_var("labels", 60 << 20);
    let err = flowers102_split(
        &with_junk(&big_labels, 120, &labels),
        "imagelabels.mat",
        &setid,
        "setid.mat",
        "train",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("imagelabels.mat") && err.contains("values"),
        "{err}"
    );
    // ...and arrays whose header does not fit the first inflated kilobytes (a 5000-byte name)
    // are inflated whole to be looked at: the file's cap on inflated bytes ends that.
    let long_name = big_compressed_var(&"j".repeat(5000), 60 << 20);
    let err = flowers102_split(
        &with_junk(&long_name, 120, &labels),
        "imagelabels.mat",
        &setid,
        "setid.mat",
        "train",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("imagelabels.mat") && err.contains("256 MiB in all"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
}
