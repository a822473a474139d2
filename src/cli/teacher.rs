//! `bnn teacher`: load the EfficientNet-Lite0 teacher (sha256 checked) and score it on a split whose
//! classes are ImageNet WordNet ids (Tiny-ImageNet), as its README measured it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use bnn_transfer::data::{ImageFolder, Layout};
use bnn_transfer::progress::Observer;
use bnn_transfer::teacher::{self, efficientnet};
use burn::tensor::Device;

use super::observe::{Notes, Terminal};

#[derive(clap::Args)]
pub struct Args {
    /// Data set whose class folders are ImageNet WordNet ids, e.g.
    /// ../shared/data/tinyimagenet-64.tar.
    #[arg(long)]
    data: PathBuf,
    /// Split to score.
    #[arg(long, default_value = "val")]
    split: String,
    /// How --data is laid out [default: auto, detected].
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    layout: Layout,
    /// The weights (`efficientnet-lite0-57934424.pth`, sha256 checked) [default: $BNN_TEACHER,
    /// else ../shared/teachers/efficientnet-lite0/, else teacher/ from scripts/fetch-teacher.sh].
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Centre crop taken from each image before upscaling (the data set's side).
    #[arg(long, default_value_t = 64)]
    input: usize,
    /// Side the teacher runs at (images upscaled bilinearly).
    #[arg(long, default_value_t = efficientnet::RESOLUTION)]
    resolution: usize,
    /// Score only the first N images of the split.
    #[arg(long)]
    limit: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let weights = args.weights.unwrap_or_else(efficientnet::default_weights);
    let device = Device::flex();
    let model = efficientnet::load(&weights, &device)?;
    let wnids = efficientnet::wnids_beside(&weights)?.with_context(|| {
        format!(
            "{} is missing beside the weights: it maps ImageNet outputs to WordNet ids",
            weights.with_file_name(efficientnet::WNIDS_FILE).display()
        )
    })?;
    let set = ImageFolder::open_layout(&args.data, args.layout.resolve(&args.data)?, &args.split)
        .with_context(|| {
        format!(
            "opening --data {} split {}",
            args.data.display(),
            args.split
        )
    })?;
    let Some(map) = efficientnet::class_map(&set.classes, &wnids) else {
        bail!(
            "the classes of --data {} are not ImageNet-1k WordNet ids, so the teacher's logits \
             cannot be scored on them (its features can still be distilled or used as a baseline)",
            args.data.display()
        );
    };
    let observer = Terminal::new(Notes::Stderr);
    if let Some(w) = set.warning() {
        observer.warn(w);
    }
    let s = teacher::score(
        &model,
        Arc::new(set),
        &map,
        args.input,
        args.resolution,
        args.limit,
        &device,
        &observer,
    )?;
    println!(
        "EfficientNet-Lite0 on {} ({}, {} images, {} px): top-1 {:.2}%  top-5 {:.2}%  \
         {:.2} ms/image (flex, batch 64, decoding included)",
        args.data.display(),
        args.split,
        s.images,
        s.resolution,
        100.0 * s.top1,
        100.0 * s.top5,
        s.ms_per_image
    );
    Ok(())
}
