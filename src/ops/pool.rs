//! Max-pooling: its shape ([`PoolShape`]), what is pooled ([`PoolValues`]) and the scalar
//! references on i32/f32 values and on packed signs (AND of the "−1" bits, or per channel AND/OR:
//! the pooled pre-activations' signs computed from the signs, [`reference_bits_masked`]). NHWC,
//! square window, no padding.

use crate::error::{Error, Result};

/// Shape of a pooling layer; `channels` counts elements per pixel (words, for packed input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    /// Images.
    pub batch: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Elements per pixel (packed words for [`PoolValues::Bits`]).
    pub channels: usize,
    /// Side of the square window.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
}

impl PoolShape {
    /// Output height (floor, no padding).
    pub fn out_h(&self) -> usize {
        (self.in_h - self.kernel) / self.stride + 1
    }
    /// Output width (floor, no padding).
    pub fn out_w(&self) -> usize {
        (self.in_w - self.kernel) / self.stride + 1
    }
    /// Input elements of the whole batch.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.channels
    }
    /// Output elements of the whole batch.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_h() * self.out_w() * self.channels
    }
    /// Checks that the window and stride are positive, the window fits the input and there are
    /// channels ([`Error::Shape`] otherwise).
    pub fn validate(&self) -> Result<()> {
        if self.kernel == 0
            || self.stride == 0
            || self.kernel > self.in_h
            || self.kernel > self.in_w
            || self.channels == 0
        {
            return Err(Error::Shape(format!("invalid pool shape {self:?}")));
        }
        Ok(())
    }
}

/// What the pooled elements are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolValues {
    /// Integer pre-activations (dots).
    I32,
    /// Float values (first-layer sums, float twin).
    F32,
    /// Packed signs: max of ±1 is the AND of the −1 bits.
    Bits,
}

/// Scalar reference over any ordered element type, with `combine` the window reduction.
fn reference_with<T: Copy>(shape: &PoolShape, input: &[T], combine: impl Fn(T, T) -> T) -> Vec<T> {
    let (oh, ow, c) = (shape.out_h(), shape.out_w(), shape.channels);
    let mut out = Vec::with_capacity(shape.output_len());
    for n in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let at = |y: usize, x: usize| {
                        input[((n * shape.in_h + y) * shape.in_w + x) * c + ch]
                    };
                    let (y0, x0) = (oy * shape.stride, ox * shape.stride);
                    let mut acc = at(y0, x0);
                    for ky in 0..shape.kernel {
                        for kx in 0..shape.kernel {
                            acc = combine(acc, at(y0 + ky, x0 + kx));
                        }
                    }
                    out.push(acc);
                }
            }
        }
    }
    out
}

/// Scalar reference: max-pooling of i32 values.
pub fn reference_i32(shape: &PoolShape, input: &[i32]) -> Vec<i32> {
    reference_with(shape, input, i32::max)
}

/// Scalar reference: max-pooling of f32 values.
pub fn reference_f32(shape: &PoolShape, input: &[f32]) -> Vec<f32> {
    reference_with(shape, input, |a, b| if b > a { b } else { a })
}

/// Scalar reference on packed signs: the AND of the window's words.
pub fn reference_bits(shape: &PoolShape, input: &[u32]) -> Vec<u32> {
    reference_with(shape, input, |a, b| a & b)
}

/// Scalar reference of the pooling of threshold output bits (the kernel's `encode_bits`): per bit,
/// AND over the window where `and_mask` has it set, OR where it is clear.
pub fn reference_bits_masked(shape: &PoolShape, input: &[u32], and_mask: &[u32]) -> Vec<u32> {
    let all = reference_bits(shape, input);
    let any = reference_with(shape, input, |a, b| a | b);
    let words = shape.channels;
    all.iter()
        .zip(&any)
        .enumerate()
        .map(|(i, (&a, &o))| {
            let m = and_mask[i % words];
            (a & m) | (o & !m)
        })
        .collect()
}
