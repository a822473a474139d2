//! Max pooling on integers, floats and bits, and pooling signs with AND/OR masks equal to
//! pooling the pre-activations.

use crate::support::*;

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
