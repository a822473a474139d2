//! `bnn demo`: the whole slice on a fresh machine with nothing downloaded. The embedded binary
//! backbone, a procedurally generated task (or `--data`), features through the XNOR kernels on the
//! GPU (the CPU path when there is no adapter), a head trained in burn, the test accuracy, a few
//! predictions, and the binary extractor timed against its float counterpart.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bnn_transfer::bench::extractor::FloatTwin;
use bnn_transfer::bench::timing::{Plan, measure, wall};
use bnn_transfer::data::shapes;
use bnn_transfer::extractor::{Extractor, ExtractorFile, Output};
use bnn_transfer::gpu::Gpu;

use bnn_transfer::transfer::experiment::TransferConfig;

use super::transfer::{self, ExtractorDevice};

#[derive(clap::Args)]
pub struct Args {
    /// A data set of any supported layout with train and test splits (val optional)
    /// [default: a generated set of 8 shape and texture classes].
    #[arg(long)]
    data: Option<PathBuf>,
    /// How --data is laid out (docs/DATA.md); auto detects it.
    #[arg(long, value_enum, default_value_t = bnn_transfer::data::Layout::Auto)]
    layout: bnn_transfer::data::Layout,
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
    let start = Instant::now();
    let backbone = bnn_transfer::assets::load_backbone(args.model.as_deref())?;
    let src = &backbone.file.graph.source;
    println!(
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
    );
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let dir = args.out.join("shapes");
            let [train, val, test] = match args.images_per_class[..] {
                [a, b, c] if a > 0 && c > 0 => [a, b, c],
                _ => anyhow::bail!("--images-per-class takes three counts: train,val,test"),
            };
            let size = backbone.file.graph.input.size as u32;
            let _ = std::fs::remove_dir_all(&dir);
            let splits: Vec<(&str, usize)> = [("train", train), ("val", val), ("test", test)]
                .into_iter()
                .filter(|s| s.1 > 0)
                .collect();
            let n = shapes::write(&dir, &splits, size, 7)
                .with_context(|| format!("writing the generated set to {}", dir.display()))?;
            println!(
                "task: {n} generated {size}×{size} images of {} classes ({}) in {}",
                shapes::CLASSES.len(),
                shapes::CLASSES
                    .map(|c| c.split_once('.').map_or(c, |x| x.1))
                    .join(", "),
                dir.display()
            );
            dir
        }
    };
    // `bnn transfer`'s defaults, a linear head at the backbone's own cut.
    let report = transfer::transfer(&TransferConfig {
        model: args.model.clone(),
        layout: args.layout,
        extractor_device: if args.cpu {
            ExtractorDevice::Cpu
        } else {
            ExtractorDevice::Adapter
        },
        cache_dir: Some(args.out.join("cache")),
        out: args.out.clone(),
        command: std::env::args().collect(),
        ..TransferConfig::new(data.clone())
    })?;
    let row = &report.rows[0];
    let chance = 1.0 / report.classes.max(1) as f64;
    println!(
        "result: a linear head on the frozen binary features scores {:.1}% test top-1 on {} \
         classes (chance {:.1}%); head: {}",
        100.0 * row.test.top1,
        report.classes,
        100.0 * chance,
        row.dir.as_ref().map_or(String::new(), |d| d
            .join("head.safetensors")
            .display()
            .to_string()),
    );
    timing(
        &backbone.file,
        args.cpu || report.extractor_device.starts_with("CPU"),
    )?;
    println!("done in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The binary extractor against its float counterpart at batch 1, on the device the features ran
/// on: on a GPU the same layers through the float WGSL kernels (random float weights: timing
/// only); on the CPU path burn's flex float model of the same architecture.
fn timing(file: &ExtractorFile, cpu: bool) -> anyhow::Result<()> {
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
    println!(
        "timing (batch 1, median of {} runs, wall time with upload and read-back; {what}): \
         binary {:.1} ms, float {:.1} ms: binary is {}. `bnn bench` measures more.",
        binary.runs.min(float.runs),
        1e3 * binary.median_s,
        1e3 * float.median_s,
        bnn_transfer::bench::timing::speed_phrase(binary.median_s, float.median_s)
    );
    Ok(())
}
