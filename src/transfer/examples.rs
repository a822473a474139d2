//! Labelled examples collected one image at a time (the web page's "your classes"), and the head
//! trained on them: every fifth image of each class held out to score it, the rest trained on
//! with [`fit`](super::fit) — the same code, and so the same head bit for bit, in the browser and
//! natively (`tests/web.rs`, `tests/extractor/web_fixture.rs`).

use serde::Serialize;

use super::fit::{FitConfig, train_head_with};
use super::head::{Head, HeadInfo};
use crate::cpu::Threads;
use crate::error::{Error, Result};
use crate::feature_extractor::FeatureSet;

/// `HeadInfo::data` of a head trained on images added in the web page.
pub const PAGE_DATA: &str = "images added in the web page";
/// `HeadInfo::layout` of a head trained on images added in the web page.
pub const PAGE_LAYOUT: &str = "web page";

/// Whether the `i`-th image (0-based) of its class is held out to score the trained head: every
/// fifth (the 5th, 10th, …), so a class of 20 images trains on 16 and is scored on 4.
pub fn held_out(i: usize) -> bool {
    i % 5 == 4
}

/// The settings a head of collected examples trains with: [`FitConfig::default`] (linear,
/// AdamW, lr 1e-3, weight decay 1e-2) with batches of 16 (a few dozen images still make
/// hundreds of steps) for 60 epochs without early stopping: the held-out images only score the
/// head, they do not choose it.
pub fn fit_config(seed: u64) -> FitConfig {
    FitConfig {
        epochs: 60,
        batch_size: 16,
        patience: 0,
        seed,
        ..FitConfig::default()
    }
}

/// How a head of collected examples was trained, and its score on the held-out images.
#[derive(Clone, Debug, Serialize)]
pub struct Trained {
    /// Classes.
    pub classes: usize,
    /// Images trained on.
    pub train_images: usize,
    /// Images held out ([`held_out`]).
    pub heldout_images: usize,
    /// Top-1 on the held-out images; `None` without any.
    pub heldout_top1: Option<f64>,
    /// Epochs trained.
    pub epochs: usize,
    /// Head training only, in milliseconds.
    pub ms: f64,
}

/// Features of labelled images, added one at a time; classes are numbered in order of first use.
#[derive(Clone, Debug, Default)]
pub struct Examples {
    classes: Vec<String>,
    items: Vec<(usize, Vec<f32>)>,
}

impl Examples {
    /// Adds the features of one image of `class` (trimmed; an empty name is an error). Returns
    /// how many images the class now has.
    pub fn add(&mut self, class: &str, features: Vec<f32>) -> Result<usize> {
        let class = class.trim();
        if class.is_empty() {
            return Err(Error::Config("name the class first".into()));
        }
        if let Some((_, first)) = self.items.first()
            && first.len() != features.len()
        {
            return Err(Error::Shape(format!(
                "{} features, but the images before had {}",
                features.len(),
                first.len()
            )));
        }
        let label = match self.classes.iter().position(|c| c == class) {
            Some(l) => l,
            None => {
                self.classes.push(class.to_string());
                self.classes.len() - 1
            }
        };
        self.items.push((label, features));
        Ok(self.items.iter().filter(|e| e.0 == label).count())
    }

    /// Forgets every image and class.
    pub fn clear(&mut self) {
        self.classes.clear();
        self.items.clear();
    }

    /// The images as training and held-out feature sets ([`held_out`]), each in the order added.
    pub fn split(&self) -> (FeatureSet, FeatureSet) {
        let dim = self.items.first().map_or(0, |e| e.1.len());
        let empty = || FeatureSet {
            dim,
            x: Vec::new(),
            labels: Vec::new(),
            classes: self.classes.clone(),
        };
        let (mut train, mut heldout) = (empty(), empty());
        let mut seen = vec![0usize; self.classes.len()];
        for (label, features) in &self.items {
            let set = if held_out(seen[*label]) {
                &mut heldout
            } else {
                &mut train
            };
            seen[*label] += 1;
            set.x.extend_from_slice(features);
            set.labels.push(*label);
        }
        (train, heldout)
    }

    /// Trains a linear head ([`fit_config`] with `seed`) on the non-held-out images and scores
    /// it on the held-out ones. `info` says what the head belongs to (its classes, dim and
    /// hidden widths are filled in).
    pub fn train(&self, info: HeadInfo, seed: u64, threads: &Threads) -> Result<(Head, Trained)> {
        if self.classes.len() < 2 {
            return Err(Error::Config(
                "add images of at least two classes first".into(),
            ));
        }
        let (train, heldout) = self.split();
        let cfg = fit_config(seed);
        let start = web_time::Instant::now();
        let (head, _) = train_head_with(&train, None, &cfg, info, threads, &mut |_| {})?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let heldout_top1 = if heldout.is_empty() {
            None
        } else {
            let logits = head.logits(&heldout.x)?;
            Some(crate::eval::evaluate(&logits, &heldout.labels, &heldout.classes, 1).top1)
        };
        let trained = Trained {
            classes: self.classes.len(),
            train_images: train.len(),
            heldout_images: heldout.len(),
            heldout_top1,
            epochs: cfg.epochs,
            ms,
        };
        Ok((head, trained))
    }
}
