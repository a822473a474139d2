//! `bnn bench`: binary vs float kernels, burn and the CPU path on the chosen adapter; prints the
//! table, and writes the JSON report and the SVG chart on request.

use std::path::PathBuf;

use anyhow::Context;
use bnn_transfer::bench::{self, Config, Suite, chart};
use bnn_transfer::gpu::Gpu;

use super::observe::{Notes, Terminal};

#[derive(clap::Args)]
pub struct Args {
    /// Which shapes: layers (daBNN + our networks), gemm, extractor (end to end), all, or quick
    /// (tiny shapes, seconds).
    #[arg(long, value_enum, default_value = "all")]
    suite: Suite,
    /// Batch of the per-layer shapes.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Side of the square GEMM (default: 512 on a CPU adapter, 4096 on a GPU).
    #[arg(long)]
    gemm: Option<usize>,
    /// Batches of the end-to-end rows (default 1,64).
    #[arg(long, value_delimiter = ',')]
    e2e_batch: Option<Vec<usize>>,
    /// Architecture of the end-to-end rows (default: the embedded backbone's, `small-bireal`;
    /// `small` times the plain network; `bnn pretrain --arch list` lists them).
    #[arg(long)]
    e2e_arch: Option<String>,
    /// Timed runs per case (default: 7 on a CPU adapter, 25 on a GPU).
    #[arg(long)]
    repeats: Option<usize>,
    /// Untimed warm-up runs per case.
    #[arg(long)]
    warmup: Option<usize>,
    /// Stop timing a case after this many seconds (at least one run is always made).
    #[arg(long)]
    budget: Option<f64>,
    /// Include alexnet's binary layers (default: on a GPU only).
    #[arg(long)]
    alexnet: Option<bool>,
    /// CPU rows: the library's CPU binary path and burn's flex (default: when the adapter is a CPU).
    #[arg(long)]
    cpu: Option<bool>,
    /// Skip burn's rows.
    #[arg(long)]
    no_burn: bool,
    /// Threads of the CPU binary path.
    #[arg(long)]
    threads: Option<usize>,
    /// Streaming multiprocessors, for the binary peak (GPU formula) when the board is not known.
    #[arg(long)]
    peak_sms: Option<f64>,
    /// Clock in MHz, for the binary peak.
    #[arg(long)]
    peak_clock_mhz: Option<f64>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the chart (SVG) here.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let gpu = Gpu::new()?;
    let mut cfg = Config::defaults(&gpu, args.suite);
    cfg.batch = args.batch.max(1);
    if let Some(g) = args.gemm {
        cfg.gemm = g.max(1);
    }
    if let Some(name) = &args.e2e_arch {
        cfg.e2e_arch = bnn_transfer::Arch::by_name(name, 200).with_context(|| {
            format!("--e2e-arch {name}: not an architecture; `bnn pretrain --arch list` lists them")
        })?;
    }
    if let Some(b) = args.e2e_batch {
        cfg.e2e_batches = b.into_iter().filter(|&b| b > 0).collect();
    }
    if let Some(r) = args.repeats {
        cfg.plan.repeats = r.max(1);
        cfg.burn_plan.repeats = cfg.burn_plan.repeats.min(r.max(1));
    }
    if let Some(w) = args.warmup {
        cfg.plan.warmup = w;
        cfg.burn_plan.warmup = w.max(1);
    }
    if let Some(b) = args.budget {
        cfg.plan.budget_s = b;
        cfg.burn_plan.budget_s = b;
    }
    if let Some(a) = args.alexnet {
        cfg.alexnet = a;
    }
    if let Some(c) = args.cpu {
        cfg.cpu_rows = c;
    }
    if args.no_burn {
        cfg.burn = false;
    }
    if let Some(t) = args.threads {
        cfg.threads = t.max(1);
    }
    cfg.peak.sms = args.peak_sms;
    cfg.peak.clock_mhz = args.peak_clock_mhz;
    eprintln!("device: {}", gpu.describe());
    let observer = Terminal::new(Notes::Stderr);
    let report = bench::run(&gpu, &cfg, &observer).context("running the benchmark")?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        bnn_transfer::atomic::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON: {}", path.display());
    }
    if let Some(path) = &args.plot {
        chart::write_svg(&report, path).with_context(|| format!("writing {}", path.display()))?;
        println!("chart: {}", path.display());
    }
    Ok(())
}
