//! Labels for images from a head trained on a binary extractor's features (e.g. by the
//! `transfer_folder` example or `bnn transfer`).
//!
//! `cargo run --release --example predict -- HEAD IMAGE...`

use std::path::PathBuf;

use bnn_transfer::{Classifier, ExtractorDevice};

fn main() -> bnn_transfer::Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let Some((head, images)) = args.split_first().filter(|(_, i)| !i.is_empty()) else {
        eprintln!("usage: predict HEAD IMAGE...");
        std::process::exit(2);
    };
    // The head and the backbone it records (`embedded:…` is the default one), cut where the
    // head was trained; an error if the head was trained on another extractor.
    let classifier = Classifier::open_blocking(head, None, ExtractorDevice::Auto)?;
    let pixels = classifier.extractor().load_images(images)?;
    for (path, top) in images.iter().zip(classifier.top_k_blocking(&pixels, 3)?) {
        let labels: Vec<String> = top
            .iter()
            .map(|(c, p)| format!("{} {:.1}%", classifier.classes()[*c], 100.0 * p))
            .collect();
        println!("{}: {}", path.display(), labels.join(", "));
    }
    Ok(())
}
