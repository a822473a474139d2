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

/// Packed signs at the cut for `batch` NHWC f32 images.
pub fn run_bits(
    file: &ExtractorFile,
    images: &[f32],
    batch: usize,
    threads: usize,
) -> Result<Vec<u32>> {
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
    for l in &file.layers {
        let s = &l.spec;
        let err = || Error::Shape(format!("layer '{}': threshold type", s.name));
        bits = match (s.kind, &l.thresholds) {
            (LayerKind::FirstConv, Thresholds::Float(t)) => {
                let sums = first_conv::reference_sum(&conv_shape(l, batch), images, &l.weights);
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
    }
    Ok(bits)
}
