//! The native half of the browser's bit-exactness check: the packed `fc2` bits of the embedded
//! backbone for eight generated PNGs (`data::shapes::render_png`, one per class, seeds 0–7), as
//! every native path computes them — the scalar reference, the CPU binary path and the WGSL
//! kernels — must equal `tests/data/web-bits.txt`. `tests/web.rs` (wasm32, headless Chromium)
//! checks the browser's WebGPU and CPU paths against the same file, so the browser and native
//! agree bit for bit. `BLESS=1` rewrites the file (only when the backbone changes).

mod common;

use bnn_transfer::data::shapes::render_png;
use bnn_transfer::extractor::{Features, Output, reference};
use bnn_transfer::rng::Rng;
use bnn_transfer::{ExtractorDevice, ExtractorOptions, FeatureExtractor};

const EXPECTED: &str = include_str!("data/web-bits.txt");

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
    let text = lines.join("\n") + "\n";
    if std::env::var("BLESS").is_ok_and(|v| v == "1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/web-bits.txt");
        std::fs::write(path, &text).unwrap();
        return;
    }
    assert_eq!(
        text, EXPECTED,
        "tests/data/web-bits.txt is stale: rerun with BLESS=1 if the backbone changed on purpose"
    );
}
