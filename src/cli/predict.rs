//! `bnn predict`: label images with a transfer head on top of the frozen binary extractor.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bnn_transfer::data::is_image_name;
use bnn_transfer::feature_extractor::loader_batch;
use bnn_transfer::transfer::Head;
use bnn_transfer::{Classifier, ExtractorDevice};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Images, or folders of images (.jpg/.jpeg/.png, any size: resized and center-cropped as in
    /// training).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// The head (`head.safetensors` from `bnn transfer`).
    #[arg(long)]
    head: PathBuf,
    /// The extractor file [default: the one the head was trained on].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Labels per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the extractor on the CPU path instead of a wgpu adapter.
    #[arg(long)]
    cpu: bool,
    /// Images decoded and run through the extractor and the head together.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

#[derive(Serialize)]
struct Label {
    class: String,
    probability: f32,
}

#[derive(Serialize)]
struct Prediction {
    image: PathBuf,
    labels: Vec<Label>,
}

fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && is_image_name(&f.file_name().unwrap_or_default().to_string_lossy())
                })
                .collect();
            if found.is_empty() {
                bail!("{} holds no .jpg/.jpeg/.png images", p.display());
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let head = Head::load(&args.head)?;
    let head_name = args.head.display().to_string();
    head.info.check_extractor_kind(&head_name)?;
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from(&head.info.backbone.path));
    let backbone = bnn_transfer::assets::load_backbone(Some(&model))
        .with_context(|| format!("the extractor {} (give it with --model)", model.display()))?;
    // Any adapter (also a CPU one: `bnn predict` runs the kernels it is given), else the CPU path.
    let device = if args.cpu {
        ExtractorDevice::Cpu
    } else {
        ExtractorDevice::Adapter
    };
    let classifier = Classifier::new_blocking(backbone, head, &head_name, device)?;
    let ex = classifier.extractor();
    if let Some(note) = ex.device_note() {
        eprintln!("{note}");
    }
    let paths = collect(&args.images)?;
    // Images go through the extractor and the head in batches: one dispatch chain (or one
    // CPU pass) per batch instead of one per image.
    let (per_batch, _) = loader_batch(ex.image_len(), args.batch_size.max(1), ex.max_batch());
    let mut out = Vec::new();
    for chunk in paths.chunks(per_batch) {
        let images = ex.load_images(chunk)?;
        let top = classifier.top_k_blocking(&images, args.top.max(1))?;
        for (path, labels) in chunk.iter().zip(top) {
            out.push(Prediction {
                image: path.clone(),
                labels: labels
                    .into_iter()
                    .map(|(c, p)| Label {
                        class: classifier.classes()[c].clone(),
                        probability: p,
                    })
                    .collect(),
            });
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let name = |p: &Path| p.display().to_string();
    for p in &out {
        let labels: Vec<String> = p
            .labels
            .iter()
            .map(|l| format!("{} {:.1}%", l.class, 100.0 * l.probability))
            .collect();
        println!("{}: {}", name(&p.image), labels.join(", "));
    }
    Ok(())
}
