//! The float network a user would pick instead of the binary backbone, EfficientNet-Lite0 with
//! ImageNet-1k weights: a burn module that reads Google's weights ([`efficientnet`]), scoring it on
//! a labelled split whose classes are ImageNet WordNet ids ([`score`], `bnn teacher`), and its
//! outputs cached as distillation targets for `bnn pretrain` ([`targets`]). Behind the `train`
//! feature (it is burn).

pub mod efficientnet;
pub mod targets;

use std::sync::Arc;
use std::time::Instant;

use crate::progress::{Observer, Task};
use burn::tensor::Device;
use serde::Serialize;

use crate::data::{ImageFolder, Loader, LoaderConfig};
use crate::error::{Error, Result};
pub use efficientnet::{EfficientNetLite0, Lite0Output};

/// Images per teacher forward pass (flex, 160 px, decoding included: 29.4 ms per image at 16 and
/// 27.7 at 4 on an otherwise idle machine, 33.5 at 64 while a build ran; the batch size is not
/// what limits it here).
pub const BATCH: usize = 64;

/// How the teacher reads a split: in set order, every image (an unreadable one is an error, so
/// no row of the targets is left out), [`BATCH`] at a time, on `workers` decoding threads (0: all).
pub fn loader_config(workers: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size: BATCH,
        shuffle_seed: None,
        drop_last: false,
        strict: true,
        prefetch: 2,
        workers,
    }
}

/// What [`score`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct TeacherScore {
    /// Images scored.
    pub images: usize,
    /// Top-1 accuracy over the source classes (argmax over their ImageNet outputs only).
    pub top1: f64,
    /// Top-5 accuracy, likewise.
    pub top5: f64,
    /// Input side the teacher ran at.
    pub resolution: usize,
    /// Wall milliseconds per image (batched forward, decoding included).
    pub ms_per_image: f64,
}

/// Scores `teacher` on (the first `limit` images of) `set`: its logits restricted to the set's
/// classes through `class_map` (see [`efficientnet::class_map`]), images centre-cropped at
/// `input` and upscaled to `resolution`.
#[allow(clippy::too_many_arguments)]
pub fn score(
    teacher: &EfficientNetLite0,
    set: Arc<ImageFolder>,
    class_map: &[usize],
    input: usize,
    resolution: usize,
    limit: Option<usize>,
    device: &Device,
    observer: &dyn Observer,
) -> Result<TeacherScore> {
    if class_map.len() != set.classes.len() {
        return Err(Error::Shape(format!(
            "class map of {} classes for a set of {}",
            class_map.len(),
            set.classes.len()
        )));
    }
    let cfg = loader_config(0);
    let total = limit.map_or(set.len(), |l| l.min(set.len()));
    let task = Task::start(observer, "teacher", total as u64);
    let start = Instant::now();
    let (mut seen, mut top1, mut top5) = (0usize, 0usize, 0usize);
    for batch in Loader::new(set, efficientnet::preprocess(input), cfg).report_to(observer) {
        if seen >= total {
            break;
        }
        let batch = batch?;
        let images = targets::nchw(&batch.images, batch.len(), batch.size, device);
        let out = teacher.forward(efficientnet::upscale(images, resolution));
        let logits = out
            .logits
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Shape(format!("teacher logits to f32: {e:?}")))?;
        for (r, &label) in batch.labels.iter().enumerate().take(total - seen) {
            let row = &logits[r * efficientnet::IMAGENET_CLASSES..];
            let mine = row[class_map[label]];
            // Rank of the true class among the set's classes (ties count against it).
            let above = class_map
                .iter()
                .enumerate()
                .filter(|&(c, &o)| c != label && row[o] >= mine)
                .count();
            top1 += usize::from(above == 0);
            top5 += usize::from(above < 5);
        }
        seen = (seen + batch.len()).min(total);
        task.set(
            seen as u64,
            &format!("top-1 {:.1}%", 100.0 * top1 as f64 / seen as f64),
        );
    }
    let n = seen.max(1) as f64;
    Ok(TeacherScore {
        images: seen,
        top1: top1 as f64 / n,
        top5: top5 as f64 / n,
        resolution,
        ms_per_image: start.elapsed().as_secs_f64() * 1e3 / n,
    })
}

/// Median wall milliseconds of one image through the teacher (batch 1, upscaled to `resolution`
/// from a `input`-px image, features and logits; no decoding), over `runs` runs after a warm-up.
pub fn ms_per_image(
    teacher: &EfficientNetLite0,
    input: usize,
    resolution: usize,
    runs: usize,
    device: &Device,
) -> f64 {
    let image = burn::tensor::Tensor::<4>::zeros([1, 3, input, input], device);
    let once = || {
        let out = teacher.forward(efficientnet::upscale(image.clone(), resolution));
        // Reading the values back makes the (lazy) backend finish the work.
        let _ = out.logits.into_data();
    };
    once();
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            once();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
