//! The first layer on the CPU: the real-valued image (f32 NHWC) convolved with binary weights,
//! vectorised across output channels. The weights are stored once as ±1.0 (`[tap·c][channel]`,
//! channels padded to a multiple of [`LANES`]); every output keeps its own f32 accumulator that
//! starts at +0.0 and adds `x·w` (= ±x, exact) tap by tap in the reference's order — ky, then kx,
//! then c — so each sum is bit-identical to
//! [`first_conv::reference_sum`](crate::ops::first_conv::reference_sum) and to the WGSL
//! kernel (docs/FORMAT.md, first layer). Vector lanes hold different outputs, never parts of one
//! sum, so nothing is reassociated; where the CPU has FMA, `fma(x, w, acc)` rounds exactly like
//! `acc + x·w` because the product is exact.
//!
//! Four pixels are gathered into patches (`[tap·c]` each) and share every weight load. Taps
//! outside the image are gathered as 0.0, which adds ±0.0 — a no-op, not just numerically close:
//! an accumulator that starts at +0.0 can never be −0.0 (in round-to-nearest, `a + b` is −0.0
//! only when both are −0.0), and `a + ±0.0 = a` for every `a ≠ −0.0`. So skipping a tap (the
//! reference) and adding a zero tap give the same bits.

use std::cell::RefCell;
use std::ops::Range;

use super::Isa;
use crate::error::{Error, Result};
use crate::ops::ConvShape;

/// Output channels per accumulator block (one 512-bit register of f32).
pub const LANES: usize = 16;
const PIXELS: usize = 4;

/// The first layer prepared for the CPU; the batch of its shape is ignored.
#[derive(Clone, Debug)]
pub struct FirstLayer {
    shape: ConvShape,
    /// Output channels rounded up to [`LANES`].
    padded: usize,
    /// `[tap·c][padded]`: +1.0 or −1.0 (0.0 past `out_c`).
    weights: Vec<f32>,
}

/// Per-thread buffers (four patches, their sums), grown once and reused.
#[derive(Default)]
struct Scratch {
    patches: Vec<f32>,
    sums: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl FirstLayer {
    /// Prepares packed OHWI `weights` (a set bit is −1) for `shape`.
    pub fn new(shape: &ConvShape, weights: &[u32]) -> Result<Self> {
        shape.validate()?;
        if weights.len() != shape.weight_words() {
            return Err(Error::Shape(format!(
                "cpu first layer: {} weight words for {shape:?}",
                weights.len()
            )));
        }
        let (c, wpp) = (shape.in_c, shape.in_words());
        let taps = shape.kernel_h * shape.kernel_w;
        let padded = shape.out_c.div_ceil(LANES) * LANES;
        let mut w = vec![0.0f32; taps * c * padded];
        for o in 0..shape.out_c {
            for tap in 0..taps {
                for ci in 0..c {
                    let word = weights[(o * taps + tap) * wpp + ci / 32];
                    let negative = (word >> (ci % 32)) & 1 == 1;
                    w[(tap * c + ci) * padded + o] = if negative { -1.0 } else { 1.0 };
                }
            }
        }
        Ok(FirstLayer {
            shape: *shape,
            padded,
            weights: w,
        })
    }

    /// Sums of output rows `rows` (row = n·OH + oy): calls `sink(row, ox, sums)` per pixel with
    /// its `out_c` sums.
    pub fn run(
        &self,
        isa: Isa,
        images: &[f32],
        rows: Range<usize>,
        sink: &mut dyn FnMut(usize, usize, &[f32]),
    ) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` reaches a layer only after `Isa::require`; every x86-64 CPU with
            // AVX-512F has FMA.
            Isa::Avx512 if std::arch::is_x86_feature_detected!("fma") => unsafe {
                run_avx512(self, images, rows, sink)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, FMA checked.
            Isa::Avx2 if std::arch::is_x86_feature_detected!("fma") => unsafe {
                run_avx2(self, images, rows, sink)
            },
            _ => run_with::<false>(self, images, rows, sink),
        }
    }

    /// The patch of output pixel `pixel` (`n·OH·OW + oy·OW + ox`) into `dst` (`taps·c` values,
    /// 0.0 for taps outside the image).
    #[inline(always)]
    fn gather(&self, images: &[f32], pixel: usize, dst: &mut [f32]) {
        let s = &self.shape;
        let (oh, ow, c) = (s.out_h(), s.out_w(), s.in_c);
        let (n, oy, ox) = (pixel / (oh * ow), pixel / ow % oh, pixel % ow);
        let image = &images[n * s.in_h * s.in_w * c..(n + 1) * s.in_h * s.in_w * c];
        let iy0 = (oy * s.stride) as isize - s.pad as isize;
        let ix0 = (ox * s.stride) as isize - s.pad as isize;
        for ky in 0..s.kernel_h {
            let iy = iy0 + ky as isize;
            let row = &mut dst[ky * s.kernel_w * c..(ky + 1) * s.kernel_w * c];
            if iy < 0 || iy as usize >= s.in_h {
                row.fill(0.0);
                continue;
            }
            // Columns kx0..kx1 are inside the image.
            let kx0 = (-ix0).clamp(0, s.kernel_w as isize) as usize;
            let kx1 = (s.in_w as isize - ix0).clamp(kx0 as isize, s.kernel_w as isize) as usize;
            row[..kx0 * c].fill(0.0);
            row[kx1 * c..].fill(0.0);
            if kx1 > kx0 {
                let at = (iy as usize * s.in_w + (ix0 + kx0 as isize) as usize) * c;
                row[kx0 * c..kx1 * c].copy_from_slice(&image[at..at + (kx1 - kx0) * c]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn run_avx512(
    l: &FirstLayer,
    images: &[f32],
    rows: Range<usize>,
    sink: &mut dyn FnMut(usize, usize, &[f32]),
) {
    run_with::<true>(l, images, rows, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    l: &FirstLayer,
    images: &[f32],
    rows: Range<usize>,
    sink: &mut dyn FnMut(usize, usize, &[f32]),
) {
    run_with::<true>(l, images, rows, sink)
}

/// Sums of the `P` patches in `patches` (`depth` values each) for every channel block.
#[inline(always)]
fn block_sums<const P: usize, const FMA: bool>(
    weights: &[f32],
    padded: usize,
    patches: &[f32],
    depth: usize,
    sums: &mut [f32],
) {
    let patches = &patches[..P * depth];
    for block in 0..padded / LANES {
        let mut acc = [[0.0f32; LANES]; P];
        for t in 0..depth {
            let at = t * padded + block * LANES;
            let w: &[f32; LANES] = weights[at..at + LANES].try_into().expect("LANES");
            for (p, a) in acc.iter_mut().enumerate() {
                let x = patches[p * depth + t];
                for (a, &w) in a.iter_mut().zip(w) {
                    // Exact product; one rounding either way.
                    *a = if FMA { x.mul_add(w, *a) } else { *a + x * w };
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            sums[p * padded + block * LANES..][..LANES].copy_from_slice(a);
        }
    }
}

#[inline(always)]
fn run_with<const FMA: bool>(
    l: &FirstLayer,
    images: &[f32],
    rows: Range<usize>,
    sink: &mut dyn FnMut(usize, usize, &[f32]),
) {
    let s = &l.shape;
    let ow = s.out_w();
    let depth = s.kernel_h * s.kernel_w * s.in_c;
    // Taken out of the thread-local (not borrowed in a closure) so that this body stays inside
    // the caller compiled with the CPU's features.
    let mut scratch = SCRATCH.take();
    {
        let Scratch { patches, sums } = &mut scratch;
        patches.resize(PIXELS * depth, 0.0);
        sums.resize(PIXELS * l.padded, 0.0);
        let pixels = rows.start * ow..rows.end * ow;
        let mut p0 = pixels.start;
        while p0 < pixels.end {
            let n = (pixels.end - p0).min(PIXELS);
            for j in 0..n {
                l.gather(images, p0 + j, &mut patches[j * depth..(j + 1) * depth]);
            }
            if n == PIXELS {
                block_sums::<PIXELS, FMA>(&l.weights, l.padded, patches, depth, sums);
            } else {
                for j in 0..n {
                    let (p, s) = (
                        &patches[j * depth..(j + 1) * depth],
                        &mut sums[j * l.padded..(j + 1) * l.padded],
                    );
                    block_sums::<1, FMA>(&l.weights, l.padded, p, depth, s);
                }
            }
            for j in 0..n {
                let pixel = p0 + j;
                sink(
                    pixel / ow,
                    pixel % ow,
                    &sums[j * l.padded..j * l.padded + s.out_c],
                );
            }
            p0 += n;
        }
    }
    SCRATCH.set(scratch);
}
