//! `bnn transfer`: the paper's workflow on a new task. Features from the frozen binary extractor
//! (cached), a float head trained in burn per cut point, test top-1/top-5, per-class accuracy and
//! confusions; optionally the float twin's features with the same heads and a network trained
//! from scratch on the target, in one table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use bnn_transfer::data::{ImageFolder, Layout, LoaderConfig, Preprocess};
use bnn_transfer::extractor::{Extractor, ExtractorFile};
use bnn_transfer::transfer::features::{self, Cache, Runner};
use bnn_transfer::transfer::fit::{self, FitConfig};
use bnn_transfer::transfer::head::{self, BackboneInfo, BackboneKind, Head, HeadInfo};
use bnn_transfer::transfer::{Evaluation, FeatureSet, chart, evaluate};
use serde::Serialize;

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
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
    /// Cut points: the extractor layer(s) whose output feeds the head, comma-separated
    /// (default: the file's own cut). Each cut gets its own head and table row.
    #[arg(long, value_delimiter = ',')]
    pub cut: Vec<String>,
    /// Head: `linear`, or `mlp:H[,H…]` (hidden widths, ReLU between layers).
    #[arg(long, default_value = "linear")]
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
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// Validation split for early stopping (`none`: train all --epochs).
    #[arg(long, default_value = "val")]
    pub val_split: String,
    #[arg(long, default_value = "test")]
    pub test_split: String,
    /// Most head-training epochs.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Stop after this many epochs without a better val top-1 (0: never).
    #[arg(long, default_value_t = 15)]
    pub patience: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Decoupled weight decay (AdamW).
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f32,
    /// Head-training batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the extractor runs (auto: the XNOR kernels on a real GPU, else the CPU binary path).
    #[arg(long, value_enum, default_value = "auto")]
    pub extractor_device: ExtractorDevice,
    /// Feature cache directory [default: $XDG_CACHE_HOME/bnn-transfer or ~/.cache/bnn-transfer].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Output directory: one folder per row (head.safetensors, metrics.csv), report.json,
    /// results.csv, results.svg.
    #[arg(long, default_value = "runs/transfer")]
    pub out: PathBuf,
    /// Image decoding threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

pub use bnn_transfer::transfer::features::ExtractorDevice;

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

fn parse_head(s: &str) -> anyhow::Result<Vec<usize>> {
    if s == "linear" {
        return Ok(vec![]);
    }
    let Some(widths) = s.strip_prefix("mlp:") else {
        bail!("--head must be `linear` or `mlp:H[,H…]`, not '{s}'");
    };
    widths
        .split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(h) if h > 0 => Ok(h),
            _ => bail!("--head {s}: '{w}' is not a positive width"),
        })
        .collect()
}

fn plans(args: &Args, file: &ExtractorFile) -> anyhow::Result<Vec<Plan>> {
    let layers = &file.layers;
    if !args.retrain.is_empty() {
        return args
            .retrain
            .iter()
            .map(|&k| {
                if k == 0 || k > layers.len() {
                    bail!(
                        "--retrain {k}: the extractor has {} layers ({}), so K is 1..={}",
                        layers.len(),
                        file.layer_names().join(", "),
                        layers.len()
                    );
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
    let hidden = parse_head(&args.head)?;
    let cuts = if args.cut.is_empty() {
        vec![file.graph.cut.clone()]
    } else {
        args.cut.clone()
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

#[derive(Serialize)]
pub struct Row {
    pub backbone: String,
    pub cut: String,
    pub head: String,
    pub retrain: Option<usize>,
    pub features: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub stopped_early: bool,
    pub head_train_s: f64,
    pub val_top1: Option<f64>,
    pub test: Evaluation,
    pub dir: Option<PathBuf>,
}

#[derive(Serialize)]
pub struct Report {
    pub command: Vec<String>,
    pub model: String,
    pub data: PathBuf,
    pub splits: Vec<(String, usize)>,
    pub classes: usize,
    pub extractor_device: String,
    pub fit: FitConfig,
    /// Seconds extracting binary features per split (0: from the cache).
    pub extraction_s: Vec<(String, f64)>,
    pub twin_extraction_s: Vec<(String, f64)>,
    pub head_training_s: f64,
    pub total_s: f64,
    pub rows: Vec<Row>,
}

fn open(data: &Path, layout: Layout, split: &str) -> anyhow::Result<Arc<ImageFolder>> {
    Ok(Arc::new(
        ImageFolder::open_layout(data, layout, split)
            .with_context(|| format!("opening split '{split}' of {}", data.display()))?,
    ))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    transfer(args).map(|_| ())
}

/// Runs a whole transfer (see the module docs) and returns its report (also written to
/// `<out>/report.json`).
pub fn transfer(args: Args) -> anyhow::Result<Report> {
    let start = Instant::now();
    let backbone = bnn_transfer::assets::load_backbone(args.model.as_deref())
        .context("loading the extractor")?;
    // Refuses a file whose input is not RGB images before anything is opened.
    backbone.preprocess()?;
    let file = backbone.file.clone();
    let plans = plans(&args, &file)?;
    let mut cuts: Vec<String> = plans.iter().map(|p| p.cut.clone()).collect();
    cuts.sort();
    cuts.dedup();

    let layout = args
        .layout
        .resolve(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let train = open(&args.data, layout, &args.train_split)?;
    let test = open(&args.data, layout, &args.test_split)?;
    // Only a set without that split trains without validation; a split that is there but
    // cannot be read (a damaged archive, no images) is an error like any other.
    let present = layout
        .splits(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?;
    let val = if args.val_split == "none" {
        None
    } else if !present.contains(&args.val_split) {
        eprintln!(
            "no validation split '{}' in {} (splits: {}); training every head for {} epochs",
            args.val_split,
            args.data.display(),
            present.join(", "),
            args.epochs
        );
        None
    } else {
        Some(open(&args.data, layout, &args.val_split)?)
    };
    let mut splits = vec![train.clone()];
    splits.extend(val.clone());
    splits.push(test.clone());
    for s in &splits {
        if s.classes != train.classes {
            bail!(
                "split '{}' of {} has other classes than '{}'",
                s.split(),
                args.data.display(),
                train.split()
            );
        }
    }

    // Every head's settings are checked before anything is extracted, allocated or written.
    let cfg = FitConfig {
        hidden: vec![],
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        weight_decay: args.weight_decay,
        patience: if val.is_some() { args.patience } else { 0 },
        seed: args.seed,
    };
    for plan in &plans {
        let dim = file.layers[file.layer_index(&plan.cut)?].spec.out_len();
        FitConfig {
            hidden: plan.hidden.clone(),
            ..cfg.clone()
        }
        .validate(dim, train.classes.len())?;
    }
    bnn_transfer::atomic::remove_stale_temps(&args.out)?;

    // The extractor: wgpu if possible (or demanded), else the CPU path.
    let (gpu, note) = features::select_gpu(args.extractor_device)?;
    if let Some(note) = note {
        eprintln!("{note}");
    }
    let runner = match &gpu {
        Some(g) => Runner::Gpu(Box::new(Extractor::new(g, file.clone())?)),
        None => Runner::cpu(file.clone())?,
    };
    let device_name = gpu
        .as_ref()
        .map_or("CPU (library's binary path)".to_string(), |g| g.describe());
    let cache = Cache {
        dir: args.cache_dir.clone().unwrap_or_else(Cache::default_dir),
    };
    bnn_transfer::atomic::remove_stale_temps(&cache.dir)?;
    let (fp, stem) = (backbone.fingerprint, backbone.name.clone());
    println!(
        "extractor {} ({} layers, cut points {}) on {device_name}; data {} ({layout}, {} classes: {})",
        backbone.label,
        file.layers.len(),
        cuts.join(", "),
        args.data.display(),
        train.classes.len(),
        splits
            .iter()
            .map(|s| format!("{} {}", s.split(), s.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let batch = 64;
    let mut extraction_s = Vec::new();
    // features[split][cut]
    let mut binary: Vec<Vec<FeatureSet>> = Vec::new();
    for s in &splits {
        let (sets, secs) = features::extractor_features(
            &runner,
            (&stem, fp),
            s.clone(),
            &cuts,
            &cache,
            batch,
            args.workers,
        )?;
        println!(
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
        );
        extraction_s.push((s.split().to_string(), secs));
        binary.push(sets);
    }
    drop(runner);

    let mut twin: Option<Vec<Vec<FeatureSet>>> = None;
    let mut twin_extraction_s = Vec::new();
    if let Some(dir) = &args.float_twin {
        let mut all = Vec::new();
        for s in &splits {
            let (sets, secs) = fit::checkpoint_features(dir, s.clone(), &cuts, batch, args.workers)
                .with_context(|| format!("float twin features from {}", dir.display()))?;
            println!(
                "  {} float-twin features: {secs:.1} s (burn, CPU)",
                s.split()
            );
            twin_extraction_s.push((s.split().to_string(), secs));
            all.push(sets);
        }
        twin = Some(all);
    }

    let device = burn::tensor::Device::flex();
    let (vi, ti) = (val.as_ref().map(|_| 1), splits.len() - 1);
    let mut rows = Vec::new();
    let mut head_training_s = 0.0;
    let backbones: Vec<(&str, &Vec<Vec<FeatureSet>>, BackboneInfo)> = std::iter::once((
        "binary",
        &binary,
        BackboneInfo {
            kind: BackboneKind::Extractor,
            path: backbone.label.clone(),
            fingerprint: fp.hex(),
        },
    ))
    .chain(twin.as_ref().map(|t| {
        (
            "float-twin",
            t,
            BackboneInfo {
                kind: BackboneKind::Checkpoint,
                path: args
                    .float_twin
                    .as_ref()
                    .expect("twin")
                    .display()
                    .to_string(),
                fingerprint: String::new(),
            },
        )
    }))
    .collect();
    for (name, feats, info) in &backbones {
        for plan in &plans {
            let c = cuts
                .iter()
                .position(|c| *c == plan.cut)
                .expect("cut listed");
            let mut tr = feats[0][c].clone();
            let (mean, scale) = head::standardisation(&tr.x, tr.dim);
            head::standardise(&mut tr.x, &mean, &scale);
            let std = |s: &FeatureSet| {
                let mut s = s.clone();
                head::standardise(&mut s.x, &mean, &scale);
                s
            };
            let va = vi.map(|i| std(&feats[i][c]));
            let hname = head_name(&plan.hidden);
            let bar = bnn_transfer::progress::bar(
                cfg.epochs as u64,
                &format!("{name} {} {hname}", plan.cut),
            );
            let fitted = fit::fit(
                &tr,
                va.as_ref(),
                &FitConfig {
                    hidden: plan.hidden.clone(),
                    ..cfg.clone()
                },
                &device,
                &bar,
            )?;
            bar.finish_and_clear();
            head_training_s += fitted.seconds;
            let head = Head {
                info: HeadInfo {
                    version: head::HEAD_VERSION,
                    classes: train.classes.clone(),
                    backbone: info.clone(),
                    cut: plan.cut.clone(),
                    dim: tr.dim,
                    hidden: plan.hidden.clone(),
                    input_size: file.graph.input.size,
                    data: args.data.display().to_string(),
                    layout: layout.to_string(),
                },
                mean,
                scale,
                layers: fitted.layers.clone(),
            };
            let te = &feats[ti][c];
            let logits = head.logits(&te.x)?;
            let eval = evaluate(&logits, &te.labels, &train.classes, 10);
            let dir = args.out.join(format!(
                "{name}-{}-{}",
                plan.cut,
                hname.replace([':', ','], "-")
            ));
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            bnn_transfer::atomic::remove_stale_temps(&dir)?;
            head.save(&dir.join("head.safetensors"))?;
            bnn_transfer::atomic::write_atomic(
                &dir.join("metrics.csv"),
                bnn_transfer::csv_file::to_string(&fitted.history)?.as_bytes(),
            )?;
            let val_top1 = fitted
                .history
                .get(fitted.best_epoch - 1)
                .and_then(|e| e.val_top1);
            println!(
                "  {name:<10} {:<6} {hname:<14} test top-1 {:5.1}%  top-5 {:5.1}%  (val {}, {} epochs, best {}, {:.1} s)",
                plan.cut,
                100.0 * eval.top1,
                100.0 * eval.top5,
                val_top1.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v)),
                fitted.history.len(),
                fitted.best_epoch,
                fitted.seconds
            );
            rows.push(Row {
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
            });
        }
    }
    if let Some(dir) = &args.scratch {
        rows.push(scratch_row(dir, test.clone(), args.workers)?);
    }

    print_table(&rows);
    let report = Report {
        command: std::env::args().collect(),
        model: backbone.label.clone(),
        data: args.data.clone(),
        splits: splits
            .iter()
            .map(|s| (s.split().to_string(), s.len()))
            .collect(),
        classes: train.classes.len(),
        extractor_device: device_name,
        fit: cfg,
        extraction_s,
        twin_extraction_s,
        head_training_s,
        total_s: start.elapsed().as_secs_f64(),
        rows,
    };
    std::fs::create_dir_all(&args.out)?;
    let json = serde_json::to_string_pretty(&report)?;
    bnn_transfer::atomic::write_atomic(&args.out.join("report.json"), json.as_bytes())?;
    bnn_transfer::atomic::write_atomic(
        &args.out.join("results.csv"),
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
        args.data.display(),
        report.classes,
        test.len()
    );
    bnn_transfer::atomic::write_atomic(
        &args.out.join("results.svg"),
        chart::svg(&title, &bars)?.as_bytes(),
    )?;
    let worst = report.rows.first().map(|r| &r.test.confusions);
    if let Some(c) = worst.and_then(|c| c.first()) {
        println!(
            "most confused ({} row): '{}' taken for '{}' {} times; per-class accuracy in report.json",
            report.rows[0].backbone, c.truth, c.predicted, c.count
        );
    }
    println!(
        "time: extraction {:.1} s, head training {:.1} s, total {:.1} s; wrote {}",
        report.extraction_s.iter().map(|e| e.1).sum::<f64>()
            + report.twin_extraction_s.iter().map(|e| e.1).sum::<f64>(),
        report.head_training_s,
        report.total_s,
        args.out.join("report.json").display()
    );
    Ok(report)
}

fn scratch_row(dir: &Path, test: Arc<ImageFolder>, workers: usize) -> anyhow::Result<Row> {
    let device = burn::tensor::Device::flex();
    let (arch, precision, model) = bnn_transfer::train::checkpoint::load(dir, &device)
        .with_context(|| format!("loading the scratch run {}", dir.display()))?;
    let bar = bnn_transfer::progress::bar(0, "scratch");
    let start = Instant::now();
    let cfg = LoaderConfig {
        batch_size: 64,
        shuffle_seed: None,
        workers,
        ..LoaderConfig::default()
    };
    let stop = AtomicBool::new(false);
    let (loss, top1, top5) = bnn_transfer::train::pretrain::evaluate(
        &model,
        test.clone(),
        Preprocess::eval(arch.input),
        cfg,
        &device,
        &stop,
        &bar,
    )?
    .expect("not stopped");
    bar.finish_and_clear();
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
}

fn results_csv(rows: &[Row]) -> bnn_transfer::Result<String> {
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
        })
        .collect();
    bnn_transfer::csv_file::to_string(&lines)
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| backbone | layers retrained | cut | head | features | val top-1 | test top-1 | test top-5 | epochs (best) | head s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1}% | {:.1}% | {} | {:.1} |",
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
            r.head_train_s
        );
    }
    println!();
}
