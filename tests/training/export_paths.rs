//! Export paths not covered by `export_equivalence.rs`: a hand-built network whose conv widths (33,
//! 40) and dense widths (40, 33) are not multiples of 32, trained briefly with the XNOR-Net α, so
//! the first dense layer reads a padded NHWC map (`dot_offset` > 0); the same extractor under
//! downlevel limits; and `bnn pretrain` → `bnn export` → `bnn extract` through the binary.
#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::{options, schedule, scratch};

use common::{bnn, s};

use std::path::{Path, PathBuf};

use bnn_transfer::arch::{Arch, ConvBlock, Pool};
use bnn_transfer::export::{self, ExportSource};
use bnn_transfer::extractor::{
    Extractor, ExtractorFile, FeatureCache, Features, LayerKind, Output, reference,
};
use bnn_transfer::gpu::Gpu;
use bnn_transfer::model::Precision;
use bnn_transfer::train::{self, ScheduleKind};
use burn::tensor::Device;

/// 32 px → conv 33 3×3 + pool 2 → 16 → conv 40 3×3 + pool 2 → 8×8×40 → fc 40 → fc 33 → classes.
fn padded_arch(classes: usize) -> Arch {
    let pool = Some(Pool {
        kernel: 2,
        stride: 2,
    });
    let conv = |out| ConvBlock {
        out,
        kernel: 3,
        stride: 1,
        pad: 1,
        pool,
        shortcut: false,
    };
    Arch {
        name: "padded".into(),
        input: 32,
        in_channels: 3,
        convs: vec![conv(33), conv(40)],
        dense: vec![40, 33],
        classes,
        blocks: Default::default(),
    }
}

/// One short α training of [`padded_arch`], shared by the tests of this binary.
fn trained(data: &Path) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = scratch("paths-alpha");
        let schedule = schedule(ScheduleKind::Constant, 5e-3);
        let mut cfg =
            train::new_config(data, "mini", Precision::Binary, 3, 10, schedule, 11).unwrap();
        cfg.model.arch = padded_arch(cfg.classes.len());
        cfg.model.weight_scale = true;
        let o = options(&out);
        train::pretrain(cfg, &o).unwrap();
        out
    })
    .clone()
}

/// Every cut of the trained padded model, serialised and read back, with the validation images.
fn files(data: &Path) -> (Vec<ExtractorFile>, Vec<f32>, usize) {
    let dir = trained(data);
    let device = Device::flex();
    let (config, model) = train::checkpoint::load_model(&dir, &device).unwrap();
    assert!(model.weight_scale && config.weight_scale);
    let (images, n) = common::val_images(data, config.arch.input);
    let mut out = Vec::new();
    let mut earlier_ties = 0u64;
    for cut in export::layer_names(&config.arch) {
        let src = ExportSource {
            val_top1: None,
            epochs: None,
            checkpoint: dir.display().to_string(),
        };
        let file = export::build(&model, &config, Some(&cut), src).unwrap();
        let file = ExtractorFile::from_bytes(&file.to_bytes().unwrap(), Path::new("mem")).unwrap();
        assert!(file.graph.source.weight_scale);
        let v = export::verify(&model, &file, &images, n, &device, common::gpu()).unwrap();
        eprintln!("cut {cut}: {v:?}");
        assert_eq!(v.per_layer.mismatches, 0, "{cut}: {v:?}");
        assert!(
            v.per_layer.ties * 1000 <= v.per_layer.bits,
            "{cut}: too many ties {v:?}"
        );
        v.check().unwrap();
        assert_eq!(v.paths.len(), 1 + common::gpu().is_some() as usize, "{v:?}");
        assert!(
            v.paths.iter().all(|p| p.mismatches == 0 && p.bits > 0),
            "{v:?}"
        );
        // verify's end to end is the scalar reference against burn at the cut.
        if earlier_ties == 0 {
            assert_eq!(v.end_to_end.mismatches, 0, "{cut}: {v:?}");
        } else {
            assert!(v.end_to_end.mismatches * 100 <= v.end_to_end.bits, "{v:?}");
        }
        earlier_ties += v.per_layer.ties;
        out.push(file);
    }
    (out, images, n)
}

/// The WGSL extractor on `gpu` equals the scalar reference exactly (bits, pre-activations, signs).
fn wgsl_matches_reference(gpu: &Gpu, file: &ExtractorFile, images: &[f32], n: usize) {
    let cut = &file.graph.cut;
    let ex = Extractor::new(gpu, file.clone()).unwrap();
    for output in [Output::Bits, Output::Preact, Output::Signs] {
        let g = ex.run(images, output).unwrap();
        let c = reference::run(file, images, n, output).unwrap();
        assert_eq!(g, c, "{cut}: WGSL and reference differ ({output:?})");
    }
}

#[test]
fn padded_flatten_with_alpha_matches_burn_and_the_wgsl_extractor_at_every_cut() {
    let data = common::fixture_set();
    let (files, images, n) = files(&data);
    let names: Vec<_> = files.iter().map(|f| f.graph.cut.as_str()).collect();
    assert_eq!(names, ["conv1", "conv2", "fc1", "fc2"]);
    // The padded flatten: 8×8 pixels × (64 − 40) padding channels.
    let fc1 = &files[3].layers[2].spec;
    assert_eq!(fc1.kind, LayerKind::XnorDense);
    assert_eq!(fc1.in_shape, [8, 8, 40]);
    assert_eq!(fc1.in_features, 8 * 8 * 64);
    assert_eq!(fc1.dot_offset, 8 * 8 * 24);
    let fc2 = &files[3].layers[3].spec;
    assert_eq!((fc2.in_features, fc2.dot_offset), (40, 0));
    assert!(files[3].classifier.is_some() && files[2].classifier.is_none());
    let Some(gpu) = common::gpu() else { return };
    for f in &files {
        wgsl_matches_reference(gpu, f, &images, n);
    }
}

#[test]
fn downlevel_limits_give_the_same_features() {
    let data = common::fixture_set();
    let Some(gpu) = common::gpu_downlevel() else {
        return;
    };
    let (files, images, n) = files(&data);
    for f in &files {
        wgsl_matches_reference(gpu, f, &images, n);
    }
}

#[test]
fn cli_pretrain_export_extract_end_to_end() {
    let data = common::fixture_set();
    let dir = scratch("paths-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    let model = dir.join("m.safetensors");
    let feats = dir.join("f.safetensors");
    let pretrain = [
        "pretrain",
        "--data",
        s(&data),
        "--arch",
        "mini",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        s(&run),
    ];
    assert!(bnn(&pretrain).status.success());
    assert!(run.join("config.json").is_file());
    let o = bnn(&["export", "--checkpoint", s(&run), "--out", s(&model)]);
    assert!(o.status.success());
    assert!(model.is_file());
    let file = ExtractorFile::load(&model).unwrap();
    assert_eq!(file.graph.cut, "fc1");
    // The file records the command that trained it; rerun, that command trains the same network.
    let cmd = file.graph.source.trained_with.clone().unwrap();
    assert!(
        cmd.starts_with("bnn pretrain --data ") && cmd.contains("--arch mini --precision binary"),
        "{cmd}"
    );
    assert!(
        cmd.contains("--epochs 1 --batch-size 16") && cmd.contains("--seed 0"),
        "{cmd}"
    );
    assert!(file.graph.source.float_twin.is_none());
    // --float-twin records the twin's accuracy and command; a binary run is refused as a twin.
    let twin = dir.join("twin");
    let mut float_pretrain = pretrain.to_vec();
    float_pretrain[10] = s(&twin);
    float_pretrain.extend(["--precision", "float"]);
    assert!(bnn(&float_pretrain).status.success());
    let with_twin = dir.join("m-twin.safetensors");
    let o = bnn(&[
        "export",
        "--checkpoint",
        s(&run),
        "--out",
        s(&with_twin),
        "--float-twin",
        s(&twin),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = ExtractorFile::load(&with_twin)
        .unwrap()
        .graph
        .source
        .float_twin
        .unwrap();
    assert_eq!(t.arch, "mini");
    assert!(
        t.val_top1.is_some() && t.trained_with.contains("--precision float"),
        "{t:?}"
    );
    let o = bnn(&[
        "export",
        "--checkpoint",
        s(&run),
        "--out",
        s(&with_twin),
        "--float-twin",
        s(&run),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--float-twin"), "{err}");

    // A truncated model file is a clean error naming the file (checked before any GPU is opened).
    let bytes = std::fs::read(&model).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let bad_out = dir.join("bad.safetensors");
    let extract_on = |m: &Path, out: &Path, device: &str, output: &str| {
        let d = s(&data);
        bnn(&[
            "extract",
            "--model",
            s(m),
            "--data",
            d,
            "--split",
            "test",
            "--out",
            s(out),
            "--device",
            device,
            "--output",
            output,
        ])
    };
    let extract = |m: &Path, out: &Path| extract_on(m, out, "adapter", "bits");
    let o = extract(&truncated, &bad_out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains(s(&truncated)), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!bad_out.exists());

    // The CPU binary path needs no adapter, and every output equals the kernels' on an adapter.
    for output in ["bits", "signs", "preact"] {
        let cpu = dir.join(format!("cpu-{output}.safetensors"));
        assert!(extract_on(&model, &cpu, "cpu", output).status.success());
        let cpu = FeatureCache::load(&cpu).unwrap();
        assert_eq!(cpu.labels.len(), common::FIXTURE_PER_SPLIT);
        if common::gpu().is_some() {
            let on_adapter = dir.join(format!("adapter-{output}.safetensors"));
            assert!(
                extract_on(&model, &on_adapter, "adapter", output)
                    .status
                    .success()
            );
            let on_adapter = FeatureCache::load(&on_adapter).unwrap();
            assert_eq!(cpu.features, on_adapter.features, "{output}");
            assert_eq!(cpu.labels, on_adapter.labels);
        }
    }
    if common::gpu().is_none() {
        return; // the adapter's run; common::gpu printed why (or failed under REQUIRE_GPU)
    }
    assert!(extract(&model, &feats).status.success());
    let cache = FeatureCache::load(&feats).unwrap();
    assert_eq!(cache.labels.len(), common::FIXTURE_PER_SPLIT);
    assert_eq!(cache.info.output, Output::Bits);
    assert_eq!((cache.info.dim, cache.info.per_image), (128, 4));
    assert_eq!(cache.info.split, "test");
    let Features::Bits(words) = &cache.features else {
        panic!("bits")
    };
    assert_eq!(words.len(), common::FIXTURE_PER_SPLIT * 4);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Export verifies on the run's own validation images and writes the same bytes every time.
#[test]
fn export_is_reproducible_and_verified_on_the_runs_own_images() {
    let data = common::fixture_set();
    let dir = trained(&data);
    let out = scratch("paths-repro");
    std::fs::create_dir_all(&out).unwrap();
    let options = export::ExportOptions::default();
    let a = export::export(&dir, &out.join("a.safetensors"), &options).unwrap();
    let b = export::export(&dir, &out.join("b.safetensors"), &options).unwrap();
    assert_eq!(
        std::fs::read(out.join("a.safetensors")).unwrap(),
        std::fs::read(out.join("b.safetensors")).unwrap()
    );
    let v = &a.verification;
    assert_eq!(v.images, 16);
    assert!(v.image_source.contains("(val)"), "{}", v.image_source);
    assert!(v.paths.iter().any(|p| p.path.starts_with("cpu")));
    assert_eq!(a.file_bytes, b.file_bytes);
}

/// A file that disagrees with its model is never written: one flipped weight bit fails the
/// verification gate, and a checkpoint with a corrupt batch norm is refused before export.
#[test]
fn export_refuses_to_write_what_does_not_verify() {
    use burn::module::Param;
    use burn::tensor::Tensor;
    let data = common::fixture_set();
    let dir = trained(&data);
    let device = Device::flex();
    let (config, model) = train::checkpoint::load_model(&dir, &device).unwrap();
    let src = ExportSource {
        val_top1: None,
        epochs: None,
        checkpoint: dir.display().to_string(),
    };
    let mut file = export::build(&model, &config, None, src.clone()).unwrap();
    file.layers[1].weights[0] ^= 1;
    let (images, n) = common::val_images(&data, config.arch.input);
    let v = export::verify(&model, &file, &images, n, &device, None).unwrap();
    let why = v.check().unwrap_err();
    assert!(why.contains("mismatches"), "{why}");
    let out = scratch("paths-refuse").join("m.safetensors");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let err = export::write_verified(&file, &v, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing written"), "{err}");
    assert!(!out.exists());

    // A diverged checkpoint: NaN in a batch norm's gamma.
    let mut bad = model.clone();
    let c = config.arch.convs[1].out;
    bad.convs[1].bn.gamma = Param::from_tensor(Tensor::<1>::full([c], f32::NAN, &device));
    let err = export::build(&bad, &config, None, src)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv2") && err.contains("gamma"), "{err}");
}

/// Issue 25: `export` wrote the new file, then failed on its `.export.json` report and exited 1
/// with the file in place. The two are written both or neither: a report that cannot be written
/// fails before the export, and an old file at --out is left as it was.
#[test]
fn cli_export_writes_the_file_and_its_report_both_or_neither() {
    let data = common::fixture_set();
    let run = trained(&data);
    let dir = scratch("paths-sidecar");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("m.safetensors");
    // The report's path is a (non-empty) directory: it cannot be written.
    let report = dir.join("m.export.json");
    std::fs::create_dir_all(report.join("x")).unwrap();
    let export = |out: &Path| {
        bnn(&[
            "export",
            "--checkpoint",
            s(&run),
            "--out",
            s(out),
            "--no-gpu-check",
            "--verify-images",
            "2",
        ])
    };
    let o = export(&out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("m.export.json"), "{err}");
    assert!(!out.exists(), "the file was left without its report");
    // An old file at --out stays as it was.
    std::fs::write(&out, b"old").unwrap();
    assert!(!export(&out).status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
    // Where the report can be written, both are.
    std::fs::remove_dir_all(&report).unwrap();
    assert!(export(&out).status.success());
    assert!(ExtractorFile::load(&out).is_ok() && report.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
