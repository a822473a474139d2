//! Regression tests for what an independent re-implementation and a hostile user found (issue 11):
//! the file's own input normalisation is honoured, bad inputs are refused before anything runs or
//! allocates, the same content gives the same bytes.

mod common;

use std::path::Path;

use bnn_transfer::arch::{Arch, ConvBlock};
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::data::{Preprocess, load_image};
use bnn_transfer::extractor::{ExtractorFile, reference};
use bnn_transfer::rng::Rng;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn with_input(mean: Vec<f32>, std: Vec<f32>) -> ExtractorFile {
    let mut f = random_file(&Arch::mini(10), 1).unwrap();
    f.graph.input.mean = mean;
    f.graph.input.std = std;
    f
}

fn reload(f: &ExtractorFile) -> bnn_transfer::Result<ExtractorFile> {
    let bytes = f.to_bytes()?;
    ExtractorFile::from_bytes(&bytes, Path::new("model.safetensors"))
}

#[test]
fn the_files_mean_and_std_are_what_images_are_normalised_with() {
    let file = reload(&with_input(vec![0.5; 3], vec![0.25; 3])).unwrap();
    let pre = file
        .graph
        .input
        .preprocess(Path::new("model.safetensors"))
        .unwrap();
    assert_eq!((pre.mean, pre.std), ([0.5; 3], [0.25; 3]));
    assert_eq!(pre.size, file.graph.input.size);
    let bytes = png(40, 40);
    let ours = load_image(&bytes, &pre, &mut Rng::new(0)).unwrap();
    let imagenet = load_image(&bytes, &Preprocess::eval(pre.size), &mut Rng::new(0)).unwrap();
    assert_ne!(ours, imagenet);
    // (x/255 − 0.5)/0.25 of a decoded value, recovered from the ImageNet-normalised one.
    let x = (imagenet[0] * 0.229 + 0.485) * 255.0;
    assert!((ours[0] - (x / 255.0 - 0.5) / 0.25).abs() < 1e-4);
    // And it changes the features: a different first layer input.
    let n = 1;
    let a = reference::run(&file, &ours, n, bnn_transfer::extractor::Output::Bits).unwrap();
    let b = reference::run(&file, &imagenet, n, bnn_transfer::extractor::Output::Bits).unwrap();
    assert_ne!(a, b);
}

#[test]
fn bad_normalisation_is_refused_on_load_naming_the_field() {
    for (mean, std, field) in [
        (vec![f32::NAN, 0.0, 0.0], vec![1.0; 3], "input.mean"),
        (vec![0.0; 3], vec![1.0, 0.0, 1.0], "input.std"),
        (vec![0.0; 3], vec![1.0, -2.0, 1.0], "input.std"),
        (vec![0.0; 3], vec![f32::INFINITY, 1.0, 1.0], "input.std"),
        (vec![0.0; 2], vec![1.0; 3], "input.mean"),
    ] {
        let err = with_input(mean.clone(), std.clone())
            .to_bytes()
            .unwrap_err();
        assert!(err.to_string().contains(field), "{mean:?} {std:?}: {err}");
    }
}

#[test]
fn a_file_that_does_not_take_rgb_images_is_refused_before_running() {
    for channels in [1usize, 4] {
        let mut arch = Arch::mini(10);
        arch.in_channels = channels;
        let mut f = random_file(&arch, 2).unwrap();
        f.graph.input.mean = vec![0.5; channels];
        f.graph.input.std = vec![0.25; channels];
        let f = reload(&f).unwrap();
        let err = f
            .graph
            .input
            .preprocess(Path::new("grey.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("grey.safetensors"), "{err}");
        assert!(
            err.contains(&format!("input.channels is {channels}")),
            "{err}"
        );
        assert!(err.contains("RGB"), "{err}");
    }
}

#[test]
fn a_huge_input_is_refused_by_the_cpu_path_before_it_allocates() {
    let mut arch = Arch::mini(10);
    arch.input = 16384;
    arch.convs = vec![ConvBlock {
        out: 4096,
        kernel: 3,
        stride: 1,
        pad: 1,
        pool: None,
        shortcut: false,
    }];
    arch.dense = vec![];
    let file = reload(&random_file(&arch, 3).unwrap()).unwrap();
    // No image buffer: the size check comes before anything reads or allocates.
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    let cpu = bnn_transfer::cpu::CpuExtractor::new(&file, &threads).unwrap();
    let err = cpu.run_taps(&[], 1, &[0]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("GiB") && msg.contains("--batch-size"), "{msg}");
}

#[test]
fn the_same_file_gives_the_same_bytes() {
    let f = random_file(&Arch::mini(10), 4).unwrap();
    let first = f.to_bytes().unwrap();
    for _ in 0..10 {
        assert_eq!(f.clone().to_bytes().unwrap(), first);
    }
}

#[test]
fn the_feature_cache_key_sees_an_image_edited_in_place() {
    use bnn_transfer::data::ImageFolder;
    use bnn_transfer::transfer::features::data_fingerprint;
    let dir = std::env::temp_dir().join(format!("bnn-hardening-fp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let class = dir.join("train").join("a");
    std::fs::create_dir_all(&class).unwrap();
    std::fs::write(class.join("0.png"), png(8, 8)).unwrap();
    std::fs::write(class.join("1.png"), png(9, 9)).unwrap();
    let fp = || {
        data_fingerprint(&ImageFolder::open(&dir, "train").unwrap())
            .unwrap()
            .hex()
    };
    let before = fp();
    assert_eq!(fp(), before);
    // Same name, same label, same root folder: only the file's bytes changed.
    std::fs::write(class.join("1.png"), png(10, 10)).unwrap();
    assert_ne!(fp(), before);
    // A tar rewritten with the same size: its content decides.
    let tar_of = |img: Vec<u8>| {
        let path = dir.join("set.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut h = tar::Header::new_ustar();
        h.set_size(img.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "train/a/0.png", img.as_slice())
            .unwrap();
        b.finish().unwrap();
        drop(b);
        let t = std::time::SystemTime::UNIX_EPOCH;
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(t)
            .unwrap();
        data_fingerprint(&ImageFolder::open(&path, "train").unwrap())
            .unwrap()
            .hex()
    };
    let mut img = png(8, 8);
    let a = tar_of(img.clone());
    let last = img.len() - 20;
    img[last] ^= 1;
    assert_ne!(tar_of(img), a);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_generated_fixture_set_has_three_full_splits() {
    // The generated fixture every burn test trains on: 3 splits of 48 PNGs in one tar.
    let set = common::fixture_set();
    for split in ["train", "val", "test"] {
        let f = bnn_transfer::data::ImageFolder::open(&set, split).unwrap();
        assert_eq!(f.len(), common::FIXTURE_PER_SPLIT, "{split}");
        assert_eq!(f.classes.len(), common::FIXTURE_CLASSES);
    }
}

#[test]
fn a_dense_layer_with_a_set_padding_channel_bit_is_refused() {
    let mut arch = Arch::mini(10);
    arch.input = 8;
    arch.convs = vec![ConvBlock {
        out: 40,
        kernel: 3,
        stride: 1,
        pad: 1,
        pool: None,
        shortcut: false,
    }];
    arch.dense = vec![16];
    let mut f = random_file(&arch, 5).unwrap();
    assert!(reload(&f).is_ok());
    let dense = &mut f.layers[1];
    assert_eq!(dense.spec.in_shape, [8, 8, 40]);
    // Row 0, pixel 0: words 0 and 1 hold channels 0..64; channel 40 is padding.
    dense.weights[1] |= 1 << 8;
    let Err(err) = f.to_bytes() else {
        panic!("a set padding bit must be refused")
    };
    let err = err.to_string();
    assert!(err.contains("past the 40 channels"), "{err}");
}
