//! The prepared CPU extractor (`bnn_transfer::cpu::CpuExtractor`) against the scalar reference
//! and the WGSL runner, bit for bit, for every instruction set this CPU has:
//!
//! * the first layer's f32 sums, compared by `to_bits` (summation order kept, zero taps at the
//!   border provably no-ops) over random shapes and images with exact zeros and −0.0;
//! * random networks (kernels, strides, paddings, pools that overlap or not, channel counts off
//!   the 16- and 32-channel blocks, dense layers) with thresholds of both directions, so pooling
//!   on packed signs takes both the AND (`pre ≥ t`) and the OR (`pre ≤ t`) branch, at every tap;
//! * one extractor shared by several threads at once.

use crate::common;

use std::sync::Arc;

use bnn_transfer::arch::{Arch, ConvBlock, Pool};
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::cpu::{CpuExtractor, CpuFirstConv, Isa, Threads};
use bnn_transfer::extractor::{Extractor, ExtractorFile, Thresholds, reference};
use bnn_transfer::ops::{self, ConvShape, FloatThreshold, Padding, Threshold};
use bnn_transfer::rng::Rng;
use proptest::prelude::*;

/// Images with a share of exact +0.0 and −0.0 values (the signed-zero cases of the first layer).
fn images_with_zeros(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match rng.below(8) {
            0 => 0.0,
            1 => -0.0,
            _ => rng.range(-2.0, 2.0),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn first_layer_sums_are_bit_identical_to_the_reference(
        c in 1usize..5,
        out_c in 1usize..40,
        k in 1usize..8,
        extra in 0usize..9,
        stride in 1usize..4,
        pad_raw in 0usize..7,
        batch in 1usize..3,
        threads in 1usize..4,
        seed in any::<u64>(),
    ) {
        let s = ConvShape {
            batch,
            in_h: k + extra,
            in_w: k + extra / 2,
            in_c: c,
            out_c,
            kernel_h: k,
            kernel_w: k,
            stride,
            pad: pad_raw.min(k - 1),
            padding: Padding::Zero,
        };
        let mut rng = Rng::new(seed);
        let x = images_with_zeros(&mut rng, batch * s.in_h * s.in_w * c);
        let w = common::random_words(&mut rng, out_c * k * k, c);
        let want: Vec<u32> =
            ops::first_conv::reference_sum(&s, &x, &w).iter().map(|v| v.to_bits()).collect();
        let threads = Threads::new(threads).unwrap();
        for isa in Isa::available() {
            let got = CpuFirstConv::with_isa(&s, &w, isa).unwrap().sums(&x, &threads).unwrap();
            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(&got, &want, "{} {:?}", isa, s);
        }
    }
}

/// Flips every third threshold of every layer to the `≤` direction (keeping its value).
fn mixed_directions(mut file: ExtractorFile) -> ExtractorFile {
    for l in &mut file.layers {
        match &mut l.thresholds {
            Thresholds::Float(t) => {
                for t in t.iter_mut().skip(1).step_by(3) {
                    *t = FloatThreshold { t: t.t, mode: 1 };
                }
            }
            Thresholds::Int(t) => {
                for t in t.iter_mut().skip(1).step_by(3) {
                    *t = Threshold::at_most(t.t);
                }
            }
        }
    }
    file
}

/// A random small network: 1–3 conv blocks, then 0–2 dense layers.
fn random_arch(rng: &mut Rng) -> Arch {
    let mut arch = Arch::mini(10);
    arch.input = 9 + rng.below(20);
    let mut size = arch.input;
    arch.convs.clear();
    for i in 0..1 + rng.below(3) {
        let kernel = [1, 3, 5][rng.below(3)].min(size);
        let stride = 1 + rng.below(2);
        let pad = rng.below(kernel.div_ceil(2));
        let out = [1, 7, 16, 31, 33, 48, 64, 70][rng.below(8)];
        let conv = (size + 2 * pad - kernel) / stride + 1;
        let pool = (conv >= 3 && rng.below(2) == 0).then(|| {
            let k = 2 + rng.below(2);
            Pool {
                kernel: k,
                stride: if i % 2 == 0 { k } else { 1 + rng.below(k) },
            }
        });
        size = match pool {
            Some(p) => (conv - p.kernel) / p.stride + 1,
            None => conv,
        };
        arch.convs.push(ConvBlock {
            out,
            kernel,
            stride,
            pad,
            pool,
            shortcut: false,
        });
    }
    arch.dense = (0..rng.below(3)).map(|_| 1 + rng.below(80)).collect();
    arch
}

#[test]
fn random_networks_match_the_reference_at_every_tap_on_every_instruction_set() {
    let mut rng = Rng::new(12);
    let gpu = common::gpu();
    for case in 0..24 {
        let arch = random_arch(&mut rng);
        let file = mixed_directions(random_file(&arch, case).unwrap());
        let n = 1 + rng.below(5);
        let i = &file.graph.input;
        let images = images_with_zeros(&mut rng, n * i.size * i.size * i.channels);
        let taps: Vec<usize> = (0..file.layers.len()).collect();
        let want = reference::run_taps(&file, &images, n, &taps).unwrap();
        for threads in [1, 2, 3] {
            let threads = Threads::new(threads).unwrap();
            for isa in Isa::available() {
                let cpu = CpuExtractor::with_isa(&file, &threads, isa).unwrap();
                let got = cpu.run_taps(&images, n, &taps).unwrap();
                assert_eq!(got, want, "case {case} {isa} {:?}", arch);
                // A second run reuses the buffers and gives the same bits.
                assert_eq!(cpu.run_taps(&images, n, &taps).unwrap(), want);
            }
        }
        if let Some(gpu) = gpu {
            let ex = Extractor::new(gpu, file.clone()).unwrap();
            assert_eq!(
                ex.run_taps(&images, &taps).unwrap(),
                want,
                "case {case} wgsl"
            );
        }
    }
}

#[test]
fn one_extractor_serves_many_threads_at_once() {
    let file = mixed_directions(random_file(&Arch::mini(10), 3).unwrap());
    let i = &file.graph.input;
    let mut rng = Rng::new(5);
    let batches: Vec<Vec<f32>> = (0..6)
        .map(|_| images_with_zeros(&mut rng, 2 * i.size * i.size * i.channels))
        .collect();
    let want: Vec<Vec<u32>> = batches
        .iter()
        .map(|b| {
            let last = file.layers.len() - 1;
            reference::run_taps(&file, b, 2, &[last]).unwrap().remove(0)
        })
        .collect();
    let cpu = Arc::new(CpuExtractor::new(&file, &Threads::new(2).unwrap()).unwrap());
    std::thread::scope(|scope| {
        for (b, w) in batches.iter().zip(&want) {
            let cpu = cpu.clone();
            scope.spawn(move || {
                for _ in 0..5 {
                    assert_eq!(&cpu.run_bits(b, 2).unwrap(), w);
                }
            });
        }
    });
}

#[test]
fn an_instruction_set_the_cpu_lacks_is_an_error_not_a_crash() {
    let file = random_file(&Arch::mini(10), 1).unwrap();
    let threads = Threads::new(1).unwrap();
    for isa in Isa::ALL {
        let made = CpuExtractor::with_isa(&file, &threads, isa);
        assert_eq!(made.is_ok(), isa.is_available(), "{isa}");
        if let Err(e) = made {
            assert!(e.to_string().contains("this CPU cannot run"), "{e}");
        }
    }
}
