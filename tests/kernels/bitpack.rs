//! Sign packing against the reference, with the special values (±0, NaN, ±∞) pinned.

use crate::support::*;

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
