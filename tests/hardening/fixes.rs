//! Regression tests for what an independent re-implementation and a hostile user found (issue 11):
//! the file's own input normalisation is honoured, bad inputs are refused before anything runs or
//! allocates, the same content gives the same bytes.

use crate::common;

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

/// A plain conv-only network at `input` pixels (3×3 conv of 32 channels, stride 1): its size
/// alone decides how much memory one image takes.
fn conv_only(input: usize) -> ExtractorFile {
    let mut arch = Arch::mini(10);
    arch.input = input;
    arch.convs = vec![ConvBlock {
        out: 32,
        kernel: 3,
        stride: 1,
        pad: 1,
        pool: None,
        shortcut: false,
    }];
    arch.dense = vec![];
    reload(&random_file(&arch, 3).unwrap()).unwrap()
}

#[test]
fn a_huge_input_is_refused_by_the_cpu_path_before_it_allocates() {
    // Issue 25: docs/FORMAT.md allows input.size 16384; one such image is 3 GiB of f32 before
    // any layer. The CPU path refuses it when it is prepared, naming the size and what to do.
    let file = conv_only(16384);
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    let err = match bnn_transfer::cpu::CpuExtractor::new(&file, &threads) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a 16384-pixel input was prepared for the CPU path"),
    };
    assert!(
        err.contains("16384") && err.contains("input.size") && err.contains("GiB"),
        "{err}"
    );
    // The front door refuses it the same way.
    let backbone =
        bnn_transfer::assets::Backbone::from_bytes(&file.to_bytes().unwrap(), "huge.safetensors")
            .unwrap();
    let err = bnn_transfer::FeatureExtractor::from_backbone_blocking(
        backbone,
        None,
        bnn_transfer::ExtractorDevice::Cpu,
    )
    .expect_err("refused")
    .to_string();
    assert!(err.contains("input.size"), "{err}");
}

#[test]
fn a_large_input_shrinks_the_batch_instead_of_exhausting_memory() {
    use bnn_transfer::cpu::CpuExtractor;
    use bnn_transfer::cpu::extractor::BATCH_BYTES;
    use bnn_transfer::feature_extractor::loader_batch;
    // 4096 pixels: 192 MiB of f32 per image, over 1 GiB of packed signs for the default batch
    // of 64 on top (it aborted). Prepared, nothing run: the batch is what fits.
    let file = conv_only(4096);
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    let cpu = CpuExtractor::new(&file, &threads).unwrap();
    let per_image = cpu.image_bytes();
    assert!(per_image > 192 << 20, "{per_image}");
    assert!(cpu.max_batch() >= 1 && cpu.max_batch() < 64);
    assert!(cpu.max_batch() as u64 * per_image <= BATCH_BYTES.max(per_image));
    let image_len = 4096 * 4096 * 3;
    let (batch, prefetch) = loader_batch(image_len, 64, cpu.max_batch());
    assert!((1..64).contains(&batch), "{batch}");
    // The images a loader holds at once stay near the budget (one image at the least).
    let in_flight = (batch * (prefetch + 2) * image_len * 4) as u64;
    assert!(
        in_flight <= BATCH_BYTES.max(3 * image_len as u64 * 4),
        "{in_flight}"
    );
    // Small inputs keep the batch asked for, and the loader's own prefetch.
    assert_eq!(
        loader_batch(64 * 64 * 3, 64, 1 << 16),
        (64, bnn_transfer::data::LoaderConfig::default().prefetch)
    );
    assert_eq!(
        bnn_transfer::feature_extractor::LOADER_PREFETCH,
        bnn_transfer::data::LoaderConfig::default().prefetch
    );
}

#[test]
fn a_run_split_into_smaller_runs_gives_the_same_bits() {
    use bnn_transfer::cpu::CpuExtractor;
    let file = reload(&random_file(&Arch::mini_bireal(10), 5).unwrap()).unwrap();
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    let whole = CpuExtractor::new(&file, &threads).unwrap();
    let split = CpuExtractor::new(&file, &threads)
        .unwrap()
        .with_max_batch(2);
    let n = 7;
    let size = file.graph.input.size;
    let mut rng = Rng::new(9);
    let images: Vec<f32> = (0..n * size * size * 3)
        .map(|_| rng.range(-2.0, 2.0))
        .collect();
    let taps: Vec<usize> = (0..file.layers.len()).collect();
    assert_eq!(
        whole.run_taps(&images, n, &taps).unwrap(),
        split.run_taps(&images, n, &taps).unwrap()
    );
}

#[test]
fn cli_extract_refuses_a_huge_input_with_an_error_not_an_abort() {
    let dir = std::env::temp_dir().join(format!("bnn-huge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("huge.safetensors");
    conv_only(16384).save(&model).unwrap();
    let data = common::fixture_set();
    let out = dir.join("f.safetensors");
    let o = common::bnn(&[
        "extract",
        "--model",
        common::s(&model),
        "--data",
        common::s(&data),
        "--out",
        common::s(&out),
        "--device",
        "cpu",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "not an error exit: {err}");
    assert!(err.contains("input.size") && err.contains("16384"), "{err}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
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
    assert_ne!(tar_of(img.clone()), a);
    // The same tar copied elsewhere with a new time stamp: the same set (its caches stay valid).
    let b = tar_of(img);
    let copy = dir.join("copy.tar");
    std::fs::copy(dir.join("set.tar"), &copy).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&copy)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let copied = data_fingerprint(&ImageFolder::open(&copy, "train").unwrap())
        .unwrap()
        .hex();
    assert_eq!(copied, b);
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

// ---------------------------------------------------------------------------------------------
// Issue 25: a hostile-input probe.

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bnn-hard-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn huge_finite_values_in_real_layers_are_refused_on_load_naming_the_tensor() {
    let good = random_file(&Arch::mini_bireal(10), 4).unwrap();
    let i = good
        .layers
        .iter()
        .position(|l| l.real.is_some())
        .expect("a real layer");
    let name = good.layers[i].spec.name.clone();
    assert!(reload(&good).is_ok());
    for v in [3e38f32, -3e38, 1e31] {
        let mut f = good.clone();
        f.layers[i].real.as_mut().unwrap()[0].scale = v;
        let err = match reload(&f) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a scale of {v} loaded"),
        };
        assert!(err.contains(&format!("'{name}.real'")), "{err}");
        let mut f = good.clone();
        f.layers[i].real.as_mut().unwrap()[1].shift_out = v;
        assert!(reload(&f).is_err(), "a shift of {v} loaded");
    }
    // A projection's weights too, where the file has one.
    if let Some(j) = good.layers.iter().position(|l| l.projection.is_some()) {
        let mut f = good.clone();
        f.layers[j].projection.as_mut().unwrap().weight[0] = 3e38;
        let err = reload(&f).expect_err("refused").to_string();
        assert!(err.contains("shortcut_weight"), "{err}");
    }
}

#[test]
fn huge_finite_values_in_a_head_are_refused_on_load_naming_the_tensor() {
    use bnn_transfer::transfer::head::{BackboneInfo, BackboneKind, Dense, Head, HeadInfo};
    let marker = 1234.5f32;
    let head = Head {
        info: HeadInfo {
            version: bnn_transfer::transfer::head::HEAD_VERSION,
            classes: vec!["a".into(), "b".into()],
            backbone: BackboneInfo {
                kind: BackboneKind::Extractor,
                path: "m".into(),
                fingerprint: "0".into(),
            },
            cut: "fc1".into(),
            dim: 2,
            hidden: vec![],
            input_size: 32,
            data: "d".into(),
            layout: "imagefolder".into(),
        },
        mean: vec![0.0; 2],
        scale: vec![1.0; 2],
        layers: vec![Dense {
            inputs: 2,
            outputs: 2,
            weight: vec![marker, 0.5, 0.25, 0.125],
            bias: vec![0.0; 2],
        }],
    };
    let bytes = head.to_bytes().unwrap();
    let path = Path::new("head.safetensors");
    assert!(Head::from_bytes(&bytes, path).is_ok());
    let at = bytes
        .windows(4)
        .position(|w| w == marker.to_le_bytes())
        .expect("the marker weight is in the file");
    for v in [3e38f32, -3e38] {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let err = Head::from_bytes(&b, path).expect_err("refused").to_string();
        assert!(err.contains("'layers.0.weight'"), "{err}");
    }
}

/// `extract --out` naming its own model or data set; `export --out` inside the run it reads;
/// `transfer --out` naming the data set: refused before anything is read or written.
// `bnn transfer` and `bnn export` are subcommands of the `train` feature.
#[cfg(feature = "train")]
#[test]
fn cli_outputs_that_would_destroy_an_input_are_refused() {
    use common::{bnn, s};
    let dir = scratch("outs");
    let model = dir.join("m.safetensors");
    random_file(&Arch::mini(10), 1)
        .unwrap()
        .save(&model)
        .unwrap();
    let before = std::fs::read(&model).unwrap();
    let data = common::fixture_set();
    let data_before = std::fs::metadata(&data).unwrap().len();
    // The same file by another spelling: `dir/./m.safetensors`.
    let other_spelling = dir.join(".").join("m.safetensors");
    for out in [&model, &other_spelling] {
        let o = bnn(&[
            "extract",
            "--model",
            s(&model),
            "--data",
            s(&data),
            "--out",
            s(out),
            "--device",
            "cpu",
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("--out") && err.contains("--model"), "{err}");
    }
    assert_eq!(std::fs::read(&model).unwrap(), before);
    let o = bnn(&[
        "extract",
        "--data",
        s(&data),
        "--out",
        s(&data),
        "--device",
        "cpu",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--data"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::metadata(&data).unwrap().len(), data_before);

    // A run directory (what `bnn pretrain` writes): its config and checkpoint files.
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("checkpoint")).unwrap();
    std::fs::write(run.join("config.json"), b"{\"keep\": 1}").unwrap();
    std::fs::write(run.join("checkpoint").join("model.mpk"), b"weights").unwrap();
    for out in [
        run.join("config.json"),
        run.join("checkpoint").join("model.mpk"),
        run.join("new.safetensors"),
    ] {
        let o = bnn(&["export", "--checkpoint", s(&run), "--out", s(&out)]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(
            err.contains("--out") && err.contains("inside --checkpoint"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read(run.join("config.json")).unwrap(),
        b"{\"keep\": 1}"
    );
    assert_eq!(
        std::fs::read(run.join("checkpoint").join("model.mpk")).unwrap(),
        b"weights"
    );
    assert!(!run.join("new.safetensors").exists());

    let o = bnn(&[
        "transfer",
        "--data",
        s(&data),
        "--out",
        s(&data),
        "--extractor-device",
        "cpu",
    ]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("--out") && err.contains("--data"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&data).unwrap().len(), data_before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `transfer` with an --out it cannot write fails at once, naming --out (not after extracting
/// and training); a cache directory it cannot write is one warning, and the run goes on.
// `bnn transfer` and `bnn export` are subcommands of the `train` feature.
#[cfg(feature = "train")]
#[test]
fn cli_transfer_checks_its_output_first_and_runs_without_a_writable_cache() {
    use common::{bnn, s};
    let dir = scratch("unwritable");
    let data = common::fixture_set();
    // A path under a regular file cannot be written, even by root (who ignores permissions).
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = dir.join("cache");
    let o = bnn(&[
        "transfer",
        "--data",
        s(&data),
        "--out",
        s(&blocker.join("out")),
        "--cache-dir",
        s(&cache),
        "--epochs",
        "1",
        "--extractor-device",
        "cpu",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("--out") && err.contains("cannot write"),
        "{err}"
    );
    // Nothing was extracted: the cache is empty.
    assert!(std::fs::read_dir(&cache).map_or(true, |mut d| d.next().is_none()));

    let out = dir.join("out");
    let o = bnn(&[
        "transfer",
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--cache-dir",
        s(&blocker.join("cache")),
        "--epochs",
        "1",
        "--extractor-device",
        "cpu",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("cannot be written").count(), 1, "{err}");
    assert!(out.join("report.json").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

// `bnn transfer` and `bnn export` are subcommands of the `train` feature.
#[cfg(feature = "train")]
#[test]
fn cli_transfer_refuses_to_select_on_the_test_split() {
    use common::{bnn, s};
    let dir = scratch("valtest");
    let data = common::fixture_set();
    for (flag, split) in [
        ("--val-split", "test"),
        ("--train-split", "test"),
        ("--val-split", "train"),
    ] {
        let out = dir.join(format!("out{flag}{split}"));
        let o = bnn(&[
            "transfer",
            "--data",
            s(&data),
            "--out",
            s(&out),
            flag,
            split,
            "--extractor-device",
            "cpu",
        ]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{flag} {split}: {err}");
        assert!(err.contains(&format!("{flag} {split}")), "{err}");
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tar entry whose path leaves the archive (`../x.png`) is skipped, as before, but said once.
#[test]
fn cli_says_once_that_tar_entries_leaving_the_archive_are_skipped() {
    use common::{bnn, s};
    let dir = scratch("dotdot");
    let src = common::fixture_set();
    let tar_path = dir.join("dotdot.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    // The fixture's tree (beside its tar), then two entries that leave the archive.
    builder
        .append_dir_all(".", src.parent().unwrap().join("shapes"))
        .unwrap();
    for name in ["../evil.png", "train/../../evil2.png"] {
        let mut h = tar::Header::new_ustar();
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        builder.append(&h, &b"bad"[..]).unwrap();
    }
    builder.finish().unwrap();
    drop(builder);
    let out = dir.join("f.safetensors");
    let o = bnn(&[
        "extract",
        "--data",
        s(&tar_path),
        "--split",
        "test",
        "--out",
        s(&out),
        "--device",
        "cpu",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("'..'").count(), 1, "{err}");
    assert!(
        err.contains("2 entries") && err.contains("../evil.png"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 25: two `bnn transfer` runs sharing --out and --cache-dir removed each other's temp
/// files (one of them failed in about a quarter of the pairs, `…/head.safetensors: No such file
/// or directory`). Both must succeed, every time.
// `bnn transfer` and `bnn export` are subcommands of the `train` feature.
#[cfg(feature = "train")]
#[test]
fn cli_transfers_sharing_an_output_and_a_cache_both_succeed() {
    use common::s;
    let dir = scratch("concurrent");
    let data = common::fixture_set();
    for round in 0..4 {
        let (out, cache) = (
            dir.join(format!("out{round}")),
            dir.join(format!("cache{round}")),
        );
        let run = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_bnn"))
                .args([
                    "transfer",
                    "--data",
                    s(&data),
                    "--out",
                    s(&out),
                    "--cache-dir",
                    s(&cache),
                    "--epochs",
                    "2",
                    "--extractor-device",
                    "cpu",
                    "--workers",
                    "1",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (run(), run());
        for child in [a, b] {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
        }
        assert!(out.join("report.json").is_file());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
