//! The CPU binary path (`bnn_transfer::cpu`) against the ops' scalar references
//! (`bnn_transfer::ops`), bit-exact: a sweep over channels straddling word boundaries (odd and even
//! word counts, so the u64 regroup sees a zero-extended last half), kernels, strides, both padding
//! modes and odd sizes, a property test over random shapes (out_c past the 16-channel blocks and
//! the 4-pixel groups), the fused threshold, the dense layer, and thread counts — for every
//! instruction set this CPU has (portable, popcnt, AVX2, AVX-512: `Isa::available`).

use bnn_transfer::bits::pack_rows;
use bnn_transfer::cpu::{CpuConv, CpuDense, Isa, Threads};
use bnn_transfer::ops::{self, ConvShape, DenseShape, Padding, Threshold};
use bnn_transfer::rng::Rng;
use proptest::prelude::*;

fn words_for(rng: &mut Rng, rows: usize, channels: usize) -> Vec<u32> {
    let v: Vec<f32> = (0..rows * channels).map(|_| rng.range(-1.0, 1.0)).collect();
    pack_rows(&v, channels)
}

fn operands(s: &ConvShape, seed: u64) -> (Vec<u32>, Vec<u32>, Vec<Threshold>) {
    let mut rng = Rng::new(seed);
    let x = words_for(&mut rng, s.batch * s.in_h * s.in_w, s.in_c);
    let w = words_for(&mut rng, s.out_c * s.kernel_h * s.kernel_w, s.in_c);
    let k = (s.kernel_h * s.kernel_w * s.in_c) as i32;
    let th = (0..s.out_c)
        .map(|o| {
            let t = (rng.below(2 * k as usize + 1) as i32) - k;
            if o % 3 == 0 {
                Threshold::at_most(t)
            } else {
                Threshold::at_least(t)
            }
        })
        .collect();
    (x, w, th)
}

fn check(s: &ConvShape, seed: u64, threads: usize) {
    let (x, w, th) = operands(s, seed);
    let threads = Threads::new(threads).unwrap();
    let (dots, bits) = (
        ops::conv::reference_dot(s, &x, &w),
        ops::conv::reference_bits(s, &x, &w, &th),
    );
    for isa in Isa::available() {
        let conv = CpuConv::with_isa(s, &w, isa).unwrap();
        assert_eq!(conv.dot(&x, &threads).unwrap(), dots, "dots {isa} {s:?}");
        assert_eq!(
            conv.bits(&x, &th, &threads).unwrap(),
            bits,
            "bits {isa} {s:?}"
        );
    }
}

#[test]
fn this_machine_runs_its_best_instruction_set() {
    // The CI machine has AVX-512 VPOPCNTDQ; everywhere, the best level is one it can run.
    let best = Isa::best();
    assert!(Isa::available().contains(&best));
    if std::env::var("REQUIRE_CPU_ISA").is_ok_and(|v| !v.is_empty()) {
        let want = Isa::parse(&std::env::var("REQUIRE_CPU_ISA").unwrap()).unwrap();
        assert_eq!(best, want);
    }
}

#[test]
fn conv_sweep_matches_the_reference() {
    let mut i = 0usize;
    for c in [1, 3, 31, 32, 33, 63, 64, 65, 96, 130] {
        for k in [1, 3, 5] {
            for stride in [1, 2] {
                let padding = if i.is_multiple_of(2) {
                    Padding::Zero
                } else {
                    Padding::One
                };
                let pad = [0, k / 2, k - 1][i % 3];
                let side = k + [0, 2, 5][i % 3];
                let s = ConvShape {
                    batch: 1 + i % 2,
                    in_h: side,
                    in_w: side + 1 + i % 2,
                    in_c: c,
                    out_c: [1, 7, 32, 33][i % 4],
                    kernel_h: k,
                    kernel_w: k,
                    stride,
                    pad,
                    padding,
                };
                check(&s, i as u64, 1 + i % 3);
                i += 1;
            }
        }
    }
}

#[test]
fn rectangular_kernel_and_many_threads() {
    let s = ConvShape {
        batch: 3,
        in_h: 9,
        in_w: 5,
        in_c: 70,
        out_c: 20,
        kernel_h: 3,
        kernel_w: 1,
        stride: 2,
        pad: 1,
        padding: Padding::Zero,
    };
    // More threads than output rows, and a count that does not divide them.
    for threads in [1, 4, 7, 64] {
        check(&s, 99, threads);
    }
}

#[test]
fn dense_matches_the_reference() {
    for (b, fin, fout) in [
        (1, 1, 1),
        (3, 31, 5),
        (2, 64, 33),
        (5, 97, 40),
        (4, 1152, 64),
    ] {
        let shape = DenseShape {
            batch: b,
            in_features: fin,
            out_features: fout,
        };
        let mut rng = Rng::new(fin as u64);
        let x = words_for(&mut rng, b, fin);
        let w = words_for(&mut rng, fout, fin);
        let th: Vec<Threshold> = (0..fout)
            .map(|_| Threshold::at_least(rng.below(fin + 1) as i32 - (fin / 2) as i32))
            .collect();
        let threads = Threads::new(2).unwrap();
        for isa in Isa::available() {
            let d = CpuDense::with_isa(&shape, &w, isa).unwrap();
            assert_eq!(
                d.dot(&x, &threads).unwrap(),
                ops::dense::reference_dot(&shape, &x, &w),
                "{isa} {shape:?}"
            );
            assert_eq!(
                d.bits(&x, &th, &threads).unwrap(),
                ops::dense::reference_bits(&shape, &x, &w, &th),
                "{isa} {shape:?}"
            );
        }
    }
}

#[test]
fn wrong_sizes_are_errors() {
    let s = ConvShape {
        batch: 1,
        in_h: 4,
        in_w: 4,
        in_c: 33,
        out_c: 2,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        pad: 1,
        padding: Padding::Zero,
    };
    let (x, w, th) = operands(&s, 1);
    assert!(CpuConv::new(&s, &w[1..]).is_err());
    let conv = CpuConv::new(&s, &w).unwrap();
    let one = Threads::new(1).unwrap();
    assert!(conv.dot(&x[1..], &one).is_err());
    assert!(conv.bits(&x, &th[1..], &one).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_shapes_match_the_reference(
        c in 1usize..100,
        out_c in 1usize..70,
        k in 1usize..6,
        extra_h in 0usize..6,
        extra_w in 0usize..6,
        stride in 1usize..4,
        pad_raw in 0usize..3,
        one in any::<bool>(),
        batch in 1usize..3,
        threads in 1usize..4,
        seed in any::<u64>(),
    ) {
        let s = ConvShape {
            batch,
            in_h: k + extra_h,
            in_w: k + extra_w,
            in_c: c,
            out_c,
            kernel_h: k,
            kernel_w: k,
            stride,
            pad: pad_raw.min(k - 1),
            padding: if one { Padding::One } else { Padding::Zero },
        };
        check(&s, seed, threads);
    }
}
