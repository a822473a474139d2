//! The real smoke-test set `../shared/data/flowers102-tiny.tar` (required under REQUIRE_DATA=1,
//! as CI sets; elsewhere not run when absent).

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;

use bnn_transfer::data::{ImageFolder, Loader, LoaderConfig, Preprocess};

fn tiny_flowers() -> Option<PathBuf> {
    common::real_data("flowers102-tiny.tar")
}

#[test]
fn flowers102_tiny_opens_and_decodes() {
    let Some(path) = tiny_flowers() else { return };
    assert_eq!(
        ImageFolder::splits(&path).unwrap(),
        ["test", "train", "val"]
    );
    let mut first_classes = None;
    for split in ["train", "val", "test"] {
        let set = ImageFolder::open(&path, split).unwrap();
        assert_eq!(set.len(), 50, "{split}");
        assert_eq!(set.classes.len(), 5);
        assert!(
            set.classes
                .iter()
                .zip(1..)
                .all(|(c, i)| c.starts_with(&format!("{i:03}.")))
        );
        assert_eq!(set.class_counts(), [10; 5]);
        assert!(set.samples[0].name.starts_with(&format!("{split}/001.")));
        first_classes.get_or_insert_with(|| set.classes.clone());
        assert_eq!(Some(&set.classes), first_classes.as_ref());
    }

    let set = Arc::new(ImageFolder::open(&path, "train").unwrap());
    let cfg = LoaderConfig {
        batch_size: 16,
        shuffle_seed: Some(1),
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(set.clone(), Preprocess::train(64), cfg);
    let batch = loader.next().unwrap().unwrap();
    assert_eq!(batch.len(), 16);
    assert_eq!(batch.images.len(), 16 * 64 * 64 * 3);
    assert!(batch.images.iter().all(|v| v.is_finite() && v.abs() < 3.0));
    let rest: usize = loader.by_ref().map(|b| b.unwrap().len()).sum();
    assert_eq!(16 + rest, 50);
    assert!(loader.skipped().is_empty());

    let eval = Loader::new(
        set,
        Preprocess::eval(64),
        LoaderConfig {
            batch_size: 50,
            ..LoaderConfig::default()
        },
    );
    let all: Vec<_> = eval.map(|b| b.unwrap()).collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].labels, (0..50).map(|i| i / 10).collect::<Vec<_>>());
}
