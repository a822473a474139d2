//! The real-valued first layer against `ops::first_conv` within a tight tolerance, refused past
//! the loop budget, and bit for bit the float conv with sign weights.

use crate::support::*;

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
