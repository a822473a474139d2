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
    // The report beside the file (`<out>.export.json`): the file and its report are written both
    // or neither. Checked first where that is cheap, and an old file at --out is kept aside until
    // the report is in place, so a failed report puts it back.
    let report = args.out.with_extension("export.json");
    if report.is_dir() || report == args.out {
        anyhow::bail!(
            "--out {}: its report {} cannot be written there (a directory, or the file itself); \
             choose another --out",
            args.out.display(),
            report.display()
        );
    }
    let mut inputs = vec![("--checkpoint", args.checkpoint.as_path())];
    inputs.extend(args.float_twin.as_deref().map(|d| ("--float-twin", d)));
    inputs.extend(args.verify_data.as_deref().map(|d| ("--verify-data", d)));
    bnn_transfer::atomic::check_output("--out", &args.out, &inputs)?;
    let previous = keep_aside(&args.out)?;
    let result = export_and_report(&args, &report);
    if let Some(p) = previous {
        if result.is_ok() {
            let _ = std::fs::remove_file(&p);
        } else {
            let _ = std::fs::rename(&p, &args.out);
        }
    }
    result
}

/// A hard link (or a copy) of the file at `out`, if there is one, beside it: what `out` is put
/// back to when the export or its report fails after the new file is written.
fn keep_aside(out: &std::path::Path) -> anyhow::Result<Option<PathBuf>> {
    if !out.is_file() {
        return Ok(None);
    }
    let aside = bnn_transfer::atomic::temp_path(out);
    if std::fs::hard_link(out, &aside).is_err() {
        std::fs::copy(out, &aside)
            .with_context(|| format!("keeping a copy of {} aside", out.display()))?;
    }
    Ok(Some(aside))
}

fn export_and_report(args: &Args, report: &std::path::Path) -> anyhow::Result<()> {
    let written = std::cell::Cell::new(false);
    let result = (|| -> anyhow::Result<()> {
        let r = export_file(args)?;
        written.set(true);
        bnn_transfer::atomic::write_atomic(report, serde_json::to_string_pretty(&r)?.as_bytes())
            .with_context(|| {
                format!(
                    "writing {} (so {} was not kept)",
                    report.display(),
                    args.out.display()
                )
            })
    })();
    if result.is_err() && written.get() {
        let _ = std::fs::remove_file(&args.out);
    }
    result
}

fn export_file(args: &Args) -> anyhow::Result<bnn_transfer::export::ExportReport> {
    let options = bnn_transfer::export::ExportOptions {
        cut: args.cut.clone(),
        verify_images: args.verify_images,
        verify_data: args.verify_data.clone(),
        use_gpu: !args.no_gpu_check,
        float_twin: args.float_twin.clone(),
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
    Ok(r)
}
