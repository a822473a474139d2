//! The browser half of the bit-exactness check (wasm32 only, run in headless Chromium by
//! `wasm-bindgen-test-runner`; `scripts/test-web.sh`): the page's [`Classifier`] on the
//! browser's WebGPU and on the CPU binary path compiled to wasm must give, for the eight
//! generated PNGs, exactly the bits the native paths give (`tests/data/web-bits.txt`, checked
//! natively by `tests/extractor/web_fixture.rs`), and label images with the shipped Flowers-102 head.
#![cfg(target_arch = "wasm32")]

use bnn_transfer::data::shapes::render_png;
use bnn_transfer::rng::Rng;
use bnn_transfer::web::Classifier;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const EXPECTED: &str = include_str!("data/web-bits.txt");

fn hex(words: &[u32]) -> String {
    words.iter().map(|w| format!("{w:08x}")).collect()
}

async fn check(device: &str) {
    let c = Classifier::create(vec![], String::new(), vec![], String::new(), device.into())
        .await
        .map_err(JsValue::from)
        .unwrap();
    console_log!("{device}: {}", c.device());
    // `gpu` really is the browser's WebGPU adapter, not a silent fall-back to the CPU path.
    assert_eq!(
        c.device().starts_with("the CPU binary path"),
        device == "cpu"
    );
    let lines: Vec<&str> = EXPECTED.lines().collect();
    assert_eq!(
        lines.len(),
        8,
        "tests/data/web-bits.txt has one line per class"
    );
    for (class, want) in lines.iter().enumerate() {
        let png = render_png(class, 64, &mut Rng::new(class as u64)).unwrap();
        let bits = c.feature_bits(png).await.map_err(JsValue::from).unwrap();
        assert_eq!(&hex(&bits), want, "{device}: image of class {class}");
    }
    let png = render_png(0, 64, &mut Rng::new(0)).unwrap();
    let json = c.classify(png, 3).await.map_err(JsValue::from).unwrap();
    console_log!("{device}: {json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["labels"].as_array().unwrap().len(), 3);
    assert!(v["ms"].as_f64().unwrap() >= 0.0);
}

#[wasm_bindgen_test]
async fn webgpu_gives_the_native_bits() {
    check("gpu").await;
}

#[wasm_bindgen_test]
async fn the_cpu_path_in_wasm_gives_the_native_bits() {
    check("cpu").await;
}

/// Time per image (decode + preprocess + extractor + head, `performance.now()`), the median of
/// 15 after 3 warm-up images; printed for docs/WEB.md (`scripts/test-web.sh -- --nocapture`).
#[wasm_bindgen_test]
async fn time_per_image_is_printed() {
    for device in ["gpu", "cpu"] {
        let c = Classifier::create(vec![], String::new(), vec![], String::new(), device.into())
            .await
            .map_err(JsValue::from)
            .unwrap();
        let mut ms = Vec::new();
        for i in 0..18u64 {
            let png = render_png(i as usize % 8, 64, &mut Rng::new(100 + i)).unwrap();
            let json = c.classify(png, 3).await.map_err(JsValue::from).unwrap();
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            if i >= 3 {
                ms.push(v["ms"].as_f64().unwrap());
            }
        }
        ms.sort_by(f64::total_cmp);
        console_log!(
            "time per image on {}: median {:.2} ms (min {:.2}, max {:.2}, 15 images)",
            c.device(),
            ms[ms.len() / 2],
            ms[0],
            ms[ms.len() - 1]
        );
    }
}

/// A user's own files, as the page hands them over (bytes of an extractor and a head).
#[wasm_bindgen_test]
async fn an_extractor_and_a_head_given_as_bytes_are_used() {
    let c = Classifier::create(
        bnn_transfer::assets::DEFAULT_MODEL.to_vec(),
        "mine.safetensors".into(),
        bnn_transfer::assets::SHAPES_HEAD.to_vec(),
        "head.safetensors".into(),
        "gpu".into(),
    )
    .await
    .map_err(JsValue::from)
    .unwrap();
    let png = render_png(5, 64, &mut Rng::new(5)).unwrap();
    let bits = c.feature_bits(png).await.map_err(JsValue::from).unwrap();
    assert_eq!(hex(&bits), EXPECTED.lines().nth(5).unwrap());
    // Not a model: the error names the user's file, not a made-up one.
    let err = Classifier::create(
        b"not a model".to_vec(),
        "holiday.jpg".into(),
        vec![],
        String::new(),
        "gpu".into(),
    )
    .await
    .expect_err("not a model");
    let text = message(err);
    assert!(text.contains("holiday.jpg"), "{text}");
}

fn message(e: wasm_bindgen::JsError) -> String {
    js_sys::Error::from(JsValue::from(e)).message().into()
}

#[wasm_bindgen_test]
async fn a_head_for_another_extractor_is_refused() {
    let mut head = bnn_transfer::transfer::head::Head::from_bytes(
        bnn_transfer::assets::SHAPES_HEAD,
        std::path::Path::new("head"),
    )
    .unwrap();
    head.info.backbone.fingerprint = "0000000000000000".into();
    let dir_free = head_bytes(&head);
    let err = Classifier::create(
        vec![],
        String::new(),
        dir_free,
        "their-head.safetensors".into(),
        "cpu".into(),
    )
    .await
    .expect_err("another extractor");
    // Names the head, both extractors and their fingerprints (not "trained on X, not on X").
    let text = message(err);
    assert!(
        text.contains("their-head.safetensors") && text.contains("0000000000000000"),
        "{text}"
    );
}

fn head_bytes(head: &bnn_transfer::transfer::head::Head) -> Vec<u8> {
    head.to_bytes().unwrap()
}

const EXPECTED_HEAD: &str = include_str!("data/web-head.txt");

/// The page's trainer on the images `tests/extractor/web_fixture.rs` trains on natively (4 classes × 10
/// generated PNGs, seeds `100·class + i`): the same head file, bit for bit, on both devices.
#[wasm_bindgen_test]
async fn a_head_trained_in_the_browser_is_the_native_one() {
    use bnn_transfer::transfer::Fingerprint;
    for device in ["gpu", "cpu"] {
        let mut c = Classifier::create(vec![], String::new(), vec![], String::new(), device.into())
            .await
            .map_err(JsValue::from)
            .unwrap();
        for class in 0..4usize {
            for i in 0..10usize {
                let png = render_png(class, 64, &mut Rng::new((100 * class + i) as u64)).unwrap();
                let n = c
                    .add_example(format!("c{class}"), png)
                    .await
                    .map_err(JsValue::from)
                    .unwrap();
                assert_eq!(n, i + 1);
            }
        }
        let json = c.train(0).map_err(JsValue::from).unwrap();
        console_log!("{device}: trained {json}");
        let head = c.head_file().map_err(JsValue::from).unwrap();
        let line = Fingerprint::default().bytes(&head).hex() + "\n";
        assert_eq!(line, EXPECTED_HEAD, "{device}");
        // The new head labels images from now on: its class names.
        let png = render_png(2, 64, &mut Rng::new(7)).unwrap();
        let labelled = c.classify(png, 1).await.map_err(JsValue::from).unwrap();
        assert!(labelled.contains("\"c"), "{labelled}");
    }
}

/// Training needs a named class and two classes.
#[wasm_bindgen_test]
async fn an_empty_class_name_and_too_few_classes_are_errors() {
    let mut c = Classifier::create(vec![], String::new(), vec![], String::new(), "cpu".into())
        .await
        .map_err(JsValue::from)
        .unwrap();
    let png = render_png(0, 64, &mut Rng::new(0)).unwrap();
    assert!(c.add_example("  ".into(), png.clone()).await.is_err());
    c.add_example("only".into(), png)
        .await
        .map_err(JsValue::from)
        .unwrap();
    assert!(c.train(0).is_err());
}
