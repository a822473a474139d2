//! The native half of the browser's bit-exactness check: the packed `fc2` bits of the embedded
//! backbone for eight generated PNGs (`data::shapes::render_png`, one per class, seeds 0–7), as
//! every native path computes them — the scalar reference, the CPU binary path and the WGSL
//! kernels — must equal `tests/data/web-bits.txt`. `tests/web.rs` (wasm32, headless Chromium)
//! checks the browser's WebGPU and CPU paths against the same file, so the browser and native
//! agree bit for bit. `BLESS=1` rewrites the file (only when the backbone changes).

use crate::common;

use bnn_transfer::data::shapes::render_png;
use bnn_transfer::extractor::{Features, Output, reference};
use bnn_transfer::rng::Rng;
use bnn_transfer::{ExtractorDevice, ExtractorOptions, FeatureExtractor};

const EXPECTED: &str = include_str!("../data/web-bits.txt");

fn hex(words: &[u32]) -> String {
    words.iter().map(|w| format!("{w:08x}")).collect()
}

#[test]
fn native_paths_give_the_bits_the_browser_is_checked_against() {
    let cpu = FeatureExtractor::open_blocking(&ExtractorOptions {
        device: ExtractorDevice::Cpu,
        cut: Some("fc2".into()),
        ..ExtractorOptions::default()
    })
    .unwrap();
    let file = cpu.backbone().file.truncated("fc2").unwrap();
    let mut lines = Vec::new();
    for class in 0..8 {
        let png = render_png(class, 64, &mut Rng::new(class as u64)).unwrap();
        let x = bnn_transfer::data::load_image(&png, cpu.preprocess(), &mut Rng::new(0)).unwrap();
        let bits = cpu.bits_blocking(&x).unwrap();
        assert_eq!(
            Features::Bits(bits.clone()),
            reference::run(&file, &x, 1, Output::Bits).unwrap()
        );
        lines.push(hex(&bits));
    }
    if let Some(gpu) = common::gpu() {
        let ex = bnn_transfer::extractor::Extractor::new(gpu, file.clone()).unwrap();
        for (class, line) in lines.iter().enumerate() {
            let png = render_png(class, 64, &mut Rng::new(class as u64)).unwrap();
            let x =
                bnn_transfer::data::load_image(&png, cpu.preprocess(), &mut Rng::new(0)).unwrap();
            let last = file.layers.len() - 1;
            assert_eq!(&hex(&ex.run_taps(&x, &[last]).unwrap()[0]), line);
        }
    }
    bless_or_check("web-bits.txt", &(lines.join("\n") + "\n"), EXPECTED);
}

/// `text` must equal `expected`, the content of `tests/data/{file}`; with `BLESS=1` the file is
/// rewritten instead (only when the backbone or the head trainer changed on purpose).
fn bless_or_check(file: &str, text: &str, expected: &str) {
    if std::env::var("BLESS").is_ok_and(|v| v == "1") {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(file);
        std::fs::write(path, text).unwrap();
        return;
    }
    assert_eq!(
        text, expected,
        "tests/data/{file} is stale: rerun with BLESS=1 if the backbone or the head trainer \
         changed on purpose"
    );
}

/// The images of the page-training check: `PER_CLASS` generated PNGs of each of `CLASSES`
/// classes, seeded `100·class + i`, added in class order under the names `c0`, `c1`, ….
pub const CLASSES: usize = 4;
/// Images per class (8 trained on, 2 held out).
pub const PER_CLASS: usize = 10;

const EXPECTED_HEAD: &str = include_str!("../data/web-head.txt");

#[test]
fn a_head_trained_on_collected_images_is_the_one_the_browser_trains() {
    use bnn_transfer::transfer::Fingerprint;
    use bnn_transfer::transfer::examples::{Examples, PAGE_DATA, PAGE_LAYOUT};
    let shapes = bnn_transfer::transfer::Head::from_bytes(
        include_bytes!("../../assets/shapes-head.safetensors"),
        std::path::Path::new("shapes-head.safetensors"),
    )
    .unwrap();
    let cpu = FeatureExtractor::open_blocking(&ExtractorOptions {
        device: ExtractorDevice::Cpu,
        cut: Some(shapes.info.cut.clone()),
        ..ExtractorOptions::default()
    })
    .unwrap();
    let mut examples = Examples::default();
    for class in 0..CLASSES {
        for i in 0..PER_CLASS {
            let seed = (100 * class + i) as u64;
            let png = render_png(class, 64, &mut Rng::new(seed)).unwrap();
            let x =
                bnn_transfer::data::load_image(&png, cpu.preprocess(), &mut Rng::new(0)).unwrap();
            let n = examples
                .add(&format!("c{class}"), cpu.features_blocking(&x).unwrap())
                .unwrap();
            assert_eq!(n, i + 1);
        }
    }
    let info = bnn_transfer::transfer::HeadInfo::for_extractor(&cpu, PAGE_DATA, PAGE_LAYOUT);
    let threads = bnn_transfer::cpu::Threads::new(2).unwrap();
    let (head, trained) = examples.train(info, 0, &threads).unwrap();
    assert_eq!(
        (trained.train_images, trained.heldout_images),
        (CLASSES * 8, CLASSES * 2)
    );
    // The trainer fits its images. (Held-out accuracy is not asserted: on these generated
    // shapes the Tiny-ImageNet features of 8 images per class do not generalise; the page's
    // test, scripts/test-page.py, checks held-out accuracy on images of colours and textures.)
    let (train, _) = examples.split();
    let logits = head.logits(&train.x).unwrap();
    let fit = bnn_transfer::eval::evaluate(&logits, &train.labels, &train.classes, 1);
    assert_eq!(fit.top1, 1.0, "{trained:?}");
    let line = Fingerprint::default()
        .bytes(&head.to_bytes().unwrap())
        .hex()
        + "\n";
    bless_or_check("web-head.txt", &line, EXPECTED_HEAD);
}

/// The heads the page ships were trained on the embedded backbone (the page refuses them
/// otherwise): remake them when the backbone changes (assets/README.md).
#[test]
fn the_shipped_heads_belong_to_the_embedded_backbone() {
    let backbone = bnn_transfer::assets::load_backbone(None).unwrap();
    for (name, bytes) in [
        (
            "flowers102-head",
            &include_bytes!("../../assets/flowers102-head.safetensors")[..],
        ),
        (
            "shapes-head",
            &include_bytes!("../../assets/shapes-head.safetensors")[..],
        ),
    ] {
        let head =
            bnn_transfer::transfer::Head::from_bytes(bytes, std::path::Path::new(name)).unwrap();
        assert_eq!(
            head.info.backbone.fingerprint,
            backbone.fingerprint.hex(),
            "assets/{name}.safetensors"
        );
    }
}
