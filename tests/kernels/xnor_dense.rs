//! The XNOR dense layer against `ops::dense`, bit-exact, at every split of K, and refused (not
//! wrong) past the driver's loop budget.

use crate::support::*;

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
