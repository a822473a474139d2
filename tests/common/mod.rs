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

/// Images per split of [`fixture_set`]: 8 classes × 6.
pub const FIXTURE_PER_SPLIT: usize = 48;
/// Classes of [`fixture_set`].
pub const FIXTURE_CLASSES: usize = 8;

/// A generated image set that every test can rely on, anywhere: the demo's shapes (8 classes,
/// 6 images of each per split, 40 px PNG, so a 32 px network resizes them) in the ImageFolder
/// layout with `train`, `val` and `test` splits, packed into an uncompressed tar. Made once per
/// test binary.
pub fn fixture_set() -> std::path::PathBuf {
    static SET: OnceLock<std::path::PathBuf> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bnn-fixture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let tree = dir.join("shapes");
        let per_class = FIXTURE_PER_SPLIT / FIXTURE_CLASSES;
        let splits = [
            ("train", per_class),
            ("val", per_class),
            ("test", per_class),
        ];
        bnn_transfer::data::shapes::write(&tree, &splits, 40, 11).unwrap();
        let tar_path = dir.join("shapes.tar");
        let mut tar = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        tar.append_dir_all(".", &tree).unwrap();
        tar.finish().unwrap();
        tar_path
    })
    .clone()
}

/// A real data set from `../shared/data` (`name`, e.g. `flowers102-tiny.tar`), for the few tests
/// that are about the real files. Under `REQUIRE_DATA=1` (set by `.ci/run`, which also checks the
/// files are there) a missing file fails the test; elsewhere the test says why it did not run.
pub fn real_data(name: &str) -> Option<std::path::PathBuf> {
    shared_file(&format!("data/{name}"))
}

/// The EfficientNet-Lite0 teacher's weights in `../shared/teachers/efficientnet-lite0/`, with the
/// same rule as [`real_data`].
pub fn real_teacher() -> Option<std::path::PathBuf> {
    shared_file("teachers/efficientnet-lite0/efficientnet-lite0-57934424.pth")
}

/// `../shared/<rel>` if it is there; else a failure under `REQUIRE_DATA=1`, or a printed reason.
fn shared_file(rel: &str) -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if p.is_file() {
        return Some(p);
    }
    if std::env::var("REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("REQUIRE_DATA=1 but {} is not there", p.display());
    }
    eprintln!(
        "NOT RUN: {} is not there (REQUIRE_DATA=1 makes this fail)",
        p.display()
    );
    None
}

// The integration tests run the `bnn` binary, which needs the `cli` feature.
#[cfg(not(feature = "cli"))]
compile_error!(
    "the integration tests run the bnn binary: with --no-default-features, add --features cli"
);

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

/// The validation split of the image set at `data`, preprocessed for a `size`-pixel network
/// (evaluation crop, in order): NHWC f32 images and their count.
pub fn val_images(data: &std::path::Path, size: usize) -> (Vec<f32>, usize) {
    use bnn_transfer::data::{ImageFolder, Loader, LoaderConfig, Preprocess};
    let set = std::sync::Arc::new(ImageFolder::open(data, "val").unwrap());
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle_seed: None,
        ..LoaderConfig::default()
    };
    let mut images = Vec::new();
    let mut n = 0;
    for b in Loader::new(set, Preprocess::eval(size), cfg) {
        let b = b.unwrap();
        n += b.len();
        images.extend(b.images);
    }
    (images, n)
}
