//! The float conv of the float baseline: f32 NHWC input, f32 OHWI weights, zero padding, every
//! output the sequential sum in increasing k = (ky, kx, c) from +0.0; with ±1.0 weights it equals
//! [`first_conv::reference_sum`](super::first_conv::reference_sum) bit for bit.

use super::conv::ConvShape;

/// Scalar reference: sums in increasing k = (ky, kx, c) order, as the kernel does, rounding each
/// product before adding it. The kernel's `fma` may be fused or not (WGSL allows both; lavapipe
/// rounds twice, NVIDIA once): this is the twice-rounded order, [`reference_fused`] the other.
pub fn reference(shape: &ConvShape, input: &[f32], weights: &[f32]) -> Vec<f32> {
    reference_by(shape, input, weights, |acc, a, w| acc + a * w)
}

/// [`reference()`] with each term added in one rounding (`fma` fused).
pub fn reference_fused(shape: &ConvShape, input: &[f32], weights: &[f32]) -> Vec<f32> {
    reference_by(shape, input, weights, |acc, a, w| a.mul_add(w, acc))
}

fn reference_by(
    shape: &ConvShape,
    input: &[f32],
    weights: &[f32],
    add: impl Fn(f32, f32, f32) -> f32,
) -> Vec<f32> {
    let (oh, ow) = (shape.out_h(), shape.out_w());
    let k = shape.kernel_h * shape.kernel_w * shape.in_c;
    let mut out = Vec::with_capacity(shape.batch * oh * ow * shape.out_c);
    for n in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..shape.out_c {
                    let mut sum = 0.0f32;
                    for ky in 0..shape.kernel_h {
                        for kx in 0..shape.kernel_w {
                            let iy = (oy * shape.stride + ky) as isize - shape.pad as isize;
                            let ix = (ox * shape.stride + kx) as isize - shape.pad as isize;
                            if iy < 0
                                || ix < 0
                                || iy as usize >= shape.in_h
                                || ix as usize >= shape.in_w
                            {
                                continue;
                            }
                            let a = ((n * shape.in_h + iy as usize) * shape.in_w + ix as usize)
                                * shape.in_c;
                            let w = o * k + (ky * shape.kernel_w + kx) * shape.in_c;
                            for c in 0..shape.in_c {
                                sum = add(sum, input[a + c], weights[w + c]);
                            }
                        }
                    }
                    out.push(sum);
                }
            }
        }
    }
    out
}
