//! Training a head on features (AdamW with decoupled weight decay, mini-batches, early stopping
//! on the validation split) with the plain-Rust arithmetic of [`super::mlp`]: the same code, and
//! the same head bit for bit, natively (`bnn transfer`, threads over independent outputs) and in
//! the web page (one thread).

use serde::{Deserialize, Serialize};

use super::eval::score;
use super::head::{self, Dense, Head, HeadInfo};
use super::mlp::Mlp;
use crate::cpu::Threads;
use crate::error::{Error, Result};
use crate::feature_extractor::FeatureSet;
use crate::rng::Rng;

/// How a head is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Hidden layer widths (empty: linear).
    pub hidden: Vec<usize>,
    /// Most epochs.
    pub epochs: usize,
    /// Features per optimizer step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Stop after this many epochs without a better validation top-1 (0: never stop early).
    pub patience: usize,
    /// Seed of the initial weights and the shuffles.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            hidden: vec![],
            epochs: 100,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 1e-2,
            patience: 15,
            seed: 0,
        }
    }
}

/// Most parameters a head may have (2^28 f32 = 1 GiB, several times that with AdamW's moments
/// and gradients): far above any useful head, far below an allocation that aborts the process.
pub const MAX_HEAD_PARAMS: u64 = 1 << 28;

/// Parameters per training image beyond which a head is refused (when it is also over
/// [`HEAD_PARAMS_FLOOR`]): such a head memorises its images whatever it sees, and costs hundreds
/// of MB. Flowers-102's 1,020 training images allow 102 M; its usual heads (`--retrain 1,2,3` of
/// the small extractors: 1,152 → 512 → 512 → 102, 0.9 M) are far below.
pub const MAX_HEAD_PARAMS_PER_IMAGE: u64 = 100_000;

/// Heads up to this many parameters (40 MB of f32) are never refused for the size of the training
/// set, so a few-image test set still trains the usual heads.
pub const HEAD_PARAMS_FLOOR: u64 = 10_000_000;

impl FitConfig {
    /// Checks every setting before anything is allocated: the errors name the flag (`--epochs`,
    /// `--lr`, `--head`, …) and what would work.
    pub fn validate(&self, features: usize, classes: usize) -> Result<()> {
        self.validate_as(
            features,
            classes,
            &format!("`head` {}", head_name(&self.hidden)),
        )
    }

    /// [`FitConfig::validate`], the head's size named as `flag`.
    fn validate_as(&self, features: usize, classes: usize, flag: &str) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.epochs == 0 {
            return bad("`epochs` 0: a head needs at least 1 epoch".into());
        }
        if self.batch_size == 0 {
            return bad("`batch_size` 0: give at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "`lr` {}: the learning rate must be a finite number > 0 (e.g. 1e-3)",
                self.lr
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "`weight_decay` {}: must be a finite number >= 0",
                self.weight_decay
            ));
        }
        if let Some(h) = self.hidden.iter().find(|&&h| h == 0) {
            return bad(format!("`head`: a hidden width of {h} is not a layer"));
        }
        let params = self.params(features, classes);
        if params > MAX_HEAD_PARAMS {
            return bad(format!(
                "{flag}: {params} parameters on {features} features and {classes} classes, \
                 over the limit of {MAX_HEAD_PARAMS}; choose narrower hidden layers",
            ));
        }
        Ok(())
    }

    /// Weights and biases of the head on `features` inputs and `classes` outputs (`u64::MAX` on
    /// overflow).
    pub fn params(&self, features: usize, classes: usize) -> u64 {
        let dims: Vec<u64> = std::iter::once(features)
            .chain(self.hidden.iter().copied())
            .chain([classes])
            .map(|d| d as u64)
            .collect();
        dims.windows(2)
            .try_fold(0u64, |acc, w| {
                w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(acc)
            })
            .unwrap_or(u64::MAX)
    }

    /// [`FitConfig::validate`], then refuses a head far bigger than `images` training images can
    /// fit: over [`MAX_HEAD_PARAMS_PER_IMAGE`] per image and over [`HEAD_PARAMS_FLOOR`]. `flag`
    /// names the setting that chose the head (`--head mlp:4096` or `--retrain 7`).
    pub fn validate_for_data(
        &self,
        features: usize,
        classes: usize,
        images: usize,
        flag: &str,
    ) -> Result<()> {
        self.validate_as(features, classes, flag)?;
        let params = self.params(features, classes);
        let bound = (images as u64)
            .saturating_mul(MAX_HEAD_PARAMS_PER_IMAGE)
            .max(HEAD_PARAMS_FLOOR);
        if params > bound {
            return Err(Error::Config(format!(
                "{flag}: the head {} on {features} features would have {params} parameters \
                 ({:.0} MB of f32) for {images} training images, over the {bound} that many \
                 images allow ({MAX_HEAD_PARAMS_PER_IMAGE} per image, at least \
                 {HEAD_PARAMS_FLOOR}); it would only memorise them. Choose a smaller head: a \
                 smaller `retrain` K, narrower `head` widths, or a later `cut`",
                head_name(&self.hidden),
                params as f64 * 4.0 / 1e6,
            )));
        }
        Ok(())
    }
}

/// `linear` or `mlp:512,512`, as `--head` spells it.
pub fn head_name(hidden: &[usize]) -> String {
    if hidden.is_empty() {
        "linear".into()
    } else {
        let w: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
        format!("mlp:{}", w.join(","))
    }
}

/// One epoch of head training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitEpoch {
    /// 1-based.
    pub epoch: usize,
    /// Mean training cross-entropy over the epoch (taken as the weights changed).
    pub train_loss: f64,
    /// Training top-1 over the epoch.
    pub train_top1: f64,
    /// Validation cross-entropy after the epoch; None without a validation set.
    pub val_loss: Option<f64>,
    /// Validation top-1 after the epoch; None without a validation set.
    pub val_top1: Option<f64>,
}

impl FitEpoch {
    /// One line for a progress bar: the validation top-1, or the training loss without one.
    pub fn summary(&self) -> String {
        match self.val_top1 {
            Some(t) => format!("val top-1 {:.1}%", 100.0 * t),
            None => format!("train loss {:.3}", self.train_loss),
        }
    }
}

/// A trained head's layers and how training went.
#[derive(Clone, Debug)]
pub struct Fitted {
    /// The kept layers (from `best_epoch`), input first.
    pub layers: Vec<Dense>,
    /// Every epoch trained.
    pub history: Vec<FitEpoch>,
    /// The epoch whose weights were kept (best validation top-1, or the last one).
    pub best_epoch: usize,
    /// Whether patience ran out before `epochs`.
    pub stopped_early: bool,
    /// Wall time of the training, seconds.
    pub seconds: f64,
}

fn rows(set: &FeatureSet, idx: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let d = set.dim;
    let mut x = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        x.extend_from_slice(&set.x[i * d..(i + 1) * d]);
    }
    (x, idx.iter().map(|&i| set.labels[i]).collect())
}

/// Every label of `set` names one of `classes` classes, and every row has `dim` features (a
/// feature cache edited or corrupted on disk would otherwise panic while indexing).
fn check_set(set: &FeatureSet, what: &str, dim: usize, classes: usize) -> Result<()> {
    if set.dim != dim || set.x.len() != set.labels.len() * dim {
        return Err(Error::Dataset(format!(
            "{what} features: {} values for {} images of {} features; expected {dim} per image",
            set.x.len(),
            set.labels.len(),
            set.dim
        )));
    }
    if let Some(l) = set.labels.iter().find(|&&l| l >= classes) {
        return Err(Error::Dataset(format!(
            "{what} features: label {l} but only {classes} classes; the feature cache is stale \
             or corrupt: delete it and run again"
        )));
    }
    Ok(())
}

/// Trains a head on raw features: standardisation from `train` (stored in the head, applied to
/// `val` and at prediction), then [`fit`] on all cores. `info` says what the head belongs to; its
/// `classes`, `dim` and `hidden` are set from `train` and `cfg`. Returns the head and how
/// training went.
pub fn train_head(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    cfg: &FitConfig,
    info: HeadInfo,
) -> Result<(Head, Fitted)> {
    train_head_with(train, val, cfg, info, &Threads::all()?, &mut |_| {})
}

/// [`train_head`] on `threads` (the head does not depend on how many), calling `on_epoch` after
/// every epoch.
pub fn train_head_with(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    cfg: &FitConfig,
    info: HeadInfo,
    threads: &Threads,
    on_epoch: &mut dyn FnMut(&FitEpoch),
) -> Result<(Head, Fitted)> {
    let (mean, scale) = head::standardisation(&train.x, train.dim);
    let standardised = |s: &FeatureSet| {
        let mut s = s.clone();
        head::standardise(&mut s.x, &mean, &scale);
        s
    };
    let (tr, va) = (standardised(train), val.map(standardised));
    let fitted = fit(&tr, va.as_ref(), cfg, threads, on_epoch)?;
    let head = Head {
        info: HeadInfo {
            classes: train.classes.clone(),
            dim: train.dim,
            hidden: cfg.hidden.clone(),
            ..info
        },
        mean,
        scale,
        layers: fitted.layers.clone(),
    };
    Ok((head, fitted))
}

/// Trains a head on `train` (standardised features) with early stopping on `val`: per epoch one
/// shuffle of the rows (`Rng::shuffle`, seeded by `cfg.seed` after the initial weights), then
/// one AdamW step per `batch_size` rows in that order; the kept layers are those of the epoch
/// with the best validation top-1 (the first of equals), or the last epoch without `val`.
pub fn fit(
    train: &FeatureSet,
    val: Option<&FeatureSet>,
    cfg: &FitConfig,
    threads: &Threads,
    on_epoch: &mut dyn FnMut(&FitEpoch),
) -> Result<Fitted> {
    if train.is_empty() {
        return Err(Error::Dataset("no training features".into()));
    }
    let classes = train.classes.len();
    cfg.validate(train.dim, classes)?;
    check_set(train, "train", train.dim, classes)?;
    if let Some(v) = val {
        check_set(v, "val", train.dim, classes)?;
    }
    let start = web_time::Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let dims: Vec<usize> = std::iter::once(train.dim)
        .chain(cfg.hidden.iter().copied())
        .chain([classes])
        .collect();
    let mut net = Mlp::new(&dims, &mut rng);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Vec<Dense>)> = None;
    let mut stopped_early = false;
    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let (mut loss_sum, mut hits) = (0.0f64, 0u64);
        for chunk in order.chunks(cfg.batch_size.max(1)) {
            let (x, labels) = rows(train, chunk);
            let (logits, loss) = net.step(&x, &labels, cfg.lr as f32, cfg.weight_decay, threads);
            loss_sum += loss;
            hits += score(&logits, classes, &labels).1;
        }
        let n = train.len() as f64;
        let (val_loss, val_top1) = match val {
            Some(v) if !v.is_empty() => {
                let (l, t1, _) = score(&net.logits(&v.x, threads), classes, &v.labels);
                (Some(l / v.len() as f64), Some(t1 as f64 / v.len() as f64))
            }
            _ => (None, None),
        };
        let record = FitEpoch {
            epoch,
            train_loss: loss_sum / n,
            train_top1: hits as f64 / n,
            val_loss,
            val_top1,
        };
        on_epoch(&record);
        history.push(record);
        match val_top1 {
            Some(t) => {
                if best.as_ref().is_none_or(|b| t > b.0) {
                    best = Some((t, epoch, net.to_dense()));
                } else if cfg.patience > 0
                    && epoch - best.as_ref().map_or(0, |b| b.1) >= cfg.patience
                {
                    stopped_early = true;
                    break;
                }
            }
            None => best = Some((0.0, epoch, net.to_dense())),
        }
    }
    let (_, best_epoch, layers) =
        best.ok_or_else(|| Error::Config("no epoch was trained".into()))?;
    Ok(Fitted {
        layers,
        history,
        best_epoch,
        stopped_early,
        seconds: start.elapsed().as_secs_f64(),
    })
}
