//! Every kernel against its scalar reference on the device: integers bit-exact, the float conv
//! bit-exact against the reference in its summation order, the first layer within a tight tolerance. Shapes straddle word boundaries (C ∈ {1, 3, 31, 32, 33, 63, 64, 65, 96}),
//! kernels {1, 3, 5, 11}, strides {1, 2, 4}, odd spatial sizes, both padding modes, batch {1, 3},
//! under the adapter's limits and under downlevel (phone-class) limits; plus a few-case property
//! test over random shapes, and the split-into-several-dispatches path.

use crate::common;

use bnn_transfer::bits::{pack_rows, unpack_rows, words};
use bnn_transfer::gpu::{Gpu, LimitsProfile};
use bnn_transfer::kernels::{
    bitpack, first_conv, float_conv, pool, threshold, xnor_conv, xnor_dense,
};
use bnn_transfer::ops::{
    self, ConvShape, DenseShape, FloatThreshold, Padding, PoolShape, PoolValues, Threshold,
};
use bnn_transfer::rng::Rng;
use common::{all_gpus, random_f32, random_words};
use proptest::prelude::*;

const CHANNELS: [usize; 9] = [1, 3, 31, 32, 33, 63, 64, 65, 96];
const KERNELS: [usize; 4] = [1, 3, 5, 11];
const STRIDES: [usize; 3] = [1, 2, 4];

/// The sweep: every (C, kernel) pair, with stride, padding mode, batch, spatial size and output
/// channels cycling so each value of each axis meets many of the others.
fn sweep() -> Vec<ConvShape> {
    let mut shapes = Vec::new();
    let mut i = 0usize;
    for &c in &CHANNELS {
        for &k in &KERNELS {
            let stride = STRIDES[i % 3];
            let padding = if i.is_multiple_of(2) {
                Padding::Zero
            } else {
                Padding::One
            };
            let pad = [0, k / 2, k.min(3) - 1][i % 3].min(k - 1);
            let side = k + [0, 2, 5, 8][i % 4] + 1 - (k + 1) % 2; // odd sizes mostly
            shapes.push(ConvShape {
                batch: [1, 3][i % 2],
                in_h: side,
                in_w: side + 2 * (i % 2),
                in_c: c,
                out_c: [1, 5, 32, 33, 70][i % 5],
                kernel_h: k,
                kernel_w: k,
                stride,
                pad,
                padding,
            });
            i += 1;
        }
    }
    shapes
}

fn random_thresholds(rng: &mut Rng, n: usize, k: usize) -> Vec<Threshold> {
    (0..n)
        .map(|i| match i % 7 {
            5 => Threshold::ALWAYS_PLUS,
            6 => Threshold::ALWAYS_MINUS,
            _ => {
                let t = rng.below(2 * k + 3) as i32 - k as i32 - 1;
                if rng.below(2) == 0 {
                    Threshold::at_least(t)
                } else {
                    Threshold::at_most(t)
                }
            }
        })
        .collect()
}

fn check_conv(gpu: &Gpu, shape: &ConvShape, seed: u64) {
    let mut rng = Rng::new(seed);
    let input = random_words(&mut rng, shape.batch * shape.in_h * shape.in_w, shape.in_c);
    let weights = random_words(
        &mut rng,
        shape.out_c * shape.kernel_h * shape.kernel_w,
        shape.in_c,
    );
    let want = ops::conv::reference_dot(shape, &input, &weights);
    let got = xnor_conv::run_dot(gpu, shape, &input, &weights).unwrap();
    assert_eq!(got, want, "xnor_conv dots differ for {shape:?}");

    // Second oracle: a float conv on the ±1 values (zero padding is the float model's padding).
    if shape.padding == Padding::Zero {
        let x = unpack_rows(&input, shape.in_c);
        let w = unpack_rows(&weights, shape.in_c);
        let float: Vec<i32> = ops::float_conv::reference(shape, &x, &w)
            .iter()
            .map(|&v| v as i32)
            .collect();
        assert_eq!(
            want, float,
            "reference disagrees with the float oracle for {shape:?}"
        );
    }

    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    let th = random_thresholds(&mut rng, shape.out_c, k);
    let want_bits = ops::conv::reference_bits(shape, &input, &weights, &th);
    let got_bits = xnor_conv::run_bits(gpu, shape, &input, &weights, &th).unwrap();
    assert_eq!(
        got_bits, want_bits,
        "fused conv+threshold differs for {shape:?}"
    );
}

#[test]
fn xnor_conv_sweep_is_bit_exact() {
    for (limits, gpu) in all_gpus() {
        for (i, shape) in sweep().iter().enumerate() {
            eprintln!("[{limits}] {shape:?}");
            check_conv(gpu, shape, i as u64);
        }
    }
}

#[test]
fn xnor_conv_rectangular_kernel_and_large_stride() {
    let Some(gpu) = common::gpu() else { return };
    for padding in [Padding::Zero, Padding::One] {
        let shape = ConvShape {
            batch: 2,
            in_h: 9,
            in_w: 14,
            in_c: 40,
            out_c: 9,
            kernel_h: 3,
            kernel_w: 5,
            stride: 4,
            pad: 2,
            padding,
        };
        check_conv(gpu, &shape, 99);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn xnor_conv_random_shapes(
        c in 1usize..130, o in 1usize..80, k in 1usize..8, stride in 1usize..5,
        extra in 0usize..9, pad in 0usize..4, one in any::<bool>(), batch in 1usize..4, seed in any::<u64>(),
    ) {
        if let Some(gpu) = common::gpu() {
            let shape = ConvShape {
                batch, in_h: k + extra, in_w: k + extra / 2 + 1, in_c: c, out_c: o, kernel_h: k, kernel_w: k,
                stride, pad: pad.min(k - 1), padding: if one { Padding::One } else { Padding::Zero },
            };
            check_conv(gpu, &shape, seed);
        }
    }
}

#[test]
fn bitpack_matches_reference_and_pins_special_values() {
    for (limits, gpu) in all_gpus() {
        let special = [
            0.0,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -1e-38,
            1e-38,
            -1.0,
            1.0,
        ];
        let got = bitpack::run(gpu, &special, special.len()).unwrap();
        // −inf, −1e−38 and −1.0 are negative; 0.0, −0.0 and NaN of either sign pack as +1.
        assert_eq!(got, vec![(1 << 5) | (1 << 6) | (1 << 8)], "[{limits}]");
        assert_eq!(got, pack_rows(&special, special.len()));

        let mut rng = Rng::new(7);
        for &c in &CHANNELS {
            for rows in [1, 7, 130] {
                let v = random_f32(&mut rng, rows * c);
                assert_eq!(
                    bitpack::run(gpu, &v, c).unwrap(),
                    pack_rows(&v, c),
                    "[{limits}] C={c} rows={rows}"
                );
            }
        }
    }
}

#[test]
fn threshold_matches_reference() {
    for (limits, gpu) in all_gpus() {
        let mut rng = Rng::new(3);
        for &c in &CHANNELS {
            let rows = 11;
            let values: Vec<i32> = (0..rows * c).map(|_| rng.below(41) as i32 - 20).collect();
            let th = random_thresholds(&mut rng, c, 20);
            assert_eq!(
                threshold::run(gpu, &values, &th).unwrap(),
                ops::threshold::reference(&values, &th),
                "[{limits}] C={c}"
            );
            let fv = random_f32(&mut rng, rows * c);
            let fth: Vec<FloatThreshold> = (0..c)
                .map(|i| FloatThreshold {
                    t: rng.range(-1.0, 1.0),
                    mode: (i % 2) as u32,
                })
                .collect();
            assert_eq!(
                threshold::run_f32(gpu, &fv, &fth).unwrap(),
                ops::threshold::reference_f32(&fv, &fth)
            );
        }
        // Thresholds are inclusive on both sides: a value equal to t is +1.
        let th = [Threshold::at_least(4), Threshold::at_most(4)];
        assert_eq!(
            threshold::run(gpu, &[4, 4, 3, 5], &th).unwrap(),
            vec![0, 0b11]
        );
    }
}

#[test]
fn maxpool_matches_reference_on_integers_floats_and_bits() {
    for (limits, gpu) in all_gpus() {
        let mut rng = Rng::new(11);
        for (i, &c) in CHANNELS.iter().enumerate() {
            let (kernel, stride) = [(2, 2), (3, 2), (3, 1)][i % 3];
            let side = 7 + i % 4;
            let shape = PoolShape {
                batch: 1 + i % 3,
                in_h: side,
                in_w: side + 1,
                channels: c,
                kernel,
                stride,
            };
            let ints: Vec<i32> = (0..shape.input_len())
                .map(|_| rng.below(1000) as i32 - 500)
                .collect();
            let got = pool::run(gpu, &shape, PoolValues::I32, bytemuck::cast_slice(&ints)).unwrap();
            assert_eq!(
                bytemuck::cast_slice::<u32, i32>(&got),
                ops::pool::reference_i32(&shape, &ints),
                "[{limits}] {shape:?}"
            );

            let floats = random_f32(&mut rng, shape.input_len());
            let got =
                pool::run(gpu, &shape, PoolValues::F32, bytemuck::cast_slice(&floats)).unwrap();
            assert_eq!(
                bytemuck::cast_slice::<u32, f32>(&got),
                ops::pool::reference_f32(&shape, &floats)
            );

            let bit_shape = PoolShape {
                channels: words(c),
                ..shape
            };
            let bits = random_words(&mut rng, shape.batch * shape.in_h * shape.in_w, c);
            let got = pool::run(gpu, &bit_shape, PoolValues::Bits, &bits).unwrap();
            assert_eq!(got, ops::pool::reference_bits(&bit_shape, &bits));
            // Pooling signs = signs of pooled ±1 values (the max of ±1 is +1 unless all are −1).
            let pooled_values = ops::pool::reference_f32(&shape, &unpack_rows(&bits, c));
            assert_eq!(got, pack_rows(&pooled_values, c));
        }
    }
}

/// Pooling the threshold's output bits with AND for flip-0 channels and OR for flip-1 channels
/// gives exactly the bits of threshold(max-pool(pre-activations)), on i32 dots and f32 sums.
#[test]
fn pooling_signs_with_and_or_masks_equals_pooling_the_preactivations() {
    for (limits, gpu) in all_gpus() {
        let mut rng = Rng::new(12);
        for (i, &c) in CHANNELS.iter().enumerate() {
            let (kernel, stride) = [(3, 2), (2, 2), (3, 1)][i % 3];
            let shape = PoolShape {
                batch: 1 + i % 2,
                in_h: 7 + i % 3,
                in_w: 8 + i % 2,
                channels: c,
                kernel,
                stride,
            };
            let bit_shape = PoolShape {
                channels: words(c),
                ..shape
            };
            // Integer pre-activations with threshold modes mixed across channels.
            let dots: Vec<i32> = (0..shape.input_len())
                .map(|_| rng.below(40) as i32 - 20)
                .collect();
            let th: Vec<Threshold> = (0..c)
                .map(|o| match o % 3 {
                    0 => Threshold::at_least(rng.below(20) as i32 - 10),
                    1 => Threshold::at_most(rng.below(20) as i32 - 10),
                    _ => Threshold::ALWAYS_MINUS,
                })
                .collect();
            let mut mask = vec![0u32; words(c)];
            for (o, t) in th.iter().enumerate() {
                if t.mode == 0 {
                    mask[o / 32] |= 1 << (o % 32);
                }
            }
            let signs = ops::threshold::reference(&dots, &th);
            let want = ops::threshold::reference(&ops::pool::reference_i32(&shape, &dots), &th);
            assert_eq!(
                ops::pool::reference_bits_masked(&bit_shape, &signs, &mask),
                want,
                "reference, {shape:?}"
            );
            let got = pool::run_bits(gpu, &bit_shape, &signs, &mask).unwrap();
            assert_eq!(got, want, "[{limits}] i32 {shape:?}");

            // f32 sums (the first layer's), thresholds sometimes exactly on a value.
            let sums = random_f32(&mut rng, shape.input_len());
            let fth: Vec<FloatThreshold> = (0..c)
                .map(|o| FloatThreshold {
                    t: if o % 4 == 0 {
                        sums[o * 5 % sums.len()]
                    } else {
                        rng.range(-1.0, 1.0)
                    },
                    mode: (o % 2) as u32,
                })
                .collect();
            let mut fmask = vec![0u32; words(c)];
            for (o, t) in fth.iter().enumerate() {
                if t.mode == 0 {
                    fmask[o / 32] |= 1 << (o % 32);
                }
            }
            let signs = ops::threshold::reference_f32(&sums, &fth);
            let want =
                ops::threshold::reference_f32(&ops::pool::reference_f32(&shape, &sums), &fth);
            let got = pool::run_bits(gpu, &bit_shape, &signs, &fmask).unwrap();
            assert_eq!(got, want, "[{limits}] f32 {shape:?}");
        }
    }
}

#[test]
fn xnor_dense_matches_reference() {
    for (limits, gpu) in all_gpus() {
        let mut rng = Rng::new(5);
        for (i, &inf) in CHANNELS.iter().chain(&[200, 1000, 4096]).enumerate() {
            let shape = DenseShape {
                batch: [1, 3, 17][i % 3],
                in_features: inf,
                out_features: [1, 31, 33, 100][i % 4],
            };
            let x = random_words(&mut rng, shape.batch, inf);
            let w = random_words(&mut rng, shape.out_features, inf);
            let want = ops::dense::reference_dot(&shape, &x, &w);
            assert_eq!(
                xnor_dense::run_dot(gpu, &shape, &x, &w).unwrap(),
                want,
                "[{limits}] {shape:?}"
            );
            let float: Vec<i32> = ops::float_conv::reference(
                &ConvShape::dense(shape.batch, inf, shape.out_features),
                &unpack_rows(&x, inf),
                &unpack_rows(&w, inf),
            )
            .iter()
            .map(|&v| v as i32)
            .collect();
            assert_eq!(want, float);
            let th = random_thresholds(&mut rng, shape.out_features, inf);
            assert_eq!(
                xnor_dense::run_bits(gpu, &shape, &x, &w, &th).unwrap(),
                ops::dense::reference_bits(&shape, &x, &w, &th)
            );
        }
    }
}

/// |got − want| ≤ 1e−5 · Σ|terms| + 1e−6, the bound of reordered/fused f32 summation of this depth.
fn assert_close(got: &[f32], want: &[f32], scale: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * scale + 1e-6,
            "{what}: element {i}: {g} vs {w}"
        );
    }
}

#[test]
fn first_conv_matches_reference() {
    // The sweep's zero-padded shapes, and the first layers of `small` and `mini`.
    let mut shapes: Vec<ConvShape> = sweep()
        .into_iter()
        .filter(|s| s.padding == Padding::Zero)
        .collect();
    for (batch, side, out_c, k, stride) in [(1, 64, 64, 5, 2), (3, 64, 64, 5, 2), (2, 32, 32, 3, 1)]
    {
        shapes.push(ConvShape {
            batch,
            in_h: side,
            in_w: side,
            in_c: 3,
            out_c,
            kernel_h: k,
            kernel_w: k,
            stride,
            pad: k / 2,
            padding: Padding::Zero,
        });
    }
    for (limits, gpu) in all_gpus() {
        for (i, shape) in shapes.iter().enumerate() {
            let mut rng = Rng::new(i as u64);
            let x = random_f32(&mut rng, shape.batch * shape.in_h * shape.in_w * shape.in_c);
            let w = random_words(
                &mut rng,
                shape.out_c * shape.kernel_h * shape.kernel_w,
                shape.in_c,
            );
            let want = ops::first_conv::reference_sum(shape, &x, &w);
            let got = first_conv::run_sum(gpu, shape, &x, &w).unwrap();
            // fma(x, ±1, acc) rounds exactly like acc ± x, in the same (ky, kx, c) order.
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "[{limits}] first_conv sums {shape:?}"
            );
            // Fused threshold: exactly the reference's bits, thresholds placed among the sums
            // (some exactly on a sum, where >= and <= decide).
            let th: Vec<FloatThreshold> = (0..shape.out_c)
                .map(|o| FloatThreshold {
                    t: if o % 3 == 0 {
                        want[(o * 7) % want.len()]
                    } else {
                        rng.range(-3.0, 3.0)
                    },
                    mode: (o % 2) as u32,
                })
                .collect();
            let got_bits = first_conv::run_bits(gpu, shape, &x, &w, &th).unwrap();
            assert_eq!(
                got_bits,
                ops::threshold::reference_f32(&want, &th),
                "[{limits}] first_bits {shape:?}"
            );
        }
    }
}

#[test]
fn float_conv_and_dense_match_reference() {
    for (limits, gpu) in all_gpus() {
        let mut shapes: Vec<ConvShape> = sweep()
            .into_iter()
            .map(|s| ConvShape {
                padding: Padding::Zero,
                ..s
            })
            .collect();
        shapes.push(ConvShape::dense(65, 300, 130));
        shapes.push(ConvShape {
            batch: 1,
            in_h: 13,
            in_w: 13,
            in_c: 512,
            out_c: 96,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            pad: 1,
            padding: Padding::Zero,
        });
        shapes.push(ConvShape {
            batch: 2,
            in_h: 28,
            in_w: 28,
            in_c: 128,
            out_c: 128,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            pad: 1,
            padding: Padding::Zero,
        });
        for (i, shape) in shapes.iter().enumerate() {
            let mut rng = Rng::new(100 + i as u64);
            let k = shape.kernel_h * shape.kernel_w * shape.in_c;
            let x = random_f32(&mut rng, shape.batch * shape.in_h * shape.in_w * shape.in_c);
            let w = random_f32(&mut rng, shape.out_c * k);
            let got = float_conv::run(gpu, shape, &x, &w).unwrap();
            assert_float_exact(
                &got,
                shape,
                &x,
                &w,
                &format!("[{limits}] float_conv {shape:?}"),
            );
        }
    }
}

#[test]
fn tensors_over_the_binding_limit_split_into_several_dispatches() {
    // 64 KiB bindings: each image's output fits, the batch does not.
    let gpu = match Gpu::with_limits(LimitsProfile::DownlevelWithBinding(64 << 10)) {
        Ok(g) => g,
        Err(e) => return common::skip(&e),
    };
    let shape = ConvShape {
        batch: 5,
        in_h: 16,
        in_w: 16,
        in_c: 60,
        out_c: 24,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        pad: 1,
        padding: Padding::Zero,
    };
    assert!(shape.batch * shape.out_pixels_per_item() * shape.out_c * 4 > 64 << 10);
    check_conv(&gpu, &shape, 42);
    let mut rng = Rng::new(1);
    let x = random_f32(&mut rng, shape.batch * 16 * 16 * 60);
    let w = random_f32(&mut rng, 24 * 9 * 60);
    assert_float_exact(
        &float_conv::run(&gpu, &shape, &x, &w).unwrap(),
        &shape,
        &x,
        &w,
        "split float conv",
    );

    // An item that cannot fit at all is a clear error, not a panic.
    let huge = ConvShape {
        batch: 1,
        in_h: 200,
        in_w: 200,
        in_c: 3,
        ..shape
    };
    let err = float_conv::run(
        &gpu,
        &huge,
        &vec![0.0; 200 * 200 * 3],
        &vec![0.0; 24 * 9 * 3],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("float_conv")
            && msg.contains("input is 480000 bytes")
            && msg.contains("storage binding (65536 bytes)"),
        "{msg}"
    );
}

#[test]
fn bad_shapes_are_errors() {
    let Some(gpu) = common::gpu() else { return };
    let shape = ConvShape {
        batch: 1,
        in_h: 2,
        in_w: 2,
        in_c: 3,
        out_c: 1,
        kernel_h: 5,
        kernel_w: 5,
        stride: 1,
        pad: 0,
        padding: Padding::Zero,
    };
    assert!(xnor_conv::run_dot(gpu, &shape, &[0; 4], &[0; 25]).is_err());
    let ok = ConvShape {
        kernel_h: 1,
        kernel_w: 1,
        ..shape
    };
    assert!(
        xnor_conv::run_dot(gpu, &ok, &[0; 3], &[0; 1]).is_err(),
        "wrong input length must be rejected"
    );
}

#[test]
fn xnor_conv_deep_layers_are_bit_exact() {
    // Real-network depths: many words per pixel and 32 sums per fused invocation.
    let Some(gpu) = common::gpu() else { return };
    for (c, k, o) in [
        (256usize, 3usize, 64usize),
        (512, 3, 96),
        (96, 11, 64),
        (384, 5, 64),
    ] {
        let shape = ConvShape {
            batch: 1,
            in_h: 13,
            in_w: 13,
            in_c: c,
            out_c: o,
            kernel_h: k,
            kernel_w: k,
            stride: 1,
            pad: k / 2,
            padding: Padding::Zero,
        };
        check_conv(gpu, &shape, c as u64);
    }
}

/// Both tilings (the CPU adapter's 32×32 and the GPU's 64×64 output blocks) over shapes where the
/// tile does not divide the output: pixel counts just past a tile, out_c past the channel tile,
/// tiny images, depth slices that end inside a tap, batches whose pixels share a tile.
#[test]
fn tiled_convs_are_exact_with_every_tile() {
    use bnn_transfer::kernels::ConvTile;
    let Some(gpu) = common::gpu() else { return };
    // lavapipe has subgroups (size 8): CI runs the ballot path, it cannot pass by skipping it.
    if gpu.info.name.contains("llvmpipe") && std::env::var("BNN_SUBGROUPS").is_err() {
        assert!(gpu.subgroups && gpu.subgroup_size() == Some(8));
    }
    let tiles = [
        ConvTile {
            wg_m: 8,
            wg_n: 8,
            rm: 4,
            rn: 4,
            kc: 16,
        },
        ConvTile {
            wg_m: 16,
            wg_n: 16,
            rm: 4,
            rn: 4,
            kc: 16,
        },
        ConvTile {
            wg_m: 2,
            wg_n: 8,
            rm: 4,
            rn: 4,
            kc: 4,
        },
        ConvTile {
            wg_m: 1,
            wg_n: 32,
            rm: 4,
            rn: 4,
            kc: 8,
        },
        // The narrowest: 8 invocations (1×8 for both kernels; 8×1 for the float one).
        ConvTile {
            wg_m: 1,
            wg_n: 8,
            rm: 4,
            rn: 4,
            kc: 16,
        },
    ];
    let shapes = [
        // (batch, side, c, out_c, k, stride, pad)
        (1, 9, 33, 97, 3, 1, 1),  // 81 pixels, out_c one past 3 channel words
        (2, 5, 64, 65, 3, 2, 1),  // batch shares a tile, stride 2
        (1, 1, 96, 130, 1, 1, 0), // a single pixel
        (3, 3, 31, 33, 3, 1, 0),  // no padding: the unmasked path
        (1, 7, 200, 64, 5, 1, 2), // 5x5, 7 words per pixel: slices end inside a tap
        (1, 6, 1, 31, 3, 1, 2),   // pad wider than the image edge
    ];
    let mut rng = Rng::new(2024);
    for &(batch, side, c, o, k, stride, pad) in &shapes {
        for padding in [Padding::Zero, Padding::One] {
            let shape = ConvShape {
                batch,
                in_h: side,
                in_w: side + 1,
                in_c: c,
                out_c: o,
                kernel_h: k,
                kernel_w: k,
                stride,
                pad,
                padding,
            };
            let x = random_words(&mut rng, batch * side * (side + 1), c);
            let w = random_words(&mut rng, o * k * k, c);
            let th = random_thresholds(&mut rng, o, k * k * c);
            let want = ops::conv::reference_dot(&shape, &x, &w);
            let want_bits = ops::conv::reference_bits(&shape, &x, &w, &th);
            let (xg, wg) = (gpu.upload(&x, "x").unwrap(), gpu.upload(&w, "w").unwrap());
            let tg = gpu.upload(&th, "th").unwrap();
            for tile in &tiles {
                let (d, out) = xnor_conv::encode_with(gpu, &shape, tile, &xg, &wg, None).unwrap();
                gpu.run(&[d]).unwrap();
                let got: Vec<i32> = bytemuck::cast_vec(gpu.read(&out).unwrap());
                assert_eq!(got, want, "xnor dots, {tile:?} {shape:?}");
                let (d, out) =
                    xnor_conv::encode_with(gpu, &shape, tile, &xg, &wg, Some(&tg)).unwrap();
                gpu.run(&[d]).unwrap();
                assert_eq!(
                    gpu.read(&out).unwrap(),
                    want_bits,
                    "xnor bits, {tile:?} {shape:?}"
                );
                // The subgroup entry point: ballots where subgroups are workgroup rows (wg_n 8
                // on lavapipe), its atomic fallback for the other tiles.
                if gpu.subgroups {
                    let (d, out) =
                        xnor_conv::encode_bits_subgroup(gpu, &shape, tile, &xg, &wg, &tg).unwrap();
                    gpu.run(&[d]).unwrap();
                    assert_eq!(
                        gpu.read(&out).unwrap(),
                        want_bits,
                        "xnor bits by subgroup ballots, {tile:?} {shape:?}"
                    );
                }
            }
            if padding == Padding::Zero {
                let xf = random_f32(&mut rng, batch * side * (side + 1) * c);
                let wf = random_f32(&mut rng, o * k * k * c);
                let (xg, wg) = (gpu.upload(&xf, "x").unwrap(), gpu.upload(&wf, "w").unwrap());
                let float_only = ConvTile {
                    wg_m: 8,
                    wg_n: 1,
                    rm: 4,
                    rn: 4,
                    kc: 16,
                };
                for tile in tiles.iter().chain([&float_only]) {
                    let (d, out) = float_conv::encode_with(gpu, &shape, tile, &xg, &wg).unwrap();
                    gpu.run(&[d]).unwrap();
                    assert_float_exact(
                        &gpu.read(&out).unwrap(),
                        &shape,
                        &xf,
                        &wf,
                        &format!("float {tile:?} {shape:?}"),
                    );
                }
            }
        }
    }
    // A tile the shader cannot hold is an error, not a wrong result.
    let bad = ConvTile {
        wg_m: 8,
        wg_n: 4,
        rm: 4,
        rn: 4,
        kc: 16,
    };
    let shape = ConvShape::dense(1, 64, 64);
    let x = gpu.upload(&[0u32; 2], "x").unwrap();
    let w = gpu.upload(&[0u32; 128], "w").unwrap();
    assert!(xnor_conv::encode_with(gpu, &shape, &bad, &x, &w, None).is_err());
}

/// The float kernel's sums, bit for bit: equal to the reference in the kernel's order with `fma`
/// rounded twice (lavapipe) or once (GPUs that fuse it; WGSL allows either), the whole output one way.
fn assert_float_exact(got: &[f32], shape: &ConvShape, x: &[f32], w: &[f32], what: &str) {
    let twice = ops::float_conv::reference(shape, x, w);
    if got == twice.as_slice() {
        return;
    }
    let once = ops::float_conv::reference_fused(shape, x, w);
    if got == once.as_slice() {
        return;
    }
    let bad: Vec<(usize, f32, f32)> = got
        .iter()
        .zip(&twice)
        .enumerate()
        .filter(|(_, (g, r))| g != r)
        .map(|(i, (g, r))| (i, *g, *r))
        .take(5)
        .collect();
    panic!(
        "{what}: {} of {} values differ from the reference (first: {bad:?})",
        got.iter().zip(&twice).filter(|(g, r)| g != r).count(),
        got.len()
    );
}

/// A one-invocation shader that counts the iterations of a loop of `n` (read from a buffer, so no
/// compiler can fold it).
fn count_loop_iterations(gpu: &Gpu, n: u32) -> u32 {
    let source = "
        @group(0) @binding(0) var<storage, read_write> data: array<u32>;
        @compute @workgroup_size(1)
        fn main() {
            var count = 0u;
            for (var i = 0u; i < data[0]; i++) {
                count += data[1];
            }
            data[2] = count;
        }";
    let module = gpu
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("loop count"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipeline = gpu
        .device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("loop count"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
    let data = gpu.upload(&[n, 1, 0], "loop count").unwrap();
    let bind_group = gpu.bind(&pipeline, &[&data.buffer]);
    gpu.run(&[bnn_transfer::gpu::Dispatch {
        pipeline: std::sync::Arc::new(pipeline),
        bind_group,
        workgroups: [1, 1, 1],
        label: "loop count",
    }])
    .unwrap();
    gpu.read(&data).unwrap()[2]
}

/// The minimal repro of the lavapipe mismatch: Mesa's llvmpipe ends every loop of an invocation
/// once 65,535 loop iterations have run in all (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`, a hang
/// guard), silently. `AdapterLimits::loop_budget` must say so exactly for this adapter, and
/// nothing for an adapter that runs the loop in full.
#[test]
fn the_drivers_loop_budget_is_modelled_exactly() {
    let Some(gpu) = common::gpu() else { return };
    let n = 100_000;
    let count = count_loop_iterations(gpu, n);
    match gpu.adapter_limits().loop_budget {
        Some(budget) => assert_eq!(
            count as u64,
            budget,
            "{}: the loop budget differs from what the driver runs",
            gpu.describe()
        ),
        None => assert_eq!(
            count,
            n,
            "{} cut a loop short but AdapterLimits has no loop budget for it",
            gpu.describe()
        ),
    }
    assert_eq!(count_loop_iterations(gpu, 1000), 1000);
}

/// The case that went wrong on lavapipe (one float output channel, 11×11 kernel over 96 channels,
/// tile 8×1, a workgroup of 1×8 invocations): each invocation stages 4× more values per slice
/// than with the 8×8 tile, over 726 slices, so it needs more loop iterations than llvmpipe runs
/// (see above) and the sums lost their last slices. Not a race or a shader bug: the same narrow
/// tiles are exact on shallow layers, and under a loop budget they are now refused with a typed
/// error instead of returning wrong values. XNOR tiles are checked the same way.
#[test]
fn narrow_tiles_are_exact_or_refused_under_the_loop_budget() {
    use bnn_transfer::kernels::ConvTile;
    let Some(gpu) = common::gpu() else { return };
    let limits = gpu.adapter_limits();
    let tile = |wg_m, wg_n, kc| ConvTile {
        wg_m,
        wg_n,
        rm: 4,
        rn: 4,
        kc,
    };
    let issue = ConvShape {
        batch: 3,
        in_h: 20,
        in_w: 22,
        in_c: 96,
        out_c: 1,
        kernel_h: 11,
        kernel_w: 11,
        stride: 4,
        pad: 2,
        padding: Padding::Zero,
    };
    let shallow = ConvShape {
        kernel_h: 3,
        kernel_w: 3,
        out_c: 5,
        ..issue
    };
    let float_tiles = [
        tile(8, 1, 16),
        tile(1, 8, 16),
        tile(4, 1, 16),
        tile(1, 1, 4),
        tile(8, 8, 16),
    ];
    let mut refused = 0;
    for shape in [issue, shallow] {
        let k = shape.kernel_h * shape.kernel_w * shape.in_c;
        let mut rng = Rng::new(k as u64);
        let x = random_f32(&mut rng, shape.batch * shape.in_h * shape.in_w * shape.in_c);
        let w = random_f32(&mut rng, shape.out_c * k);
        let (xg, wg) = (gpu.upload(&x, "x").unwrap(), gpu.upload(&w, "w").unwrap());
        for t in &float_tiles {
            let what = format!("float {t:?} {shape:?}");
            match float_conv::encode_with(gpu, &shape, t, &xg, &wg) {
                Ok((d, out)) => {
                    gpu.run(&[d]).unwrap();
                    assert_float_exact(&gpu.read(&out).unwrap(), &shape, &x, &w, &what);
                }
                Err(e) => {
                    let budget = limits
                        .loop_budget
                        .expect("only a loop budget refuses these");
                    assert!(t.float_loop_iterations(&shape) > budget, "{what}: {e}");
                    assert!(e.to_string().contains("loop iterations"), "{e}");
                    refused += 1;
                }
            }
        }
        // The tuned tile is always accepted and exact.
        assert_float_exact(
            &float_conv::run(gpu, &shape, &x, &w).unwrap(),
            &shape,
            &x,
            &w,
            "tuned",
        );
    }
    if limits.loop_budget.is_some() {
        // The issue's tile on the issue's shape: 92 iterations per slice × 726 slices.
        assert!(
            tile(8, 1, 16)
                .validate_float(&limits, &issue)
                .unwrap_err()
                .to_string()
                .contains("llvmpipe")
        );
        assert!(refused >= 4, "{refused}");
    }

    // XNOR: its narrowest tile (8 invocations across 32 channels) on a deep layer and a shallow one.
    for (c, k) in [(4096usize, 11usize), (96, 3)] {
        let shape = ConvShape {
            batch: 1,
            in_h: k + 2,
            in_w: k + 2,
            in_c: c,
            out_c: 33,
            kernel_h: k,
            kernel_w: k,
            stride: 1,
            pad: 1,
            padding: Padding::Zero,
        };
        let mut rng = Rng::new(c as u64);
        let x = random_words(&mut rng, shape.in_h * shape.in_w, c);
        let w = random_words(&mut rng, shape.out_c * k * k, c);
        let want = ops::conv::reference_dot(&shape, &x, &w);
        let (xg, wg) = (gpu.upload(&x, "x").unwrap(), gpu.upload(&w, "w").unwrap());
        let t = tile(1, 8, 16);
        match xnor_conv::encode_with(gpu, &shape, &t, &xg, &wg, None) {
            Ok((d, out)) => {
                gpu.run(&[d]).unwrap();
                let got: Vec<i32> = bytemuck::cast_vec(gpu.read(&out).unwrap());
                assert_eq!(got, want, "xnor {t:?} {shape:?}");
            }
            Err(e) => {
                let budget = limits.loop_budget.expect("only a loop budget refuses this");
                assert!(t.xnor_loop_iterations(&shape) > budget, "{e}");
            }
        }
        assert_eq!(xnor_conv::run_dot(gpu, &shape, &x, &w).unwrap(), want);
    }
}

/// Float weights over the storage-binding limit are split along the output channels into
/// several dispatches, with results bit-identical to one dispatch; a single output channel's row
/// over the limit is a typed error naming the tensor, its size and the limit.
#[test]
fn float_weights_over_the_binding_limit_split_along_output_channels() {
    let Some(full) = common::gpu() else { return };
    // 64 KiB bindings.
    let gpu = match Gpu::with_limits(LimitsProfile::DownlevelWithBinding(64 << 10)) {
        Ok(g) => g,
        Err(e) => return common::skip(&e),
    };
    let conv = ConvShape {
        batch: 2,
        in_h: 9,
        in_w: 8,
        in_c: 33,
        out_c: 70,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        pad: 1,
        padding: Padding::Zero,
    };
    for shape in [ConvShape::dense(3, 300, 130), conv] {
        let k = shape.kernel_h * shape.kernel_w * shape.in_c;
        assert!(shape.out_c * k * 4 > 64 << 10, "the weights must not fit");
        let mut rng = Rng::new(k as u64);
        let x = random_f32(&mut rng, shape.batch * shape.in_h * shape.in_w * shape.in_c);
        let w = random_f32(&mut rng, shape.out_c * k);
        let whole = float_conv::run(full, &shape, &x, &w).unwrap();
        assert_float_exact(&whole, &shape, &x, &w, "unsplit");
        let split = float_conv::run(&gpu, &shape, &x, &w).unwrap();
        assert_eq!(
            split.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "split at 64 KiB {shape:?}"
        );
        let parts = float_conv::FloatWeights::upload(&gpu, shape.out_c, k, &w)
            .unwrap()
            .parts();
        assert_eq!(
            parts,
            (shape.out_c * k * 4).div_ceil((64 << 10) / (k * 4) * k * 4)
        );
        // Parts of a few rows each, down to one row per part.
        for rows in [7, 1] {
            let bytes = (rows * k * 4) as u64;
            let many = float_conv::run_within(full, &shape, &x, &w, bytes).unwrap();
            assert_eq!(
                many.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{rows}-row parts {shape:?}"
            );
        }
    }
    // One row larger than a binding cannot be split: a clear error, nothing run. (An 11×11 kernel
    // over 150 channels on a zero-padded 1×1 image: the input fits, a row of 18,150 does not.)
    let shape = ConvShape {
        batch: 1,
        in_h: 1,
        in_w: 1,
        in_c: 150,
        out_c: 2,
        kernel_h: 11,
        kernel_w: 11,
        stride: 1,
        pad: 5,
        padding: Padding::Zero,
    };
    let err = float_conv::run(&gpu, &shape, &[0.0; 150], &vec![0.0; 2 * 18_150]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("float weights") && msg.contains("72600 bytes") && msg.contains("65536"),
        "{msg}"
    );
}

/// The tiles a GPU would get under downlevel limits (16×16-invocation blocks, reshaped for few
/// pixels or wide layers), run on this device, which otherwise only ever runs its own (CPU)
/// tilings: every layer of the mini and small archs at batch 1 and 8, and the batch-1 dense
/// layer of 4096 outputs whose tile used to overflow 16 KiB.
#[test]
fn gpu_downlevel_tilings_are_exact_here() {
    use bnn_transfer::arch::out_size;
    use bnn_transfer::bench::shapes;
    use bnn_transfer::gpu::AdapterLimits;
    use bnn_transfer::kernels::Tuning;
    let Some(gpu) = common::gpu_downlevel() else {
        return;
    };
    let tuning = Tuning::new(AdapterLimits::new(
        wgpu::DeviceType::DiscreteGpu,
        &wgpu::Limits::downlevel_defaults(),
    ));
    let mut cases = Vec::new();
    for batch in [1, 8] {
        for arch in [bnn_transfer::Arch::mini(10), bnn_transfer::Arch::small(200)] {
            let (mut side, mut cin) = (arch.input, arch.in_channels);
            for c in &arch.convs {
                cases.push(shapes::conv(
                    batch, side, cin, c.out, c.kernel, c.stride, c.pad,
                ));
                side = out_size(side, c.kernel, c.stride, c.pad);
                if let Some(p) = c.pool {
                    side = out_size(side, p.kernel, p.stride, 0);
                }
                cin = c.out;
            }
            let mut fin = side * side * cin;
            for &d in arch.dense.iter().chain([&arch.classes]) {
                cases.push(ConvShape::dense(batch, fin, d));
                fin = d;
            }
        }
        cases.push(ConvShape::dense(batch, 256, 4096));
    }
    let mut rng = Rng::new(77);
    for shape in &cases {
        let k = shape.kernel_h * shape.kernel_w * shape.in_c;
        let n_in = shape.batch * shape.in_h * shape.in_w * shape.in_c;
        let x = random_f32(&mut rng, n_in);
        let w = random_f32(&mut rng, shape.out_c * k);
        let tile = tuning.float_conv_tile(shape);
        let (xg, wg) = (gpu.upload(&x, "x").unwrap(), gpu.upload(&w, "w").unwrap());
        let (d, out) = float_conv::encode_with(gpu, shape, &tile, &xg, &wg).unwrap();
        gpu.run(&[d]).unwrap();
        assert_float_exact(
            &gpu.read(&out).unwrap(),
            shape,
            &x,
            &w,
            &format!("float {tile:?} {shape:?}"),
        );

        let xb = random_words(&mut rng, shape.batch * shape.in_h * shape.in_w, shape.in_c);
        let wb = random_words(
            &mut rng,
            shape.out_c * shape.kernel_h * shape.kernel_w,
            shape.in_c,
        );
        let th = random_thresholds(&mut rng, shape.out_c, k);
        let tile = tuning.xnor_conv_tile(shape);
        let (xg, wg) = (gpu.upload(&xb, "x").unwrap(), gpu.upload(&wb, "w").unwrap());
        let tg = gpu.upload(&th, "th").unwrap();
        let (d, out) = xnor_conv::encode_with(gpu, shape, &tile, &xg, &wg, None).unwrap();
        gpu.run(&[d]).unwrap();
        let got: Vec<i32> = bytemuck::cast_vec(gpu.read(&out).unwrap());
        assert_eq!(
            got,
            ops::conv::reference_dot(shape, &xb, &wb),
            "xnor {tile:?} {shape:?}"
        );
        let (d, out) = xnor_conv::encode_with(gpu, shape, &tile, &xg, &wg, Some(&tg)).unwrap();
        gpu.run(&[d]).unwrap();
        assert_eq!(
            gpu.read(&out).unwrap(),
            ops::conv::reference_bits(shape, &xb, &wb, &th),
            "xnor bits {tile:?} {shape:?}"
        );
    }
}

/// The split-K dense kernel gives the same dots and bits for every split (lavapipe itself always
/// runs split 1; GPUs split deep layers).
#[test]
fn xnor_dense_split_k_is_exact_for_every_split() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = Rng::new(21);
    for (batch, in_features, out_features) in
        [(1, 1152, 512), (3, 4099, 70), (7, 33, 31), (1, 9216, 64)]
    {
        let shape = DenseShape {
            batch,
            in_features,
            out_features,
        };
        let x = random_words(&mut rng, batch, in_features);
        let w = random_words(&mut rng, out_features, in_features);
        let th = random_thresholds(&mut rng, out_features, in_features);
        let want_dots = ops::dense::reference_dot(&shape, &x, &w);
        let want_bits = ops::dense::reference_bits(&shape, &x, &w, &th);
        let (xb, wb) = (gpu.upload(&x, "x").unwrap(), gpu.upload(&w, "w").unwrap());
        let tb = gpu.upload(&th, "t").unwrap();
        for split in [1, 2, 4, 8] {
            let (d, out) = xnor_dense::encode_with(gpu, &shape, split, &xb, &wb, None).unwrap();
            gpu.run(&[d]).unwrap();
            let dots: Vec<i32> = bytemuck::cast_vec(gpu.read(&out).unwrap());
            assert_eq!(dots, want_dots, "split {split} {shape:?}");
            let (d, out) =
                xnor_dense::encode_with(gpu, &shape, split, &xb, &wb, Some(&tb)).unwrap();
            gpu.run(&[d]).unwrap();
            assert_eq!(
                gpu.read(&out).unwrap(),
                want_bits,
                "split {split} {shape:?}"
            );
        }
    }
}

/// The dense kernel counts its loops too. Split-K gives each invocation one output's share of the
/// words, so 65,504 inputs (2,047 words, which one invocation per 32 outputs could not run on
/// llvmpipe) now run everywhere, exactly; 2.1 M inputs (65,625 words per output on a CPU adapter)
/// are past llvmpipe's budget: there they are refused, elsewhere exact.
#[test]
fn xnor_dense_past_the_loop_budget_is_refused_not_wrong() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = Rng::new(9);
    for in_features in [65_504usize, 2_100_000] {
        let shape = DenseShape {
            batch: 1,
            in_features,
            out_features: 32,
        };
        let x = random_words(&mut rng, 1, in_features);
        let w = random_words(&mut rng, 32, in_features);
        // Each threshold at its dot, "+1 iff dot <= t": a sum that lost words is larger, so -1.
        let th: Vec<Threshold> = ops::dense::reference_dot(&shape, &x, &w)
            .into_iter()
            .map(Threshold::at_most)
            .collect();
        let split = xnor_dense::split_for(&gpu.adapter_limits(), words(in_features)) as u64;
        let over = (words(in_features) as u64).div_ceil(split) + split + 2 > 65_535;
        assert_eq!(over, in_features > 65_504 && split == 1);
        match xnor_dense::run_bits(gpu, &shape, &x, &w, &th) {
            Ok(got) => {
                assert!(!over || gpu.adapter_limits().loop_budget.is_none());
                assert_eq!(got, ops::dense::reference_bits(&shape, &x, &w, &th));
            }
            Err(e) => {
                assert!(over && gpu.adapter_limits().loop_budget.is_some(), "{e}");
                assert!(e.to_string().contains("loop iterations"), "{e}");
            }
        }
        match xnor_dense::run_dot(gpu, &shape, &x, &w) {
            Ok(got) => assert_eq!(got, ops::dense::reference_dot(&shape, &x, &w)),
            Err(e) => assert!(over && e.to_string().contains("loop iterations"), "{e}"),
        }
    }
}

/// The first layer sums KH·KW·C values per invocation: 3×3 over 8,000 channels passes
/// llvmpipe's loop budget and is refused there; elsewhere it matches the reference.
#[test]
fn first_conv_past_the_loop_budget_is_refused_not_wrong() {
    let Some(gpu) = common::gpu() else { return };
    let shape = ConvShape {
        batch: 1,
        in_h: 3,
        in_w: 3,
        in_c: 8000,
        out_c: 2,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        pad: 0,
        padding: Padding::Zero,
    };
    let mut rng = Rng::new(4);
    let x = random_f32(&mut rng, 9 * 8000);
    let w = random_words(&mut rng, 2 * 9, 8000);
    match first_conv::run_sum(gpu, &shape, &x, &w) {
        Ok(got) => {
            assert!(gpu.adapter_limits().loop_budget.is_none());
            let want = ops::first_conv::reference_sum(&shape, &x, &w);
            assert_close(&got, &want, 2.0 * 72_000.0, "deep first_conv");
        }
        Err(e) => {
            assert!(gpu.adapter_limits().loop_budget.is_some(), "{e}");
            assert!(e.to_string().contains("loop iterations"), "{e}");
        }
    }
}

/// The binary first layer on the float conv: with ±1.0 weights (unpacked from the packed bits,
/// OHWI) every product is exact, so the kernel's sequential `fma` sum in increasing (ky, kx, c)
/// from +0.0 rounds exactly like `ops::first_conv::reference_sum`'s `acc ± x` (out-of-image taps
/// add `fma(0, ±1, acc) = acc`). Bit for bit, whether or not the device fuses `fma`.
#[test]
fn float_conv_with_sign_weights_is_the_first_layer_bit_for_bit() {
    // (batch, h, w, c, out_c, kernel, stride, pad)
    let cases = [
        (1, 64, 64, 3, 64, 5, 2, 2),
        (3, 64, 64, 3, 64, 5, 2, 2),
        (1, 32, 32, 3, 64, 3, 1, 1),
        (3, 32, 32, 3, 64, 3, 1, 1),
        (1, 33, 31, 3, 37, 5, 2, 2),
        (3, 17, 19, 3, 33, 3, 2, 1),
        (2, 15, 13, 1, 5, 3, 1, 1),
        (1, 9, 11, 5, 70, 5, 1, 2),
    ];
    for (limits, gpu) in all_gpus() {
        for (i, &(batch, h, w, c, o, k, stride, pad)) in cases.iter().enumerate() {
            let shape = ConvShape {
                batch,
                in_h: h,
                in_w: w,
                in_c: c,
                out_c: o,
                kernel_h: k,
                kernel_w: k,
                stride,
                pad,
                padding: Padding::Zero,
            };
            let mut rng = Rng::new(300 + i as u64);
            let x = random_f32(&mut rng, batch * h * w * c);
            let packed = random_words(&mut rng, o * k * k, c);
            let signs = unpack_rows(&packed, c);
            assert_eq!(signs.len(), o * k * k * c);
            assert!(signs.iter().all(|v| v.abs() == 1.0));
            let want = ops::first_conv::reference_sum(&shape, &x, &packed);
            let got = float_conv::run(gpu, &shape, &x, &signs).unwrap();
            assert_eq!(got.len(), want.len(), "[{limits}] {shape:?}");
            let bad: Vec<(usize, f32, f32)> = got
                .iter()
                .zip(&want)
                .enumerate()
                .filter(|(_, (g, r))| g.to_bits() != r.to_bits())
                .map(|(j, (g, r))| (j, *g, *r))
                .collect();
            assert!(
                bad.is_empty(),
                "[{limits}] {shape:?}: {} of {} sums differ (first: {:?})",
                bad.len(),
                got.len(),
                &bad[..bad.len().min(5)]
            );
        }
    }
}

/// The small-batch dense kernel's sums: bit for bit its reference in the documented order (fma
/// unfused or fused, the whole output one way), and within 1e−5 · Σ|x·w| + 1e−6 of it per output.
fn assert_dense_exact(
    got: &[f32],
    wg: u32,
    shape: (usize, usize, usize),
    x: &[f32],
    w: &[f32],
    what: &str,
) {
    let (batch, fin, fout) = shape;
    let twice = ops::float_dense::reference(wg, batch, fin, fout, x, w);
    assert_dense_close(got, &twice, x, w, fin, what);
    let once = ops::float_dense::reference_fused(wg, batch, fin, fout, x, w);
    assert!(
        got == twice.as_slice() || got == once.as_slice(),
        "{what}: {} of {} sums differ from the reference order",
        got.iter().zip(&twice).filter(|(g, r)| g != r).count(),
        got.len()
    );
}

/// |got − want| ≤ 1e−5 · Σ|x·w| + 1e−6 per output of a dense layer: the bound of reordered or
/// fused f32 summation of this depth.
fn assert_dense_close(got: &[f32], want: &[f32], x: &[f32], w: &[f32], fin: usize, what: &str) {
    let fout = w.len() / fin;
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, r)) in got.iter().zip(want).enumerate() {
        let (b, o) = (i / fout, i % fout);
        let scale: f32 = (0..fin)
            .map(|k| (x[b * fin + k] * w[o * fin + k]).abs())
            .sum();
        assert!(
            (g - r).abs() <= 1e-5 * scale + 1e-6,
            "{what}: row {b} output {o}: {g} vs {r}"
        );
    }
}

#[test]
fn float_dense_matches_reference_at_every_batch() {
    use bnn_transfer::kernels::Tuning;
    use bnn_transfer::kernels::float_dense::{self, DenseKernel};
    for (limits, gpu) in all_gpus() {
        for batch in 1..=9 {
            // (in, out): vec4 rows (some spanning one partial step per invocation, some many),
            // a width the small-batch kernel refuses (301), out_c not a multiple of 4.
            for (i, &(fin, fout)) in [(300, 130), (36, 5), (1024, 70), (4, 1), (301, 33)]
                .iter()
                .enumerate()
            {
                let mut rng = Rng::new(400 + 10 * batch as u64 + i as u64);
                let x = random_f32(&mut rng, batch * fin);
                let w = random_f32(&mut rng, fout * fin);
                let what = format!("[{limits}] float_dense {batch}×{fin} → {fout}");
                let got = float_dense::run(gpu, batch, fin, fout, &x, &w).unwrap();
                match DenseKernel::for_shape(batch, fin) {
                    DenseKernel::SmallBatch => {
                        assert!(batch <= float_dense::MAX_BATCH && fin % 4 == 0);
                        let wg = Tuning::for_gpu(gpu).float_dense_workgroup();
                        assert_dense_exact(&got, wg, (batch, fin, fout), &x, &w, &what);
                    }
                    DenseKernel::Tiled => {
                        assert!(batch > float_dense::MAX_BATCH || fin % 4 != 0);
                        let shape = ConvShape::dense(batch, fin, fout);
                        assert_float_exact(&got, &shape, &x, &w, &what);
                    }
                }
            }
        }
        // Every reduction depth, a GPU's (64) and more included, on this adapter too.
        let (batch, fin, fout) = (3, 1024, 70);
        let mut rng = Rng::new(450);
        let x = random_f32(&mut rng, batch * fin);
        let w = random_f32(&mut rng, fout * fin);
        let (xg, wg_) = (gpu.upload(&x, "x").unwrap(), gpu.upload(&w, "w").unwrap());
        for wg in [1, 2, 8, 64, 256] {
            let (d, out) =
                float_dense::encode_small_batch_with(gpu, wg, batch, fin, fout, &xg, &wg_).unwrap();
            gpu.run(&[d]).unwrap();
            let what = format!("[{limits}] float_dense workgroup {wg}");
            assert_dense_exact(
                &gpu.read(&out).unwrap(),
                wg,
                (batch, fin, fout),
                &x,
                &w,
                &what,
            );
        }
        assert!(
            float_dense::encode_small_batch_with(gpu, 48, batch, fin, fout, &xg, &wg_).is_err()
        );
        // The small-batch kernel forced on a batch or width it does not take is an error.
        let x = gpu.upload(&[0.0f32; 9 * 12], "x").unwrap();
        let w = gpu.upload(&[0.0f32; 12 * 3], "w").unwrap();
        assert!(float_dense::encode_on(gpu, DenseKernel::SmallBatch, 9, 12, 3, &x, &w).is_err());
        let x = gpu.upload(&[0.0f32; 2 * 6], "x").unwrap();
        let w = gpu.upload(&[0.0f32; 6 * 3], "w").unwrap();
        assert!(float_dense::encode_on(gpu, DenseKernel::SmallBatch, 2, 6, 3, &x, &w).is_err());
    }
}

/// Dense weights over the binding limit split along the output rows on the small-batch kernel
/// too, each output's sum unchanged (bit for bit against the unsplit run).
#[test]
fn float_dense_weights_split_along_output_rows() {
    use bnn_transfer::kernels::float_dense;
    let Some(full) = common::gpu() else { return };
    let gpu = match Gpu::with_limits(LimitsProfile::DownlevelWithBinding(64 << 10)) {
        Ok(g) => g,
        Err(e) => return common::skip(&e),
    };
    for (batch, fin, fout) in [(1, 300, 130), (5, 300, 130), (3, 1024, 33)] {
        let mut rng = Rng::new(fin as u64 + batch as u64);
        let x = random_f32(&mut rng, batch * fin);
        let w = random_f32(&mut rng, fout * fin);
        let parts = float_conv::FloatWeights::upload(&gpu, fout, fin, &w)
            .unwrap()
            .parts();
        assert!(parts > 1, "{batch}×{fin} → {fout}: {parts} part");
        assert_eq!(
            float_dense::run(&gpu, batch, fin, fout, &x, &w).unwrap(),
            float_dense::run(full, batch, fin, fout, &x, &w).unwrap(),
            "{batch}×{fin} → {fout} split into {parts}"
        );
    }
    // One row larger than a binding cannot be split: a clean limits error.
    let fin = (64 << 10) / 4 + 4;
    let err = float_dense::run(&gpu, 1, fin, 2, &vec![0.0; fin], &vec![0.0; 2 * fin]).unwrap_err();
    assert!(err.to_string().contains("storage binding"), "{err}");
}

/// The f16 baseline against the f32 conv: inputs and weights rounded to f16, f16 products and
/// sums, within the sequential-summation bound of f16, |got − want| ≤ (K + 2) · 2⁻¹¹ · Σ|x·w|.
/// Where the adapter has no shader-f16 the launcher must refuse with an error naming it.
#[test]
fn float_conv_f16_is_within_f16_rounding_of_f32() {
    use bnn_transfer::kernels::float_conv_f16;
    let shapes = [
        // (batch, side, c, out_c, kernel, stride, pad)
        (1, 16, 3, 64, 5, 2, 2),
        (3, 9, 33, 70, 3, 1, 1),
        (2, 7, 64, 33, 3, 2, 0),
        (1, 1, 300, 130, 1, 1, 0),
        (9, 1, 256, 40, 1, 1, 0),
    ];
    for (limits, gpu) in all_gpus() {
        for (i, &(batch, side, c, o, k, stride, pad)) in shapes.iter().enumerate() {
            let shape = ConvShape {
                batch,
                in_h: side,
                in_w: side,
                in_c: c,
                out_c: o,
                kernel_h: k,
                kernel_w: k,
                stride,
                pad,
                padding: Padding::Zero,
            };
            let depth = k * k * c;
            let mut rng = Rng::new(500 + i as u64);
            let x = random_f32(&mut rng, batch * side * side * c);
            let w = random_f32(&mut rng, o * depth);
            if !gpu.has_f16() {
                let err = float_conv_f16::run(gpu, &shape, &x, &w).unwrap_err();
                assert!(err.to_string().contains("shader-f16"), "{err}");
                eprintln!("[{limits}] float_conv_f16 refused: {err}");
                continue;
            }
            let got = float_conv_f16::run(gpu, &shape, &x, &w).unwrap();
            let want = ops::float_conv::reference(&shape, &x, &w);
            let magnitudes = ops::float_conv::reference(
                &shape,
                &x.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                &w.iter().map(|v| v.abs()).collect::<Vec<_>>(),
            );
            let bound = (depth + 2) as f32 * 2f32.powi(-11);
            assert_eq!(got.len(), want.len());
            for (j, ((g, r), m)) in got.iter().zip(&want).zip(&magnitudes).enumerate() {
                assert!(
                    (g - r).abs() <= bound * m + depth as f32 * 2f32.powi(-24),
                    "[{limits}] f16 {shape:?} output {j}: {g} vs {r} (Σ|x·w| = {m})"
                );
            }
        }
    }
}
