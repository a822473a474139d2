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
    /// Images the export is verified on: the burn model against the scalar reference at every
    /// layer and end to end, and the CPU binary path and the WGSL kernels against the reference.
    #[arg(long, default_value_t = 16)]
    verify_images: usize,
    /// Image set to verify on [default: the run's own data, its validation split].
    #[arg(long)]
    verify_data: Option<PathBuf>,
    /// Skip the WGSL kernels in the verification (they are checked when an adapter exists).
    #[arg(long)]
    no_gpu_check: bool,
    /// The float twin's run (`bnn pretrain --precision float`): its val top-1 and command are
    /// recorded in the file (`source.float_twin`) beside the source model's own.
    #[arg(long, value_name = "DIR")]
    float_twin: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = bnn_transfer::export::ExportOptions {
        cut: args.cut,
        verify_images: args.verify_images,
        verify_data: args.verify_data,
        use_gpu: !args.no_gpu_check,
        float_twin: args.float_twin,
    };
    let r = bnn_transfer::export::export(&args.checkpoint, &args.out, &options)
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
        "verified on {} images of {} against burn: {} bits per layer checked, {} ties, {} mismatches; end to end {} ties, {} mismatches",
        v.images,
        v.image_source,
        v.per_layer.bits,
        v.per_layer.ties,
        v.per_layer.mismatches,
        v.end_to_end.ties,
        v.end_to_end.mismatches
    );
    for p in &v.paths {
        println!(
            "  {} path vs the scalar reference, every layer: {} bits, {} mismatches",
            p.path, p.bits, p.mismatches
        );
    }
    let report = args.out.with_extension("export.json");
    bnn_transfer::atomic::write_atomic(&report, serde_json::to_string_pretty(&r)?.as_bytes())
        .with_context(|| format!("writing {}", report.display()))?;
    Ok(())
}
