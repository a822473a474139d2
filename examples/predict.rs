//! Labels for images from a head trained on a binary extractor's features (e.g. by the
//! `transfer_folder` example or `bnn transfer`).
//!
//! `cargo run --release --example predict -- HEAD IMAGE...`

use std::path::PathBuf;

use bnn_transfer::transfer::head::Head;
use bnn_transfer::{ExtractorOptions, FeatureExtractor};

fn main() -> bnn_transfer::Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let Some((head, images)) = args.split_first().filter(|(_, i)| !i.is_empty()) else {
        eprintln!("usage: predict HEAD IMAGE...");
        std::process::exit(2);
    };
    let head = Head::load(head)?;
    // The backbone the head was trained on (`embedded:…` is the default one), cut where it was.
    let ex = FeatureExtractor::open_blocking(&ExtractorOptions {
        model: Some(PathBuf::from(&head.info.backbone.path)),
        cut: Some(head.info.cut.clone()),
        ..ExtractorOptions::default()
    })?;
    if ex.backbone().fingerprint.hex() != head.info.backbone.fingerprint {
        eprintln!("{} was trained on another extractor", args[0].display());
        std::process::exit(1);
    }
    let features = ex.features_blocking(&ex.load_images(images)?)?;
    for (path, top) in images.iter().zip(head.top_k(&features, 3)?) {
        let labels: Vec<String> = top
            .iter()
            .map(|(c, p)| format!("{} {:.1}%", head.info.classes[*c], 100.0 * p))
            .collect();
        println!("{}: {}", path.display(), labels.join(", "));
    }
    Ok(())
}
