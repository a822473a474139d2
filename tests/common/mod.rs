//! Shared test helpers: the GPU test context (skips with a printed reason when no adapter exists,
//! unless REQUIRE_GPU=1 demands one) and deterministic random data.
#![allow(dead_code)]

use std::sync::OnceLock;

use bnn_transfer::gpu::{Gpu, LimitsProfile};
use bnn_transfer::rng::Rng;

/// Prints why a GPU test is skipped, or fails it when REQUIRE_GPU=1 (as CI sets).
pub fn skip(e: &dyn std::fmt::Display) {
    if std::env::var("REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("REQUIRE_GPU=1 but no GPU device could be opened: {e}");
    }
    eprintln!("SKIPPED: no GPU adapter ({e})");
}

fn open(profile: LimitsProfile) -> Option<Gpu> {
    Gpu::with_limits(profile).map_err(|e| skip(&e)).ok()
}

/// The default device (all adapter limits), shared by the tests of one binary.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| open(LimitsProfile::Adapter)).as_ref()
}

/// A device restricted to wgpu's downlevel (phone-class) limits.
pub fn gpu_downlevel() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| open(LimitsProfile::Downlevel)).as_ref()
}

/// Both devices, for sweeps that must pass under either set of limits.
pub fn all_gpus() -> Vec<(&'static str, &'static Gpu)> {
    [
        ("adapter-limits", gpu()),
        ("downlevel-limits", gpu_downlevel()),
    ]
    .into_iter()
    .filter_map(|(name, g)| g.map(|g| (name, g)))
    .collect()
}

pub fn random_words(rng: &mut Rng, rows: usize, channels: usize) -> Vec<u32> {
    let values: Vec<f32> = (0..rows * channels).map(|_| rng.range(-1.0, 1.0)).collect();
    bnn_transfer::bits::pack_rows(&values, channels)
}

pub fn random_f32(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.range(-2.0, 2.0)).collect()
}

/// `../shared/data/flowers102-tiny.tar`, or None with a printed reason when it is absent.
pub fn flowers_tiny() -> Option<std::path::PathBuf> {
    let p =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/flowers102-tiny.tar");
    p.is_file().then_some(p).or_else(|| {
        eprintln!("skipping: flowers102-tiny.tar is missing");
        None
    })
}

/// Runs the `bnn` binary of this build with `args`, echoing its output (shown for failing tests).
pub fn bnn(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bnn"))
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "bnn {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A path as the `&str` a command line takes.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}
