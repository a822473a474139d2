//! Integer and float thresholds (folded batch norm and sign) against the references.

use crate::support::*;

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
