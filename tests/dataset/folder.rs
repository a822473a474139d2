//! `ImageFolder` over directories and tars: layout rules, labels, and error messages.

use crate::data_fixtures;

use std::path::Path;

use bnn_transfer::data::ImageFolder;
use data_fixtures::*;

fn err(path: &Path, split: &str) -> String {
    match ImageFolder::open(path, split) {
        Ok(f) => panic!("expected an error, opened {f:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn directory_and_tar_readers_agree() {
    let tmp = TempDir::new("agree");
    let entries = mixed_set();
    let (dir, tar) = write_both(&tmp, &entries);
    for split in ["train", "val"] {
        let a = ImageFolder::open(&dir, split).unwrap();
        let b = ImageFolder::open(&tar, split).unwrap();
        assert_eq!(a.classes, b.classes);
        assert_eq!(a.samples, b.samples);
        assert_eq!(a.len(), 5);
        assert_eq!(b.source(), tar.as_path());
        for i in 0..a.len() {
            let bytes = a.read(i).unwrap();
            assert_eq!(bytes, b.read(i).unwrap(), "{}", a.samples[i].name);
            let expected = &entries
                .iter()
                .find(|(p, _)| *p == a.samples[i].name)
                .unwrap()
                .1;
            assert_eq!(Some(&bytes), expected.as_ref());
        }
    }
}

#[test]
fn classes_sorted_labels_and_image_filter() {
    let tmp = TempDir::new("labels");
    let (dir, tar) = write_both(&tmp, &mixed_set());
    for path in [&dir, &tar] {
        let set = ImageFolder::open(path, "train").unwrap();
        assert_eq!(set.classes, ["a_class", "b_class", "c"]);
        let got: Vec<(&str, usize)> = set
            .samples
            .iter()
            .map(|s| (s.name.as_str(), s.label))
            .collect();
        assert_eq!(
            got,
            [
                ("train/a_class/x.PNG", 0),
                ("train/b_class/1.png", 1),
                ("train/b_class/2.jpg", 1),
                ("train/c/sub/y.jpeg", 2),
                ("train/c/z.jpg", 2),
            ]
        );
        assert_eq!(set.class_counts(), [1, 2, 2]);
        assert_eq!(set.split(), "train");
        assert!(!set.is_empty());
        assert_eq!(
            ImageFolder::splits(path).unwrap(),
            ["empty", "train", "val"]
        );
    }
}

#[test]
fn byte_order_of_class_names() {
    let tmp = TempDir::new("order");
    let img = png(&solid(2, 2, [1, 1, 1]));
    let entries: Vec<Entry> = ["b", "B", "a", "10", "9", "_x"]
        .iter()
        .map(|c| file(&format!("train/{c}/i.png"), img.clone()))
        .collect();
    let (dir, tar) = write_both(&tmp, &entries);
    for path in [&dir, &tar] {
        let set = ImageFolder::open(path, "train").unwrap();
        assert_eq!(set.classes, ["10", "9", "B", "_x", "a", "b"]);
        for s in &set.samples {
            assert_eq!(s.name, format!("train/{}/i.png", set.classes[s.label]));
        }
    }
}

#[test]
fn missing_path_and_missing_split() {
    let tmp = TempDir::new("missing");
    let (dir, tar) = write_both(&tmp, &mixed_set());
    let nowhere = tmp.path().join("nowhere.tar");
    let msg = err(&nowhere, "train");
    assert!(
        msg.contains("does not exist") && msg.contains("nowhere.tar"),
        "{msg}"
    );
    assert!(ImageFolder::splits(&nowhere).is_err());
    for path in [&dir, &tar] {
        let msg = err(path, "tset");
        assert!(msg.contains("split 'tset' not found"), "{msg}");
        assert!(msg.contains("available splits: empty, train, val"), "{msg}");
    }
}

#[test]
fn split_without_classes() {
    let tmp = TempDir::new("noclasses");
    let (dir, tar) = write_both(&tmp, &mixed_set());
    for path in [&dir, &tar] {
        let msg = err(path, "empty");
        assert!(
            msg.contains("split 'empty'") && msg.contains("no class folders"),
            "{msg}"
        );
    }
}

#[test]
fn empty_class_folder() {
    let tmp = TempDir::new("emptyclass");
    let entries = vec![
        file("train/a/1.png", png(&solid(2, 2, [1, 1, 1]))),
        dir("train/b"),
        file("train/c/notes.txt", b"no images here".to_vec()),
    ];
    let (dir, tar) = write_both(&tmp, &entries);
    for path in [&dir, &tar] {
        let msg = err(path, "train");
        assert!(
            msg.contains("'train/b', 'train/c'") && msg.contains("no images"),
            "{msg}"
        );
    }
}

#[test]
fn class_lists_must_agree_across_splits() {
    let tmp = TempDir::new("differ");
    let img = png(&solid(2, 2, [1, 1, 1]));
    let entries: Vec<Entry> = ["train/a", "train/b", "val/a", "val/c"]
        .iter()
        .map(|c| file(&format!("{c}/i.png"), img.clone()))
        .collect();
    let (dir, tar) = write_both(&tmp, &entries);
    for path in [&dir, &tar] {
        let msg = err(path, "train");
        assert!(msg.contains("class lists differ"), "{msg}");
        assert!(msg.contains("only in 'train': b"), "{msg}");
        assert!(msg.contains("only in 'val': c"), "{msg}");
        assert!(err(path, "val").contains("class lists differ"));
    }
}

#[test]
fn not_a_tar_and_tars_without_images() {
    let tmp = TempDir::new("nottar");
    let text = tmp.path().join("notes.tar");
    std::fs::write(&text, "just some text\n".repeat(100)).unwrap();
    let msg = err(&text, "train");
    assert!(
        msg.contains("not a directory or an uncompressed tar"),
        "{msg}"
    );
    assert!(msg.contains("notes.tar"), "{msg}");

    let short = tmp.path().join("short.tar");
    std::fs::write(&short, "tiny").unwrap();
    assert!(err(&short, "train").contains("shorter than one tar header"));

    let gz = tmp.path().join("set.tar.gz");
    std::fs::write(&gz, b"\x1f\x8b\x08\x00rest of a gzip stream".repeat(40)).unwrap();
    let msg = err(&gz, "train");
    assert!(msg.contains("gzip") && msg.contains("decompress"), "{msg}");

    let empty = tmp.path().join("empty.tar");
    write_tar(&empty, &[]);
    let msg = err(&empty, "train");
    assert!(msg.contains("no entries"), "{msg}");

    let no_images = tmp.path().join("noimages.tar");
    write_tar(&no_images, &[file("train/a/readme.txt", b"x".to_vec())]);
    let msg = err(&no_images, "train");
    assert!(msg.contains("no images"), "{msg}");
}

#[test]
fn read_out_of_range_is_an_error() {
    let tmp = TempDir::new("range");
    let (_, tar) = write_both(&tmp, &mixed_set());
    let set = ImageFolder::open(&tar, "val").unwrap();
    let msg = set.read(set.len()).unwrap_err().to_string();
    assert!(msg.contains("out of range"), "{msg}");
}
