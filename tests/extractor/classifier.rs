//! The native `Classifier` (extractor + head): it labels exactly as its extractor and head do
//! one after the other, and refuses a head that was not trained on its extractor's features
//! (another backbone, a burn checkpoint's features, another cut or feature size), naming the head.

use bnn_transfer::assets::{FLOWERS_HEAD, load_backbone};
use bnn_transfer::rng::Rng;
use bnn_transfer::transfer::{BackboneKind, Fingerprint, Head};
use bnn_transfer::{Classifier, ExtractorDevice};

fn flowers_head() -> Head {
    Head::from_bytes(FLOWERS_HEAD, "flowers102-head.safetensors".as_ref()).unwrap()
}

fn embedded(head: Head) -> bnn_transfer::Result<Classifier> {
    Classifier::new_blocking(
        load_backbone(None).unwrap(),
        head,
        "flowers102-head",
        ExtractorDevice::Cpu,
    )
}

#[test]
fn a_classifier_labels_as_its_extractor_and_head_do() {
    let classifier = embedded(flowers_head()).unwrap();
    let ex = classifier.extractor();
    assert_eq!(ex.cut(), classifier.head().info.cut);
    assert_eq!(classifier.classes().len(), 102);
    let mut rng = Rng::new(7);
    let images: Vec<f32> = (0..3 * ex.image_len())
        .map(|_| rng.range(-1.5, 1.5))
        .collect();
    let features = ex.features_blocking(&images).unwrap();
    let top = classifier.top_k_blocking(&images, 5).unwrap();
    assert_eq!(top, classifier.head().top_k(&features, 5).unwrap());
    assert_eq!(top.len(), 3);
    let logits = pollster::block_on(classifier.logits(&images)).unwrap();
    assert_eq!(logits, classifier.head().logits(&features).unwrap());
    // Not one image's worth of values: a clear error, nothing run.
    let err = classifier.top_k_blocking(&images[1..], 5).unwrap_err();
    assert!(err.to_string().contains("whole number"), "{err}");
}

#[test]
fn a_head_from_another_extractor_is_refused_naming_it() {
    let mut other = load_backbone(None).unwrap();
    other.fingerprint = Fingerprint::default().str("another backbone");
    let err = Classifier::new_blocking(other, flowers_head(), "my-head", ExtractorDevice::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("my-head") && err.contains("fingerprint"),
        "{err}"
    );
}

#[test]
fn a_head_on_burn_checkpoint_features_is_refused() {
    let mut head = flowers_head();
    head.info.backbone.kind = BackboneKind::Checkpoint;
    let err = embedded(head).unwrap_err().to_string();
    assert!(
        err.contains("flowers102-head") && err.contains("burn checkpoint"),
        "{err}"
    );
}

#[test]
fn a_new_head_must_read_the_same_cut_and_feature_size() {
    let mut classifier = embedded(flowers_head()).unwrap();
    let mut head = flowers_head();
    head.info.cut = "conv5".into();
    let err = classifier
        .set_head(head, "conv5-head")
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv5-head") && err.contains("conv5"), "{err}");
    let mut head = flowers_head();
    head.info.dim += 1;
    let err = classifier
        .set_head(head, "wide-head")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wide-head") && err.contains("features"),
        "{err}"
    );
    // The same head again is accepted and labels as before.
    classifier.set_head(flowers_head(), "again").unwrap();
    assert_eq!(classifier.classes().len(), 102);
}
