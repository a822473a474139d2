//! A binary conv layer prepared for the CPU (a dense layer is the 1×1 conv of one pixel): the
//! weights regrouped once into blocks of [`LANES`] output channels (`[block][k][LANES]` u64, two
//! u32 channel words per u64, the odd last one zero-extended), and the pass over a range of
//! output rows × channel blocks that the extractor's tasks run.
//!
//! Per group of 4 output pixels (consecutive in `n, oy, ox` order, so a dense layer blocks over
//! images) the receptive fields are gathered into contiguous patches, with zero words for taps
//! outside the image. The micro-kernel ([`super::popcount`]) counts mismatches against each
//! channel block; the epilogue turns them into dots. Zero padding: a zero patch word against the
//! weights counts the weight's set bits as mismatches, so they are taken back per skipped tap
//! (`tap_pop`), and `K` counts only the taps inside the image; one padding needs no fix-up (a
//! zero word is +1). Tail bits are 0 in both operands and never mismatch.

use std::cell::RefCell;
use std::ops::Range;

use super::Isa;
use super::parallel::{SharedOut, Split, Threads};
use super::popcount::{LANES, block_portable};
use crate::error::{Error, Result};
use crate::ops::{ConvShape, Padding, Threshold};

/// Receives `(row, ox, first_channel, dots)` for each output pixel of a pass.
pub type DotSink<'a> = dyn FnMut(usize, usize, usize, &[i32]) + 'a;

/// Pixels per micro-kernel call.
const PIXELS: usize = 4;

/// Below this many binary MACs a layer runs on the calling thread: waking the pool costs more
/// (tens of microseconds) than the layer.
const PARALLEL_MIN_MACS: usize = 4 << 20;

/// A prepared binary conv; the batch of its shape is ignored (every call names its own).
#[derive(Clone, Debug)]
pub struct XnorLayer {
    shape: ConvShape,
    /// u32 words per input pixel.
    wpp: usize,
    /// u64 words per input pixel (and per tap of a weight row).
    q: usize,
    /// u64 words per patch: taps · q.
    k: usize,
    /// Channel blocks of [`LANES`].
    blocks: usize,
    /// `[block][k][LANES]`; channels past `out_c` are zero.
    weights: Vec<u64>,
    /// `[tap][blocks · LANES]`: set weight bits per tap and channel.
    tap_pop: Vec<i32>,
}

/// The receptive field of one output pixel clipped to the image: taps `ky0..ky1 × kx0..kx1`.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    base: usize,
    iy0: isize,
    ix0: isize,
    ky0: usize,
    ky1: usize,
    kx0: usize,
    kx1: usize,
}

#[derive(Default)]
struct Scratch {
    patches: Vec<u64>,
    windows: Vec<Window>,
    mismatches: Vec<[u32; LANES]>,
    dots: Vec<i32>,
}

thread_local! {
    /// Per-thread buffers, grown once and reused by every call on the thread.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl XnorLayer {
    /// Prepares packed OHWI `weights` for `shape`.
    pub fn new(shape: &ConvShape, weights: &[u32]) -> Result<Self> {
        shape.validate()?;
        if weights.len() != shape.weight_words() {
            return Err(Error::Shape(format!(
                "cpu conv: {} weight words for {shape:?}",
                weights.len()
            )));
        }
        let wpp = shape.in_words();
        let q = wpp.div_ceil(2);
        let taps = shape.kernel_h * shape.kernel_w;
        let k = taps * q;
        let blocks = shape.out_c.div_ceil(LANES);
        let mut w = vec![0u64; blocks * k * LANES];
        let mut tap_pop = vec![0i32; taps * blocks * LANES];
        for (o, row) in weights.chunks_exact(taps * wpp).enumerate() {
            let (b, lane) = (o / LANES, o % LANES);
            for (tap, words) in row.chunks_exact(wpp).enumerate() {
                for j in 0..q {
                    let lo = words[2 * j] as u64;
                    let hi = words.get(2 * j + 1).copied().unwrap_or(0) as u64;
                    w[(b * k + tap * q + j) * LANES + lane] = lo | (hi << 32);
                }
                tap_pop[tap * blocks * LANES + o] =
                    words.iter().map(|x| x.count_ones() as i32).sum();
            }
        }
        Ok(XnorLayer {
            shape: *shape,
            wpp,
            q,
            k,
            blocks,
            weights: w,
            tap_pop,
        })
    }

    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }

    /// Every channel block, for [`run`](Self::run).
    pub fn all_blocks(&self) -> Range<usize> {
        0..self.blocks
    }

    /// Input words per image.
    pub fn input_len(&self) -> usize {
        self.shape.input_words_per_item()
    }

    /// Dots for output rows `rows` (row = n·OH + oy) and channel blocks `blocks`: calls
    /// `sink(row, ox, first_channel, dots)` per output pixel with the dots of channels
    /// `first_channel..` (at most `blocks.len()·LANES`, none past `out_c`).
    pub fn run(
        &self,
        isa: Isa,
        input: &[u32],
        rows: Range<usize>,
        blocks: Range<usize>,
        sink: &mut DotSink,
    ) {
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Isa` reaches a layer only after `Isa::require` (see `CpuExtractor`).
            Isa::Avx512 => unsafe { run_avx512(self, input, rows, blocks, sink) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 => unsafe { run_avx2(self, input, rows, blocks, sink) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Popcnt => unsafe { run_popcnt(self, input, rows, blocks, sink) },
            _ => run_with::<PORTABLE>(self, input, rows, blocks, sink),
        }
    }

    /// Runs every (rows × channel groups of `group_blocks` blocks) task of `batch` images on
    /// `threads`, `sink` as in [`run`](Self::run).
    fn each_task(
        &self,
        isa: Isa,
        threads: &Threads,
        batch: usize,
        group_blocks: usize,
        input: &[u32],
        sink: impl Fn(usize, usize, usize, &[i32]) + Sync,
    ) {
        let rows = batch * self.shape.out_h();
        let groups = self.blocks.div_ceil(group_blocks);
        let macs = rows * self.shape.out_w() * self.shape.out_c * self.k * 64;
        if macs < PARALLEL_MIN_MACS {
            let all = 0..self.blocks;
            return self.run(isa, input, 0..rows, all, &mut |r, x, f, d| sink(r, x, f, d));
        }
        let split = Split::new(rows, groups, threads.count());
        threads.for_each(split.tasks(), |task| {
            let (rows, groups) = split.task(task, rows, groups);
            let blocks = groups.start * group_blocks..(groups.end * group_blocks).min(self.blocks);
            self.run(isa, input, rows, blocks, &mut |r, x, f, d| sink(r, x, f, d));
        });
    }

    /// Integer dots of `batch` images into `out` (`[N][OH][OW][O]`).
    pub fn dots_into(
        &self,
        isa: Isa,
        threads: &Threads,
        input: &[u32],
        batch: usize,
        out: &mut [i32],
    ) {
        let (ow, oc) = (self.shape.out_w(), self.shape.out_c);
        let shared = SharedOut::new(out);
        self.each_task(isa, threads, batch, 1, input, |row, ox, first, dots| {
            let at = (row * ow + ox) * oc + first;
            for (i, &d) in dots.iter().enumerate() {
                // SAFETY: channels `first..` of this pixel belong to this task.
                unsafe { shared.write(at + i, d) };
            }
        });
    }

    /// Packed signs through `thresholds` of `batch` images into `out` (`[N][OH][OW][words(O)]`):
    /// conv, threshold and packing fused per pixel.
    pub fn bits_into(
        &self,
        isa: Isa,
        threads: &Threads,
        input: &[u32],
        batch: usize,
        thresholds: &[Threshold],
        out: &mut [u32],
    ) {
        let (ow, wpo) = (self.shape.out_w(), self.shape.out_words());
        let shared = SharedOut::new(out);
        // Groups of 32 channels: each output word is written by one task.
        self.each_task(
            isa,
            threads,
            batch,
            32 / LANES,
            input,
            |row, ox, first, dots| {
                let at = (row * ow + ox) * wpo;
                for w in first / 32..(first + dots.len()).div_ceil(32) {
                    let word = pack(dots, &thresholds[first..], w * 32 - first, |d, t| {
                        t.plus_one(d)
                    });
                    // SAFETY: word `w` of this pixel belongs to this task's channels.
                    unsafe { shared.write(at + w, word) };
                }
            },
        );
    }

    fn window(&self, pixel: usize) -> Window {
        let s = &self.shape;
        let (ow, oh) = (s.out_w(), s.out_h());
        let (row, ox) = (pixel / ow, pixel % ow);
        let (n, oy) = (row / oh, row % oh);
        let iy0 = (oy * s.stride) as isize - s.pad as isize;
        let ix0 = (ox * s.stride) as isize - s.pad as isize;
        let clip = |start: isize, size: usize, kernel: usize| {
            let lo = (-start).clamp(0, kernel as isize) as usize;
            let hi = (size as isize - start).clamp(0, kernel as isize) as usize;
            (lo, hi.max(lo))
        };
        let (ky0, ky1) = clip(iy0, s.in_h, s.kernel_h);
        let (kx0, kx1) = clip(ix0, s.in_w, s.kernel_w);
        Window {
            base: n * s.in_h * s.in_w,
            iy0,
            ix0,
            ky0,
            ky1,
            kx0,
            kx1,
        }
    }

    /// The patch of window `win` into `dst` (`k` words; taps outside the image are zero).
    #[inline(always)]
    fn gather(&self, input: &[u32], win: &Window, dst: &mut [u64]) {
        let s = &self.shape;
        let (q, wpp) = (self.q, self.wpp);
        for ky in 0..s.kernel_h {
            for kx in 0..s.kernel_w {
                let tap = ky * s.kernel_w + kx;
                let d = &mut dst[tap * q..(tap + 1) * q];
                if ky < win.ky0 || ky >= win.ky1 || kx < win.kx0 || kx >= win.kx1 {
                    d.fill(0);
                    continue;
                }
                let iy = (win.iy0 + ky as isize) as usize;
                let ix = (win.ix0 + kx as isize) as usize;
                let at = (win.base + iy * s.in_w + ix) * wpp;
                let src = &input[at..at + wpp];
                let (pairs, rest) = src.as_chunks::<2>();
                for (x, pair) in d.iter_mut().zip(pairs) {
                    *x = pair[0] as u64 | ((pair[1] as u64) << 32);
                }
                if let [last] = rest {
                    d[q - 1] = *last as u64;
                }
            }
        }
    }

    /// Dots of one pixel's channels `first..first + dots.len()` from its mismatch counts.
    #[inline(always)]
    fn epilogue(&self, win: &Window, mismatches: &[[u32; LANES]], first: usize, dots: &mut [i32]) {
        let s = &self.shape;
        let m = mismatches.as_flattened();
        let taps = s.kernel_h * s.kernel_w;
        let full = win.ky0 == 0 && win.kx0 == 0 && win.ky1 == s.kernel_h && win.kx1 == s.kernel_w;
        match (s.padding, full) {
            (Padding::One, _) | (Padding::Zero, true) => {
                let k = (taps * s.in_c) as i32;
                for (d, &m) in dots.iter_mut().zip(m) {
                    *d = k - 2 * m as i32;
                }
            }
            (Padding::Zero, false) => {
                let inside = (win.ky1 - win.ky0) * (win.kx1 - win.kx0);
                let k = (inside * s.in_c) as i32;
                for (d, &m) in dots.iter_mut().zip(m) {
                    *d = m as i32;
                }
                let stride = self.blocks * LANES;
                for ky in 0..s.kernel_h {
                    for kx in 0..s.kernel_w {
                        if ky >= win.ky0 && ky < win.ky1 && kx >= win.kx0 && kx < win.kx1 {
                            continue;
                        }
                        let row = (ky * s.kernel_w + kx) * stride + first;
                        for (d, &p) in dots.iter_mut().zip(&self.tap_pop[row..]) {
                            *d -= p;
                        }
                    }
                }
                for d in dots.iter_mut() {
                    *d = k - 2 * *d;
                }
            }
        }
    }
}

const PORTABLE: u8 = 0;
#[cfg(target_arch = "x86_64")]
const AVX2: u8 = 2;
#[cfg(target_arch = "x86_64")]
const AVX512: u8 = 3;

/// The micro-kernel of level `ISA` for `P` pixels.
#[inline(always)]
fn kernel<const ISA: u8, const P: usize>(
    patches: &[u64],
    k: usize,
    w: &[u64],
    out: &mut [[u32; LANES]; P],
) {
    match ISA {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `run_with::<AVX512>` is only reached through `run_avx512`.
        AVX512 => unsafe { super::popcount::block_avx512::<P>(patches, k, w, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `run_with::<AVX2>` is only reached through `run_avx2`.
        AVX2 => unsafe { super::popcount::block_avx2::<P>(patches, k, w, out) },
        _ => block_portable::<P>(patches, k, w, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
unsafe fn run_avx512(
    l: &XnorLayer,
    input: &[u32],
    rows: Range<usize>,
    blocks: Range<usize>,
    sink: &mut DotSink,
) {
    run_with::<AVX512>(l, input, rows, blocks, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn run_avx2(
    l: &XnorLayer,
    input: &[u32],
    rows: Range<usize>,
    blocks: Range<usize>,
    sink: &mut DotSink,
) {
    run_with::<AVX2>(l, input, rows, blocks, sink)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn run_popcnt(
    l: &XnorLayer,
    input: &[u32],
    rows: Range<usize>,
    blocks: Range<usize>,
    sink: &mut DotSink,
) {
    run_with::<PORTABLE>(l, input, rows, blocks, sink)
}

#[inline(always)]
fn run_with<const ISA: u8>(
    l: &XnorLayer,
    input: &[u32],
    rows: Range<usize>,
    blocks: Range<usize>,
    sink: &mut DotSink,
) {
    let ow = l.shape.out_w();
    let k = l.k;
    let first = blocks.start * LANES;
    let channels = (blocks.end * LANES).min(l.shape.out_c) - first;
    // Taken out of the thread-local (not borrowed in a closure) so that this body, and the
    // micro-kernels inlined into it, stay inside the caller compiled with the CPU's features.
    let mut scratch = SCRATCH.take();
    {
        let s = &mut scratch;
        s.patches.resize(PIXELS * k, 0);
        s.windows.resize(PIXELS, Window::default());
        s.mismatches.resize(PIXELS * blocks.len(), [0; LANES]);
        s.dots.resize(channels, 0);
        let pixels = rows.start * ow..rows.end * ow;
        let mut p0 = pixels.start;
        while p0 < pixels.end {
            let n = (pixels.end - p0).min(PIXELS);
            for j in 0..n {
                s.windows[j] = l.window(p0 + j);
                l.gather(input, &s.windows[j], &mut s.patches[j * k..(j + 1) * k]);
            }
            for (bi, b) in blocks.clone().enumerate() {
                let w = &l.weights[b * k * LANES..(b + 1) * k * LANES];
                if n == 1 {
                    let mut out = [[0u32; LANES]; 1];
                    kernel::<ISA, 1>(&s.patches, k, w, &mut out);
                    s.mismatches[bi] = out[0];
                } else {
                    // Pixels past `n` reuse stale patches; their counts are never read.
                    let mut out = [[0u32; LANES]; PIXELS];
                    kernel::<ISA, PIXELS>(&s.patches, k, w, &mut out);
                    for (j, o) in out.iter().enumerate().take(n) {
                        s.mismatches[j * blocks.len() + bi] = *o;
                    }
                }
            }
            for j in 0..n {
                let m = &s.mismatches[j * blocks.len()..(j + 1) * blocks.len()];
                l.epilogue(&s.windows[j], m, first, &mut s.dots);
                let pixel = p0 + j;
                sink(pixel / ow, pixel % ow, first, &s.dots);
            }
            p0 += n;
        }
    }
    SCRATCH.set(scratch);
}

/// Word of packed signs for channels `start..start + 32` of `values` (those that exist): bit set
/// (−1) where `plus_one(value, threshold)` is false.
#[inline(always)]
pub(super) fn pack<V: Copy, T>(
    values: &[V],
    th: &[T],
    start: usize,
    plus_one: impl Fn(V, &T) -> bool,
) -> u32 {
    let end = (start + 32).min(values.len());
    let mut word = 0u32;
    for (b, (&v, t)) in values[start..end].iter().zip(&th[start..end]).enumerate() {
        if !plus_one(v, t) {
            word |= 1 << b;
        }
    }
    word
}
