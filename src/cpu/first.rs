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
//! A group of pixels (6 on AVX2) is gathered into patches, tap-major (`[tap·c][pixel]`), and
//! shares every weight load; each block of channels reads its weights as one stream. Taps
//! outside the image are gathered as 0.0, which adds ±0.0 — a no-op, not just numerically close:
//! an accumulator that starts at +0.0 can never be −0.0 (in round-to-nearest, `a + b` is −0.0
//! only when both are −0.0), and `a + ±0.0 = a` for every `a ≠ −0.0`. So skipping a tap (the
//! reference) and adding a zero tap give the same bits.

use std::cell::RefCell;
use std::ops::Range;

use super::Isa;
use crate::error::{Error, Result};
use crate::ops::ConvShape;

/// Output channels per accumulator block (one 512-bit register of f32, two 256-bit ones).
pub const LANES: usize = 16;
/// Pixels sharing each weight load, per instruction set: enough independent accumulator chains
/// (pixels × registers per block) to hide the FMA latency, few enough to stay in registers —
/// 4 × 2 ymm on AVX2 (6 measured no faster here), 8 zmm on AVX-512, 4 on the portable path.
#[cfg(target_arch = "x86_64")]
const PIXELS_AVX2: usize = 4;
#[cfg(target_arch = "x86_64")]
const PIXELS_AVX512: usize = 8;
const PIXELS_PORTABLE: usize = 4;

/// The first layer prepared for the CPU; the batch of its shape is ignored.
#[derive(Clone, Debug)]
pub struct FirstLayer {
    shape: ConvShape,
    /// Output channels rounded up to [`LANES`].
    padded: usize,
    /// `[padded / LANES][tap·c][LANES]`: +1.0 or −1.0 (0.0 past `out_c`); each block's weights
    /// are one contiguous stream.
    weights: Vec<f32>,
}

/// Per-thread buffers (a group of patches, their sums), grown once and reused.
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
                    let (block, lane) = (o / LANES, o % LANES);
                    w[(block * taps * c + tap * c + ci) * LANES + lane] =
                        if negative { -1.0 } else { 1.0 };
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
            _ => run_with::<PIXELS_PORTABLE, false>(self, images, rows, sink),
        }
    }

    /// The patches of the `P` pixels of output row `row` (`n·OH + oy`) from column `ox0` into
    /// `dst`, tap-major (`dst[t·P + j]` is tap `t` of pixel `j`), 0.0 for taps outside the
    /// image. Columns past the row's end repeat its last pixel (their sums are not used).
    #[inline(always)]
    fn gather<const P: usize>(&self, images: &[f32], row: usize, ox0: usize, dst: &mut [f32]) {
        let s = &self.shape;
        let (oh, ow, c) = (s.out_h(), s.out_w(), s.in_c);
        let (n, oy) = (row / oh, row % oh);
        let image = &images[n * s.in_h * s.in_w * c..(n + 1) * s.in_h * s.in_w * c];
        let row_len = s.kernel_w * c;
        let iy0 = (oy * s.stride) as isize - s.pad as isize;
        let ix0 = (ox0 * s.stride) as isize - s.pad as isize;
        let ix_last = ((ox0 + P - 1) * s.stride) as isize - s.pad as isize;
        let inside = ox0 + P <= ow
            && iy0 >= 0
            && iy0 as usize + s.kernel_h <= s.in_h
            && ix0 >= 0
            && ix_last as usize + s.kernel_w <= s.in_w;
        if inside {
            // Every tap inside: pixel j's row ky starts `j·stride·c` after pixel 0's.
            let step = s.stride * c;
            for ky in 0..s.kernel_h {
                let at = ((iy0 as usize + ky) * s.in_w + ix0 as usize) * c;
                let src = &image[at..at + (P - 1) * step + row_len];
                let dst = &mut dst[ky * row_len * P..(ky + 1) * row_len * P];
                for (t, d) in dst.chunks_exact_mut(P).enumerate() {
                    for (j, d) in d.iter_mut().enumerate() {
                        *d = src[j * step + t];
                    }
                }
            }
            return;
        }
        for j in 0..P {
            let ox = (ox0 + j).min(ow - 1);
            let ix0 = (ox * s.stride) as isize - s.pad as isize;
            // Columns kx0..kx1 are inside the image.
            let kx0 = (-ix0).clamp(0, s.kernel_w as isize) as usize;
            let kx1 = (s.in_w as isize - ix0).clamp(kx0 as isize, s.kernel_w as isize) as usize;
            for ky in 0..s.kernel_h {
                let iy = iy0 + ky as isize;
                let mut row = dst[ky * row_len * P + j..]
                    .iter_mut()
                    .step_by(P)
                    .take(row_len);
                if iy < 0 || iy as usize >= s.in_h {
                    row.for_each(|d| *d = 0.0);
                    continue;
                }
                let at = (iy as usize * s.in_w) * c + (ix0 + kx0 as isize) as usize * c;
                row.by_ref().take(kx0 * c).for_each(|d| *d = 0.0);
                // The image side first: `zip` stops at its end without taking from `row`.
                for (&v, d) in image[at..at + (kx1 - kx0) * c].iter().zip(row.by_ref()) {
                    *d = v;
                }
                row.for_each(|d| *d = 0.0);
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
    run_with::<PIXELS_AVX512, true>(l, images, rows, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(
    l: &FirstLayer,
    images: &[f32],
    rows: Range<usize>,
    sink: &mut dyn FnMut(usize, usize, &[f32]),
) {
    run_with::<PIXELS_AVX2, true>(l, images, rows, sink)
}

/// Sums of the `P` patches in `patches` (tap-major: `[depth][P]`) for every channel block.
#[inline(always)]
fn block_sums<const P: usize, const FMA: bool>(
    weights: &[f32],
    padded: usize,
    patches: &[f32],
    depth: usize,
    sums: &mut [f32],
) {
    let patches = &patches[..P * depth];
    for (block, weights) in weights.chunks_exact(depth * LANES).enumerate() {
        let mut acc = [[0.0f32; LANES]; P];
        for (w, x) in weights.chunks_exact(LANES).zip(patches.chunks_exact(P)) {
            let w: &[f32; LANES] = w.try_into().expect("LANES");
            let x: &[f32; P] = x.try_into().expect("P");
            for (a, &x) in acc.iter_mut().zip(x) {
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
fn run_with<const P: usize, const FMA: bool>(
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
        patches.resize(P * depth, 0.0);
        sums.resize(P * l.padded, 0.0);
        for row in rows {
            for ox0 in (0..ow).step_by(P) {
                l.gather::<P>(images, row, ox0, patches);
                block_sums::<P, FMA>(&l.weights, l.padded, patches, depth, sums);
                for j in 0..P.min(ow - ox0) {
                    sink(row, ox0 + j, &sums[j * l.padded..j * l.padded + s.out_c]);
                }
            }
        }
    }
    SCRATCH.set(scratch);
}
