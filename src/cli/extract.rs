//! `bnn extract`: a feature cache for a whole data set, from an extractor file on a wgpu device or
//! on the library's CPU binary path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bnn_transfer::data::{ImageFolder, Layout, Loader, LoaderConfig, Preprocess};
use bnn_transfer::extractor::cache::CacheInfo;
use bnn_transfer::extractor::{FeatureCache, Features, Output};
use bnn_transfer::feature_extractor::loader_batch;
use bnn_transfer::progress::{Observer, Task};
use bnn_transfer::{ExtractorDevice, ExtractorOptions, FeatureExtractor};

use super::observe::{Notes, Terminal};

#[derive(clap::Args)]
pub struct Args {
    /// The extractor file (from `bnn export`) [default: the embedded backbone].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Data set: a directory or an uncompressed tar in one of the --layout layouts.
    #[arg(long)]
    data: PathBuf,
    /// How --data is laid out (docs/DATA.md); auto detects it.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    layout: Layout,
    /// Split to extract.
    #[arg(long, default_value = "train")]
    split: String,
    /// The feature cache to write (.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Packed bits (default), integer pre-activations, or ±1 floats.
    #[arg(long, value_enum, default_value = "bits")]
    output: Output,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Where the extractor runs: `auto` (the XNOR kernels on a real GPU, the CPU binary path on a
    /// CPU adapter or none), `adapter` (the kernels on any adapter, lavapipe included), `gpu`
    /// (the kernels, an error without an adapter) or `cpu`. Every device gives the same bits.
    #[arg(long, value_enum, default_value_t = ExtractorDevice::Auto)]
    device: ExtractorDevice,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // `--out` naming the model or the data set (a one-character slip) would overwrite it.
    let mut inputs = vec![("--data", args.data.as_path())];
    inputs.extend(args.model.as_deref().map(|m| ("--model", m)));
    bnn_transfer::atomic::check_output("--out", &args.out, &inputs)?;
    let ex = FeatureExtractor::open_blocking(&ExtractorOptions {
        model: args.model.clone(),
        cut: None,
        device: args.device,
    })?;
    let cut = ex.file().cut().clone();
    let observer = Terminal::new(Notes::Stderr);
    if let Some(note) = ex.device_note() {
        observer.note(note);
    }
    let run = |images: &[f32]| ex.run_blocking(images, args.output);
    let (loader, classes) = open_loader(&args, ex.preprocess().clone(), ex.max_batch(), &observer)?;
    let (features, labels, secs) = extract_all(loader, run, &observer)?;
    let n = labels.len();
    let info = CacheInfo {
        output: args.output,
        dim: cut.out_len(),
        per_image: features.len().checked_div(n).unwrap_or(0),
        shape: cut.out_shape,
        classes,
        model: ex.backbone().label.clone(),
        cut: cut.name.clone(),
        data: args.data.display().to_string(),
        split: args.split.clone(),
        key: String::new(),
    };
    let bytes = FeatureCache {
        info,
        features,
        labels,
    }
    .save(&args.out)?;
    println!(
        "{}: {n} images, {} features each at '{}', {bytes} bytes; {:.1} images/s on {}",
        args.out.display(),
        cut.out_len(),
        cut.name,
        n as f64 / secs,
        ex.device()
    );
    Ok(())
}

/// Runs `run` (images, count → features) over every batch of `loader` with a progress bar: the
/// features of all images in order, their labels, and the seconds it took.
fn extract_all(
    loader: Loader,
    run: impl Fn(&[f32]) -> bnn_transfer::Result<Features>,
    observer: &dyn Observer,
) -> anyhow::Result<(Features, Vec<u32>, f64)> {
    let task = Task::start(observer, "extract", loader.batches() as u64);
    let (mut bits, mut ints, mut floats, mut labels) = (vec![], vec![], vec![], vec![]);
    let start = Instant::now();
    for batch in loader {
        let batch = batch?;
        match run(&batch.images)? {
            Features::Bits(v) => bits.extend(v),
            Features::Int(v) => ints.extend(v),
            Features::Float(v) => floats.extend(v),
        }
        labels.extend(batch.labels.iter().map(|&l| l as u32));
        let rate = labels.len() as f64 / start.elapsed().as_secs_f64();
        task.set(task.done() + 1, &format!("{rate:.0} images/s"));
    }
    drop(task);
    let secs = start.elapsed().as_secs_f64();
    let features = if !ints.is_empty() {
        Features::Int(ints)
    } else if !floats.is_empty() {
        Features::Float(floats)
    } else {
        Features::Bits(bits)
    };
    Ok((features, labels, secs))
}

/// Opens `--split` of `--data` and its loader, in batches that fit `device_max` images and
/// memory; also returns the split's classes.
fn open_loader<'o>(
    args: &Args,
    pre: Preprocess,
    device_max: usize,
    observer: &'o dyn Observer,
) -> anyhow::Result<(Loader<'o>, Vec<String>)> {
    let set = Arc::new(
        ImageFolder::open_layout(&args.data, args.layout, &args.split)
            .with_context(|| format!("opening {} ({})", args.data.display(), args.split))?,
    );
    if let Some(w) = set.warning() {
        observer.warn(w);
    }
    let classes = set.classes.clone();
    // Large inputs shrink the batch (the images a loader holds, the CPU path's buffers) instead
    // of exhausting memory.
    let (batch_size, prefetch) = loader_batch(pre.image_len(), args.batch_size.max(1), device_max);
    if batch_size < args.batch_size {
        observer.note(&format!(
            "batches of {batch_size} images (not {}): {}×{} inputs take that much memory",
            args.batch_size, pre.size, pre.size
        ));
    }
    let cfg = LoaderConfig {
        batch_size,
        prefetch,
        shuffle_seed: None,
        ..LoaderConfig::default()
    };
    Ok((Loader::new(set, pre, cfg).report_to(observer), classes))
}
