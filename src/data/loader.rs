//! Batching with a prefetch pipeline: one pass (epoch) over an [`ImageFolder`], decoded ahead of
//! the consumer on a small tokio runtime.
//!
//! - The index list (`0..len`, shuffled with [`Rng`] when a seed is given) is cut into chunks of
//!   `batch_size`; batch k always comes from chunk k, and batches are delivered in order, so a
//!   run is reproducible for a given seed whatever the thread timing.
//! - Each image is read and decoded in `spawn_blocking` on at most `workers` threads; up to
//!   `prefetch` batches are in flight, plus one finished batch waiting in a bounded channel.
//! - Augmentation randomness comes from `(seed, sample index)` only (seed = `shuffle_seed`, or 0
//!   without one), so it too is independent of timing. For new augmentations every epoch, give
//!   every epoch's loader its own seed (e.g. `seed + epoch`).
//! - An unreadable or corrupt image is reported as a warning with its name to the observer
//!   given to [`Loader::report_to`] (none by default), counted in
//!   [`Loader::skipped`], and left out of its batch: that batch is simply shorter (batch k still
//!   holds only chunk k, also with `drop_last`). A chunk whose images all fail yields no batch.
//!   With `strict`, the first such image is an error naming it, and the pass ends there. A tar
//!   entry that can no longer be read (the archive changed after it was indexed) is always an
//!   error ([`Error::DamagedArchive`]): the archive is damaged, not one image.
//! - Dropping the loader early stops the pipeline: queued decodes are skipped, running ones
//!   finish (milliseconds), and the threads are joined.
//!
//! The loader is a blocking iterator: use it from a plain thread (or `spawn_blocking`), not from
//! inside an async task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::folder::ImageFolder;
use super::preprocess::{Preprocess, load_image_flip};
use crate::error::{Error, Result};
use crate::progress::{Observer, Silent};
use crate::rng::Rng;

/// A batch of preprocessed images.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[n][size][size][3]`, NHWC row-major.
    pub images: Vec<f32>,
    /// Label of each image.
    pub labels: Vec<usize>,
    /// Index of each image in the [`ImageFolder`] (its `samples`).
    pub indices: Vec<usize>,
    /// Whether each image was mirrored by the augmentation (always false without it).
    pub flipped: Vec<bool>,
    /// Image side in pixels.
    pub size: usize,
}

impl Batch {
    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The values of image `i` (`size * size * 3`, HWC).
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.size * self.size * 3;
        &self.images[i * n..(i + 1) * n]
    }
}

/// How a [`Loader`] batches one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle the order with this seed (also the augmentation seed); `None`: set order.
    pub shuffle_seed: Option<u64>,
    /// Leave out the last chunk when it is shorter than `batch_size`.
    pub drop_last: bool,
    /// An unreadable image is an error instead of being skipped.
    pub strict: bool,
    /// Batches decoded ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// Decoding threads; 0 means the available parallelism.
    pub workers: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            shuffle_seed: None,
            drop_last: false,
            strict: false,
            prefetch: 4,
            workers: default_workers(),
        }
    }
}

/// The available parallelism (1 when unknown).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the pipeline hands the consumer for one chunk.
struct Delivery {
    /// `None` when every image of the chunk was skipped.
    batch: Option<Result<Batch>>,
    /// (name, reason) of the images skipped in this chunk, in order.
    skipped: Vec<(String, String)>,
}

/// Iterator over the batches of one pass; see the module doc.
pub struct Loader<'o> {
    observer: &'o dyn Observer,
    rx: Option<mpsc::Receiver<Delivery>>,
    runtime: Option<Runtime>,
    cancel: Arc<AtomicBool>,
    skipped: Vec<String>,
    source: std::path::PathBuf,
    batches: usize,
    pending_error: Option<Error>,
    done: bool,
}

impl<'o> Loader<'o> {
    /// Starts decoding right away (the first batches are ready sooner).
    pub fn new(set: Arc<ImageFolder>, pre: Preprocess, cfg: LoaderConfig) -> Self {
        let n = set.len();
        let batches = match cfg.batch_size {
            0 => 0,
            bs if cfg.drop_last => n / bs,
            bs => n.div_ceil(bs),
        };
        let mut loader = Loader {
            observer: &Silent,
            rx: None,
            runtime: None,
            cancel: Arc::new(AtomicBool::new(false)),
            skipped: Vec::new(),
            source: set.source().to_path_buf(),
            batches,
            pending_error: None,
            done: false,
        };
        if cfg.batch_size == 0 {
            loader.pending_error = Some(Error::Dataset("batch size must be at least 1".into()));
            return loader;
        }
        if pre.size == 0 {
            loader.pending_error = Some(Error::Dataset("image size must be at least 1".into()));
            return loader;
        }
        if batches == 0 {
            loader.done = true;
            return loader;
        }
        let workers = if cfg.workers == 0 {
            default_workers()
        } else {
            cfg.workers
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(workers)
            .thread_name("bnn-data")
            .build();
        let runtime = match runtime {
            Ok(rt) => rt,
            Err(e) => {
                loader.pending_error = Some(Error::Dataset(format!(
                    "cannot start the data loader threads: {e}"
                )));
                return loader;
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(seed) = cfg.shuffle_seed {
            Rng::new(seed).shuffle(&mut order);
        }
        let (tx, rx) = mpsc::channel(1);
        let job = Pipeline {
            set,
            pre: Arc::new(pre),
            order: Arc::new(order),
            batch_size: cfg.batch_size,
            batches,
            strict: cfg.strict,
            prefetch: cfg.prefetch.max(1),
            aug_seed: augmentation_seed(cfg.shuffle_seed.unwrap_or(0)),
            cancel: loader.cancel.clone(),
        };
        runtime.spawn(job.run(tx));
        loader.rx = Some(rx);
        loader.runtime = Some(runtime);
        loader
    }

    /// Reports each skipped image as a warning to `observer`.
    pub fn report_to(mut self, observer: &'o dyn Observer) -> Self {
        self.observer = observer;
        self
    }

    /// Names of the unreadable images skipped so far (in delivery order).
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.clone()
    }

    /// Number of batches this pass is cut into (chunks of the index list; with skipped images a
    /// chunk may deliver a shorter batch, or none if all of its images fail).
    pub fn batches(&self) -> usize {
        self.batches
    }
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("source", &self.source)
            .field("batches", &self.batches)
            .field("skipped", &self.skipped.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Iterator for Loader<'_> {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let rx = self.rx.as_mut()?;
        loop {
            let Some(delivery) = rx.blocking_recv() else {
                self.done = true;
                return None;
            };
            for (name, reason) in delivery.skipped {
                self.observer.warn(&format!(
                    "skipping unreadable image {name} in {}: {reason}",
                    self.source.display()
                ));
                self.skipped.push(name);
            }
            match delivery.batch {
                None => continue,
                Some(Ok(batch)) => return Some(Ok(batch)),
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Drop for Loader<'_> {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        drop(self.rx.take());
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Inside an async context we may not block: the threads end on their own
                // (queued decodes see the cancel flag).
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(60));
            }
        }
    }
}

/// An error's message without the "data set error:" prefix (it is re-wrapped with the name).
fn reason(e: &Error) -> String {
    match e {
        Error::Dataset(m) => m.clone(),
        e => e.to_string(),
    }
}

/// The seed of the augmentation stream of sample `index`, from the pass's seed.
fn sample_seed(aug_seed: u64, index: usize) -> u64 {
    aug_seed ^ Rng::new(index as u64).next_u64()
}

fn augmentation_seed(seed: u64) -> u64 {
    Rng::new(seed ^ 0x6175_676d_656e_7421).next_u64() // "augment!"
}

/// The producer side: everything the decode jobs need, shared.
struct Pipeline {
    set: Arc<ImageFolder>,
    pre: Arc<Preprocess>,
    order: Arc<Vec<usize>>,
    batch_size: usize,
    batches: usize,
    strict: bool,
    prefetch: usize,
    aug_seed: u64,
    cancel: Arc<AtomicBool>,
}

type Decoded = Option<Result<(Vec<f32>, bool)>>;

impl Pipeline {
    async fn run(self, tx: mpsc::Sender<Delivery>) {
        let mut in_flight: VecDeque<(usize, Vec<JoinHandle<Decoded>>)> = VecDeque::new();
        let mut next = 0;
        loop {
            while in_flight.len() < self.prefetch && next < self.batches {
                in_flight.push_back((next, self.spawn_chunk(next)));
                next += 1;
            }
            let Some((k, jobs)) = in_flight.pop_front() else {
                break;
            };
            let delivery = self.assemble(k, jobs).await;
            let failed = matches!(delivery.batch, Some(Err(_)));
            if tx.send(delivery).await.is_err() || failed {
                break;
            }
        }
        // Early end (consumer gone or an error): let queued jobs return without decoding.
        self.cancel.store(true, Ordering::Relaxed);
    }

    fn chunk(&self, k: usize) -> &[usize] {
        let start = k * self.batch_size;
        &self.order[start..(start + self.batch_size).min(self.order.len())]
    }

    fn spawn_chunk(&self, k: usize) -> Vec<JoinHandle<Decoded>> {
        self.chunk(k)
            .iter()
            .map(|&index| {
                let (set, pre, cancel) = (self.set.clone(), self.pre.clone(), self.cancel.clone());
                let seed = sample_seed(self.aug_seed, index);
                tokio::task::spawn_blocking(move || {
                    if cancel.load(Ordering::Relaxed) {
                        return None;
                    }
                    let bytes = match set.read(index) {
                        Ok(b) => b,
                        Err(e) => return Some(Err(e)),
                    };
                    Some(load_image_flip(&bytes, &pre, &mut Rng::new(seed)))
                })
            })
            .collect()
    }

    async fn assemble(&self, k: usize, jobs: Vec<JoinHandle<Decoded>>) -> Delivery {
        let chunk = self.chunk(k);
        let per_image = self.pre.image_len();
        let mut batch = Batch {
            images: Vec::with_capacity(chunk.len() * per_image),
            labels: Vec::with_capacity(chunk.len()),
            indices: Vec::with_capacity(chunk.len()),
            flipped: Vec::with_capacity(chunk.len()),
            size: self.pre.size,
        };
        let mut skipped = Vec::new();
        for (&index, job) in chunk.iter().zip(jobs) {
            let name = &self.set.samples[index].name;
            let result = match job.await {
                Ok(Some(r)) => r,
                Ok(None) => Err(Error::Dataset("loader stopped".into())),
                Err(e) => Err(Error::Dataset(format!("decoding panicked: {e}"))),
            };
            match result {
                Ok((values, flipped)) => {
                    batch.images.extend_from_slice(&values);
                    batch.flipped.push(flipped);
                    batch.labels.push(self.set.samples[index].label);
                    batch.indices.push(index);
                }
                // A tar that can no longer be read is not one bad image: every later one is
                // gone too.
                Err(e @ Error::DamagedArchive { .. }) => {
                    return Delivery {
                        batch: Some(Err(e)),
                        skipped,
                    };
                }
                Err(e) if self.strict => {
                    let msg = format!(
                        "unreadable image {name} in {}: {} (strict mode; without it the image \
                         would be skipped)",
                        self.set.source().display(),
                        reason(&e)
                    );
                    return Delivery {
                        batch: Some(Err(Error::Dataset(msg))),
                        skipped,
                    };
                }
                Err(e) => skipped.push((name.clone(), reason(&e))),
            }
        }
        Delivery {
            batch: (!batch.is_empty()).then_some(Ok(batch)),
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_seeds_differ_by_index_and_seed() {
        let a = augmentation_seed(1);
        let b = augmentation_seed(2);
        assert_ne!(a, b);
        assert_ne!(sample_seed(a, 0), sample_seed(a, 1));
        assert_ne!(sample_seed(a, 5), sample_seed(b, 5));
        assert_eq!(sample_seed(a, 5), sample_seed(augmentation_seed(1), 5));
    }
}
