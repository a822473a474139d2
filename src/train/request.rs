//! What a user asks of a pretraining run ([`PretrainRequest`], the fields of `bnn pretrain`) and
//! how it becomes a [`PretrainConfig`]: a new run's settings from the data set and the defaults,
//! or, on resume, the run's own `config.json` with a clear error for any option that differs.

use std::path::{Path, PathBuf};

use super::checkpoint;
use super::config::{PretrainConfig, new_config_layout};
use super::distill::{self, Lite0Distill};
use super::schedule::{Schedule, ScheduleKind};
use crate::arch::{ARCH_NAMES, Arch};
use crate::data::{ImageFolder, Layout};
use crate::error::{Error, Result, ResultExt};
use crate::model::Precision;
use crate::teacher::efficientnet;

/// Epochs of a new run unless asked otherwise.
pub const DEFAULT_EPOCHS: usize = 10;
/// Images per batch of a new run unless asked otherwise.
pub const DEFAULT_BATCH: usize = 64;
/// Initial Adam learning rate of a new run unless asked otherwise.
pub const DEFAULT_LR: f64 = 2e-3;
/// Architecture of a new run unless asked otherwise.
pub const DEFAULT_ARCH: &str = "small";

/// A pretraining run as asked for. `None` means "the default" for a new run and "as the run
/// was" on resume (where only `epochs` may change).
#[derive(Clone, Debug, Default)]
pub struct PretrainRequest {
    /// The data set (required for a new run).
    pub data: Option<PathBuf>,
    /// Its layout ([`Layout::Auto`] when `None`).
    pub layout: Option<Layout>,
    /// Architecture name ([`DEFAULT_ARCH`]).
    pub arch: Option<String>,
    /// Binary or float twin (binary).
    pub precision: Option<Precision>,
    /// Total epochs ([`DEFAULT_EPOCHS`]; on resume, the new total).
    pub epochs: Option<usize>,
    /// Images per batch ([`DEFAULT_BATCH`]).
    pub batch_size: Option<usize>,
    /// Initial learning rate ([`DEFAULT_LR`]).
    pub lr: Option<f64>,
    /// Learning-rate schedule (cosine).
    pub schedule: Option<ScheduleKind>,
    /// Step schedule: epochs between decays.
    pub lr_step_epochs: usize,
    /// Step schedule: decay factor.
    pub lr_gamma: f64,
    /// Seed (0).
    pub seed: Option<u64>,
    /// XNOR-Net per-channel weight scale α on the binary layers.
    pub weight_scale: bool,
    /// Distil from this finished run (same images and classes) instead of the labels, or, when it
    /// is a file, from EfficientNet-Lite0's weights (`.pth`).
    pub teacher: Option<PathBuf>,
    /// EfficientNet-Lite0 distillation settings (used when `teacher` is a `.pth` file).
    pub kd: KdRequest,
    /// Two-step training: epochs with real-valued weights first (0: one step).
    pub float_weight_epochs: usize,
    /// Output directory (`runs/<arch>-<precision>`; required on resume).
    pub out: Option<PathBuf>,
    /// Continue the run in `out`.
    pub resume: bool,
}

/// How to distil from EfficientNet-Lite0 (`--teacher FILE.pth`); `None`: the default.
#[derive(Clone, Debug, Default)]
pub struct KdRequest {
    /// Side the teacher runs at ([`crate::teacher::efficientnet::RESOLUTION`]).
    pub resolution: Option<usize>,
    /// Teacher views per image ([`distill::DEFAULT_VIEWS`]).
    pub views: Option<usize>,
    /// Temperature ([`distill::DEFAULT_TEMPERATURE`]).
    pub temperature: Option<f32>,
    /// Label weight ([`distill::DEFAULT_LABEL_WEIGHT`]).
    pub labels: Option<f32>,
    /// Soft-logit weight ([`distill::DEFAULT_LOGIT_WEIGHT`]).
    pub logits: Option<f32>,
    /// Feature weight ([`distill::DEFAULT_FEATURE_WEIGHT`]).
    pub features: Option<f32>,
    /// Where the targets are cached (the feature cache's default directory).
    pub cache_dir: Option<PathBuf>,
}

impl KdRequest {
    fn any(&self) -> bool {
        self.resolution.is_some()
            || self.views.is_some()
            || self.temperature.is_some()
            || self.labels.is_some()
            || self.logits.is_some()
            || self.features.is_some()
            || self.cache_dir.is_some()
    }

    /// The settings of a run distilling from the weights at `weights` (checked by sha256).
    fn resolve(&self, weights: &Path) -> Result<Lite0Distill> {
        let sha256 = efficientnet::verify_file(weights)?;
        let d = Lite0Distill {
            weights: weights.to_path_buf(),
            sha256,
            resolution: self.resolution.unwrap_or(efficientnet::RESOLUTION),
            views: self.views.unwrap_or(distill::DEFAULT_VIEWS),
            temperature: self.temperature.unwrap_or(distill::DEFAULT_TEMPERATURE),
            label_weight: self.labels.unwrap_or(distill::DEFAULT_LABEL_WEIGHT),
            logit_weight: self.logits.unwrap_or(distill::DEFAULT_LOGIT_WEIGHT),
            feature_weight: self.features.unwrap_or(distill::DEFAULT_FEATURE_WEIGHT),
            cache_dir: self
                .cache_dir
                .clone()
                .unwrap_or_else(crate::cache_dir::default_cache_dir),
        };
        d.validate()?;
        Ok(d)
    }
}

/// Whether `--teacher` names EfficientNet-Lite0's weights (a file) rather than a run (a directory).
pub fn is_lite0(teacher: &Path) -> bool {
    teacher.is_file() || teacher.extension().is_some_and(|e| e == "pth")
}

impl PretrainRequest {
    /// The run's configuration and output directory. Errors name the option to fix.
    pub fn resolve(&self) -> Result<(PretrainConfig, PathBuf)> {
        if self.resume {
            let out = self.out.clone().ok_or_else(|| {
                Error::Config("`resume` needs `out` DIR (the run to continue)".into())
            })?;
            let config = checkpoint::read_config(&out).context_with(|| {
                format!(
                    "`resume`: {} is not the directory of a pretraining run",
                    out.display()
                )
            })?;
            self.check_unchanged(&config, &out)?;
            return Ok((config, out));
        }
        let data = self
            .data
            .clone()
            .ok_or_else(|| Error::Config("`data` is required (or `resume` `out` DIR)".into()))?;
        let arch = self.arch.clone().unwrap_or_else(|| DEFAULT_ARCH.into());
        if Arch::by_name(&arch, 1).is_none() {
            let known: Vec<String> = ARCH_NAMES
                .iter()
                .map(|(n, d)| format!("  {n}: {d}"))
                .collect();
            return Err(Error::Config(format!(
                "unknown `arch` '{arch}'; known architectures:\n{}",
                known.join("\n")
            )));
        }
        let precision = self.precision.unwrap_or(Precision::Binary);
        let schedule = Schedule {
            kind: self.schedule.unwrap_or(ScheduleKind::Cosine),
            lr: self.lr.unwrap_or(DEFAULT_LR),
            step_epochs: self.lr_step_epochs,
            gamma: self.lr_gamma,
        };
        let mut config = new_config_layout(
            &data,
            self.layout.unwrap_or_default(),
            &arch,
            precision,
            self.epochs.unwrap_or(DEFAULT_EPOCHS),
            self.batch_size.unwrap_or(DEFAULT_BATCH),
            schedule,
            self.seed.unwrap_or(0),
        )
        .context_with(|| format!("reading the data set {}", data.display()))?;
        config.model.weight_scale = self.weight_scale;
        match &self.teacher {
            Some(t) if is_lite0(t) => {
                let d = self
                    .kd
                    .resolve(t)
                    .context_with(|| format!("`teacher` {}", t.display()))?;
                config.model.feature_head = d.feature_head();
                config.lite0 = Some(d);
            }
            t => {
                if self.kd.any() {
                    return Err(Error::Config(
                        "`kd.*` options need `teacher`: EfficientNet-Lite0's FILE.pth".into(),
                    ));
                }
                config.teacher = t.clone();
            }
        }
        config.float_weight_epochs = self.float_weight_epochs;
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("runs/{arch}-{precision}")));
        Ok((config, out))
    }

    /// On resume only `epochs` may change; anything else given must match `config.json`.
    fn check_unchanged(&self, config: &PretrainConfig, out: &Path) -> Result<()> {
        let mut diffs = Vec::new();
        let mut differs = |same: bool, what: String| {
            if !same {
                diffs.push(what);
            }
        };
        if let Some(d) = &self.data {
            let run = config.data.display();
            differs(
                *d == config.data,
                format!("`data` {} (run: {run})", d.display()),
            );
        }
        if let Some(l) = self.layout {
            let same = l == Layout::Auto || config.layout == Layout::Auto || l == config.layout;
            differs(same, format!("`layout` {l} (run: {})", config.layout));
        }
        if let Some(a) = &self.arch {
            let run = &config.model.arch.name;
            differs(a == run, format!("`arch` {a} (run: {run})"));
        }
        if let Some(p) = self.precision {
            let run = config.model.precision;
            differs(p == run, format!("`precision` {p} (run: {run})"));
        }
        if let Some(b) = self.batch_size {
            let run = config.batch_size;
            differs(b == run, format!("`batch_size` {b} (run: {run})"));
        }
        if let Some(lr) = self.lr {
            let run = config.schedule.lr;
            differs(lr == run, format!("`lr` {lr} (run: {run})"));
        }
        if let Some(s) = self.schedule {
            let run = config.schedule.kind;
            differs(s == run, format!("`schedule` {s:?} (run: {run:?})"));
        }
        if let Some(s) = self.seed {
            differs(
                s == config.seed,
                format!("`seed` {s} (run: {})", config.seed),
            );
        }
        if let Some(t) = &self.teacher {
            let recorded = config
                .teacher
                .as_ref()
                .or(config.lite0.as_ref().map(|d| &d.weights));
            let run = recorded.map_or("none".into(), |r| r.display().to_string());
            differs(
                recorded == Some(t),
                format!("`teacher` {} (run: {run})", t.display()),
            );
        }
        if self.kd.any() {
            differs(false, "`kd.*` options (recorded in the run)".into());
        }
        if diffs.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "`resume` continues the run as configured in {}; only `epochs` may change. \
             Differs: {}. Drop these options, or start a new run with another `out`.",
            out.join(checkpoint::CONFIG_FILE).display(),
            diffs.join(", ")
        )))
    }
}

/// Every named architecture with its layers, parameters, MACs and sizes (`bnn pretrain --arch
/// list`), sized for the classes of `data`'s train split (200 without a data set).
pub fn arch_list(data: Option<&Path>, layout: Layout) -> Result<String> {
    let classes = match data {
        Some(d) => ImageFolder::open_layout(d, layout, "train")?.classes.len(),
        None => 200,
    };
    let mut s = String::new();
    for (name, about) in ARCH_NAMES {
        let arch = Arch::by_name(name, classes).expect("listed names resolve");
        s += &format!("{name}: {about}\n{arch}\n");
    }
    s += "The float twin of each has the same topology, parameters and MACs (float weights, \
          ReLU); its size is the \"float\" figure. Packed binary: 1-bit weights packed in u32 \
          words, f32 first layer and classifier, one threshold per channel.";
    Ok(s)
}
