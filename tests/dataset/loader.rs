//! The prefetching `Loader`: coverage, order, reproducibility, skipping and shutdown.

use crate::data_fixtures;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bnn_transfer::data::{Batch, ImageFolder, Loader, LoaderConfig, Preprocess};
use data_fixtures::*;

const N: usize = 23;

/// N solid 8x8 PNGs, image k (in name order) coloured by `id_color(10 * k)`, in 3 classes;
/// optionally a corrupt file and a truncated PNG among them.
fn id_set(tmp: &TempDir, corrupt: bool) -> (PathBuf, Vec<Entry>) {
    let mut entries: Vec<Entry> = (0..N)
        .map(|k| {
            file(
                &format!("train/c{}/img_{k:02}.png", k % 3),
                id_png(10 * k as u8),
            )
        })
        .collect();
    if corrupt {
        entries.push(file(
            "train/c1/img_05x_bad.png",
            b"\x89PNG garbage".to_vec(),
        ));
        let mut truncated = png(&solid(64, 64, [1, 2, 3]));
        truncated.truncate(60);
        entries.push(file("train/c2/img_20x_cut.png", truncated));
    }
    let (_, tar) = write_both(tmp, &entries);
    (tar, entries)
}

fn open(path: &Path) -> Arc<ImageFolder> {
    Arc::new(ImageFolder::open(path, "train").unwrap())
}

fn cfg(batch_size: usize, shuffle_seed: Option<u64>) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        shuffle_seed,
        drop_last: false,
        strict: false,
        prefetch: 2,
        workers: 2,
    }
}

fn collect(set: &Arc<ImageFolder>, pre: &Preprocess, c: LoaderConfig) -> (Vec<Batch>, Vec<String>) {
    let mut loader = Loader::new(set.clone(), pre.clone(), c);
    let batches: Vec<Batch> = loader.by_ref().map(|b| b.unwrap()).collect();
    (batches, loader.skipped())
}

/// Every image of every batch is the image its index names (colour) with its label.
fn check_contents(set: &ImageFolder, batch: &Batch) {
    assert_eq!(batch.images.len(), batch.len() * 8 * 8 * 3);
    assert_eq!(batch.indices.len(), batch.len());
    for (j, &i) in batch.indices.iter().enumerate() {
        let name = &set.samples[i].name;
        let k: u8 = name[name.len() - 6..name.len() - 4].parse().unwrap();
        let color = id_color(10 * k);
        assert_eq!(batch.labels[j], set.samples[i].label);
        assert_eq!(set.classes[batch.labels[j]], format!("c{}", k % 3));
        for (p, &v) in batch.image(j).iter().enumerate() {
            assert_close(v, norm(color[p % 3], p % 3), name);
        }
    }
}

#[test]
fn every_sample_once_in_order_without_shuffle() {
    let tmp = TempDir::new("order");
    let (tar, _) = id_set(&tmp, false);
    let set = open(&tar);
    let loader = Loader::new(set.clone(), Preprocess::eval(8), cfg(5, None));
    assert_eq!(loader.batches(), 5);
    let batches: Vec<Batch> = loader.map(|b| b.unwrap()).collect();
    assert_eq!(
        batches.iter().map(Batch::len).collect::<Vec<_>>(),
        [5, 5, 5, 5, 3]
    );
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(indices, (0..N).collect::<Vec<_>>());
    for b in &batches {
        assert_eq!(b.size, 8);
        check_contents(&set, b);
    }
}

#[test]
fn shuffled_epoch_is_a_permutation_and_reproducible() {
    let tmp = TempDir::new("shuffle");
    let (tar, _) = id_set(&tmp, false);
    let set = open(&tar);
    let pre = Preprocess::train(8);
    let (a, _) = collect(&set, &pre, cfg(4, Some(7)));
    let order: Vec<usize> = a.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(order.len(), N);
    assert_eq!(order.iter().copied().collect::<BTreeSet<_>>().len(), N);
    assert_ne!(order, (0..N).collect::<Vec<_>>());
    for b in &a {
        check_contents(&set, b); // solid images: augmentation keeps the colour
    }
    // Same seed, different thread count and prefetch: identical batches, augmentation included.
    let mut c = cfg(4, Some(7));
    c.workers = 1;
    c.prefetch = 5;
    assert_eq!(collect(&set, &pre, c).0, a);
    // Another seed: another order.
    let (b, _) = collect(&set, &pre, cfg(4, Some(8)));
    let order_b: Vec<usize> = b.iter().flat_map(|b| b.indices.clone()).collect();
    assert_ne!(order, order_b);
}

#[test]
fn augmentation_depends_on_seed_and_index_only() {
    let tmp = TempDir::new("augment");
    let img = image::RgbImage::from_fn(24, 20, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 12) as u8, 99])
    });
    let entries: Vec<Entry> = (0..12)
        .map(|k| file(&format!("train/c/img_{k:02}.png"), png(&img)))
        .collect();
    let (_, tar) = write_both(&tmp, &entries);
    let set = open(&tar);
    let pre = Preprocess::train(8);
    let run = |seed, workers, bs| {
        let mut c = cfg(bs, Some(seed));
        c.workers = workers;
        let mut by_index = vec![Vec::new(); 12];
        for b in collect(&set, &pre, c).0 {
            for (j, &i) in b.indices.iter().enumerate() {
                by_index[i] = b.image(j).to_vec();
            }
        }
        by_index
    };
    let a = run(3, 2, 5);
    assert_eq!(
        a,
        run(3, 1, 3),
        "batch size and threads must not change augmentation"
    );
    let b = run(4, 2, 5);
    assert!(a.iter().zip(&b).filter(|(x, y)| x != y).count() >= 10);
    assert!(
        a.windows(2).any(|w| w[0] != w[1]),
        "identical images get different crops"
    );
}

#[test]
fn drop_last_and_batch_sizes() {
    let tmp = TempDir::new("droplast");
    let (tar, _) = id_set(&tmp, false);
    let set = open(&tar);
    let pre = Preprocess::eval(8);
    for (bs, drop_last, sizes) in [
        (5, true, vec![5, 5, 5, 5]),
        (23, true, vec![23]),
        (24, true, vec![]),
        (24, false, vec![23]),
        (1, false, vec![1; 23]),
        (10, false, vec![10, 10, 3]),
    ] {
        let mut c = cfg(bs, Some(1));
        c.drop_last = drop_last;
        let loader = Loader::new(set.clone(), pre.clone(), c.clone());
        assert_eq!(loader.batches(), sizes.len(), "{c:?}");
        let got: Vec<usize> = loader.map(|b| b.unwrap().len()).collect();
        assert_eq!(got, sizes, "{c:?}");
    }
    let mut loader = Loader::new(set, pre, cfg(0, None));
    assert!(
        loader
            .next()
            .unwrap()
            .unwrap_err()
            .to_string()
            .contains("batch size")
    );
    assert!(loader.next().is_none());
}

#[test]
fn corrupt_images_are_skipped_and_counted() {
    let tmp = TempDir::new("corrupt");
    let (tar, _) = id_set(&tmp, true);
    let set = open(&tar);
    assert_eq!(set.len(), N + 2);
    let bad: BTreeSet<&str> = ["train/c1/img_05x_bad.png", "train/c2/img_20x_cut.png"].into();
    for seed in [None, Some(5)] {
        let (batches, skipped) = collect(&set, &Preprocess::eval(8), cfg(5, seed));
        assert_eq!(
            skipped.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            bad
        );
        let seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(seen.len(), N);
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), N);
        for b in &batches {
            check_contents(&set, b);
        }
        // The chunks holding the bad images deliver shorter batches; the count stays 5.
        let short = batches.iter().filter(|b| b.len() < 5).count();
        assert_eq!(batches.len(), 5);
        assert!((1..=2).contains(&short), "{short}");
    }
}

#[test]
fn strict_mode_fails_naming_the_image() {
    let tmp = TempDir::new("strict");
    let (tar, _) = id_set(&tmp, true);
    let set = open(&tar);
    let mut c = cfg(5, None);
    c.strict = true;
    let mut loader = Loader::new(set, Preprocess::eval(8), c);
    let mut ok = 0;
    let msg = loop {
        match loader.next().expect("an error before the end") {
            Ok(_) => ok += 1,
            Err(e) => break e.to_string(),
        }
    };
    // Sorted names put img_05x_bad.png at position 10 (8 images of c0, then img_01, img_04):
    // the third chunk of 5, so two good batches come first.
    assert_eq!(ok, 2);
    assert!(
        msg.contains("train/c1/img_05x_bad.png") && msg.contains("unreadable"),
        "{msg}"
    );
    assert!(loader.next().is_none());
    assert!(loader.skipped().is_empty());
}

#[test]
fn dropping_early_does_not_hang() {
    let tmp = TempDir::new("drop");
    let big = png(&image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([x as u8, y as u8, 3])
    }));
    let entries: Vec<Entry> = (0..200)
        .map(|k| file(&format!("train/c{}/img_{k:03}.png", k % 2), big.clone()))
        .collect();
    let (_, tar) = write_both(&tmp, &entries);
    let set = open(&tar);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for prefetch in [1, 4] {
            // Never consumed.
            drop(Loader::new(
                set.clone(),
                Preprocess::train(64),
                LoaderConfig {
                    prefetch,
                    ..cfg(8, Some(1))
                },
            ));
            // One batch consumed, then dropped mid-epoch.
            let mut loader = Loader::new(
                set.clone(),
                Preprocess::train(64),
                LoaderConfig {
                    prefetch,
                    ..cfg(8, Some(1))
                },
            );
            assert_eq!(loader.next().unwrap().unwrap().len(), 8);
            let start = Instant::now();
            drop(loader);
            tx.send(start.elapsed()).unwrap();
        }
    });
    for _ in 0..2 {
        let took = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("loader drop hung");
        assert!(took < Duration::from_secs(10), "drop took {took:?}");
    }
}

#[test]
fn default_config_uses_available_parallelism() {
    let c = LoaderConfig::default();
    assert_eq!(
        c.workers,
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(c.prefetch >= 1 && c.batch_size >= 1);
}

#[test]
fn files_vanishing_after_open_are_skipped() {
    let tmp = TempDir::new("vanish");
    let (_, entries) = id_set(&tmp, false);
    let dir = tmp.path().join("set");
    let set = open(&dir);
    let gone = &entries[4].0; // train/c1/img_04.png
    std::fs::remove_file(dir.join(gone)).unwrap();
    let (batches, skipped) = collect(&set, &Preprocess::eval(8), cfg(8, None));
    assert_eq!(skipped, std::slice::from_ref(gone));
    assert_eq!(batches.iter().map(Batch::len).sum::<usize>(), N - 1);
}

#[test]
fn loader_and_set_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ImageFolder>();
    send::<Loader>();
    send_sync::<Batch>();
}
