//! `bnn pretrain`: train a binary network (or its float twin) on an image data set with burn.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use bnn_transfer::arch::{ARCH_NAMES, Arch};
use bnn_transfer::data::{ImageFolder, Layout};
use bnn_transfer::model::Precision;
use bnn_transfer::train::{
    self, DeviceChoice, PretrainConfig, RunOptions, Schedule, ScheduleKind, checkpoint,
};

/// Defaults (shown in `--help`; the options are optional so that `--resume` can tell what was set).
const EPOCHS: usize = 10;
const BATCH: usize = 64;
const LR: f64 = 2e-3;
const ARCH: &str = "small";

#[derive(clap::Args)]
pub struct Args {
    /// Data set: a directory or an uncompressed tar in one of the --layout layouts, with a
    /// `train` split (and `val` for validation), e.g. ../shared/data/tinyimagenet-64.tar.
    #[arg(long)]
    data: Option<PathBuf>,
    /// How --data is laid out (docs/DATA.md) [default: auto, detected].
    #[arg(long, value_enum)]
    layout: Option<Layout>,
    /// Architecture: small (64 px, the default), alexnet (224 px, paper size), mini (32 px);
    /// `list` prints each one's layers, parameters, MACs per image and sizes, then exits.
    #[arg(long)]
    arch: Option<String>,
    /// Binary network (±1 weights and activations) or its float twin.
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Epochs in all [default: 10]. With --resume: the new total.
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per batch [default: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Initial learning rate of Adam [default: 0.002].
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule [default: cosine]; `step` halves it every --lr-step-epochs (the paper).
    #[arg(long, value_enum)]
    schedule: Option<ScheduleKind>,
    /// Step schedule: epochs between decays.
    #[arg(long, default_value_t = 10)]
    lr_step_epochs: usize,
    /// Step schedule: decay factor.
    #[arg(long, default_value_t = 0.5)]
    lr_gamma: f64,
    /// Seed of the weight initialisation, the shuffles and the augmentation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// XNOR-Net per-channel weight scale α on the binary layers.
    #[arg(long)]
    weight_scale: bool,
    /// Output directory (config.json, checkpoint/, metrics.csv, curves.svg, report.json)
    /// (default: `runs/<arch>-<precision>`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint (epoch, batch and optimizer state).
    #[arg(long)]
    resume: bool,
    /// Training backend: wgpu on a real GPU, flex on the CPU; auto picks wgpu unless the selected
    /// adapter is a CPU (WGPU_BACKEND / WGPU_ADAPTER_NAME / WGPU_POWER_PREF select it).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Image decoding threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Stop (saving a checkpoint, as Ctrl-C does) after this many steps; for smoke and speed runs.
    #[arg(long)]
    max_steps: Option<u64>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.arch.as_deref() == Some("list") {
        return list_archs(&args);
    }
    // burn's optimizer-state loader (used by --resume) puts the state on `Device::default()`, which
    // would start a wgpu runtime (lavapipe on a CPU-only machine) just to hold it until the first
    // step moves it to the training device. Every other device here is explicit, so make the
    // default flex unless the user chose one.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: called first thing in the subcommand, before this process starts any thread
        // (no adapter, runtime, loader or signal thread exists yet).
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    let (config, out) = if args.resume {
        let out = args
            .out
            .clone()
            .context("--resume needs --out DIR (the run to continue)")?;
        let config = checkpoint::read_config(&out).with_context(|| {
            format!(
                "--resume: {} is not the output directory of a `bnn pretrain` run",
                out.display()
            )
        })?;
        check_unchanged(&args, &config, &out)?;
        (config, out)
    } else {
        let data = args
            .data
            .clone()
            .context("--data is required (or --resume --out DIR)")?;
        let arch = args.arch.clone().unwrap_or_else(|| ARCH.into());
        if Arch::by_name(&arch, 1).is_none() {
            let known: Vec<String> = ARCH_NAMES
                .iter()
                .map(|(n, d)| format!("  {n}: {d}"))
                .collect();
            bail!(
                "unknown --arch '{arch}'; known architectures:\n{}",
                known.join("\n")
            );
        }
        let precision = args.precision.unwrap_or(Precision::Binary);
        let schedule = Schedule {
            kind: args.schedule.unwrap_or(ScheduleKind::Cosine),
            lr: args.lr.unwrap_or(LR),
            step_epochs: args.lr_step_epochs,
            gamma: args.lr_gamma,
        };
        let mut config = train::pretrain::new_config_layout(
            &data,
            args.layout.unwrap_or_default(),
            &arch,
            precision,
            args.epochs.unwrap_or(EPOCHS),
            args.batch_size.unwrap_or(BATCH),
            schedule,
            args.seed.unwrap_or(0),
        )
        .with_context(|| format!("reading the data set {}", data.display()))?;
        config.model.weight_scale = args.weight_scale;
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("runs/{arch}-{precision}")));
        (config, out)
    };

    let device = train::device::resolve(args.device).context("choosing the training device")?;
    eprintln!("device: {}", device.reason);
    let arch = &config.model.arch;
    eprint!(
        "{} {}{}",
        config.model.precision,
        arch,
        if config.model.weight_scale {
            "  (XNOR-Net α)\n"
        } else {
            ""
        }
    );
    eprintln!(
        "data: {} ({}, {} classes), {} epochs of batch {}, Adam lr {} ({:?}), seed {}; output: {}",
        config.data.display(),
        config.layout,
        config.classes.len(),
        args.epochs.unwrap_or(config.epochs),
        config.batch_size,
        config.schedule.lr,
        config.schedule.kind,
        config.seed,
        out.display()
    );

    let stop = Arc::new(AtomicBool::new(false));
    install_ctrl_c(stop.clone());
    let opts = RunOptions {
        out: out.clone(),
        device,
        stop,
        max_steps: args.max_steps,
        workers: args.workers,
        progress: true,
    };
    let report = if args.resume {
        train::resume(&opts, args.epochs)?
    } else {
        train::pretrain(config, &opts)?
    };
    eprintln!(
        "{} epoch(s) of {} done, {:.1} training images/s this session; wrote {}",
        report.epochs_done,
        report.epochs,
        report.images_per_s,
        out.display()
    );
    if report.interrupted {
        std::process::exit(130);
    }
    Ok(())
}

/// `--arch list`: every named architecture, sized for the classes of --data (200 without).
fn list_archs(args: &Args) -> anyhow::Result<()> {
    let classes = match &args.data {
        Some(d) => ImageFolder::open_layout(d, args.layout.unwrap_or_default(), "train")?
            .classes
            .len(),
        None => 200,
    };
    for (name, about) in ARCH_NAMES {
        let arch = Arch::by_name(name, classes).expect("listed names resolve");
        println!("{name}: {about}");
        println!("{arch}");
    }
    println!(
        "The float twin of each has the same topology, parameters and MACs (float weights, ReLU); \
         its size is the \"float\" figure. Packed binary: 1-bit weights packed in u32 words, \
         f32 first layer and classifier, one threshold per channel."
    );
    Ok(())
}

/// On --resume only --epochs may change; anything else given must match config.json.
fn check_unchanged(
    args: &Args,
    config: &PretrainConfig,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let mut diffs = Vec::new();
    if let Some(d) = &args.data
        && *d != config.data
    {
        diffs.push(format!(
            "--data {} (run: {})",
            d.display(),
            config.data.display()
        ));
    }
    if let Some(l) = args.layout
        && l != Layout::Auto
        && config.layout != Layout::Auto
        && l != config.layout
    {
        diffs.push(format!("--layout {l} (run: {})", config.layout));
    }
    if let Some(a) = &args.arch
        && *a != config.model.arch.name
    {
        diffs.push(format!("--arch {a} (run: {})", config.model.arch.name));
    }
    if let Some(p) = args.precision
        && p != config.model.precision
    {
        diffs.push(format!("--precision {p} (run: {})", config.model.precision));
    }
    if let Some(b) = args.batch_size
        && b != config.batch_size
    {
        diffs.push(format!("--batch-size {b} (run: {})", config.batch_size));
    }
    if let Some(lr) = args.lr
        && lr != config.schedule.lr
    {
        diffs.push(format!("--lr {lr} (run: {})", config.schedule.lr));
    }
    if let Some(s) = args.schedule
        && s != config.schedule.kind
    {
        diffs.push(format!(
            "--schedule {s:?} (run: {:?})",
            config.schedule.kind
        ));
    }
    if let Some(s) = args.seed
        && s != config.seed
    {
        diffs.push(format!("--seed {s} (run: {})", config.seed));
    }
    if !diffs.is_empty() {
        bail!(
            "--resume continues the run as configured in {}; only --epochs may change. \
             Differs: {}. Drop these options, or start a new run with another --out.",
            out.join(checkpoint::CONFIG_FILE).display(),
            diffs.join(", ")
        );
    }
    Ok(())
}

/// First Ctrl-C: finish the current step, save a checkpoint, exit. Second: exit at once.
fn install_ctrl_c(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            loop {
                if tokio::signal::ctrl_c().await.is_err() {
                    return;
                }
                if stop.swap(true, Ordering::SeqCst) {
                    eprintln!("\nsecond Ctrl-C: exiting without saving");
                    std::process::exit(130);
                }
                eprintln!("\nCtrl-C: finishing this step and saving a checkpoint (Ctrl-C again to quit now)");
            }
        });
    });
}
