//! `bnn demo`: the whole slice on a fresh machine with nothing downloaded. The embedded binary
//! backbone, a procedurally generated task (or a given data set), features through the XNOR
//! kernels on the GPU (the CPU path when there is no adapter), a float head trained on them (the
//! library's `transfer::experiment::run` with `bnn transfer`'s defaults), the test accuracy, and
//! the binary extractor timed against its float counterpart.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use bnn_transfer::ExtractorDevice;
use bnn_transfer::bench::extractor::FloatTwin;
use bnn_transfer::bench::timing::{Plan, measure, wall};
use bnn_transfer::data::{Layout, shapes};
use bnn_transfer::extractor::{Extractor, ExtractorFile, Output};
use bnn_transfer::gpu::Gpu;
use bnn_transfer::progress::Observer;
use bnn_transfer::transfer::experiment::{self, Report, TransferConfig};

use super::observe::{Notes, Terminal};

#[derive(clap::Args)]
pub struct Args {
    /// A data set of any supported layout with train and test splits (val optional)
    /// [default: a generated set of 8 shape and texture classes].
    #[arg(long)]
    data: Option<PathBuf>,
    /// How --data is laid out (docs/DATA.md); auto detects it.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    layout: Layout,
    /// The extractor file [default: the embedded backbone].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Output directory (generated data, head, report).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Generated images per class in train / val / test.
    #[arg(long, value_delimiter = ',', default_value = "32,8,16")]
    images_per_class: Vec<usize>,
    /// Run the extractor on the CPU path even when a wgpu adapter exists.
    #[arg(long)]
    cpu: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let observer = Terminal::new(Notes::Stdout);
    demo(&args, &observer)?;
    Ok(())
}

/// Runs the demo; returns the transfer report (also in `<out>/report.json`).
fn demo(cfg: &Args, observer: &dyn Observer) -> anyhow::Result<Report> {
    let start = Instant::now();
    let backbone = bnn_transfer::assets::load_backbone(cfg.model.as_deref())?;
    let src = &backbone.file.graph.source;
    observer.note(&format!(
        "backbone: {} — binary {} ({} layers up to '{}', {} px input), trained on {}{}",
        backbone.label,
        src.arch.name,
        backbone.file.layers.len(),
        backbone.file.graph.cut,
        backbone.file.graph.input.size,
        src.checkpoint,
        src.val_top1.map_or(String::new(), |t| format!(
            ", source val top-1 {:.1}%",
            100.0 * t
        )),
    ));
    let data = match &cfg.data {
        Some(d) => d.clone(),
        None => {
            let dir = cfg.out.join("shapes");
            let [train, val, test] = match cfg.images_per_class[..] {
                [a, b, c] if a > 0 && c > 0 => [a, b, c],
                _ => bail!("--images-per-class takes three counts: train,val,test"),
            };
            let size = backbone.file.graph.input.size as u32;
            let _ = std::fs::remove_dir_all(&dir);
            let splits: Vec<(&str, usize)> = [("train", train), ("val", val), ("test", test)]
                .into_iter()
                .filter(|s| s.1 > 0)
                .collect();
            let n = shapes::write(&dir, &splits, size, 7)
                .with_context(|| format!("writing the generated set to {}", dir.display()))?;
            observer.note(&format!(
                "task: {n} generated {size}×{size} images of {} classes ({}) in {}",
                shapes::CLASSES.len(),
                shapes::CLASSES
                    .map(|c| c.split_once('.').map_or(c, |x| x.1))
                    .join(", "),
                dir.display()
            ));
            dir
        }
    };
    // `bnn transfer`'s defaults, a linear head at the backbone's own cut.
    let report = experiment::run(
        &TransferConfig {
            model: cfg.model.clone(),
            layout: cfg.layout,
            extractor_device: if cfg.cpu {
                ExtractorDevice::Cpu
            } else {
                ExtractorDevice::Adapter
            },
            cache_dir: Some(cfg.out.join("cache")),
            out: cfg.out.clone(),
            command: std::env::args().collect(),
            ..TransferConfig::new(data.clone())
        },
        observer,
    )?;
    let row = &report.rows[0];
    let chance = 1.0 / report.classes.max(1) as f64;
    observer.note(&format!(
        "result: a linear head on the frozen binary features scores {:.1}% test top-1 on {} \
         classes (chance {:.1}%); head: {}",
        100.0 * row.test.top1,
        report.classes,
        100.0 * chance,
        row.dir.as_ref().map_or(String::new(), |d| d
            .join("head.safetensors")
            .display()
            .to_string()),
    ));
    observer.note(&timing(&backbone.file, report.extractor_on_cpu_path)?);
    observer.note(&format!("done in {:.0} s", start.elapsed().as_secs_f64()));
    Ok(report)
}

/// The binary extractor against its float counterpart at batch 1, on the device the features ran
/// on: on a GPU the same layers through the float WGSL kernels (random float weights: timing
/// only); on the CPU path burn's flex float model of the same architecture.
fn timing(file: &ExtractorFile, cpu: bool) -> bnn_transfer::Result<String> {
    let plan = Plan {
        warmup: 1,
        repeats: 5,
        budget_s: 3.0,
    };
    let i = &file.graph.input;
    let mut rng = bnn_transfer::rng::Rng::new(3);
    let image: Vec<f32> = (0..i.size * i.size * i.channels)
        .map(|_| rng.range(-2.0, 2.0))
        .collect();
    let (binary, float, what) = if cpu {
        let cpu = bnn_transfer::cpu::CpuExtractor::new(file, &bnn_transfer::cpu::Threads::all()?)?;
        let b = measure(&plan, || wall(|| cpu.run_bits(&image, 1).map(|_| ())))?;
        let arch = &file.graph.source.arch;
        let f = bnn_transfer::bench::burn::time_float_model(
            &bnn_transfer::bench::burn::flex_device(),
            arch,
            1,
            &plan,
        )?;
        (b, f, "CPU binary path vs burn's flex float model")
    } else {
        let gpu = Gpu::new()?;
        let ex = Extractor::new(&gpu, file.clone())?;
        let twin = FloatTwin::new(&gpu, file, 1)?;
        let b = measure(&plan, || wall(|| ex.run(&image, Output::Bits).map(|_| ())))?;
        let f = measure(&plan, || wall(|| twin.run(&image).map(|_| ())))?;
        (
            b,
            f,
            "XNOR kernels vs the same layers as float WGSL kernels",
        )
    };
    Ok(format!(
        "timing (batch 1, median of {} runs, wall time with upload and read-back; {what}): \
         binary {:.1} ms, float {:.1} ms: binary is {}. `bnn bench` measures more.",
        binary.runs.min(float.runs),
        1e3 * binary.median_s,
        1e3 * float.median_s,
        bnn_transfer::bench::timing::speed_phrase(binary.median_s, float.median_s)
    ))
}
