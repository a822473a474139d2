//! One optimizer step and one validation pass: images to tensors, the losses (cross-entropy,
//! ReActNet's distributional loss against a teacher run, EfficientNet-Lite0 distillation), the
//! step itself (a non-finite loss is an error, never applied) and scoring.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::progress::{Observer, Task};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::distill::{Lite0Distill, lite0_loss};
use crate::data::{Batch, ImageFolder, Loader, LoaderConfig, Preprocess};
use crate::error::{Error, Result};
use crate::model::Model;

pub use crate::eval::score;

/// Images `[n, 3, s, s]` (NCHW) and labels of a batch (the loader's NHWC transposed on the CPU).
pub fn batch_tensors(batch: &Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let (n, s) = (batch.len(), batch.size);
    let mut nchw = vec![0f32; n * 3 * s * s];
    for i in 0..n {
        let img = batch.image(i);
        for p in 0..s * s {
            for c in 0..3 {
                nchw[(i * 3 + c) * s * s + p] = img[p * 3 + c];
            }
        }
    }
    let images = Tensor::<4>::from_data(TensorData::new(nchw, [n, 3, s, s]), device);
    let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
    (images, labels)
}

/// One optimizer step: forward, cross-entropy, backward, Adam, clip. Returns the updated model,
/// the batch loss and the logits (for accuracy).
pub fn train_step(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    train_step_with(model, optimizer, images, labels, None, lr)
}

/// [`train_step`] with an optional `teacher` (a model in eval mode, no autodiff): with one, the
/// loss is the [`distillation_loss`] against its outputs on the same images instead of the
/// cross-entropy on `labels`.
pub fn train_step_with(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    teacher: Option<&Model>,
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    let device = images.device();
    let target = teacher.map(|t| t.forward(images.clone().without_autodiff()));
    let logits = model.forward(images);
    let loss = match target {
        Some(t) => distillation_loss(logits.clone(), t),
        None => CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), labels),
    };
    apply_step(model, optimizer, loss, logits, lr)
}

/// One optimizer step distilling from EfficientNet-Lite0: `targets` are the teacher's (soft
/// logits, standardised features) for these images ([`super::distill::batch_targets`]); the loss
/// is [`lite0_loss`].
pub fn train_step_lite0(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
    cfg: &Lite0Distill,
    targets: (Option<Tensor<2>>, Tensor<2>),
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    let (logits, projected) = model.forward_distill(images);
    let loss = lite0_loss(cfg, logits.clone(), labels, projected, targets.0, targets.1)?;
    apply_step(model, optimizer, loss, logits, lr)
}

/// Backward, Adam, clip; the loss must be finite (a diverged step is an error, and the step is not
/// applied, so the last checkpoint stays usable).
fn apply_step(
    model: Model,
    optimizer: &mut ModuleOptimizer,
    loss: Tensor<1>,
    logits: Tensor<2>,
    lr: f64,
) -> Result<(Model, f32, Vec<f32>)> {
    let value: f32 = loss.clone().into_scalar();
    if !value.is_finite() {
        return Err(Error::Diverged(format!(
            "the training loss is {value}: the run diverged (a learning rate too high for this \
             network, `lr` {lr:e}, or a teacher whose outputs are not finite). The last saved \
             checkpoint is untouched; resume it with a smaller `lr` in a new run, or check the \
             teacher"
        )));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optimizer.step(lr, model, grads).clip_latent();
    let logits = logits
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("logits to f32: {e:?}")))?;
    Ok((model, value, logits))
}

/// ReActNet's distributional loss: the cross-entropy of the student's softmax against the
/// teacher's, `mean over the batch of −Σ_c softmax(teacher)_c · log_softmax(student)_c` (the
/// KL divergence from teacher to student plus the teacher's entropy, which has no gradient). The
/// teacher's logits carry no graph. With one-hot teacher outputs it is the ordinary cross-entropy
/// (tested).
pub fn distillation_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let target = softmax(teacher.without_autodiff(), 1);
    (target * log_softmax(student, 1)).sum_dim(1).mean().neg()
}

/// Validation: mean loss, top-1 and top-5 accuracy of `model` (eval mode) on `set`, or `None`
/// when `stop` was raised on the way.
/// `cfg` should keep the set order (`shuffle_seed: None`) and every image (`drop_last: false`).
pub fn evaluate(
    model: &Model,
    set: Arc<ImageFolder>,
    pre: Preprocess,
    cfg: LoaderConfig,
    device: &Device,
    stop: &AtomicBool,
    observer: &dyn Observer,
) -> Result<Option<(f64, f64, f64)>> {
    let eval = model.valid();
    let device = device.clone().without_autodiff();
    let classes = set.classes.len();
    let loader = Loader::new(set, pre, cfg).report_to(observer);
    let task = Task::start(observer, "val", loader.batches() as u64);
    let (mut loss, mut top1, mut top5, mut seen) = (0.0, 0u64, 0u64, 0u64);
    for batch in loader {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let batch = batch?;
        let (images, _) = batch_tensors(&batch, &device);
        let logits = eval
            .forward(images)
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Shape(format!("logits to f32: {e:?}")))?;
        let (l, t1, t5) = score(&logits, classes, &batch.labels);
        loss += l;
        top1 += t1;
        top5 += t5;
        seen += batch.len() as u64;
        let status = format!("top-1 {:.1}%", 100.0 * top1 as f64 / seen as f64);
        task.set(task.done() + 1, &status);
    }
    let n = seen.max(1) as f64;
    Ok(Some((loss / n, top1 as f64 / n, top5 as f64 / n)))
}
