//! The WGSL extractor records its chain once per batch size and output kind and replays it: runs
//! interleaving batch sizes, outputs and taps (more combinations than the pool keeps, so plans
//! are evicted and recorded again) each equal the scalar reference, and threads sharing one
//! extractor get their own images' features.

use crate::common;

use bnn_transfer::arch::Arch;
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::extractor::{Extractor, Output, reference};
use bnn_transfer::rng::Rng;

fn images(arch: &Arch, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n * arch.input * arch.input * arch.in_channels)
        .map(|_| rng.range(-2.0, 2.0))
        .collect()
}

#[test]
fn replayed_chains_match_the_reference_in_any_order() {
    let Some(gpu) = common::gpu() else { return };
    let arch = Arch::mini(10);
    let file = random_file(&arch, 7).unwrap();
    let ex = Extractor::new(gpu, file.clone()).unwrap();
    let layers = file.layers.len();
    let plan = [
        (3, Output::Bits),
        (1, Output::Bits),
        (3, Output::Preact),
        (2, Output::Signs),
        (5, Output::Bits),
        (4, Output::Preact),
        (3, Output::Bits),
        (1, Output::Preact),
        (3, Output::Bits),
    ];
    for (k, &(n, output)) in plan.iter().enumerate() {
        let x = images(&arch, n, k as u64);
        let want = reference::run(&file, &x, n, output).unwrap();
        assert_eq!(
            ex.run(&x, output).unwrap(),
            want,
            "run {k}: batch {n} {output:?}"
        );
        // Taps of every layer through the same recorded chain.
        let taps: Vec<usize> = (0..layers).rev().collect();
        let got = ex.run_taps(&x, &taps).unwrap();
        let want = reference::run_taps(&file, &x, n, &taps).unwrap();
        assert_eq!(got, want, "run {k}: taps, batch {n}");
    }
}

#[test]
fn threads_sharing_one_extractor_get_their_own_features() {
    let Some(gpu) = common::gpu() else { return };
    let arch = Arch::mini(10);
    let file = random_file(&arch, 8).unwrap();
    let ex = Extractor::new(gpu, file.clone()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (ex, file, arch) = (&ex, &file, &arch);
            s.spawn(move || {
                for r in 0..3u64 {
                    let n = 1 + (t as usize + r as usize) % 3;
                    let x = images(arch, n, 100 * t + r);
                    let want = reference::run(file, &x, n, Output::Bits).unwrap();
                    assert_eq!(
                        ex.run(&x, Output::Bits).unwrap(),
                        want,
                        "thread {t} run {r}"
                    );
                }
            });
        }
    });
}
