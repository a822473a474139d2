//! Bi-Real blocks end to end: a `mini-bireal` network (identity, average-pool and average-pool +
//! 1×1 projection shortcuts, RSign, RPReLU, XNOR-Net α)
//! trained briefly on the generated fixture set is exported at every cut; each layer fed burn's own
//! input gives burn's signs except counted ties and burn's real output within
//! `export::REAL_TOLERANCE`, the whole file matches burn's features, and the WGSL and CPU paths
//! equal the scalar reference bit for bit (real outputs included). The file is format version 2,
//! and a file claiming version 1 is refused.
#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::{options, schedule};

use std::path::{Path, PathBuf};

use bnn_transfer::arch::Blocks;
use bnn_transfer::export::{self, ExportSource};
use bnn_transfer::extractor::{
    Extractor, ExtractorFile, Features, Output, Shortcut, VERSION_REAL, reference,
};
use bnn_transfer::model::Precision;
use bnn_transfer::train::{self, ScheduleKind};
use burn::tensor::Device;

fn train_once(data: &Path) -> PathBuf {
    let out = std::env::temp_dir().join(format!("bnn-bireal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let schedule = schedule(ScheduleKind::Cosine, 5e-3);
    let mut cfg =
        train::new_config(data, "mini-bireal", Precision::Binary, 6, 10, schedule, 3).unwrap();
    cfg.model.weight_scale = true;
    let o = options(&out);
    train::pretrain(cfg, &o).unwrap();
    out
}

#[test]
fn a_bireal_network_exports_exactly_at_every_cut() {
    let data = common::fixture_set();
    let dir = train_once(&data);
    let device = Device::flex();
    let (config, model) = train::checkpoint::load_model(&dir, &device).unwrap();
    assert_eq!(config.arch.blocks, Blocks::BiReal);
    assert!(model.bireal && model.weight_scale);
    // The trained RPReLU and RSign moved from their initial values (so the test exercises them).
    let slope = model.convs[1].rprelu.as_ref().unwrap().slope.val();
    let moved: f32 = (slope - 0.25).abs().sum().into_scalar();
    assert!(moved > 0.0, "RPReLU slopes did not train");

    let (images, n) = common::val_images(&data, config.arch.input);
    let burn = export::burn_layers(&model, &images, n, config.arch.input, &device);
    let gpu = common::gpu();
    let mut earlier_ties = 0u64;
    for (i, cut) in export::layer_names(&config.arch).iter().enumerate() {
        let src = ExportSource {
            val_top1: None,
            epochs: None,
            checkpoint: dir.display().to_string(),
        };
        let file = export::build(&model, &config, Some(cut), src).unwrap();
        let bytes = file.to_bytes().unwrap();
        let back = ExtractorFile::from_bytes(&bytes, Path::new("mem")).unwrap();
        assert_eq!(back, file, "{cut}: the file does not round-trip");
        assert_eq!(file.version(), VERSION_REAL);
        let shortcuts: Vec<Shortcut> = file
            .layers
            .iter()
            .filter_map(|l| l.spec.real.map(|r| r.shortcut))
            .collect();
        eprintln!("cut {cut}: shortcuts {shortcuts:?}");
        // conv3 changes the channel count (32 → 64): its shortcut is average-pooled and projected.
        if let Some(conv3) = file.layers.get(2) {
            assert!(conv3.projection.is_some() && conv3.spec.real.unwrap().project);
        }

        let v = export::verify(&model, &file, &images, n, &device, gpu).unwrap();
        eprintln!("cut {cut}: verification {v:?}");
        v.check().unwrap();
        assert_eq!(v.per_layer.mismatches, 0, "{cut}: {v:?}");
        assert!(v.real_error <= export::REAL_TOLERANCE, "{cut}: {v:?}");
        assert!(v.paths.iter().all(|p| p.mismatches == 0), "{cut}: {v:?}");
        assert_eq!(v.paths.len(), 1 + gpu.is_some() as usize);

        let Features::Bits(want) = reference::run(&file, &images, n, Output::Bits).unwrap() else {
            panic!("bits")
        };
        let c = file.cut().out_channels();
        let e2e = export::compare_bits(&want, &burn[i].act, &burn[i].post, c);
        eprintln!("cut {cut}: end to end {e2e:?}");
        if earlier_ties == 0 {
            assert_eq!(e2e.mismatches, 0, "{cut}: no earlier ties, yet {e2e:?}");
        } else {
            assert!(e2e.mismatches * 100 <= e2e.bits, "{cut}: {e2e:?}");
        }
        earlier_ties += v.per_layer.ties;
        if let Some(gpu) = gpu {
            let ex = Extractor::new(gpu, file.clone()).unwrap();
            let Features::Bits(g) = ex.run(&images, Output::Bits).unwrap() else {
                panic!("bits")
            };
            assert_eq!(g, want, "{cut}: WGSL and scalar reference differ");
            // A real layer's `preact` output is its real output z, bit for bit.
            let pg = ex.run(&images, Output::Preact).unwrap();
            let pc = reference::run(&file, &images, n, Output::Preact).unwrap();
            if let (Features::Float(a), Features::Float(b)) = (&pg, &pc) {
                let diff: Vec<(usize, f32, f32)> = a
                    .iter()
                    .zip(b)
                    .enumerate()
                    .filter(|(_, (x, y))| x.to_bits() != y.to_bits())
                    .map(|(i, (x, y))| (i, *x, *y))
                    .collect();
                assert!(
                    diff.is_empty(),
                    "{cut}: {} of {} real outputs differ (index, wgsl, reference): {:?}",
                    diff.len(),
                    a.len(),
                    &diff[..diff.len().min(8)]
                );
            }
            assert_eq!(pg, pc, "{cut}: pre-activations differ");
            if let (Features::Float(z), Some(theirs)) = (&pc, &burn[i].real) {
                let worst = z
                    .iter()
                    .zip(theirs)
                    .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                    .fold(0f32, f32::max);
                eprintln!("cut {cut}: real output vs burn, end to end: {worst:.2e}");
            }
        }
        // The version is part of the contract: a version-1 label on a real graph is refused.
        let key = br#""version":"2""#;
        let at = bytes
            .windows(key.len())
            .position(|w| w == key)
            .expect("version key");
        let mut relabelled = bytes.clone();
        relabelled[at + key.len() - 2] = b'1';
        let err = ExtractorFile::from_bytes(&relabelled, Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("version"), "{err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// The command line end to end: `bnn pretrain --arch mini-bireal --weight-scale`, `bnn export`,
/// then `bnn extract` on the CPU path and on the adapter give the same bits and the same real
/// outputs (`--output preact` at a real layer).
#[test]
fn the_cli_trains_exports_and_extracts_a_bireal_network() {
    use bnn_transfer::extractor::FeatureCache;
    use common::{bnn, s};
    let data = common::fixture_set();
    let dir = std::env::temp_dir().join(format!("bnn-bireal-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (run, model) = (dir.join("run"), dir.join("out/m.safetensors"));
    let o = bnn(&[
        "pretrain",
        "--data",
        s(&data),
        "--arch",
        "mini-bireal",
        "--weight-scale",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        s(&run),
    ]);
    assert!(o.status.success());
    let o = bnn(&[
        "export",
        "--checkpoint",
        s(&run),
        "--out",
        s(&model),
        "--cut",
        "conv4",
    ]);
    assert!(o.status.success());
    let file = ExtractorFile::load(&model).unwrap();
    assert_eq!(file.version(), VERSION_REAL);
    assert!(file.graph.source.weight_scale);
    for output in ["bits", "preact"] {
        let extract = |device: &str| {
            let out = dir.join(format!("{device}-{output}.safetensors"));
            let o = bnn(&[
                "extract",
                "--model",
                s(&model),
                "--data",
                s(&data),
                "--split",
                "test",
                "--out",
                s(&out),
                "--device",
                device,
                "--output",
                output,
            ]);
            assert!(o.status.success());
            FeatureCache::load(&out).unwrap()
        };
        let cpu = extract("cpu");
        assert_eq!(cpu.labels.len(), common::FIXTURE_PER_SPLIT);
        if common::gpu().is_some() {
            let gpu = extract("adapter");
            assert_eq!(cpu.features, gpu.features, "{output}");
        }
        if output == "preact" {
            // The real output of conv4: [4][4][64] f32 per image.
            assert_eq!(cpu.info.dim, 4 * 4 * 64, "{:?}", cpu.info);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
