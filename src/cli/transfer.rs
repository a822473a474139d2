//! `bnn transfer`: the flags of [`TransferConfig`] and the progress lines on stdout; the
//! experiment itself is `bnn_transfer::transfer::experiment::run`.

use std::path::PathBuf;

use bnn_transfer::data::Layout;
use bnn_transfer::transfer::experiment::{self, Report, TransferConfig};

use super::observe::{Notes, Terminal};

#[derive(clap::Args)]
pub struct Args {
    /// The binary extractor file (from `bnn export`) [default: the embedded backbone, the small
    /// network pretrained on the Tiny-ImageNet subset].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Target data set: a directory or an uncompressed tar with train (val) and test splits, in
    /// any --layout.
    #[arg(long)]
    pub data: PathBuf,
    /// How --data is laid out (docs/DATA.md): ImageFolder, the official Flowers-102, CUB-200-2011
    /// or MIT Indoor-67 downloads; auto detects it.
    #[arg(long, value_enum, default_value_t = defaults().layout)]
    pub layout: Layout,
    /// Cut points: the extractor layer(s) whose output feeds the head, comma-separated
    /// (default: the file's own cut). Each cut gets its own head and table row.
    #[arg(long, value_delimiter = ',')]
    pub cut: Vec<String>,
    /// Head: `linear`, or `mlp:H[,H…]` (hidden widths, ReLU between layers).
    #[arg(long, default_value_t = defaults().head)]
    pub head: String,
    /// Retrain the last K layers, as in the paper (comma-separated list): K = 1 is a linear head
    /// on the last layer; K > 1 cuts K−1 layers earlier and retrains those layers in float with
    /// their original widths. Replaces --cut and --head.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["cut", "head"])]
    pub retrain: Vec<usize>,
    /// Also train the same heads on the float twin's features (a `bnn pretrain --precision float`
    /// run directory), for comparison.
    #[arg(long)]
    pub float_twin: Option<PathBuf>,
    /// Also score a network trained from scratch on the target (a `bnn pretrain` run directory
    /// on this data set) on the test split: the lower baseline.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Also train the linear head on a float network's features, the model a user would pick
    /// instead, and time both backbones per image (batch 1) in the same run. Only
    /// `efficientnet-lite0` (ImageNet-1k weights at 160 px; --baseline-weights or $BNN_TEACHER,
    /// else ../shared/teachers/efficientnet-lite0/, else teacher/ from scripts/fetch-teacher.sh).
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// The baseline's weights file (`efficientnet-lite0-57934424.pth`, sha256 checked).
    #[arg(long, requires = "baseline")]
    pub baseline_weights: Option<PathBuf>,
    #[arg(long, default_value_t = defaults().train_split)]
    pub train_split: String,
    /// Validation split for early stopping (`none`: train all --epochs).
    #[arg(long, default_value_t = defaults().val_split)]
    pub val_split: String,
    #[arg(long, default_value_t = defaults().test_split)]
    pub test_split: String,
    /// Most head-training epochs.
    #[arg(long, default_value_t = defaults().epochs)]
    pub epochs: usize,
    /// Stop after this many epochs without a better val top-1 (0: never).
    #[arg(long, default_value_t = defaults().patience)]
    pub patience: usize,
    #[arg(long, default_value_t = defaults().lr)]
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    #[arg(long, default_value_t = defaults().weight_decay)]
    pub weight_decay: f32,
    /// Head-training batch size.
    #[arg(long, default_value_t = defaults().batch_size)]
    pub batch_size: usize,
    #[arg(long, default_value_t = defaults().seed)]
    pub seed: u64,
    /// Where the extractor runs (auto: the XNOR kernels on a real GPU, else the CPU binary path).
    #[arg(long, value_enum, default_value_t = defaults().extractor_device)]
    pub extractor_device: ExtractorDevice,
    /// Feature cache directory [default: $XDG_CACHE_HOME/bnn-transfer or ~/.cache/bnn-transfer].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Output directory: one folder per row (head.safetensors, metrics.csv), report.json,
    /// results.csv, results.svg.
    #[arg(long, default_value_os_t = defaults().out)]
    pub out: PathBuf,
    /// Image decoding threads (0: one per core).
    #[arg(long, default_value_t = defaults().workers)]
    pub workers: usize,
}

pub use bnn_transfer::ExtractorDevice;

/// The library's defaults, written once in [`TransferConfig::new`]; the flags show and use them.
fn defaults() -> TransferConfig {
    TransferConfig::new("")
}

/// `--baseline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// EfficientNet-Lite0, ImageNet-1k weights (Google; Apache-2.0).
    #[value(name = "efficientnet-lite0")]
    EfficientnetLite0,
}

impl From<Args> for TransferConfig {
    fn from(a: Args) -> Self {
        TransferConfig {
            model: a.model,
            data: a.data,
            layout: a.layout,
            cut: a.cut,
            head: a.head,
            retrain: a.retrain,
            float_twin: a.float_twin,
            scratch: a.scratch,
            baseline: a.baseline.map(|_| {
                a.baseline_weights
                    .unwrap_or_else(bnn_transfer::teacher::efficientnet::default_weights)
            }),
            train_split: a.train_split,
            val_split: a.val_split,
            test_split: a.test_split,
            epochs: a.epochs,
            patience: a.patience,
            lr: a.lr,
            weight_decay: a.weight_decay,
            batch_size: a.batch_size,
            seed: a.seed,
            extractor_device: a.extractor_device,
            cache_dir: a.cache_dir,
            out: a.out,
            workers: a.workers,
            command: std::env::args().collect(),
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    transfer(&args.into()).map(|_| ())
}

/// Runs the experiment, printing its progress lines and table.
pub fn transfer(cfg: &TransferConfig) -> anyhow::Result<Report> {
    Ok(experiment::run(cfg, &Terminal::new(Notes::Stdout))?)
}
