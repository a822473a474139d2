//! The end-to-end rows' two sides are real computations: the random extractor file of
//! `bench::extractor` is a valid file (round-trips through safetensors) whose WGSL run matches the
//! CPU reference bit for bit, and the float twin matches a plain chain of
//! `ops::float_conv::reference` (`ops::float_dense::reference` for dense layers on the small-batch
//! kernel) and `ops::pool::reference_f32`.

use crate::common;

use std::path::Path;

use bnn_transfer::arch::Arch;
use bnn_transfer::bench::extractor::{FloatTwin, random_file, random_weights};
use bnn_transfer::extractor::{Extractor, ExtractorFile, Features, LayerKind, Output, reference};
use bnn_transfer::kernels::Tuning;
use bnn_transfer::kernels::float_dense::DenseKernel;
use bnn_transfer::ops::{self, ConvShape, Padding, PoolShape};
use bnn_transfer::rng::Rng;

#[test]
fn random_file_is_valid_and_bit_exact_on_the_device() {
    for arch in [Arch::mini(10), Arch::small(200)] {
        let file = random_file(&arch, 1).unwrap();
        let back = ExtractorFile::from_bytes(&file.to_bytes().unwrap(), Path::new("mem")).unwrap();
        assert_eq!(back, file);
        assert_eq!(file.cut().out_channels(), *arch.dense.last().unwrap());
        // The CPU binary extractor is bit-exact with the scalar reference (no device needed).
        let n = 5;
        let mut rng = Rng::new(4);
        let images: Vec<f32> = (0..n * arch.input * arch.input * arch.in_channels)
            .map(|_| rng.range(-2.0, 2.0))
            .collect();
        let want = reference::run(&file, &images, n, Output::Bits).unwrap();
        for threads in [1, 3] {
            let threads = bnn_transfer::cpu::Threads::new(threads).unwrap();
            for isa in bnn_transfer::cpu::Isa::available() {
                let cpu = bnn_transfer::cpu::CpuExtractor::with_isa(&file, &threads, isa).unwrap();
                let bits = cpu.run_bits(&images, n).unwrap();
                assert_eq!(Features::Bits(bits), want, "{} cpu {isa}", arch.name);
                assert!(cpu.run_bits(&images[1..], n).is_err());
            }
        }
        let Some(gpu) = common::gpu() else {
            continue;
        };
        let ex = Extractor::new(gpu, file.clone()).unwrap();
        let got = ex.run(&images, Output::Bits).unwrap();
        assert_eq!(got, want, "{}", arch.name);
        // Thresholds sit inside the dot range: the features are not constant.
        let bits = match got {
            Features::Bits(b) => b,
            other => panic!("{other:?}"),
        };
        let ones: u32 = bits.iter().map(|w| w.count_ones()).sum();
        let total = (bits.len() * 32) as u32;
        assert!(
            ones > total / 20 && ones < total * 19 / 20,
            "{ones}/{total}"
        );
    }
}

#[test]
fn float_twin_matches_the_reference_chain() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let arch = Arch::mini(10);
    let file = random_file(&arch, 2).unwrap();
    let weights = random_weights(&file, 3);
    let twin = FloatTwin::with_weights(gpu, &file, weights.clone()).unwrap();
    let n = 2;
    let mut rng = Rng::new(5);
    let images: Vec<f32> = (0..n * arch.input * arch.input * arch.in_channels)
        .map(|_| rng.range(-2.0, 2.0))
        .collect();
    let got = twin.run(&images).unwrap();
    let mut x = images.clone();
    for (l, w) in file.layers.iter().zip(&weights) {
        let s = &l.spec;
        let [h, wd, c] = s.in_shape;
        let shape = if s.kind == LayerKind::XnorDense {
            ConvShape::dense(n, h * wd * c, s.out_channels())
        } else {
            ConvShape {
                batch: n,
                in_h: h,
                in_w: wd,
                in_c: c,
                out_c: s.out_channels(),
                kernel_h: s.kernel,
                kernel_w: s.kernel,
                stride: s.stride,
                pad: s.pad,
                padding: Padding::Zero,
            }
        };
        let (fin, fout) = (h * wd * c, s.out_channels());
        x = if s.kind == LayerKind::XnorDense
            && DenseKernel::for_shape(n, fin) == DenseKernel::SmallBatch
        {
            let wg = Tuning::for_gpu(gpu).float_dense_workgroup();
            ops::float_dense::reference(wg, n, fin, fout, &x, w)
        } else {
            ops::float_conv::reference(&shape, &x, w)
        };
        if let Some(p) = s.pool {
            x = ops::pool::reference_f32(
                &PoolShape {
                    batch: n,
                    in_h: shape.out_h(),
                    in_w: shape.out_w(),
                    channels: shape.out_c,
                    kernel: p.kernel,
                    stride: p.stride,
                },
                &x,
            );
        }
    }
    assert_eq!(got.len(), n * arch.dense.last().unwrap());
    assert_eq!(got.len(), x.len());
    let scale = x.iter().map(|v| v.abs()).fold(0.0f32, f32::max).max(1.0);
    for (a, b) in got.iter().zip(&x) {
        assert!((a - b).abs() <= 1e-4 * scale, "{a} vs {b}");
    }
    assert!(FloatTwin::with_weights(gpu, &file, weights[1..].to_vec()).is_err());
}
