//! Real layers (Bi-Real blocks: folded batch norm, shortcut, RPReLU in f32) on every path, bit for
//! bit, without burn:
//!
//! * `real_epilogue.wgsl` against `ops::real_epilogue::reference` over random shapes, i32 and f32
//!   pre-activations, no shortcut, identity and average-pool windows, channel counts off 32, on the
//!   adapter's limits and on downlevel (phone-class) limits, compared with `to_bits`; and with the
//!   max-pool fused in, against `ops::pool::reference_*` (ties and signed zeros in the windows);
//!   with and without a 1×1 projection on the shortcut;
//! * `mul` (four exact 12-bit products) against the f64 product: within 2 ulp;
//! * random Bi-Real networks (shortcut blocks of every kind, 1×1 projections included, among plain
//!   ones, dense layers after):
//!   scalar reference, the CPU path on every instruction set and thread count, and the WGSL
//!   runner, at every tap, and the real output of the cut (`Output::Preact`);
//! * files: a real graph is version 2 and round-trips; broken real graphs are refused by name.

use crate::common;

use std::path::Path;

use bnn_transfer::arch::{Arch, Blocks, ConvBlock, Pool};
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::cpu::{CpuExtractor, Isa, Threads};
use bnn_transfer::extractor::{
    Extractor, ExtractorFile, Features, Output, Shortcut, Thresholds, VERSION_REAL, reference,
};
use bnn_transfer::kernels::real_epilogue::{self, Inputs};
use bnn_transfer::ops;
use bnn_transfer::ops::real_epilogue::{EpilogueShape, ProjectionRef, RealChannel, Window, mul};
use bnn_transfer::ops::{FloatThreshold, PoolShape};
use bnn_transfer::rng::Rng;

fn channels(rng: &mut Rng, n: usize, scale: f32) -> Vec<RealChannel> {
    (0..n)
        .map(|_| RealChannel {
            scale: scale * rng.range(-2.0, 2.0),
            bias: rng.range(-1.0, 1.0),
            shift_in: rng.range(-0.5, 0.5),
            slope: rng.range(-0.5, 1.0),
            shift_out: rng.range(-0.5, 0.5),
        })
        .collect()
}

#[test]
fn the_epilogue_kernel_equals_the_reference_bit_for_bit() {
    let gpus = common::all_gpus();
    let mut rng = Rng::new(31);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
    for case in 0..48 {
        let c = [1, 5, 31, 32, 33, 70][rng.below(6)];
        let (h, w) = (1 + rng.below(6), 1 + rng.below(6));
        let shortcut = match case % 3 {
            0 => None,
            1 => Some(Window {
                in_h: h,
                in_w: w,
                kernel: 1,
                stride: 1,
            }),
            _ => {
                let (k, s) = (2 + rng.below(2), 1 + rng.below(2));
                Some(Window {
                    in_h: (h - 1) * s + k + rng.below(2),
                    in_w: (w - 1) * s + k + rng.below(2),
                    kernel: k,
                    stride: s,
                })
            }
        };
        // Every other case with a shortcut goes through a projection from its own channels.
        let project = (shortcut.is_some() && case % 4 >= 2).then(|| [3, 16, 40][rng.below(3)]);
        let shape = EpilogueShape {
            batch: 1 + rng.below(3),
            h,
            w,
            channels: c,
            shortcut,
            project,
        };
        let float = case % 2 == 0;
        let ints: Vec<i32> = (0..shape.len())
            .map(|_| rng.below(601) as i32 - 300)
            .collect();
        let floats: Vec<f32> = (0..shape.len()).map(|_| rng.range(-9.0, 9.0)).collect();
        let pre: Vec<f32> = if float {
            floats.clone()
        } else {
            ints.iter().map(|&d| d as f32).collect()
        };
        let ch = channels(&mut rng, c, if float { 0.3 } else { 0.01 });
        let x: Vec<f32> = (0..shape.shortcut_len())
            .map(|_| rng.range(-3.0, 3.0))
            .collect();
        let x = shortcut.map(|_| x.as_slice());
        let (weight, bias): (Vec<f32>, Vec<f32>) = match project {
            Some(cs) => (
                (0..c * cs).map(|_| rng.range(-0.5, 0.5)).collect(),
                (0..c).map(|_| rng.range(-0.5, 0.5)).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let projection = project.map(|_| ProjectionRef {
            weight: &weight,
            bias: &bias,
        });
        let want = ops::real_epilogue::reference(&shape, &pre, &ch, x, projection).unwrap();
        let words: Vec<u32> = if float {
            floats.iter().map(|v| v.to_bits()).collect()
        } else {
            ints.iter().map(|&v| v as u32).collect()
        };
        let inputs = Inputs {
            pre: &words,
            pre_float: float,
            pool: None,
            channels: &ch,
            shortcut: x,
            projection,
        };
        for (name, gpu) in &gpus {
            let got = real_epilogue::run(gpu, &shape, &inputs).unwrap();
            assert_eq!(bits(&got), bits(&want), "case {case} {name} {shape:?}");
        }
        // The same epilogue reading the unpooled map, max-pooled in the kernel, against
        // `ops::pool::reference_*` then the epilogue. Extra rows/columns that the floor division
        // drops (fewer than a stride).
        let (k, st) = (2 + rng.below(2), 1 + rng.below(2));
        let pool = Window {
            in_h: (h - 1) * st + k + rng.below(st),
            in_w: (w - 1) * st + k + rng.below(st),
            kernel: k,
            stride: st,
        };
        let ps = PoolShape {
            batch: shape.batch,
            in_h: pool.in_h,
            in_w: pool.in_w,
            channels: c,
            kernel: k,
            stride: st,
        };
        let map_len = shape.batch * pool.in_h * pool.in_w * c;
        // Repeated values (ties inside a window) and, in f32, signed zeros.
        let map_i: Vec<i32> = (0..map_len).map(|_| rng.below(9) as i32 - 4).collect();
        let map_f: Vec<f32> = (0..map_len)
            .map(|_| [0.0, -0.0, 1.5, -2.25, 0.75][rng.below(5)])
            .collect();
        let (words, pooled): (Vec<u32>, Vec<f32>) = if float {
            (
                map_f.iter().map(|v| v.to_bits()).collect(),
                ops::pool::reference_f32(&ps, &map_f),
            )
        } else {
            (
                map_i.iter().map(|&v| v as u32).collect(),
                ops::pool::reference_i32(&ps, &map_i)
                    .iter()
                    .map(|&d| d as f32)
                    .collect(),
            )
        };
        let want = ops::real_epilogue::reference(&shape, &pooled, &ch, x, projection).unwrap();
        let inputs = Inputs {
            pre: &words,
            pool: Some(pool),
            ..inputs
        };
        for (name, gpu) in &gpus {
            let got = real_epilogue::run(gpu, &shape, &inputs).unwrap();
            assert_eq!(
                bits(&got),
                bits(&want),
                "case {case} {name} pooled {pool:?}"
            );
        }
    }
}

#[test]
fn mul_is_within_two_ulp_of_the_product() {
    let mut rng = Rng::new(3);
    for _ in 0..100_000 {
        let e = |rng: &mut Rng| 2f32.powi(rng.below(40) as i32 - 20);
        let (a, b) = (
            rng.range(-1.0, 1.0) * e(&mut rng),
            rng.range(-1.0, 1.0) * e(&mut rng),
        );
        let exact = a as f64 * b as f64;
        let got = mul(a, b) as f64;
        assert!(
            (got - exact).abs() <= 2.0 * f32::EPSILON as f64 * exact.abs(),
            "{a} · {b}: {got} vs {exact}"
        );
    }
    // Exact where the product is.
    assert_eq!(mul(1.5, -4.0), -6.0);
    assert_eq!(mul(0.0, 3.0), 0.0);
}

/// A random small Bi-Real network: a first conv, then 1–3 blocks that keep the shape (with an
/// identity or average-pool shortcut) or change it (none), then 0–2 dense layers.
fn random_bireal(rng: &mut Rng) -> Arch {
    let mut arch = Arch::mini(10);
    arch.blocks = Blocks::BiReal;
    arch.input = 10 + rng.below(14);
    arch.convs.clear();
    let mut size = arch.input;
    let mut cin = 3;
    for i in 0..2 + rng.below(3) {
        let keep = i > 0 && rng.below(3) > 0;
        let (kernel, pad) = if rng.below(2) == 0 { (3, 1) } else { (1, 0) };
        // A shortcut block keeps the channels (identity or average pool) or changes them (through
        // a 1×1 projection).
        let out = if keep && rng.below(2) == 0 {
            cin
        } else {
            [7, 16, 33, 40][rng.below(4)]
        };
        let stride = if keep { 1 } else { 1 + rng.below(2) };
        let conv = (size + 2 * pad - kernel) / stride + 1;
        let pool = (conv >= 3 && rng.below(2) == 0).then(|| {
            let k = 2 + rng.below(2);
            Pool {
                kernel: k,
                stride: 1 + rng.below(k),
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
            shortcut: keep,
        });
        cin = out;
    }
    arch.dense = (0..rng.below(3)).map(|_| 1 + rng.below(70)).collect();
    arch.check().unwrap();
    arch
}

#[test]
fn random_bireal_networks_match_the_reference_on_every_path() {
    let mut rng = Rng::new(77);
    let gpus = common::all_gpus();
    let mut kinds = std::collections::HashSet::new();
    // (bits set, bits): the sweep is only meaningful if the thresholds sit inside the values.
    let mut set = (0u64, 0u64);
    for case in 0..24 {
        let arch = random_bireal(&mut rng);
        let file = random_file(&arch, case).unwrap();
        for l in &file.layers {
            kinds.insert(format!(
                "{:?}{}",
                l.spec.real.map(|r| r.shortcut),
                if l.projection.is_some() { "+1x1" } else { "" }
            ));
        }
        let file = ExtractorFile::from_bytes(&file.to_bytes().unwrap(), Path::new("mem")).unwrap();
        assert_eq!(file.version(), VERSION_REAL);
        // Up to 6 images: with 2 threads, 4 or more take the CPU path's per-image fused conv +
        // epilogue, fewer the row-split epilogue over the batch's values.
        let n = 1 + rng.below(6);
        let i = &file.graph.input;
        let images: Vec<f32> = (0..n * i.size * i.size * i.channels)
            .map(|_| rng.range(-2.0, 2.0))
            .collect();
        let taps: Vec<usize> = (0..file.layers.len()).collect();
        let want = reference::run_taps(&file, &images, n, &taps).unwrap();
        for (t, w) in want.iter().enumerate() {
            let c = file.layers[t].spec.out_channels();
            set.0 += w.iter().map(|x| x.count_ones() as u64).sum::<u64>();
            set.1 += (w.len() / bnn_transfer::bits::words(c) * c) as u64;
        }
        for threads in [1, 2] {
            let threads = Threads::new(threads).unwrap();
            for isa in Isa::available() {
                let cpu = CpuExtractor::with_isa(&file, &threads, isa).unwrap();
                assert_eq!(
                    cpu.run_taps(&images, n, &taps).unwrap(),
                    want,
                    "case {case} {isa} {arch:?}"
                );
            }
        }
        let preact = reference::run(&file, &images, n, Output::Preact).unwrap();
        for (name, gpu) in &gpus {
            let ex = Extractor::new(gpu, file.clone()).unwrap();
            assert_eq!(
                ex.run_taps(&images, &taps).unwrap(),
                want,
                "case {case} wgsl {name}"
            );
            let got = ex.run(&images, Output::Preact).unwrap();
            match (&got, &preact) {
                (Features::Float(a), Features::Float(b)) => {
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(a), bits(b), "case {case} {name}: real output");
                }
                _ => assert_eq!(got, preact, "case {case} {name}: preact"),
            }
        }
    }
    assert!(
        set.0 * 10 > set.1 && set.0 * 10 < 9 * set.1,
        "{} of {} bits set",
        set.0,
        set.1
    );
    // The sweep met every kind of layer.
    for k in [
        "None",
        "Some(None)",
        "Some(Identity)",
        "Some(AvgPool)",
        "Some(Identity)+1x1",
        "Some(AvgPool)+1x1",
    ] {
        assert!(kinds.contains(k), "no layer of kind {k} in {kinds:?}");
    }
}

#[test]
fn broken_real_graphs_are_refused_by_name() {
    let arch = Arch::mini_bireal(10);
    let file = random_file(&arch, 1).unwrap();
    let p = Path::new("net.safetensors");
    let refused = |f: &ExtractorFile, want: &str| {
        let err = match f.to_bytes() {
            Err(e) => e.to_string(),
            Ok(b) => ExtractorFile::from_bytes(&b, p).unwrap_err().to_string(),
        };
        assert!(err.contains(want), "expected '{want}' in: {err}");
    };
    // An identity shortcut on a pooled layer, or a shortcut after a plain layer.
    let mut f = file.clone();
    f.graph.layers[3].real = Some(bnn_transfer::extractor::RealSpec {
        shortcut: Shortcut::Identity,
        project: false,
    });
    f.layers[3].spec = f.graph.layers[3].clone();
    refused(&f, "conv4");
    let mut f = file.clone();
    f.graph.layers[0].real = None;
    f.layers[0].spec.real = None;
    f.layers[0].real = None;
    let mut g = f.clone();
    g.graph.layers[1].real = Some(bnn_transfer::extractor::RealSpec {
        shortcut: Shortcut::Identity,
        project: false,
    });
    g.layers[1].spec = g.graph.layers[1].clone();
    refused(&g, "conv2");
    // conv3 changes the channel count: without its projection the shortcut cannot join.
    assert!(file.layers[2].projection.is_some());
    let mut f = file.clone();
    f.graph.layers[2].real.as_mut().unwrap().project = false;
    f.layers[2].spec = f.graph.layers[2].clone();
    f.layers[2].projection = None;
    refused(&f, "conv3");
    // A flip on a real layer, and a NaN in its constants.
    let mut f = file.clone();
    if let Thresholds::Float(t) = &mut f.layers[2].thresholds {
        t[0] = FloatThreshold { t: 0.0, mode: 1 };
    }
    refused(&f, "flips");
    let mut f = file.clone();
    f.layers[1].real.as_mut().unwrap()[3].slope = f32::NAN;
    let bytes = {
        // to_bytes does not look at values; the loader does.
        f.to_bytes().unwrap()
    };
    let err = ExtractorFile::from_bytes(&bytes, p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv2.real") && err.contains("NaN"), "{err}");
}
