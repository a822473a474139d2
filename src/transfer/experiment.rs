//! The paper's workflow on a new task, as a library function ([`run`], configured by
//! [`TransferConfig`]; `bnn transfer` and `bnn demo` map their flags onto it): features from the
//! frozen binary extractor (cached), a float head (plain Rust, `fit`) per cut point, test
//! top-1/top-5, per-class accuracy and confusions; optionally the float twin's features with the
//! same heads and a network trained from scratch on the target, in one table. Writes one folder
//! per row (`head.safetensors`, `metrics.csv`), `report.json`, `results.csv` and `results.svg` under
//! `out`; progress goes to the caller's observer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::data::{ImageFolder, Layout, LoaderConfig, Preprocess};
use crate::error::{Error, Result, ResultExt};
use crate::extractor::ExtractorFile;
use crate::feature_extractor::{ExtractorDevice, FeatureExtractor};
use crate::progress::{Observer, Task};
use crate::transfer::features::{self, Cache};
use crate::transfer::fit::{self, FitConfig};
use crate::transfer::head::{self, BackboneInfo, BackboneKind, HeadInfo};
use crate::transfer::{Evaluation, FeatureSet, chart, evaluate};

/// Everything one transfer experiment needs; [`TransferConfig::new`] gives the defaults of
/// `bnn transfer`.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// The binary extractor file (`bnn export`); `None` is the embedded backbone.
    pub model: Option<PathBuf>,
    /// Target data set: a directory or an uncompressed tar with train (val) and test splits.
    pub data: PathBuf,
    /// How `data` is laid out (docs/DATA.md); [`Layout::Auto`] detects it.
    pub layout: Layout,
    /// Cut points (layer names); empty: the file's own cut. Each gets its own head and row.
    pub cut: Vec<String>,
    /// Head: `linear`, or `mlp:H[,H…]` (hidden widths, ReLU between layers).
    pub head: String,
    /// Retrain the last K layers, as in the paper (replaces `cut` and `head` when not empty).
    pub retrain: Vec<usize>,
    /// Also train the same heads on the float twin's features (a `bnn pretrain --precision
    /// float` run directory).
    pub float_twin: Option<PathBuf>,
    /// Also score a network trained from scratch on the target (a `bnn pretrain` run directory).
    pub scratch: Option<PathBuf>,
    /// Also train the linear head on EfficientNet-Lite0's features (its weights file), the float
    /// model a user would pick instead, and time both backbones per image ([`super::baseline`]).
    pub baseline: Option<PathBuf>,
    /// Split the heads are trained on.
    pub train_split: String,
    /// Validation split for early stopping (`none`: train all epochs).
    pub val_split: String,
    /// Split the heads are scored on.
    pub test_split: String,
    /// Most head-training epochs.
    pub epochs: usize,
    /// Stop after this many epochs without a better val top-1 (0: never).
    pub patience: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    pub weight_decay: f32,
    /// Head-training batch size.
    pub batch_size: usize,
    /// Seed of head initialisation and shuffling.
    pub seed: u64,
    /// Where the extractor runs.
    pub extractor_device: ExtractorDevice,
    /// Feature cache directory; `None`: [`Cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Image decoding threads (0: one per core).
    pub workers: usize,
    /// The command line recorded in `report.json`.
    pub command: Vec<String>,
}

impl TransferConfig {
    /// `bnn transfer`'s defaults on the data set at `data`.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        // The head-training defaults are the trainer's own.
        let fit = FitConfig::default();
        TransferConfig {
            model: None,
            data: data.into(),
            layout: Layout::Auto,
            cut: vec![],
            head: "linear".into(),
            retrain: vec![],
            float_twin: None,
            scratch: None,
            baseline: None,
            train_split: "train".into(),
            val_split: "val".into(),
            test_split: "test".into(),
            epochs: fit.epochs,
            patience: fit.patience,
            lr: fit.lr,
            weight_decay: fit.weight_decay,
            batch_size: fit.batch_size,
            seed: fit.seed,
            extractor_device: ExtractorDevice::Auto,
            cache_dir: None,
            out: PathBuf::from("runs/transfer"),
            workers: 0,
            command: vec![],
        }
    }
}

/// One head to train: a backbone's features at a cut, and the hidden widths.
#[derive(Clone, Debug, Serialize)]
struct Plan {
    cut: String,
    hidden: Vec<usize>,
    /// Layers retrained (head depth), when given by --retrain.
    retrain: Option<usize>,
}

fn head_name(hidden: &[usize]) -> String {
    if hidden.is_empty() {
        "linear".into()
    } else {
        format!(
            "mlp:{}",
            hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

fn parse_head(s: &str) -> Result<Vec<usize>> {
    if s == "linear" {
        return Ok(vec![]);
    }
    let Some(widths) = s.strip_prefix("mlp:") else {
        return Err(Error::Config(format!(
            "`head` must be `linear` or `mlp:H[,H…]`, not '{s}'"
        )));
    };
    widths
        .split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(h) if h > 0 => Ok(h),
            _ => Err(Error::Config(format!(
                "`head` {s}: '{w}' is not a positive width"
            ))),
        })
        .collect()
}

/// The heads to train, one per distinct (cut, hidden widths): a cut or K given twice (`--cut
/// conv5,conv5`) is one row, not two rows writing the same folder.
fn plans(cfg: &TransferConfig, file: &ExtractorFile) -> Result<Vec<Plan>> {
    let mut plans = listed_plans(cfg, file)?;
    let mut seen = std::collections::HashSet::new();
    plans.retain(|p| seen.insert((p.cut.clone(), p.hidden.clone())));
    Ok(plans)
}

fn listed_plans(cfg: &TransferConfig, file: &ExtractorFile) -> Result<Vec<Plan>> {
    let layers = &file.layers;
    if !cfg.retrain.is_empty() {
        return cfg
            .retrain
            .iter()
            .map(|&k| {
                if k == 0 || k > layers.len() {
                    return Err(Error::Config(format!(
                        "`retrain` {k}: the extractor has {} layers ({}), so K is 1..={}",
                        layers.len(),
                        file.layer_names().join(", "),
                        layers.len()
                    )));
                }
                let cut = layers.len() - k;
                Ok(Plan {
                    cut: layers[cut].spec.name.clone(),
                    hidden: layers[cut + 1..].iter().map(|l| l.spec.out_len()).collect(),
                    retrain: Some(k),
                })
            })
            .collect();
    }
    let hidden = parse_head(&cfg.head)?;
    let cuts = if cfg.cut.is_empty() {
        vec![file.graph.cut.clone()]
    } else {
        cfg.cut.clone()
    };
    cuts.into_iter()
        .map(|cut| {
            file.layer_index(&cut)?;
            Ok(Plan {
                cut,
                hidden: hidden.clone(),
                retrain: None,
            })
        })
        .collect()
}

/// One row of the results: a head on one backbone's features at one cut (or the scratch net).
#[derive(Debug, Serialize)]
pub struct Row {
    /// `binary`, `float-twin` or `scratch (<precision>)`.
    pub backbone: String,
    /// The cut layer (`-` for the scratch net).
    pub cut: String,
    /// `linear`, `mlp:H,…`, or `whole <arch>` for the scratch net.
    pub head: String,
    /// Layers retrained, when the row comes from `retrain`.
    pub retrain: Option<usize>,
    /// Features per image at the cut.
    pub features: usize,
    /// Epochs trained.
    pub epochs_run: usize,
    /// The epoch whose weights were kept (best val top-1, or the last).
    pub best_epoch: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Seconds of head training (scoring, for the scratch net).
    pub head_train_s: f64,
    /// Validation top-1 of the kept epoch, if there was a validation split.
    pub val_top1: Option<f64>,
    /// The scores on the test split.
    pub test: Evaluation,
    /// Where the head and its metrics were written (the run directory, for the scratch net).
    pub dir: Option<PathBuf>,
    /// Median milliseconds per image through the backbone at batch 1 on this machine (measured
    /// with `--baseline`, for the binary and baseline rows).
    pub ms_per_image: Option<f64>,
    /// Bytes of the backbone's model file (with `--baseline`).
    pub model_bytes: Option<u64>,
}

/// What a transfer experiment did and scored (`report.json`).
#[derive(Debug, Serialize)]
pub struct Report {
    /// The command line, as recorded by the caller.
    pub command: Vec<String>,
    /// The backbone's label (path or `embedded:<name>`).
    pub model: String,
    /// The target data set.
    pub data: PathBuf,
    /// Each split used and its number of images.
    pub splits: Vec<(String, usize)>,
    /// Classes of the target task.
    pub classes: usize,
    /// Where the extractor ran, in words.
    pub extractor_device: String,
    /// Whether it ran on the library's CPU binary path (else the WGSL kernels on a wgpu device).
    pub extractor_on_cpu_path: bool,
    /// Head-training settings shared by every row (hidden widths per row).
    pub fit: FitConfig,
    /// Seconds extracting binary features per split (0: from the cache).
    pub extraction_s: Vec<(String, f64)>,
    /// Seconds computing the float twin's features per split.
    pub twin_extraction_s: Vec<(String, f64)>,
    /// Seconds of head training, all rows.
    pub head_training_s: f64,
    /// Seconds for the whole experiment.
    pub total_s: f64,
    /// The results, one per head (and the scratch net).
    pub rows: Vec<Row>,
}

fn open(data: &Path, layout: Layout, split: &str) -> Result<Arc<ImageFolder>> {
    Ok(Arc::new(
        ImageFolder::open_layout(data, layout, split)
            .context_with(|| format!("opening split '{split}' of {}", data.display()))?,
    ))
}

/// Runs a whole transfer (see the module docs) and returns its report (also written to
/// `<out>/report.json`); progress goes to `observer`, and the results table as one note.
pub fn run(cfg: &TransferConfig, observer: &dyn Observer) -> Result<Report> {
    let start = Instant::now();
    check_settings(cfg)?;
    let backbone = crate::assets::load_backbone(cfg.model.as_deref())
        .context_with(|| "loading the extractor".into())?;
    // Refuses a file whose input is not RGB images before anything is opened.
    backbone.preprocess()?;
    let file = backbone.file.clone();
    let plans = plans(cfg, &file)?;
    let mut cuts: Vec<String> = plans.iter().map(|p| p.cut.clone()).collect();
    cuts.sort();
    cuts.dedup();

    let (layout, sets) = open_splits(cfg, observer)?;
    check_runs(cfg, &file, &sets.train)?;
    let fit_cfg = check_heads(cfg, &file, &plans, &sets)?;
    let binary = binary_features(cfg, &backbone, &cuts, layout, &sets, observer)?;
    let mut twin_extraction_s = Vec::new();
    let twin = twin_features(cfg, &cuts, &sets.all, &mut twin_extraction_s, observer)?;

    let ctx = Heads {
        cfg,
        fit: &fit_cfg,
        cuts: &cuts,
        classes: &sets.train.classes,
        input_size: file.graph.input.size,
        layout,
        val: sets.val.as_ref().map(|_| 1),
        test: sets.all.len() - 1,
        threads: crate::cpu::Threads::all()?,
    };
    let (mut rows, mut head_training_s) =
        train_heads(&ctx, &plans, &backbone, &binary, twin.as_ref(), observer)?;
    if let Some(weights) = &cfg.baseline {
        let (row, feature_s) = baseline_row(cfg, weights, &sets, &ctx, observer)?;
        head_training_s += row.head_train_s;
        twin_extraction_s.push(("efficientnet-lite0 (all splits)".into(), feature_s));
        rows.push(row);
    }
    if let Some(dir) = &cfg.scratch {
        rows.push(scratch_row(dir, sets.test.clone(), cfg.workers, observer)?);
    }

    observer.note(&table(&rows));
    let report = Report {
        command: cfg.command.clone(),
        model: backbone.label.clone(),
        data: cfg.data.clone(),
        splits: sets
            .all
            .iter()
            .map(|s| (s.split().to_string(), s.len()))
            .collect(),
        classes: sets.train.classes.len(),
        extractor_device: binary.device_name,
        extractor_on_cpu_path: binary.on_cpu_path,
        fit: fit_cfg,
        extraction_s: binary.extraction_s,
        twin_extraction_s,
        head_training_s,
        total_s: start.elapsed().as_secs_f64(),
        rows,
    };
    write_report(cfg, &report, sets.test.len(), observer)?;
    Ok(report)
}

/// Refuses split settings that would select on the test (or training) images, and an output
/// that is one of the inputs.
fn check_settings(cfg: &TransferConfig) -> Result<()> {
    for (flag, split) in [
        ("`train_split`", &cfg.train_split),
        ("`val_split`", &cfg.val_split),
    ] {
        if *split == cfg.test_split {
            return Err(Error::Config(format!(
                "{flag} {split} is the test split: {} would be chosen on the images they are \
                 scored on; use another split (or `val_split` none)",
                if flag == "`train_split`" {
                    "the heads"
                } else {
                    "the epoch kept by early stopping"
                }
            )));
        }
    }
    if cfg.train_split == cfg.val_split {
        return Err(Error::Config(format!(
            "`val_split` {} is the training split: early stopping would select on training \
             images; use another split (or `val_split` none)",
            cfg.val_split
        )));
    }
    // An output that is one of the inputs (or inside a run being read) would destroy it.
    let inputs: Vec<(&str, &Path)> = [
        ("`model`", cfg.model.as_deref()),
        ("`data`", Some(cfg.data.as_path())),
        ("`float_twin`", cfg.float_twin.as_deref()),
        ("`scratch`", cfg.scratch.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| p.map(|p| (flag, p)))
    .collect();
    crate::atomic::check_output("`out`", &cfg.out, &inputs)
}

/// The opened splits of the target set: train, val (if any), test, and all of them in that order.
struct Splits {
    train: Arc<ImageFolder>,
    val: Option<Arc<ImageFolder>>,
    test: Arc<ImageFolder>,
    all: Vec<Arc<ImageFolder>>,
}

/// Opens the train, val (when the set has it) and test splits and checks they share classes.
fn open_splits(cfg: &TransferConfig, observer: &dyn Observer) -> Result<(Layout, Splits)> {
    let layout = cfg
        .layout
        .resolve(&cfg.data)
        .context_with(|| format!("reading {}", cfg.data.display()))?;
    let train = open(&cfg.data, layout, &cfg.train_split)?;
    let test = open(&cfg.data, layout, &cfg.test_split)?;
    // Only a set without that split trains without validation; a split that is there but
    // cannot be read (a damaged archive, no images) is an error like any other.
    let present = layout
        .splits(&cfg.data)
        .context_with(|| format!("reading {}", cfg.data.display()))?;
    let val = if cfg.val_split == "none" {
        None
    } else if !present.contains(&cfg.val_split) {
        observer.note(&format!(
            "no validation split '{}' in {} (splits: {}); training every head for {} epochs",
            cfg.val_split,
            cfg.data.display(),
            present.join(", "),
            cfg.epochs
        ));
        None
    } else {
        Some(open(&cfg.data, layout, &cfg.val_split)?)
    };
    let mut all = vec![train.clone()];
    all.extend(val.clone());
    all.push(test.clone());
    if let Some(w) = train.warning() {
        observer.warn(w);
    }
    for s in &all {
        if s.classes != train.classes {
            return Err(Error::Config(format!(
                "split '{}' of {} has other classes than '{}'",
                s.split(),
                cfg.data.display(),
                train.split()
            )));
        }
    }
    let splits = Splits {
        train,
        val,
        test,
        all,
    };
    Ok((layout, splits))
}

/// Refuses a `--scratch` run not trained on the target's classes (its scores would be of
/// another task, or its labels would mean other classes) and a `--float-twin` that reads images
/// of another size than the extractor (its rows would not compare the same inputs), before
/// anything is extracted: the error names the flag, the run and what differs.
fn check_runs(cfg: &TransferConfig, file: &ExtractorFile, train: &ImageFolder) -> Result<()> {
    let read = |flag: &str, dir: &Path| {
        crate::train::checkpoint::read_config(dir)
            .context_with(|| format!("{flag} {}", dir.display()))
    };
    if let Some(dir) = &cfg.scratch {
        let run = read("`scratch`", dir)?;
        if run.classes != train.classes {
            let first = run
                .classes
                .iter()
                .zip(&train.classes)
                .position(|(a, b)| a != b)
                .unwrap_or(run.classes.len().min(train.classes.len()));
            let name = |c: &[String]| c.get(first).map_or("none".into(), |n| format!("'{n}'"));
            return Err(Error::Config(format!(
                "`scratch` {}: the run was trained on other classes than split '{}' of {}: \
                 {} classes against {}, class {first} is {} there and {} here; give a run \
                 trained on this data set",
                dir.display(),
                train.split(),
                cfg.data.display(),
                run.classes.len(),
                train.classes.len(),
                name(&run.classes),
                name(&train.classes),
            )));
        }
    }
    if let Some(dir) = &cfg.float_twin {
        let run = read("`float_twin`", dir)?;
        let (twin, ours) = (run.model.arch.input, file.graph.input.size);
        if twin != ours {
            return Err(Error::Config(format!(
                "`float_twin` {}: the run reads {twin} px images, the extractor's input is \
                 {ours} px; give the float twin of this extractor (same architecture and input \
                 size)",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Checks every head's settings and that `--out` is writable, before anything is extracted,
/// allocated or written; returns the head-training settings shared by every row.
fn check_heads(
    cfg: &TransferConfig,
    file: &ExtractorFile,
    plans: &[Plan],
    sets: &Splits,
) -> Result<FitConfig> {
    let fit_cfg = FitConfig {
        hidden: vec![],
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        patience: if sets.val.is_some() { cfg.patience } else { 0 },
        seed: cfg.seed,
    };
    for plan in plans {
        let dim = file.layers[file.layer_index(&plan.cut)?].spec.out_len();
        FitConfig {
            hidden: plan.hidden.clone(),
            ..fit_cfg.clone()
        }
        .validate_for_data(
            dim,
            sets.train.classes.len(),
            sets.train.len(),
            // The head of --retrain K is set by K, not by --head: name the flag to change.
            &match plan.retrain {
                Some(k) => format!("`retrain` {k}"),
                None => format!("`head` {}", cfg.head),
            },
        )?;
    }
    // Before any extraction or training: an output directory that cannot be written fails now,
    // not after the work.
    crate::atomic::check_writable("`out`", &cfg.out)?;
    crate::atomic::remove_stale_temps(&cfg.out)?;
    Ok(fit_cfg)
}

/// One backbone's features of every split at every cut: `[split][cut]`, splits in
/// [`Splits::all`] order.
type SplitFeatures = Vec<Vec<FeatureSet>>;

/// Batch size of feature extraction (binary and float twin).
const EXTRACT_BATCH: usize = 64;

/// The binary backbone's features and what was measured while computing them.
struct BinaryFeatures {
    features: SplitFeatures,
    /// Seconds per split (0: from the cache).
    extraction_s: Vec<(String, f64)>,
    /// Where the extractor ran, in words.
    device_name: String,
    /// Whether that is the CPU binary path.
    on_cpu_path: bool,
    /// With `--baseline`: milliseconds per image at batch 1, and the file's bytes.
    ms_per_image: Option<f64>,
    model_bytes: Option<u64>,
}

/// Extracts (or reads from the cache) the binary features of every split at every cut, on
/// wgpu if possible, else the CPU path; with `--baseline` also times the backbone.
fn binary_features(
    cfg: &TransferConfig,
    backbone: &crate::assets::Backbone,
    cuts: &[String],
    layout: Layout,
    sets: &Splits,
    observer: &dyn Observer,
) -> Result<BinaryFeatures> {
    let extractor =
        FeatureExtractor::from_backbone_blocking(backbone.clone(), None, cfg.extractor_device)?;
    if let Some(note) = extractor.device_note() {
        observer.note(note);
    }
    let device_name = extractor.device().to_string();
    let file = extractor.file();
    let cache = Cache {
        dir: cfg.cache_dir.clone().unwrap_or_else(Cache::default_dir),
    };
    crate::atomic::remove_stale_temps(&cache.dir)?;
    observer.note(&format!(
        "extractor {} ({} layers, cut points {}) on {device_name}; data {} ({layout}, {} classes: {})",
        backbone.label,
        file.layers.len(),
        cuts.join(", "),
        cfg.data.display(),
        sets.train.classes.len(),
        sets.all
            .iter()
            .map(|s| format!("{} {}", s.split(), s.len()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut extraction_s = Vec::new();
    let mut features = Vec::new();
    for s in &sets.all {
        let (sets, secs) = features::extractor_features(
            &extractor,
            s.clone(),
            cuts,
            &cache,
            EXTRACT_BATCH,
            cfg.workers,
            observer,
        )?;
        observer.note(&format!(
            "  {} features: {}",
            s.split(),
            if secs > 0.0 {
                format!(
                    "extracted in {secs:.1} s ({:.1} images/s)",
                    s.len() as f64 / secs
                )
            } else {
                "from the cache".to_string()
            }
        ));
        extraction_s.push((s.split().to_string(), secs));
        features.push(sets);
    }
    let ms_per_image = match &cfg.baseline {
        Some(_) => Some(super::baseline::binary_ms_per_image(&extractor)?),
        None => None,
    };
    let model_bytes = cfg
        .baseline
        .as_ref()
        .map(|_| file.to_bytes().map(|b| b.len() as u64))
        .transpose()?;
    Ok(BinaryFeatures {
        features,
        extraction_s,
        device_name,
        on_cpu_path: extractor.on_cpu_path(),
        ms_per_image,
        model_bytes,
    })
}

/// Features of the float twin (`--float-twin`) of every split at every cut, `[split][cut]`,
/// adding the seconds per split to `extraction_s`; `None` without a twin.
fn twin_features(
    cfg: &TransferConfig,
    cuts: &[String],
    splits: &[Arc<ImageFolder>],
    extraction_s: &mut Vec<(String, f64)>,
    observer: &dyn Observer,
) -> Result<Option<SplitFeatures>> {
    let Some(dir) = &cfg.float_twin else {
        return Ok(None);
    };
    let mut all = Vec::new();
    for s in splits {
        let (sets, secs) = super::twin::checkpoint_features(
            dir,
            s.clone(),
            cuts,
            EXTRACT_BATCH,
            cfg.workers,
            observer,
        )
        .context_with(|| format!("float twin features from {}", dir.display()))?;
        observer.note(&format!(
            "  {} float-twin features: {secs:.1} s (burn, CPU)",
            s.split()
        ));
        extraction_s.push((s.split().to_string(), secs));
        all.push(sets);
    }
    Ok(Some(all))
}

/// What every head of the experiment shares: the settings, the task, and where the val and
/// test features are in each backbone's `[split][cut]` lists.
struct Heads<'a> {
    cfg: &'a TransferConfig,
    fit: &'a FitConfig,
    cuts: &'a [String],
    classes: &'a [String],
    input_size: usize,
    layout: Layout,
    val: Option<usize>,
    test: usize,
    threads: crate::cpu::Threads,
}

/// Trains and scores every head of `plans` on the binary features, then on the float twin's
/// (if any); returns the rows and the seconds of head training.
fn train_heads(
    ctx: &Heads,
    plans: &[Plan],
    backbone: &crate::assets::Backbone,
    binary: &BinaryFeatures,
    twin: Option<&SplitFeatures>,
    observer: &dyn Observer,
) -> Result<(Vec<Row>, f64)> {
    let cfg = ctx.cfg;
    let mut rows = Vec::new();
    let mut head_training_s = 0.0;
    let backbones: Vec<(&str, &SplitFeatures, BackboneInfo)> = std::iter::once((
        "binary",
        &binary.features,
        BackboneInfo {
            kind: BackboneKind::Extractor,
            path: backbone.label.clone(),
            fingerprint: backbone.fingerprint.hex(),
        },
    ))
    .chain(twin.map(|t| {
        (
            "float-twin",
            t,
            BackboneInfo {
                kind: BackboneKind::Checkpoint,
                path: cfg.float_twin.as_ref().expect("twin").display().to_string(),
                fingerprint: String::new(),
            },
        )
    }))
    .collect();
    for (name, feats, info) in &backbones {
        for plan in plans {
            let mut row = train_head(ctx, name, feats, info, plan, observer)?;
            head_training_s += row.head_train_s;
            if *name == "binary" {
                row.ms_per_image = binary.ms_per_image;
                row.model_bytes = binary.model_bytes;
            }
            rows.push(row);
        }
    }
    Ok((rows, head_training_s))
}

/// Trains the head of `plan` on backbone `name`'s features, scores it on test, writes its
/// folder (`head.safetensors`, `metrics.csv`) and returns its row (no timing or file size).
fn train_head(
    ctx: &Heads,
    name: &str,
    feats: &[Vec<FeatureSet>],
    info: &BackboneInfo,
    plan: &Plan,
    observer: &dyn Observer,
) -> Result<Row> {
    let cfg = ctx.cfg;
    let c = ctx
        .cuts
        .iter()
        .position(|c| *c == plan.cut)
        .expect("cut listed");
    let tr = &feats[0][c];
    let hname = head_name(&plan.hidden);
    let task_name = format!("{name} {} {hname}", plan.cut);
    let task = Task::start(observer, &task_name, ctx.fit.epochs as u64);
    // Classes, dim and hidden widths are filled in from the features and the settings.
    let about = HeadInfo {
        version: head::HEAD_VERSION,
        classes: vec![],
        backbone: info.clone(),
        cut: plan.cut.clone(),
        dim: 0,
        hidden: vec![],
        input_size: ctx.input_size,
        data: cfg.data.display().to_string(),
        layout: ctx.layout.to_string(),
    };
    let settings = FitConfig {
        hidden: plan.hidden.clone(),
        ..ctx.fit.clone()
    };
    let va = ctx.val.map(|i| &feats[i][c]);
    let (head, fitted) = fit::train_head_with(tr, va, &settings, about, &ctx.threads, &mut |e| {
        task.set(task.done() + 1, &e.summary());
    })?;
    drop(task);
    let te = &feats[ctx.test][c];
    let logits = head.logits(&te.x)?;
    let eval = evaluate(&logits, &te.labels, ctx.classes, 10);
    let dir = cfg.out.join(format!(
        "{name}-{}-{}",
        plan.cut,
        hname.replace([':', ','], "-")
    ));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    crate::atomic::remove_stale_temps(&dir)?;
    head.save(&dir.join("head.safetensors"))?;
    crate::atomic::write_atomic(
        &dir.join("metrics.csv"),
        crate::csv_file::to_string(&fitted.history)?.as_bytes(),
    )?;
    let val_top1 = fitted
        .history
        .get(fitted.best_epoch - 1)
        .and_then(|e| e.val_top1);
    observer.note(&format!(
        "  {name:<10} {:<6} {hname:<14} test top-1 {:5.1}%  top-5 {:5.1}%  (val {}, {} epochs, best {}, {:.1} s)",
        plan.cut,
        100.0 * eval.top1,
        100.0 * eval.top5,
        val_top1.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v)),
        fitted.history.len(),
        fitted.best_epoch,
        fitted.seconds
    ));
    Ok(Row {
        backbone: name.to_string(),
        cut: plan.cut.clone(),
        head: hname,
        retrain: plan.retrain,
        features: tr.dim,
        epochs_run: fitted.history.len(),
        best_epoch: fitted.best_epoch,
        stopped_early: fitted.stopped_early,
        head_train_s: fitted.seconds,
        val_top1,
        test: eval,
        dir: Some(dir),
        ms_per_image: None,
        model_bytes: None,
    })
}

/// The EfficientNet-Lite0 baseline (`--baseline`): its linear-head row and the seconds its
/// features took.
fn baseline_row(
    cfg: &TransferConfig,
    weights: &Path,
    sets: &Splits,
    ctx: &Heads,
    observer: &dyn Observer,
) -> Result<(Row, f64)> {
    let b = super::baseline::lite0(
        weights,
        &sets.all,
        sets.val.is_some(),
        ctx.input_size,
        ctx.fit,
        cfg.workers,
        observer,
    )?;
    let row = Row {
        backbone: "efficientnet-lite0 (float)".into(),
        cut: "pool".into(),
        head: "linear".into(),
        retrain: None,
        features: crate::teacher::efficientnet::FEATURES,
        epochs_run: b.epochs.0,
        best_epoch: b.epochs.1,
        stopped_early: b.stopped_early,
        head_train_s: b.head_train_s,
        val_top1: b.val_top1,
        test: b.test,
        dir: None,
        ms_per_image: Some(b.ms_per_image),
        model_bytes: Some(b.model_bytes),
    };
    Ok((row, b.feature_s))
}

/// Writes `report.json`, `results.csv` and `results.svg` under `--out` and says the most
/// confused pair and the times.
fn write_report(
    cfg: &TransferConfig,
    report: &Report,
    test_images: usize,
    observer: &dyn Observer,
) -> Result<()> {
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::Config(format!("report.json: {e}")))?;
    crate::atomic::write_atomic(&cfg.out.join("report.json"), json.as_bytes())?;
    crate::atomic::write_atomic(
        &cfg.out.join("results.csv"),
        results_csv(&report.rows)?.as_bytes(),
    )?;
    let bars: Vec<chart::Bar> = report
        .rows
        .iter()
        .map(|r| chart::Bar {
            backbone: r.backbone.clone(),
            label: match r.retrain {
                Some(k) => format!("retrain {k}"),
                None => format!("{} {}", r.cut, r.head),
            },
            top1: r.test.top1,
            top5: r.test.top5,
        })
        .collect();
    let title = format!(
        "{} on {} ({} classes, {} test images)",
        report.model,
        cfg.data.display(),
        report.classes,
        test_images
    );
    crate::atomic::write_atomic(
        &cfg.out.join("results.svg"),
        chart::svg(&title, &bars)?.as_bytes(),
    )?;
    let worst = report.rows.first().map(|r| &r.test.confusions);
    if let Some(c) = worst.and_then(|c| c.first()) {
        observer.note(&format!(
            "most confused ({} row): '{}' taken for '{}' {} times; per-class accuracy in report.json",
            report.rows[0].backbone, c.truth, c.predicted, c.count
        ));
    }
    observer.note(&format!(
        "time: extraction {:.1} s, head training {:.1} s, total {:.1} s; wrote {}",
        report.extraction_s.iter().map(|e| e.1).sum::<f64>()
            + report.twin_extraction_s.iter().map(|e| e.1).sum::<f64>(),
        report.head_training_s,
        report.total_s,
        cfg.out.join("report.json").display()
    ));
    Ok(())
}

fn scratch_row(
    dir: &Path,
    test: Arc<ImageFolder>,
    workers: usize,
    observer: &dyn Observer,
) -> Result<Row> {
    let device = burn::tensor::Device::flex();
    let (arch, precision, model) = crate::train::checkpoint::load(dir, &device)
        .context_with(|| format!("loading the scratch run {}", dir.display()))?;
    let start = Instant::now();
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle_seed: None,
        workers,
        ..LoaderConfig::default()
    };
    let stop = AtomicBool::new(false);
    let (loss, top1, top5) = crate::train::step::evaluate(
        &model,
        test.clone(),
        Preprocess::eval(arch.input),
        cfg,
        &device,
        &stop,
        observer,
    )?
    .expect("not stopped");
    Ok(Row {
        backbone: format!("scratch ({precision})"),
        cut: "-".into(),
        head: format!("whole {}", arch.name),
        retrain: None,
        features: 0,
        epochs_run: 0,
        best_epoch: 0,
        stopped_early: false,
        head_train_s: start.elapsed().as_secs_f64(),
        val_top1: None,
        test: Evaluation {
            images: test.len(),
            loss,
            top1,
            top5,
            mean_class_accuracy: 0.0,
            per_class: vec![],
            confusions: vec![],
        },
        dir: Some(dir.to_path_buf()),
        ms_per_image: None,
        model_bytes: None,
    })
}

/// One line of `results.csv`.
#[derive(Serialize)]
struct ResultLine<'a> {
    backbone: &'a str,
    cut: &'a str,
    head: &'a str,
    retrain: Option<usize>,
    features: usize,
    val_top1: Option<f64>,
    test_top1: f64,
    test_top5: f64,
    epochs: usize,
    head_s: f64,
    ms_per_image: Option<f64>,
    model_bytes: Option<u64>,
}

fn results_csv(rows: &[Row]) -> crate::Result<String> {
    let lines: Vec<ResultLine> = rows
        .iter()
        .map(|r| ResultLine {
            backbone: &r.backbone,
            cut: &r.cut,
            head: &r.head,
            retrain: r.retrain,
            features: r.features,
            val_top1: r.val_top1,
            test_top1: r.test.top1,
            test_top5: r.test.top5,
            epochs: r.epochs_run,
            head_s: r.head_train_s,
            ms_per_image: r.ms_per_image,
            model_bytes: r.model_bytes,
        })
        .collect();
    crate::csv_file::to_string(&lines)
}

/// The results as a Markdown table, framed by blank lines.
pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "\n| backbone | layers retrained | cut | head | features | val top-1 | test top-1 | \
         test top-5 | epochs (best) | head s | ms/image | model bytes |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {} | {:.1} | {} | {} |\n",
            r.backbone,
            r.retrain.map_or("-".into(), |k| k.to_string()),
            r.cut,
            r.head,
            r.features,
            r.val_top1
                .map_or("-".into(), |v| format!("{:.1}%", 100.0 * v)),
            100.0 * r.test.top1,
            100.0 * r.test.top5,
            if r.epochs_run > 0 {
                format!("{} ({})", r.epochs_run, r.best_epoch)
            } else {
                "-".into()
            },
            r.head_train_s,
            r.ms_per_image.map_or("-".into(), |m| format!("{m:.2}")),
            r.model_bytes.map_or("-".into(), |b| b.to_string()),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25: `--cut conv2,conv2` trained two heads writing the same folder, two rows.
    #[test]
    fn a_cut_or_k_given_twice_is_one_head() {
        let file = crate::bench::extractor::random_file(&crate::Arch::mini(10), 1).unwrap();
        let names = file.layer_names();
        let mut cfg = TransferConfig::new("data");
        cfg.cut = vec![names[1].clone(), names[0].clone(), names[1].clone()];
        let p = plans(&cfg, &file).unwrap();
        let cuts: Vec<&str> = p.iter().map(|p| p.cut.as_str()).collect();
        assert_eq!(cuts, [names[1].as_str(), names[0].as_str()]);
        cfg.retrain = vec![1, 2, 1];
        let p = plans(&cfg, &file).unwrap();
        let ks: Vec<Option<usize>> = p.iter().map(|p| p.retrain).collect();
        assert_eq!(ks, [Some(1), Some(2)]);
    }

    #[test]
    fn selecting_on_the_test_split_is_refused_before_anything_runs() {
        let mut cfg = TransferConfig::new("/nonexistent/data");
        cfg.val_split = "test".into();
        let err = run(&cfg, &crate::progress::Silent)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("`val_split` test"), "{err}");
    }
}
