//! The conv op: its shape ([`ConvShape`], shared by the XNOR, first-layer and float convs), what
//! its padding taps contribute ([`Padding`]), and the scalar reference of the XNOR/popcount conv:
//! packed NHWC activations × packed OHWI weights → integer dot products, or packed signs through
//! the threshold.

use super::threshold::{self, Threshold};
use crate::bits::words;
use crate::error::{Error, Result};

/// How out-of-image taps are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Padding {
    /// Zeros (burn's conv): the tap is skipped and K counts valid taps only.
    Zero,
    /// +1 activations (LCE's cheaper option): every tap counts.
    One,
}

/// Shape of a conv layer (square stride and padding; kernel may be rectangular).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Images.
    pub batch: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding on every side, pixels.
    pub pad: usize,
    /// What the padding taps contribute.
    pub padding: Padding,
}

impl ConvShape {
    /// Output height (floor division).
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.kernel_h) / self.stride + 1
    }
    /// Output width (floor division).
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.kernel_w) / self.stride + 1
    }
    /// Packed words per input pixel (`ceil(in_c/32)`).
    pub fn in_words(&self) -> usize {
        words(self.in_c)
    }
    /// Packed words per output pixel (`ceil(out_c/32)`).
    pub fn out_words(&self) -> usize {
        words(self.out_c)
    }
    /// Packed input words per image.
    pub fn input_words_per_item(&self) -> usize {
        self.in_h * self.in_w * self.in_words()
    }
    /// Packed weight words, OHWI: `out_c × kernel_h × kernel_w × in_words`.
    pub fn weight_words(&self) -> usize {
        self.out_c * self.kernel_h * self.kernel_w * self.in_words()
    }
    /// Output pixels per image.
    pub fn out_pixels_per_item(&self) -> usize {
        self.out_h() * self.out_w()
    }
    /// Multiply-accumulates of the whole batch, every tap counted (padding taps included).
    pub fn macs(&self) -> u64 {
        (self.batch
            * self.out_pixels_per_item()
            * self.out_c
            * self.kernel_h
            * self.kernel_w
            * self.in_c) as u64
    }

    /// Checks that every size is positive and the kernel fits the padded input ([`Error::Shape`]
    /// otherwise).
    pub fn validate(&self) -> Result<()> {
        let ok = self.batch > 0
            && self.in_c > 0
            && self.out_c > 0
            && self.kernel_h > 0
            && self.kernel_w > 0
            && self.stride > 0
            && self.in_h + 2 * self.pad >= self.kernel_h
            && self.in_w + 2 * self.pad >= self.kernel_w;
        if !ok {
            return Err(Error::Shape(format!("invalid conv shape {self:?}")));
        }
        Ok(())
    }

    /// The dense layer `[B][in] × [out][in]ᵀ` as a 1×1 conv over `batch` one-pixel images: the
    /// one place a dense layer becomes a conv (the CPU path, the binary and the float launchers).
    pub fn dense(batch: usize, in_features: usize, out_features: usize) -> ConvShape {
        ConvShape {
            batch,
            in_h: 1,
            in_w: 1,
            in_c: in_features,
            out_c: out_features,
            kernel_h: 1,
            kernel_w: 1,
            stride: 1,
            pad: 0,
            padding: Padding::Zero,
        }
    }
}

/// Scalar reference: the dot product of output (n, oy, ox, o).
pub fn reference_dot_at(
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    n: usize,
    oy: usize,
    ox: usize,
    o: usize,
) -> i32 {
    let wpp = shape.in_words();
    let mut mismatches = 0u32;
    let mut taps = 0usize;
    for ky in 0..shape.kernel_h {
        for kx in 0..shape.kernel_w {
            let iy = (oy * shape.stride + ky) as isize - shape.pad as isize;
            let ix = (ox * shape.stride + kx) as isize - shape.pad as isize;
            let w_base = ((o * shape.kernel_h + ky) * shape.kernel_w + kx) * wpp;
            let inside =
                iy >= 0 && ix >= 0 && (iy as usize) < shape.in_h && (ix as usize) < shape.in_w;
            if inside {
                let a_base = ((n * shape.in_h + iy as usize) * shape.in_w + ix as usize) * wpp;
                for w in 0..wpp {
                    mismatches += (input[a_base + w] ^ weights[w_base + w]).count_ones();
                }
                taps += 1;
            } else if shape.padding == Padding::One {
                for w in 0..wpp {
                    mismatches += weights[w_base + w].count_ones();
                }
                taps += 1;
            }
        }
    }
    (taps * shape.in_c) as i32 - 2 * mismatches as i32
}

/// Scalar reference: all dot products, `[N][OH][OW][O]`.
pub fn reference_dot(shape: &ConvShape, input: &[u32], weights: &[u32]) -> Vec<i32> {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let mut out = Vec::with_capacity(shape.batch * oh * ow * shape.out_c);
    for n in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..shape.out_c {
                    out.push(reference_dot_at(shape, input, weights, n, oy, ox, o));
                }
            }
        }
    }
    out
}

/// Scalar reference of the fused path: dots, then the threshold.
pub fn reference_bits(
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: &[Threshold],
) -> Vec<u32> {
    threshold::reference(&reference_dot(shape, input, weights), thresholds)
}
