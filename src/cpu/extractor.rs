//! The whole frozen extractor on the CPU: the binary conv and dense layers through the fast
//! [`CpuConv`] / [`CpuDense`] path, the first layer (real image × binary weights), pooling and
//! thresholds through the kernels' plain references. Bit-exact with
//! [`extractor::reference::run`](crate::extractor::reference::run) (tests/bench_extractor.rs);
//! `bnn bench` times it as the `cpu_binary_extractor` row.

use super::{CpuConv, CpuDense};
use crate::error::{Error, Result};
use crate::extractor::reference::{conv_shape, pool_shape};
use crate::extractor::{ExtractorFile, LayerKind, Thresholds};
use crate::kernels::pool;
use crate::kernels::xnor_dense::DenseShape;
use crate::kernels::{first_conv, threshold};

/// Most bytes one buffer of the CPU path may hold (a layer's pre-activations for the batch): a
/// file with a huge input is refused with an error instead of an allocation that aborts.
pub const MAX_BUFFER_BYTES: u64 = 4 << 30;

/// Refuses a batch whose largest buffer (a layer's pre-activations, up to layer `stop`) would be
/// over [`MAX_BUFFER_BYTES`], before anything is allocated.
fn check_memory(file: &ExtractorFile, batch: usize, stop: usize) -> Result<()> {
    for l in file.layers.iter().take(stop + 1) {
        let (h, w) = l.spec.conv_out();
        let bytes = [batch, h, w, l.spec.out_channels(), 4]
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .unwrap_or(u64::MAX);
        if bytes > MAX_BUFFER_BYTES {
            return Err(Error::Limits(format!(
                "layer '{}' needs {:.1} GiB of pre-activations for {batch} image(s) of {}×{} on \
                 the CPU path (at most {} GiB per buffer): use a smaller batch (--batch-size) or \
                 a model with a smaller input",
                l.spec.name,
                bytes as f64 / (1u64 << 30) as f64,
                file.graph.input.size,
                file.graph.input.size,
                MAX_BUFFER_BYTES >> 30
            )));
        }
    }
    Ok(())
}

/// Packed signs at the cut for `batch` NHWC f32 images.
pub fn run_bits(
    file: &ExtractorFile,
    images: &[f32],
    batch: usize,
    threads: usize,
) -> Result<Vec<u32>> {
    let last = file.layers.len().saturating_sub(1);
    Ok(run_taps(file, images, batch, &[last], threads)?.remove(0))
}

/// Packed signs at each layer index of `taps` (any order) in one pass: one `[batch][out_words]`
/// vector per tap, as [`Extractor::run_taps`](crate::extractor::Extractor::run_taps) returns.
pub fn run_taps(
    file: &ExtractorFile,
    images: &[f32],
    batch: usize,
    taps: &[usize],
    threads: usize,
) -> Result<Vec<Vec<u32>>> {
    let stop = taps.iter().copied().max().unwrap_or(0);
    if stop >= file.layers.len() {
        return Err(Error::Shape(format!(
            "tap {stop}: the extractor has {} layers",
            file.layers.len()
        )));
    }
    check_memory(file, batch, stop)?;
    let i = &file.graph.input;
    if batch == 0 || images.len() != batch * i.size * i.size * i.channels {
        return Err(Error::Shape(format!(
            "{} input values for {batch} images of {}×{}×{}",
            images.len(),
            i.size,
            i.size,
            i.channels
        )));
    }
    let mut bits: Vec<u32> = Vec::new();
    let mut outs: Vec<Vec<u32>> = vec![Vec::new(); taps.len()];
    for (i, l) in file.layers.iter().enumerate().take(stop + 1) {
        let s = &l.spec;
        let err = || Error::Shape(format!("layer '{}': threshold type", s.name));
        bits = match (s.kind, &l.thresholds) {
            (LayerKind::FirstConv, Thresholds::Float(t)) => {
                let sums = first_layer_sums(l, images, batch, threads);
                let sums = match pool_shape(l, batch) {
                    Some(p) => pool::reference_f32(&p, &sums),
                    None => sums,
                };
                threshold::reference_f32(&sums, t)
            }
            (LayerKind::XnorConv, Thresholds::Int(t)) => {
                let conv = CpuConv::new(&conv_shape(l, batch), &l.weights)?;
                match pool_shape(l, batch) {
                    None => conv.bits(&bits, t, threads)?,
                    Some(p) => {
                        let dots = pool::reference_i32(&p, &conv.dot(&bits, threads)?);
                        threshold::reference(&dots, t)
                    }
                }
            }
            (LayerKind::XnorDense, Thresholds::Int(t)) => {
                let shape = DenseShape {
                    batch,
                    in_features: s.in_features,
                    out_features: s.out_channels(),
                };
                CpuDense::new(&shape, &l.weights)?.bits(&bits, t, threads)?
            }
            _ => return Err(err()),
        };
        for (o, _) in outs.iter_mut().zip(taps).filter(|(_, t)| **t == i) {
            o.clone_from(&bits);
        }
    }
    Ok(outs)
}

/// The first layer's real-valued sums, images split over `threads` (each image's sums are the
/// reference's, computed in the same order, so the result is bit-identical).
fn first_layer_sums(
    l: &crate::extractor::LayerData,
    images: &[f32],
    batch: usize,
    threads: usize,
) -> Vec<f32> {
    let parts = threads.clamp(1, batch);
    if parts == 1 {
        return first_conv::reference_sum(&conv_shape(l, batch), images, &l.weights);
    }
    let per_image = images.len() / batch;
    let chunk = batch.div_ceil(parts);
    std::thread::scope(|scope| {
        let handles: Vec<_> = images
            .chunks(chunk * per_image)
            .map(|part| {
                let n = part.len() / per_image;
                scope.spawn(move || first_conv::reference_sum(&conv_shape(l, n), part, &l.weights))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("first-layer thread panicked"))
            .collect()
    })
}
