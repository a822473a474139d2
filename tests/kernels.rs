//! Every kernel against its scalar reference on the device: integers bit-exact, floats within a
//! tight tolerance. Shapes straddle word boundaries (C ∈ {1, 3, 31, 32, 33, 63, 64, 65, 96}),
//! kernels {1, 3, 5, 11}, strides {1, 2, 4}, odd spatial sizes, both padding modes, batch {1, 3},
//! under the adapter's limits and under downlevel (phone-class) limits; plus a few-case property
//! test over random shapes, and the split-into-several-dispatches path.

mod common;

use bnn_transfer::bits::{pack_rows, unpack_rows, words};
use bnn_transfer::gpu::{Gpu, LimitsProfile};
use bnn_transfer::kernels::pool::{PoolShape, PoolValues};
use bnn_transfer::kernels::xnor_dense::DenseShape;
use bnn_transfer::kernels::{
    ConvShape, FloatThreshold, Padding, Threshold, bitpack, first_conv, float_conv, pool,
    threshold, xnor_conv, xnor_dense,
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
    let want = xnor_conv::reference_dot(shape, &input, &weights);
    let got = xnor_conv::run_dot(gpu, shape, &input, &weights).unwrap();
    assert_eq!(got, want, "xnor_conv dots differ for {shape:?}");

    // Second oracle: a float conv on the ±1 values (zero padding is the float model's padding).
    if shape.padding == Padding::Zero {
        let x = unpack_rows(&input, shape.in_c);
        let w = unpack_rows(&weights, shape.in_c);
        let float: Vec<i32> = float_conv::reference(shape, &x, &w)
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
    let want_bits = xnor_conv::reference_bits(shape, &input, &weights, &th);
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
                threshold::reference(&values, &th),
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
                threshold::reference_f32(&fv, &fth)
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
                pool::reference_i32(&shape, &ints),
                "[{limits}] {shape:?}"
            );

            let floats = random_f32(&mut rng, shape.input_len());
            let got =
                pool::run(gpu, &shape, PoolValues::F32, bytemuck::cast_slice(&floats)).unwrap();
            assert_eq!(
                bytemuck::cast_slice::<u32, f32>(&got),
                pool::reference_f32(&shape, &floats)
            );

            let bit_shape = PoolShape {
                channels: words(c),
                ..shape
            };
            let bits = random_words(&mut rng, shape.batch * shape.in_h * shape.in_w, c);
            let got = pool::run(gpu, &bit_shape, PoolValues::Bits, &bits).unwrap();
            assert_eq!(got, pool::reference_bits(&bit_shape, &bits));
            // Pooling signs = signs of pooled ±1 values (the max of ±1 is +1 unless all are −1).
            let pooled_values = pool::reference_f32(&shape, &unpack_rows(&bits, c));
            assert_eq!(got, pack_rows(&pooled_values, c));
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
            let want = xnor_dense::reference_dot(&shape, &x, &w);
            assert_eq!(
                xnor_dense::run_dot(gpu, &shape, &x, &w).unwrap(),
                want,
                "[{limits}] {shape:?}"
            );
            let float: Vec<i32> = float_conv::reference(
                &float_conv::dense_shape(shape.batch, inf, shape.out_features),
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
                xnor_dense::reference_bits(&shape, &x, &w, &th)
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
    for (limits, gpu) in all_gpus() {
        for (i, shape) in sweep()
            .iter()
            .filter(|s| s.padding == Padding::Zero)
            .enumerate()
        {
            let mut rng = Rng::new(i as u64);
            let x = random_f32(&mut rng, shape.batch * shape.in_h * shape.in_w * shape.in_c);
            let w = random_words(
                &mut rng,
                shape.out_c * shape.kernel_h * shape.kernel_w,
                shape.in_c,
            );
            let want = first_conv::reference_sum(shape, &x, &w);
            let got = first_conv::run_sum(gpu, shape, &x, &w).unwrap();
            let scale = 2.0 * (shape.kernel_h * shape.kernel_w * shape.in_c) as f32;
            assert_close(
                &got,
                &want,
                scale,
                &format!("[{limits}] first_conv {shape:?}"),
            );

            // Fused: identical signs except where the sum sits within rounding of the threshold.
            let th: Vec<FloatThreshold> = (0..shape.out_c)
                .map(|o| FloatThreshold {
                    t: rng.range(-3.0, 3.0),
                    mode: (o % 2) as u32,
                })
                .collect();
            let got_bits = first_conv::run_bits(gpu, shape, &x, &w, &th).unwrap();
            assert_eq!(
                got_bits,
                threshold::reference_f32(&got, &th),
                "[{limits}] first_bits vs its own sums"
            );
            let want_bits = threshold::reference_f32(&want, &th);
            let wpp = words(shape.out_c);
            for (p, v) in want.chunks(shape.out_c).enumerate() {
                for (o, &s) in v.iter().enumerate() {
                    let bit = |b: &[u32]| (b[p * wpp + o / 32] >> (o % 32)) & 1;
                    if (s - th[o].t).abs() > 1e-4 * scale {
                        assert_eq!(
                            bit(&got_bits),
                            bit(&want_bits),
                            "[{limits}] first_bits {shape:?} pixel {p} ch {o}"
                        );
                    }
                }
            }
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
        shapes.push(float_conv::dense_shape(65, 300, 130));
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
            let want = float_conv::reference(shape, &x, &w);
            let got = float_conv::run(gpu, shape, &x, &w).unwrap();
            assert_close(
                &got,
                &want,
                4.0 * k as f32,
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
    assert_close(
        &float_conv::run(&gpu, &shape, &x, &w).unwrap(),
        &float_conv::reference(&shape, &x, &w),
        4.0 * 540.0,
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
    assert!(err.to_string().contains("storage binding"), "{err}");
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
            let want = xnor_conv::reference_dot(&shape, &x, &w);
            let want_bits = xnor_conv::reference_bits(&shape, &x, &w, &th);
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
            }
            if padding == Padding::Zero {
                let xf = random_f32(&mut rng, batch * side * (side + 1) * c);
                let wf = random_f32(&mut rng, o * k * k * c);
                let want = float_conv::reference(&shape, &xf, &wf);
                let (xg, wg) = (gpu.upload(&xf, "x").unwrap(), gpu.upload(&wf, "w").unwrap());
                for tile in &tiles {
                    let (d, out) = float_conv::encode_with(gpu, &shape, tile, &xg, &wg).unwrap();
                    gpu.run(&[d]).unwrap();
                    assert_close(
                        &gpu.read(&out).unwrap(),
                        &want,
                        4.0 * (k * k * c) as f32,
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
    let shape = float_conv::dense_shape(1, 64, 64);
    let x = gpu.upload(&[0u32; 2], "x").unwrap();
    let w = gpu.upload(&[0u32; 128], "w").unwrap();
    assert!(xnor_conv::encode_with(gpu, &shape, &bad, &x, &w, None).is_err());
}
