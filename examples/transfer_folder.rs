//! The paper's workflow in a few lines: frozen binary features of a folder's `train` and `test`
//! splits, a float head trained on them, its test accuracy, and the head saved for `predict`.
//!
//! `cargo run --release --example transfer_folder -- DATA_DIR HEAD_OUT`
//! DATA_DIR holds `train/<class>/*.jpg` and `test/<class>/*.jpg` (or a .tar of them).

use std::path::PathBuf;

use bnn_transfer::data::ImageFolder;
use bnn_transfer::transfer::HeadInfo;
use bnn_transfer::transfer::fit::{FitConfig, train_head};
use bnn_transfer::{ExtractorOptions, FeatureExtractor};

fn main() -> bnn_transfer::Result<()> {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let [data, out] = args.as_slice() else {
        eprintln!("usage: transfer_folder DATA_DIR HEAD_OUT");
        std::process::exit(2);
    };
    let ex = FeatureExtractor::open_blocking(&ExtractorOptions::default())?;
    let train = ImageFolder::open(data, "train")?;
    let test = ImageFolder::open(data, "test")?;
    // A linear head, 100 epochs of AdamW (no validation split here, so no early stopping).
    let (head, fitted) = train_head(
        &ex.feature_set_blocking(&train)?,
        None,
        &FitConfig::default(),
        HeadInfo::for_set(&ex, &train),
    )?;
    let test_features = ex.feature_set_blocking(&test)?;
    let predicted = head.predict(&test_features.x)?;
    let hits = predicted
        .iter()
        .zip(&test_features.labels)
        .filter(|(p, l)| p == l)
        .count();
    println!(
        "{} classes, {} train / {} test images, {} epochs: test top-1 {:.1}%",
        head.info.classes.len(),
        train.len(),
        test.len(),
        fitted.history.len(),
        100.0 * hits as f64 / test.len() as f64
    );
    head.save(out)?;
    println!("head written to {}", out.display());
    Ok(())
}
