//! `bnn export`: freeze a trained binary network into a packed extractor file.

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// A `bnn pretrain` output directory (config.json + checkpoint/).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The extractor file to write (.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Layer whose output is the feature (conv1…, fc1…) [default: the last hidden layer].
    #[arg(long)]
    cut: Option<String>,
    /// Random images the export is verified on against the burn model.
    #[arg(long, default_value_t = 8)]
    verify_images: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let r = bnn_transfer::export::export(
        &args.checkpoint,
        &args.out,
        args.cut.as_deref(),
        args.verify_images,
    )
    .with_context(|| format!("exporting {}", args.checkpoint.display()))?;
    let v = &r.verification;
    println!(
        "{}: {} layers of {} up to '{}', {} bytes (float model {} bytes, {:.1}× smaller)",
        r.out.display(),
        r.layers,
        r.arch,
        r.cut,
        r.file_bytes,
        r.float_bytes,
        r.float_bytes as f64 / r.file_bytes.max(1) as f64
    );
    println!(
        "verified on {} images: {} bits per layer checked, {} ties, {} mismatches; end to end {} ties, {} mismatches",
        v.images,
        v.per_layer.bits,
        v.per_layer.ties,
        v.per_layer.mismatches,
        v.end_to_end.ties,
        v.end_to_end.mismatches
    );
    let report = args.out.with_extension("export.json");
    std::fs::write(&report, serde_json::to_string_pretty(&r)?)
        .with_context(|| format!("writing {}", report.display()))?;
    Ok(())
}
