//! `bnn pretrain`: train a binary network (or its float twin) on an image data set with burn.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use bnn_transfer::data::Layout;
use bnn_transfer::model::Precision;
use bnn_transfer::train::{self, DeviceChoice, PretrainRequest, RunOptions, ScheduleKind};

use super::observe::{Notes, Terminal};

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
    /// Distil from a teacher. A run directory (a finished run over the same images and classes,
    /// e.g. `runs/small-float`): its softmax outputs replace the labels (ReActNet's distributional
    /// loss). EfficientNet-Lite0's weights file (`efficientnet-lite0-57934424.pth`, sha256
    /// checked; scripts/fetch-teacher.sh fetches it): labels + its soft logits over the source
    /// classes (mapped by WordNet id) + its 1280-d features through a learned projection, with
    /// the teacher's outputs computed once and cached. Validation always scores the labels.
    #[arg(long, value_name = "DIR|FILE.pth")]
    teacher: Option<PathBuf>,
    /// Lite0 distillation: input side the teacher runs at (images upscaled bilinearly) [default: 160].
    #[arg(long)]
    teacher_resolution: Option<usize>,
    /// Lite0 distillation: teacher views per image, 1 (centre) or 2 (and its mirror, the target of
    /// flipped crops) [default: 1].
    #[arg(long)]
    teacher_views: Option<usize>,
    /// Lite0 distillation: where the teacher's targets are cached [default: the feature cache's
    /// directory, ~/.cache/bnn-transfer].
    #[arg(long, value_name = "DIR")]
    teacher_cache: Option<PathBuf>,
    /// Lite0 distillation: temperature of the soft-logit term [default: 1].
    #[arg(long)]
    kd_temperature: Option<f32>,
    /// Lite0 distillation: weight of the cross-entropy on the labels [default: 0: the teacher's soft targets alone].
    #[arg(long)]
    kd_labels: Option<f32>,
    /// Lite0 distillation: weight of the soft-logit term (times T²) [default: 1].
    #[arg(long)]
    kd_logits: Option<f32>,
    /// Lite0 distillation: weight of the feature regression (a mean over the teacher's 1280
    /// standardised dimensions) [default: 1; 0 turns it off].
    #[arg(long)]
    kd_features: Option<f32>,
    /// Two-step training (ReActNet): the first N epochs train binary activations with real-valued
    /// weights, the remaining ones binarize the weights too (one learning-rate schedule over all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    float_weight_epochs: usize,
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

impl Args {
    fn request(&self) -> PretrainRequest {
        PretrainRequest {
            data: self.data.clone(),
            layout: self.layout,
            arch: self.arch.clone(),
            precision: self.precision,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule: self.schedule,
            lr_step_epochs: self.lr_step_epochs,
            lr_gamma: self.lr_gamma,
            seed: self.seed,
            weight_scale: self.weight_scale,
            teacher: self.teacher.clone(),
            kd: train::request::KdRequest {
                resolution: self.teacher_resolution,
                views: self.teacher_views,
                temperature: self.kd_temperature,
                labels: self.kd_labels,
                logits: self.kd_logits,
                features: self.kd_features,
                cache_dir: self.teacher_cache.clone(),
            },
            float_weight_epochs: self.float_weight_epochs,
            out: self.out.clone(),
            resume: self.resume,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.arch.as_deref() == Some("list") {
        let layout = args.layout.unwrap_or_default();
        println!(
            "{}",
            train::request::arch_list(args.data.as_deref(), layout)?
        );
        return Ok(());
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
    let (config, out) = args.request().resolve()?;
    let device = train::device::resolve(args.device).context("choosing the training device")?;
    eprintln!("device: {}", super::flags::show(&device.reason));
    eprint!(
        "{}",
        config.describe(args.epochs.unwrap_or(config.epochs), &out)
    );

    let stop = Arc::new(AtomicBool::new(false));
    install_ctrl_c(stop.clone());
    let opts = RunOptions {
        out: out.clone(),
        device,
        stop,
        max_steps: args.max_steps,
        workers: args.workers,
        observer: Arc::new(Terminal::new(Notes::Stderr)),
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
