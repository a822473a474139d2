//! Transfer learning: multi-cut extraction equals one run per cut (WGSL and CPU, bit-exact), the
//! feature cache is reused and invalidated, heads train, save, load and predict the same logits,
//! broken head files are clean errors, and `bnn transfer` / `bnn predict` work end to end.

#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::{mini, scratch_dir};

use common::{bnn, s};

use std::path::Path;
use std::sync::Arc;

use bnn_transfer::data::{ImageFolder, Loader, LoaderConfig, Preprocess};
use bnn_transfer::extractor::{Extractor, ExtractorFile, Output, reference};
use bnn_transfer::progress::Silent;
use bnn_transfer::rng::Rng;
use bnn_transfer::transfer::features::{self, Cache, Fingerprint};
use bnn_transfer::transfer::fit::{self, FitConfig};
use bnn_transfer::transfer::head::{self, BackboneInfo, BackboneKind, Head, HeadInfo};
use bnn_transfer::transfer::{FeatureSet, evaluate};
use bnn_transfer::{ExtractorDevice, FeatureExtractor};

fn images(data: &Path, split: &str, size: usize) -> (Vec<f32>, usize) {
    let set = Arc::new(ImageFolder::open(data, split).unwrap());
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle_seed: None,
        ..LoaderConfig::default()
    };
    let (mut x, mut n) = (Vec::new(), 0);
    for b in Loader::new(set, Preprocess::eval(size), cfg) {
        let b = b.unwrap();
        n += b.len();
        x.extend(b.images);
    }
    (x, n)
}

#[test]
fn taps_equal_one_run_per_cut_on_gpu_and_cpu() {
    let data = common::fixture_set();
    let (_, path) = mini(&data);
    let file = ExtractorFile::load(&path).unwrap();
    let (x, n) = images(&data, "val", file.graph.input.size);
    let names = file.layer_names();
    let taps: Vec<usize> = (0..names.len()).rev().collect();
    let cpu = reference::run_taps(&file, &x, n, &taps).unwrap();
    for (&t, bits) in taps.iter().zip(&cpu) {
        let cut = file.truncated(&names[t]).unwrap();
        assert_eq!(cut.graph.cut, names[t]);
        let one = reference::run(&cut, &x, n, Output::Bits).unwrap();
        assert_eq!(
            one,
            bnn_transfer::extractor::Features::Bits(bits.clone()),
            "{}",
            names[t]
        );
    }
    assert!(file.truncated("nope").is_err());
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    for isa in bnn_transfer::cpu::Isa::available() {
        let fast = bnn_transfer::cpu::CpuExtractor::with_isa(&file, &threads, isa).unwrap();
        let fast = fast.run_taps(&x, n, &taps).unwrap();
        assert_eq!(
            fast, cpu,
            "the fast CPU path's taps ({isa}) equal the reference's"
        );
    }
    let Some(gpu) = common::gpu() else {
        return;
    };
    let ex = Extractor::new(gpu, file.clone()).unwrap();
    assert_eq!(ex.run_taps(&x, &taps).unwrap(), cpu);
    assert!(ex.run_taps(&x, &[names.len()]).is_err());
}

/// The exported fixture model at `path` on the CPU binary path, its backbone fingerprint
/// replaced by `fingerprint` when given (a stand-in for a retrained model).
fn cpu_extractor(path: &Path, fingerprint: Option<Fingerprint>) -> FeatureExtractor {
    let mut backbone = bnn_transfer::assets::load_backbone(Some(path)).unwrap();
    if let Some(fp) = fingerprint {
        backbone.fingerprint = fp;
    }
    FeatureExtractor::from_backbone_blocking(backbone, None, ExtractorDevice::Cpu).unwrap()
}

#[test]
fn cache_is_reused_and_replaced_when_the_data_changes() {
    let data = common::fixture_set();
    let (_, path) = mini(&data);
    let dir = scratch_dir("transfer-cache");
    let cache = Cache {
        dir: dir.join("cache"),
    };
    let ex = cpu_extractor(&path, None);
    let cuts = vec!["fc1".to_string(), "conv2".to_string()];
    let set = Arc::new(ImageFolder::open(&data, "test").unwrap());
    let (first, secs) =
        features::extractor_features(&ex, set.clone(), &cuts, &cache, 16, 1, &Silent).unwrap();
    assert!(secs > 0.0);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].dim, 128);
    assert_eq!(first[0].len(), common::FIXTURE_PER_SPLIT);
    assert!(first[0].x.iter().all(|&v| v == 1.0 || v == -1.0));
    let (again, secs) =
        features::extractor_features(&ex, set.clone(), &cuts, &cache, 16, 1, &Silent).unwrap();
    assert_eq!(secs, 0.0, "second run must come from the cache");
    assert_eq!(again, first);
    // Another backbone fingerprint (a retrained model): new files; the old ones are stale and
    // replaced.
    let other = cpu_extractor(&path, Some(Fingerprint::default().str("other")));
    let (_, secs) =
        features::extractor_features(&other, set, &cuts, &cache, 16, 1, &Silent).unwrap();
    assert!(secs > 0.0);
    let files: Vec<_> = std::fs::read_dir(&cache.dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 2, "one file per cut, stale ones removed");
    // A corrupt cache file is rebuilt, not trusted.
    for f in &files {
        std::fs::write(f.path(), b"garbage").unwrap();
    }
    let set = Arc::new(ImageFolder::open(&data, "test").unwrap());
    let (rebuilt, secs) =
        features::extractor_features(&other, set, &cuts, &cache, 16, 1, &Silent).unwrap();
    assert!(secs > 0.0);
    assert_eq!(rebuilt, first);
}

#[test]
fn a_cache_whose_class_list_was_edited_is_replaced() {
    let data = common::fixture_set();
    let (_, path) = mini(&data);
    let dir = scratch_dir("transfer-cache-classes");
    let cache = Cache {
        dir: dir.join("cache"),
    };
    let ex = cpu_extractor(&path, None);
    let cuts = vec!["fc1".to_string()];
    let set = Arc::new(ImageFolder::open(&data, "test").unwrap());
    let (first, secs) =
        features::extractor_features(&ex, set.clone(), &cuts, &cache, 16, 1, &Silent).unwrap();
    assert!(secs > 0.0);
    // Same key, same features, other class names (a hand-edited or foreign file).
    let files: Vec<_> = std::fs::read_dir(&cache.dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let mut c = bnn_transfer::extractor::FeatureCache::load(&files[0].path()).unwrap();
    c.info.classes.reverse();
    c.info.classes[0] = "not-a-class-of-the-set".into();
    c.save(&files[0].path()).unwrap();
    let (again, secs) =
        features::extractor_features(&ex, set.clone(), &cuts, &cache, 16, 1, &Silent).unwrap();
    assert!(secs > 0.0, "a cache with other classes must not be used");
    assert_eq!(again, first);
    assert_eq!(again[0].classes, set.classes);
    // The rewritten file is valid again: the next run reads it.
    let (_, secs) = features::extractor_features(&ex, set, &cuts, &cache, 16, 1, &Silent).unwrap();
    assert_eq!(secs, 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two Gaussian blobs per class in 12 dimensions: separable, so a head must learn them.
fn blobs(rng: &mut Rng, n: usize, classes: usize) -> FeatureSet {
    let dim = 12;
    let centers: Vec<f32> = (0..classes * dim).map(|_| rng.range(-2.0, 2.0)).collect();
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % classes;
        for d in 0..dim {
            x.push(centers[c * dim + d] + rng.range(-0.5, 0.5));
        }
        labels.push(c);
    }
    FeatureSet {
        dim,
        x,
        labels,
        classes: (0..classes).map(|c| format!("c{c}")).collect(),
    }
}

#[test]
fn heads_learn_save_load_and_agree() {
    let mut rng = Rng::new(5);
    // Same centers for all three sets: draw them once through one generator state.
    let all = blobs(&mut rng, 600, 4);
    let split = |r: std::ops::Range<usize>| FeatureSet {
        dim: all.dim,
        x: all.x[r.start * all.dim..r.end * all.dim].to_vec(),
        labels: all.labels[r.clone()].to_vec(),
        classes: all.classes.clone(),
    };
    let (train, val, test) = (split(0..400), split(400..500), split(500..600));
    let dir = scratch_dir("transfer-heads");
    for hidden in [vec![], vec![16]] {
        let cfg = FitConfig {
            hidden: hidden.clone(),
            epochs: 40,
            patience: 5,
            ..FitConfig::default()
        };
        let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
        let fitted = fit::fit(&train, Some(&val), &cfg, &threads, &mut |_| {}).unwrap();
        // The thread count splits work, never sums: one thread trains the same head.
        let one = bnn_transfer::cpu::Threads::new(1).unwrap();
        let alone = fit::fit(&train, Some(&val), &cfg, &one, &mut |_| {}).unwrap();
        assert_eq!(alone.layers, fitted.layers);
        assert_eq!(alone.history, fitted.history);
        assert!(fitted.best_epoch >= 1 && fitted.best_epoch <= fitted.history.len());
        let (mean, scale) = head::standardisation(&train.x, train.dim);
        let h = Head {
            info: HeadInfo {
                version: head::HEAD_VERSION,
                classes: train.classes.clone(),
                backbone: BackboneInfo {
                    kind: BackboneKind::Extractor,
                    path: "x".into(),
                    fingerprint: "0".into(),
                },
                cut: "fc1".into(),
                dim: train.dim,
                hidden: hidden.clone(),
                input_size: 32,
                data: "blobs".into(),
                layout: "imagefolder".into(),
            },
            // Identity standardisation: the head was trained on raw features here.
            mean: vec![0.0; mean.len()],
            scale: vec![1.0; scale.len()],
            layers: fitted.layers,
        };
        let e = evaluate(&h.logits(&test.x).unwrap(), &test.labels, &test.classes, 3);
        assert!(e.top1 > 0.95, "hidden {hidden:?}: {e:?}");
        let p = dir.join("h.safetensors");
        h.save(&p).unwrap();
        let back = Head::load(&p).unwrap();
        assert_eq!(back, h);
        // Broken files are clean errors.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 9]).unwrap();
        assert!(Head::load(&p).is_err());
        std::fs::write(&p, b"not a head").unwrap();
        let msg = Head::load(&p).unwrap_err().to_string();
        assert!(msg.contains("h.safetensors"), "{msg}");
    }
}

#[test]
fn cli_transfer_then_predict() {
    let data = common::fixture_set();
    let (run, path) = mini(&data);
    let dir = scratch_dir("transfer-cli");
    let out = dir.join("t");
    let cache = dir.join("cache");
    // Temp files that killed runs left behind are cleaned up.
    let stale = [
        cache.join(".m-fc1-train-0.safetensors.tmp999999"),
        out.join(".report.json.tmp999999"),
    ];
    for f in &stale {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"half").unwrap();
    }
    let o = bnn(&[
        "transfer",
        "--model",
        s(&path),
        "--data",
        s(&data),
        "--retrain",
        "1,2",
        "--scratch",
        s(&run),
        "--epochs",
        "20",
        "--cache-dir",
        s(&cache),
        "--out",
        s(&out),
        "--extractor-device",
        "cpu",
    ]);
    assert!(o.status.success());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "two heads and the scratch row");
    assert!(stale.iter().all(|f| !f.exists()));
    for r in rows {
        let t = r["test"]["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t));
        assert_eq!(r["test"]["images"], common::FIXTURE_PER_SPLIT);
    }
    assert_eq!(rows[0]["cut"], "fc1");
    assert_eq!(rows[1]["cut"], "conv3");
    assert_eq!(rows[1]["head"], "mlp:128");
    assert_eq!(
        rows[0]["test"]["per_class"].as_array().unwrap().len(),
        common::FIXTURE_CLASSES
    );
    // results.csv is CSV: the head `mlp:128` is one quoted-if-needed field of every row.
    let mut csv = csv::Reader::from_path(out.join("results.csv")).unwrap();
    let column = csv
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "head")
        .unwrap();
    let heads: Vec<String> = csv
        .records()
        .map(|r| r.unwrap()[column].to_string())
        .collect();
    let want: Vec<&str> = rows.iter().map(|r| r["head"].as_str().unwrap()).collect();
    assert_eq!(heads, want);
    assert!(report["extraction_s"][0][1].as_f64().unwrap() > 0.0);
    let svg = std::fs::read_to_string(out.join("results.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("binary"),
        "results chart"
    );
    let head = out.join("binary-fc1-linear/head.safetensors");
    assert!(head.is_file());

    // Predict agrees with the head applied to the cached features of the same images.
    let img_dir = dir.join("imgs");
    std::fs::create_dir_all(&img_dir).unwrap();
    let set = ImageFolder::open(&data, "test").unwrap();
    let picks = [0usize, 17, common::FIXTURE_PER_SPLIT - 1];
    for i in picks {
        std::fs::write(img_dir.join(format!("{i:02}.png")), set.read(i).unwrap()).unwrap();
    }
    // `bnn predict --json --top 2 --cpu` on the picked images, with `extra` flags.
    let predict = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "predict",
            "--head",
            s(&head),
            "--json",
            "--top",
            "2",
            "--cpu",
        ];
        args.extend(extra);
        args.push(s(&img_dir));
        let o = bnn(&args);
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array().unwrap().clone()
    };
    let preds = predict(&[]);
    assert_eq!(preds.len(), 3);
    let h = Head::load(&head).unwrap();
    let file = ExtractorFile::load(&path).unwrap();
    let (x, n) = images(&data, "test", file.graph.input.size);
    let bits = reference::run(&file, &x, n, Output::Signs).unwrap();
    let bnn_transfer::extractor::Features::Float(signs) = bits else {
        panic!("signs are floats")
    };
    let logits = h.logits(&signs).unwrap();
    let k = common::FIXTURE_CLASSES;
    for (p, i) in preds.iter().zip(picks) {
        let row = &logits[i * k..(i + 1) * k];
        let best = bnn_transfer::transfer::top_k(row, 1)[0];
        assert_eq!(p["labels"][0]["class"], h.info.classes[best.0].as_str());
        let prob = p["labels"][0]["probability"].as_f64().unwrap();
        assert!((prob - best.1 as f64).abs() < 1e-5);
        assert_eq!(p["labels"].as_array().unwrap().len(), 2);
    }

    // Batches of 2 (one full, one partial) give the same answers as one batch of 3.
    assert_eq!(predict(&["--batch-size", "2"]), preds);

    // With no adapter, predict says it runs on the CPU path (and gives the same answer).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bnn"))
        .args([
            "predict",
            "--head",
            s(&head),
            "--json",
            "--top",
            "2",
            s(&img_dir),
        ])
        .env("WGPU_ADAPTER_NAME", "no adapter has this name")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("CPU binary path"), "{stderr}");
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again.as_array().unwrap(), &preds);

    // Bad input: a missing image and a head file that is not one.
    let o = bnn(&["predict", "--head", s(&head), s(&dir.join("missing.jpg"))]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.jpg"));
    let o = bnn(&["predict", "--head", s(&path), s(&img_dir)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a head file"));
}

#[test]
fn cli_transfer_refuses_bad_settings_before_writing_anything() {
    let data = common::fixture_set();
    let dir = scratch_dir("transfer-bad-flags");
    for (flag, value, says) in [
        ("--epochs", "0", "--epochs 0"),
        ("--lr", "NaN", "--lr NaN"),
        ("--lr", "inf", "--lr inf"),
        ("--head", "mlp:100000000", "over the limit"),
        // 18.9 M parameters for 48 training images: far beyond what they can fit.
        ("--head", "mlp:4096,4096", "training images"),
    ] {
        let out = dir.join(format!("out-{flag}-{value}"));
        let args = [
            "transfer",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--extractor-device",
            "cpu",
            flag,
            value,
        ];
        let o = bnn(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{flag} {value}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "{flag} {value} left {}", out.display());
    }
}

#[test]
fn the_lite0_baseline_row_sits_beside_the_binary_rows() {
    let (Some(data), Some(weights)) = (
        common::real_data("flowers102-tiny.tar"),
        common::real_teacher(),
    ) else {
        return;
    };
    let out = scratch_dir("transfer-baseline");
    let cfg = bnn_transfer::transfer::experiment::TransferConfig {
        baseline: Some(weights),
        extractor_device: bnn_transfer::ExtractorDevice::Cpu,
        cache_dir: Some(out.join("cache")),
        out: out.clone(),
        workers: 1,
        ..bnn_transfer::transfer::experiment::TransferConfig::new(data)
    };
    let report = bnn_transfer::transfer::experiment::run(&cfg, &Silent).unwrap();
    let rows: Vec<&str> = report.rows.iter().map(|r| r.backbone.as_str()).collect();
    assert_eq!(rows, ["binary", "efficientnet-lite0 (float)"]);
    let (binary, lite0) = (&report.rows[0], &report.rows[1]);
    // Both rows carry their per-image time and model size; the float model is the bigger one.
    assert!(binary.ms_per_image.is_some_and(|m| m > 0.0));
    assert!(lite0.ms_per_image.is_some_and(|m| m > 0.0));
    assert!(lite0.model_bytes.unwrap() > 10 * binary.model_bytes.unwrap());
    assert_eq!(lite0.features, 1280);
    // ImageNet features separate 5 flower classes far above chance (20 %) on 50 test images.
    assert!(lite0.test.top1 > 0.6, "{:?}", lite0.test.top1);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(
        csv.contains("efficientnet-lite0") && csv.contains("ms_per_image"),
        "{csv}"
    );
    let _ = std::fs::remove_dir_all(out);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// `--scratch` must be a run trained on the target's classes and `--float-twin` a network reading
/// images of the extractor's input size: a mismatch is refused before anything is extracted,
/// naming the flag, the run and what differs.
#[test]
fn cli_transfer_refuses_a_scratch_run_or_float_twin_that_does_not_fit() {
    let data = common::fixture_set();
    let (run, path) = mini(&data);
    let dir = scratch_dir("transfer-runs-fit");
    // A scratch run of other classes: the run's config lists another class first.
    let other = dir.join("other-classes");
    copy_dir(&run, &other);
    let config = other.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let first = v["classes"][0].as_str().unwrap().to_string();
    v["classes"][0] = "tulip".into();
    std::fs::write(&config, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    // The mini run reads 32 px images; the embedded extractor 64 px ones.
    let size =
        ExtractorFile::from_bytes(bnn_transfer::assets::DEFAULT_MODEL, Path::new("embedded"))
            .unwrap()
            .graph
            .input
            .size;
    assert_ne!(size, 32);
    for (flag, value, model, says) in [
        (
            "--scratch",
            &other,
            Some(&path),
            vec!["tulip", first.as_str()],
        ),
        ("--float-twin", &run, None, vec!["32", "input"]),
    ] {
        let out = dir.join(format!("out{flag}"));
        let cache = dir.join(format!("cache{flag}"));
        let mut args = vec![
            "transfer",
            "--data",
            s(&data),
            "--out",
            s(&out),
            "--cache-dir",
            s(&cache),
            "--extractor-device",
            "cpu",
            "--cut",
            "conv1",
            flag,
            s(value),
        ];
        if let Some(m) = model {
            args.extend(["--model", s(m)]);
        }
        let o = bnn(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{flag}: {stderr}");
        assert!(stderr.contains(flag), "{flag}: {stderr}");
        assert!(stderr.contains(s(value)), "{flag}: {stderr}");
        for w in says {
            assert!(stderr.contains(w), "{flag}: no {w} in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "{flag} left {}", out.display());
        assert!(!cache.exists(), "{flag}: features were extracted");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A head far bigger than the training set can fit is refused, naming the flag and its size;
/// the project's usual heads are not.
#[test]
fn a_head_far_beyond_the_training_set_is_refused() {
    let mlp = |hidden: Vec<usize>| FitConfig {
        hidden,
        ..FitConfig::default()
    };
    // Flowers-102 (1,020 training images): --retrain 1, 2, 3 of `small` / `small-bireal`.
    for hidden in [vec![], vec![512], vec![512, 512]] {
        mlp(hidden)
            .validate_for_data(1152, 102, 1020, "`retrain` 3")
            .unwrap();
    }
    // The usual heads on a 48-image test set.
    mlp(vec![512, 512])
        .validate_for_data(1152, 8, 48, "`head` mlp:512,512")
        .unwrap();
    // 168 M parameters (671 MB) for 5 images.
    let err = mlp(vec![8192, 4096])
        .validate_for_data(16384, 5, 5, "`retrain` 7")
        .unwrap_err()
        .to_string();
    for want in [
        "`retrain` 7",
        "mlp:8192,4096",
        "5 training images",
        "671 MB",
        "`retrain` K",
    ] {
        assert!(err.contains(want), "no {want} in {err}");
    }
}
