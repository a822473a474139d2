//! The first layer: the real-valued image (f32 NHWC) convolved with binary weights (packed OHWI,
//! set bit = −1), giving f32 sums; zero padding only. Its scalar reference sums over the taps in
//! (ky, kx, c) order from +0.0, `acc + x` or `acc + (−x)`: the order the kernel and the CPU path
//! follow bit for bit.

use super::conv::ConvShape;

/// Scalar reference, summing over ky, kx, c in order as the shader does.
pub fn reference_sum(shape: &ConvShape, input: &[f32], weights: &[u32]) -> Vec<f32> {
    let (oh, ow, wpp) = (shape.out_h(), shape.out_w(), shape.in_words());
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
                            let w = ((o * shape.kernel_h + ky) * shape.kernel_w + kx) * wpp;
                            for c in 0..shape.in_c {
                                let x = input[a + c];
                                let negative = (weights[w + c / 32] >> (c % 32)) & 1 == 1;
                                sum += if negative { -x } else { x };
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
