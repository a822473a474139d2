//! The float twin's features: a `bnn pretrain` checkpoint run by burn over a data set at the
//! asked cuts, for the float rows of `bnn transfer`. The only part of transfer learning that
//! needs burn.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Tensor};

use crate::data::{ImageFolder, Loader, LoaderConfig, Preprocess};
use crate::error::{Error, Result};
use crate::feature_extractor::FeatureSet;
use crate::progress::{Observer, Task};

fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Shape(format!("float twin tensor to f32: {e:?}")))
}

/// Features of one split from a `bnn pretrain` checkpoint (the float twin, or a binary net run
/// by burn) at the layers named `cuts` (`conv1`…, `fc1`…): the activations after batch norm and
/// ReLU (or sign), flattened per image in burn's C, H, W order. Runs on burn's flex backend.
pub fn checkpoint_features(
    dir: &Path,
    set: Arc<ImageFolder>,
    cuts: &[String],
    batch_size: usize,
    workers: usize,
    observer: &dyn Observer,
) -> Result<(Vec<FeatureSet>, f64)> {
    let device = Device::flex();
    let (arch, _, model) = crate::train::checkpoint::load(dir, &device)?;
    let names = crate::export::layer_names(&arch);
    let idx: Vec<usize> = cuts
        .iter()
        .map(|c| {
            names.iter().position(|n| n == c).ok_or_else(|| {
                Error::Shape(format!(
                    "no layer '{c}' in {}; its layers: {}",
                    dir.display(),
                    names.join(", ")
                ))
            })
        })
        .collect::<Result<_>>()?;
    let cfg = LoaderConfig {
        batch_size: batch_size.max(1),
        shuffle_seed: None,
        workers,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(set.clone(), Preprocess::eval(arch.input), cfg).report_to(observer);
    let name = format!("features {} (burn, {})", set.split(), cuts.join(","));
    let task = Task::start(observer, &name, set.len() as u64);
    let start = Instant::now();
    let mut xs: Vec<Vec<f32>> = vec![Vec::new(); cuts.len()];
    let mut dims = vec![0usize; cuts.len()];
    let mut labels = Vec::with_capacity(set.len());
    let convs = arch.convs.len();
    for batch in loader {
        let batch = batch?;
        let (images, _) = crate::train::step::batch_tensors(&batch, &device);
        let trace = model.trace(images);
        for (k, &i) in idx.iter().enumerate() {
            let act = if i < convs {
                trace.convs[i].act.clone()
            } else {
                trace.dense[i - convs].act.clone()
            };
            let [n, c, h, w] = act.dims();
            dims[k] = c * h * w;
            debug_assert_eq!(n, batch.len());
            xs[k].extend(values(act)?);
        }
        labels.extend_from_slice(&batch.labels);
        task.advance(batch.len() as u64);
    }
    drop(task);
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        xs.into_iter()
            .zip(dims)
            .map(|(x, dim)| FeatureSet {
                dim,
                x,
                labels: labels.clone(),
                classes: set.classes.clone(),
            })
            .collect(),
        seconds,
    ))
}
