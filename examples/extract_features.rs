//! Features of a few images from the embedded default backbone, on the best device.
//!
//! `cargo run --release --example extract_features -- a.jpg b.png …`
//! Prints one line per image: its first features (±1) and how many are +1.

use bnn_transfer::{ExtractorOptions, FeatureExtractor};

fn main() -> bnn_transfer::Result<()> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: extract_features IMAGE...");
        std::process::exit(2);
    }
    let ex = FeatureExtractor::open_blocking(&ExtractorOptions::default())?;
    println!(
        "{} features per image at '{}' on {}",
        ex.dim(),
        ex.cut(),
        ex.device()
    );
    let features = ex.features_blocking(&ex.load_images(&paths)?)?;
    for (path, row) in paths.iter().zip(features.chunks_exact(ex.dim())) {
        let plus = row.iter().filter(|&&v| v > 0.0).count();
        let head: Vec<String> = row.iter().take(8).map(|v| format!("{v:+}")).collect();
        println!("{path}: [{} …] {plus}/{} are +1", head.join(" "), ex.dim());
    }
    Ok(())
}
