//! The float baselines (conv, dense, f16) against their references in their summation order,
//! with weights split over several bindings.

use crate::support::*;

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
