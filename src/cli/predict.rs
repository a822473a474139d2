//! `bnn predict`: label images with a transfer head on top of the frozen binary extractor.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bnn_transfer::data::{is_image_name, load_image};

use bnn_transfer::rng::Rng;
use bnn_transfer::transfer::features::{self, ExtractorDevice, Runner, signs};
use bnn_transfer::transfer::{BackboneKind, Head, top_k};
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
    let info = &head.info;
    if info.backbone.kind != BackboneKind::Extractor {
        bail!(
            "{} was trained on features of a burn checkpoint ({}); `bnn predict` runs the binary \
             extractor: use a head trained on an extractor file",
            args.head.display(),
            info.backbone.path
        );
    }
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from(&info.backbone.path));
    let backbone = bnn_transfer::assets::load_backbone(Some(&model))
        .with_context(|| format!("the extractor {} (give it with --model)", model.display()))?;
    info.check_backbone(&backbone, &args.head.display().to_string())?;
    let file = backbone.file.truncated(&info.cut)?;
    let channels = file.cut().out_channels();
    // Any adapter (also a CPU one: `bnn predict` runs the kernels it is given), else the CPU path.
    let device = if args.cpu {
        ExtractorDevice::Cpu
    } else {
        ExtractorDevice::Adapter
    };
    let (runner, note) = Runner::open(file.clone(), device)?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let last = file.layers.len() - 1;
    let pre = backbone.preprocess()?;
    let mut rng = Rng::new(0);
    let mut out = Vec::new();
    let classes = info.classes.len();
    let paths = collect(&args.images)?;
    // Images go through the extractor and the head in batches: one dispatch chain (or one
    // CPU pass) per batch instead of one per image.
    let (per_batch, _) =
        features::loader_batch(pre.image_len(), args.batch_size.max(1), runner.max_batch());
    for chunk in paths.chunks(per_batch) {
        let mut images = vec![0f32; chunk.len() * pre.image_len()];
        for (path, out) in chunk.iter().zip(images.chunks_exact_mut(pre.image_len())) {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let image = load_image(&bytes, &pre, &mut rng)
                .with_context(|| format!("decoding {}", path.display()))?;
            out.copy_from_slice(&image);
        }
        let bits = runner.taps(&images, chunk.len(), &[last])?.remove(0);
        let logits = head.logits(&signs(&bits, channels))?;
        for (path, row) in chunk.iter().zip(logits.chunks_exact(classes)) {
            out.push(Prediction {
                image: path.clone(),
                labels: top_k(row, args.top.max(1))
                    .into_iter()
                    .map(|(c, p)| Label {
                        class: info.classes[c].clone(),
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
