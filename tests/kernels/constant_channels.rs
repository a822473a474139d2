//! Constant channels (γ = 0 in training, or α = 0) are stored as `Threshold::ALWAYS_PLUS` /
//! `ALWAYS_MINUS` (`FloatThreshold::…` for the first layer). Every path — the scalar reference,
//! the CPU binary path and the WGSL extractor — must give +1 (bit clear) and −1 (bit set) for them
//! at every pixel of every image, and survive a save/load round trip.

use crate::common;

use std::path::Path;

use bnn_transfer::arch::Arch;
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::extractor::{Extractor, ExtractorFile, Thresholds, reference};
use bnn_transfer::ops::{FloatThreshold, Threshold};
use bnn_transfer::rng::Rng;

const PLUS: usize = 0;
const MINUS: usize = 1;

fn file_with_constant_channels() -> ExtractorFile {
    let mut file = random_file(&Arch::mini(10), 7).unwrap();
    for l in &mut file.layers {
        match &mut l.thresholds {
            Thresholds::Float(t) => {
                t[PLUS] = FloatThreshold::ALWAYS_PLUS;
                t[MINUS] = FloatThreshold::ALWAYS_MINUS;
            }
            Thresholds::Int(t) => {
                t[PLUS] = Threshold::ALWAYS_PLUS;
                t[MINUS] = Threshold::ALWAYS_MINUS;
            }
        }
    }
    // Through the file format, as a user would get it.
    ExtractorFile::from_bytes(&file.to_bytes().unwrap(), Path::new("mem")).unwrap()
}

/// Asserts channel PLUS is +1 and MINUS is −1 at every pixel of `bits` (`[n][pixels][words]`).
fn assert_constant(path: &str, layer: &str, bits: &[u32], channels: usize) {
    let words = channels.div_ceil(32);
    assert!(!bits.is_empty());
    for (p, pixel) in bits.chunks_exact(words).enumerate() {
        assert_eq!(
            pixel[0] & 1,
            0,
            "{path} {layer}: channel 0 not +1 at pixel {p}"
        );
        assert_eq!(
            pixel[0] >> 1 & 1,
            1,
            "{path} {layer}: channel 1 not -1 at pixel {p}"
        );
    }
}

#[test]
fn the_constants_mean_what_they_say() {
    for v in [i32::MIN + 1, -(1 << 20), -1, 0, 1, 1 << 20, i32::MAX - 1] {
        assert!(Threshold::ALWAYS_PLUS.plus_one(v), "{v}");
        assert!(!Threshold::ALWAYS_MINUS.plus_one(v), "{v}");
    }
    for v in [-1e30f32, -1.0, -0.0, 0.0, 1.0, 1e30] {
        assert!(FloatThreshold::ALWAYS_PLUS.plus_one(v), "{v}");
        assert!(!FloatThreshold::ALWAYS_MINUS.plus_one(v), "{v}");
    }
}

#[test]
fn constant_channels_have_their_sign_on_every_path() {
    let file = file_with_constant_channels();
    let n = 3;
    let i = &file.graph.input;
    let mut rng = Rng::new(3);
    let images = common::random_f32(&mut rng, n * i.size * i.size * i.channels);
    let taps: Vec<usize> = (0..file.layers.len()).collect();
    let reference = reference::run_taps(&file, &images, n, &taps).unwrap();
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    let cpu = bnn_transfer::cpu::CpuExtractor::new(&file, &threads).unwrap();
    let cpu = cpu.run_taps(&images, n, &taps).unwrap();
    for (t, l) in file.layers.iter().enumerate() {
        let c = l.spec.out_channels();
        assert_constant("reference", &l.spec.name, &reference[t], c);
        assert_constant("cpu", &l.spec.name, &cpu[t], c);
        assert_eq!(cpu[t], reference[t], "{}: cpu vs reference", l.spec.name);
    }
    if let Some(gpu) = common::gpu() {
        let ex = Extractor::new(gpu, file.clone()).unwrap();
        let wgsl = ex.run_taps(&images, &taps).unwrap();
        for (t, l) in file.layers.iter().enumerate() {
            assert_constant("wgsl", &l.spec.name, &wgsl[t], l.spec.out_channels());
            assert_eq!(wgsl[t], reference[t], "{}: wgsl vs reference", l.spec.name);
        }
    }
}

#[test]
fn infinite_float_thresholds_from_older_files_load_as_finite_constants() {
    let mut file = random_file(&Arch::mini(10), 8).unwrap();
    let Thresholds::Float(t) = &mut file.layers[0].thresholds else {
        panic!("the first layer has float thresholds")
    };
    t[PLUS] = FloatThreshold {
        t: f32::NEG_INFINITY,
        mode: 0,
    };
    t[MINUS] = FloatThreshold {
        t: f32::INFINITY,
        mode: 0,
    };
    let back = ExtractorFile::from_bytes(&file.to_bytes().unwrap(), Path::new("mem")).unwrap();
    let Thresholds::Float(t) = &back.layers[0].thresholds else {
        panic!("float")
    };
    assert_eq!(t[PLUS], FloatThreshold::ALWAYS_PLUS);
    assert_eq!(t[MINUS], FloatThreshold::ALWAYS_MINUS);
}
