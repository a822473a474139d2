//! The binary dense op: its shape ([`DenseShape`]) and scalar reference, a batch of packed rows ×
//! packed weight rows `[out][ceil(in/32)]` → i32 dot products, or packed signs through the
//! threshold.

use super::threshold::{self, Threshold};
use crate::bits::words;

/// Shape of a binary dense layer over a batch of packed rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenseShape {
    /// Rows (images).
    pub batch: usize,
    /// Input features (bits per row, before padding to words).
    pub in_features: usize,
    /// Outputs per row.
    pub out_features: usize,
}

impl DenseShape {
    /// Packed words per input row (`ceil(in_features/32)`).
    pub fn in_words(&self) -> usize {
        words(self.in_features)
    }
    /// Multiply-accumulates of the whole batch.
    pub fn macs(&self) -> u64 {
        (self.batch * self.in_features * self.out_features) as u64
    }
}

/// Scalar reference: `[B][O]` dots.
pub fn reference_dot(shape: &DenseShape, input: &[u32], weights: &[u32]) -> Vec<i32> {
    let wpr = shape.in_words();
    let mut out = Vec::with_capacity(shape.batch * shape.out_features);
    for b in 0..shape.batch {
        let a = &input[b * wpr..(b + 1) * wpr];
        for o in 0..shape.out_features {
            let w = &weights[o * wpr..(o + 1) * wpr];
            let mismatches: u32 = a.iter().zip(w).map(|(x, y)| (x ^ y).count_ones()).sum();
            out.push(shape.in_features as i32 - 2 * mismatches as i32);
        }
    }
    out
}

/// Scalar reference of the fused path: dots, then the threshold.
pub fn reference_bits(
    shape: &DenseShape,
    input: &[u32],
    weights: &[u32],
    th: &[Threshold],
) -> Vec<u32> {
    threshold::reference(&reference_dot(shape, input, weights), th)
}
