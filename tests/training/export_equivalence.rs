//! Freeze and run: a `mini` network trained briefly on the generated fixture set is
//! exported; the WGSL extractor's features equal the burn model's (eval mode) bit for bit except
//! counted ties, at every cut, and equal the scalar reference path exactly. Corrupt files are
//! clean errors.
#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::mini;

use std::path::Path;

use bnn_transfer::export::{self, Agreement, ExportSource};
use bnn_transfer::extractor::{Extractor, ExtractorFile, Features, Output, reference};
use bnn_transfer::train;
use burn::tensor::Device;

#[test]
fn wgsl_extractor_matches_burn_and_the_reference_at_every_cut() {
    let data = common::fixture_set();
    let dir = mini(&data).0;
    let device = Device::flex();
    let (config, model) = train::checkpoint::load_model(&dir, &device).unwrap();
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
        // Serialise and read back.
        let bytes = file.to_bytes().unwrap();
        let file = ExtractorFile::from_bytes(&bytes, Path::new("mem")).unwrap();
        let v = export::verify(&model, &file, &images, n, &device, gpu).unwrap();
        v.check().unwrap();
        eprintln!("cut {cut}: {} bytes, verification {v:?}", bytes.len());
        assert_eq!(v.per_layer.mismatches, 0, "{cut}: {v:?}");
        assert_eq!(v.preact_mismatches, 0, "{cut}: {v:?}");
        assert!(
            v.per_layer.ties * 1000 <= v.per_layer.bits,
            "{cut}: too many ties {v:?}"
        );
        let Features::Bits(cpu) = reference::run(&file, &images, n, Output::Bits).unwrap() else {
            panic!("bits")
        };
        let c = file.cut().out_channels();
        let e2e: Agreement = export::compare_bits(&cpu, &burn[i].act, &burn[i].post, c);
        eprintln!("cut {cut}: end to end (reference) {e2e:?}");
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
            assert_eq!(g, cpu, "{cut}: WGSL and scalar reference differ");
            let pg = ex.run(&images, Output::Preact).unwrap();
            let pc = reference::run(&file, &images, n, Output::Preact).unwrap();
            assert_eq!(pg, pc, "{cut}: pre-activations differ");
            let Features::Float(s) = ex.run(&images, Output::Signs).unwrap() else {
                panic!("signs")
            };
            assert_eq!(s, bnn_transfer::bits::unpack_rows(&cpu, c));
        }
    }
}

#[test]
fn truncated_or_corrupt_files_are_errors_not_panics() {
    let data = common::fixture_set();
    let dir = mini(&data).0;
    let device = Device::flex();
    let (config, model) = train::checkpoint::load_model(&dir, &device).unwrap();
    let src = ExportSource {
        val_top1: Some(0.5),
        epochs: Some(1),
        checkpoint: "x".into(),
    };
    let file = export::build(&model, &config, None, src).unwrap();
    let bytes = file.to_bytes().unwrap();
    let p = Path::new("f");
    assert_eq!(ExtractorFile::from_bytes(&bytes, p).unwrap(), file);
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            ExtractorFile::from_bytes(&bytes[..cut], p).is_err(),
            "{cut}"
        );
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    for (from, to) in [
        (r#""version":"1""#, r#""version":"9""#),
        (r#"\"cut\":\"fc1\""#, r#"\"cut\":\"fc9\""#),
        (r#"\"stride\":1"#, r#"\"stride\":2"#),
        (r#""shape":[32]"#, r#""shape":[31]"#),
    ] {
        let bad = text.replacen(from, to, 1);
        assert!(bad != text, "{from} not found");
        let err = ExtractorFile::from_bytes(bad.as_bytes(), p).unwrap_err();
        eprintln!("{from} → {err}");
    }
    // safetensors stores the u8 tensors (the flip flags) last, so the last byte is a flip flag
    // and 7 is not a valid one: the parse must fail and the message must name the file.
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] = 7;
    let named = Path::new("corrupt-flip.bnn");
    let err = ExtractorFile::from_bytes(&flipped, named)
        .expect_err("a flip flag of 7 must be refused")
        .to_string();
    assert!(err.contains("corrupt-flip.bnn"), "{err}");
    assert!(err.contains("flip"), "{err}");
}
