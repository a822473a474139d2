//! The real-valued epilogue of a Bi-Real block: folded batch norm, shortcut and RPReLU in f32, per
//! output element of a conv map. Its output `z` is the block's real output (the next block's
//! shortcut) and, thresholded ([`super::threshold`]), its packed signs.
//!
//! Every path computes exactly this, in this order (docs/FORMAT.md, "real layers"); each line is
//! one f32 operation, rounded to nearest:
//!
//! ```text
//! u = mul(p, scale) + bias
//! s = +0.0; for each tap of the shortcut window, row-major: s = s + x[tap]     (with a shortcut)
//! u = u + mul(s, inv)                          inv = f32(1 / kernel²)            (with a shortcut)
//!   or, through a projection (the shortcut has its own channels c):
//!   acc = +0.0; for c in order: acc = acc + mul(mul(s_c, inv), W[o][c]); u = u + (acc + b[o])
//! t = u − shift_in
//! v = t > 0 ? t : mul(t, slope)
//! z = v + shift_out
//! ```
//!
//! `p` is the pre-activation after max-pooling (an i32 dot converted to f32, exact below 2²⁴, or a
//! first-layer f32 sum). `mul` ([`mul`]) is a product built from four *exact* products of 12-bit
//! halves: whether a compiler fuses a multiply with the add after it (SPIR-V lets a driver do so,
//! and WGSL's `fma` need not be fused either) cannot change any result, so every path, and a
//! re-implementation in numpy, gets the same bits.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};

/// One output channel's constants: batch norm (with α) folded to `scale`/`bias`, then RPReLU.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct RealChannel {
    /// Multiplies the pre-activation (α·γ/√(var + ε)).
    pub scale: f32,
    /// Added after (β − μ·γ/√(var + ε)).
    pub bias: f32,
    /// Subtracted before the PReLU.
    pub shift_in: f32,
    /// The PReLU's negative-side slope.
    pub slope: f32,
    /// Added after the PReLU.
    pub shift_out: f32,
}

impl RealChannel {
    /// The channel's values in file order (`L.real` rows).
    pub fn to_array(self) -> [f32; 5] {
        [
            self.scale,
            self.bias,
            self.shift_in,
            self.slope,
            self.shift_out,
        ]
    }
    /// From a `L.real` row.
    pub fn from_array(v: [f32; 5]) -> Self {
        RealChannel {
            scale: v[0],
            bias: v[1],
            shift_in: v[2],
            slope: v[3],
            shift_out: v[4],
        }
    }

    /// `z` for pre-activation `p` and, with a shortcut, its term (`mul(s, inv)`, or a
    /// projection's output: [`shortcut_term`]).
    pub fn apply(&self, p: f32, shortcut: Option<f32>) -> f32 {
        let mut u = mul(p, self.scale) + self.bias;
        if let Some(term) = shortcut {
            u += term;
        }
        let t = u - self.shift_in;
        let v = if t > 0.0 { t } else { mul(t, self.slope) };
        v + self.shift_out
    }
}

/// `x` with its 12 low mantissa bits cleared: at most 12 significant bits.
#[inline(always)]
fn hi(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xFFFF_F000)
}

/// `x·c` as `((xh·ch + xh·cl) + xl·ch) + xl·cl`, with `xh = hi(x)`, `xl = x − xh` (exact) and the
/// same for `c`: each product of two 12-bit halves is exact in f32, so only the three additions
/// round, and fusing any of them with a product changes nothing. Within 2 units in the last place
/// of the rounded product (for values far from the subnormal range).
///
/// ```
/// use bnn_transfer::ops::real_epilogue::mul;
/// assert_eq!(mul(3.0, 0.5), 1.5);
/// assert_eq!(mul(-7.0, 1.0 / 9.0), -7.0 / 9.0);
/// let (a, b) = (0.123_456_79f32, 1.234_567_9f32);
/// assert!((mul(a, b) - a * b).abs() <= 2.0 * f32::EPSILON * (a * b).abs());
/// ```
#[inline(always)]
pub fn mul(x: f32, c: f32) -> f32 {
    let (xh, ch) = (hi(x), hi(c));
    let (xl, cl) = (x - xh, c - ch);
    ((xh * ch + xh * cl) + xl * ch) + xl * cl
}

/// The shortcut's window over the previous layer's real output `[in_h][in_w][C]`: an identity is
/// a 1×1 window of stride 1 over a map of the same side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Square window side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
}

impl Window {
    /// The weight of the window's sum: `1/kernel²` rounded to f32.
    pub fn inv(&self) -> f32 {
        (1.0 / (self.kernel * self.kernel) as f64) as f32
    }

    /// The window sums at output pixel (`oy`, `ox`) of one image's map `x` (`[in_h][in_w][cs]`)
    /// into `sums` (`cs` values): per channel from +0.0, row-major over the window.
    pub fn sums(&self, x: &[f32], (oy, ox): (usize, usize), sums: &mut [f32]) {
        let cs = sums.len();
        sums.fill(0.0);
        for ky in 0..self.kernel {
            for kx in 0..self.kernel {
                let (iy, ix) = (oy * self.stride + ky, ox * self.stride + kx);
                let at = (iy * self.in_w + ix) * cs;
                for (s, v) in sums.iter_mut().zip(&x[at..at + cs]) {
                    *s += v;
                }
            }
        }
    }
}

/// The epilogue of one layer over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpilogueShape {
    /// Images.
    pub batch: usize,
    /// Output height (after pooling).
    pub h: usize,
    /// Output width.
    pub w: usize,
    /// Channels.
    pub channels: usize,
    /// The shortcut, if the layer has one.
    pub shortcut: Option<Window>,
    /// With a projection shortcut, the channels of its input map (the previous layer's); the
    /// shortcut map then has these channels instead of `channels`.
    pub project: Option<usize>,
}

impl EpilogueShape {
    /// Output elements of the batch.
    pub fn len(&self) -> usize {
        self.batch * self.h * self.w * self.channels
    }
    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Shortcut elements of the batch (0 without one).
    pub fn shortcut_len(&self) -> usize {
        self.shortcut.map_or(0, |s| {
            self.batch * s.in_h * s.in_w * self.shortcut_channels()
        })
    }
    /// Channels of the shortcut map.
    pub fn shortcut_channels(&self) -> usize {
        self.project.unwrap_or(self.channels)
    }
    /// Checks that there are channels and that the shortcut window (and a projection's) is
    /// consistent and stays inside its map ([`Error::Shape`] otherwise).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Shape(format!("real epilogue {self:?}: {m}")));
        if self.channels == 0 || self.project == Some(0) {
            return bad("no channels".into());
        }
        if self.project.is_some() && self.shortcut.is_none() {
            return bad("a projection without a shortcut".into());
        }
        if let Some(s) = self.shortcut {
            if s.kernel == 0 || s.stride == 0 {
                return bad("empty shortcut window".into());
            }
            let fits = |out: usize, inp: usize| out == 0 || (out - 1) * s.stride + s.kernel <= inp;
            if !fits(self.h, s.in_h) || !fits(self.w, s.in_w) {
                return bad("the shortcut window leaves its map".into());
            }
        }
        Ok(())
    }
}

/// A projection shortcut's folded 1×1 conv: `weight` `[out][in]` row-major, `bias` `[out]`.
#[derive(Clone, Copy, Debug)]
pub struct ProjectionRef<'a> {
    /// `[out][in]`.
    pub weight: &'a [f32],
    /// `[out]`.
    pub bias: &'a [f32],
}

/// The shortcut term of output channel `o` through a projection: with `sums` the window sums of
/// the shortcut's `in` channels, `acc = +0.0; for c in order: acc = acc + mul(mul(sums[c], inv),
/// weight[o][c])`, then `acc + bias[o]`.
pub fn shortcut_term(sums: &[f32], inv: f32, proj: ProjectionRef, o: usize) -> f32 {
    let row = &proj.weight[o * sums.len()..(o + 1) * sums.len()];
    let mut acc = 0.0f32;
    for (&s, &w) in sums.iter().zip(row) {
        acc += mul(mul(s, inv), w);
    }
    acc + proj.bias[o]
}

/// Scalar reference: `pre` (`[batch][h][w][C]`, already f32) and the shortcut map → real output.
/// `projection` is required exactly when `shape.project` is set.
pub fn reference(
    shape: &EpilogueShape,
    pre: &[f32],
    channels: &[RealChannel],
    shortcut: Option<&[f32]>,
    projection: Option<ProjectionRef>,
) -> Result<Vec<f32>> {
    shape.validate()?;
    let c = shape.channels;
    let cs = shape.shortcut_channels();
    let projection_ok = match (shape.project, projection) {
        (None, None) => true,
        (Some(_), Some(p)) => p.weight.len() == c * cs && p.bias.len() == c,
        _ => false,
    };
    if pre.len() != shape.len()
        || channels.len() != c
        || shortcut.map_or(0, <[f32]>::len) != shape.shortcut_len()
        || shortcut.is_some() != shape.shortcut.is_some()
        || !projection_ok
    {
        return Err(Error::Shape(format!(
            "real epilogue {shape:?}: {} pre-activations, {} channels, {} shortcut values, \
             projection {}",
            pre.len(),
            channels.len(),
            shortcut.map_or(0, <[f32]>::len),
            if projection.is_some() {
                "given"
            } else {
                "absent"
            }
        )));
    }
    let mut out = vec![0f32; shape.len()];
    let per_out = shape.h * shape.w * c;
    let per_in = shape.shortcut.map_or(0, |s| s.in_h * s.in_w * cs);
    for (n, z) in out.chunks_exact_mut(per_out.max(1)).enumerate() {
        let x = shortcut.map(|x| &x[n * per_in..(n + 1) * per_in]);
        image(
            shape,
            &pre[n * per_out..(n + 1) * per_out],
            channels,
            x,
            projection,
            z,
        );
    }
    Ok(out)
}

/// One image of [`reference`] (`shape.batch` is not read): `pre` `[h][w][C]`, the shortcut map
/// `[in_h][in_w][Cs]` when `shape` has one, `out` `[h][w][C]`.
fn image(
    shape: &EpilogueShape,
    pre: &[f32],
    channels: &[RealChannel],
    shortcut: Option<&[f32]>,
    projection: Option<ProjectionRef>,
    out: &mut [f32],
) {
    let c = shape.channels;
    let cs = shape.shortcut_channels();
    // Per pixel, the window sums of every shortcut channel: the same row-major order per channel.
    let mut sums = vec![0f32; cs];
    for (pixel, (z, p)) in out.chunks_exact_mut(c).zip(pre.chunks_exact(c)).enumerate() {
        match (shape.shortcut, shortcut) {
            (Some(win), Some(x)) => {
                win.sums(x, (pixel / shape.w, pixel % shape.w), &mut sums);
                let inv = win.inv();
                for (o, ((z, &p), ch)) in z.iter_mut().zip(p).zip(channels).enumerate() {
                    let term = match projection {
                        Some(proj) => shortcut_term(&sums, inv, proj, o),
                        None => mul(sums[o], inv),
                    };
                    *z = ch.apply(p, Some(term));
                }
            }
            _ => {
                for ((z, &p), ch) in z.iter_mut().zip(p).zip(channels) {
                    *z = ch.apply(p, None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rprelu_and_shortcut_follow_the_written_order() {
        let ch = RealChannel {
            scale: 0.5,
            bias: -1.0,
            shift_in: 0.25,
            slope: 0.125,
            shift_out: 2.0,
        };
        // u = 3·0.5 − 1 = 0.5; t = 0.25 > 0: z = 0.25 + 2.
        assert_eq!(ch.apply(3.0, None), 2.25);
        // u = −1·0.5 − 1 = −1.5; t = −1.75: z = −1.75·0.125 + 2.
        assert_eq!(ch.apply(-1.0, None), 2.0 - 0.21875);
        // A 2×2 average shortcut of 1, 2, 3, 4 adds 2.5.
        let shape = EpilogueShape {
            batch: 1,
            h: 1,
            w: 1,
            channels: 1,
            shortcut: Some(Window {
                in_h: 2,
                in_w: 2,
                kernel: 2,
                stride: 2,
            }),
            project: None,
        };
        let z = reference(&shape, &[3.0], &[ch], Some(&[1.0, 2.0, 3.0, 4.0]), None).unwrap();
        assert_eq!(z, vec![ch.apply(3.0, Some(mul(10.0, 0.25)))]);
        assert_eq!(z, vec![(0.5f32 + 2.5 - 0.25) + 2.0]);
        assert!(reference(&shape, &[3.0], &[ch], None, None).is_err());
        // Through a projection from 2 channels (1×1 window): pixel 0 adds 1·0.5 + 2·(−1) + 0.125.
        let shape = EpilogueShape {
            shortcut: Some(Window {
                in_h: 1,
                in_w: 2,
                kernel: 1,
                stride: 1,
            }),
            w: 2,
            project: Some(2),
            ..shape
        };
        let proj = ProjectionRef {
            weight: &[0.5, -1.0],
            bias: &[0.125],
        };
        let x = [1.0, 2.0, 3.0, 4.0];
        let z = reference(&shape, &[3.0, 3.0], &[ch], Some(&x), Some(proj)).unwrap();
        assert_eq!(z[0], ch.apply(3.0, Some(0.5 - 2.0 + 0.125)));
        assert_eq!(z[1], ch.apply(3.0, Some(1.5 - 4.0 + 0.125)));
        assert!(reference(&shape, &[3.0, 3.0], &[ch], Some(&x), None).is_err());
    }

    /// The worked example of docs/FORMAT.md (real layers), computed there with numpy.
    #[test]
    fn the_documented_example_holds() {
        let ch = RealChannel {
            scale: 0.0123,
            bias: -0.25,
            shift_in: 0.1,
            slope: 0.25,
            shift_out: -0.05,
        };
        assert_eq!(hi(0.0123).to_bits(), 0x3c49_8000);
        assert_eq!(mul(37.0, 0.0123), 0.4551);
        assert_eq!(ch.apply(37.0, Some(mul(2.0, 0.25))), 0.555_099_96);
        assert_eq!(mul(-61.0, 0.0123) + -0.25, -1.000_299_9);
        assert_eq!(mul(-0.600_299_95, 0.25), -0.150_074_99);
        assert_eq!(ch.apply(-61.0, Some(mul(2.0, 0.25))), -0.200_074_99);
    }
}
