//! The library's CPU binary path: the XNOR/popcount conv and dense layer of
//! [`kernels::xnor_conv`](crate::kernels::xnor_conv) and
//! [`kernels::xnor_dense`](crate::kernels::xnor_dense) made reasonably fast on a CPU. Packed words
//! are regrouped into u64 (two u32 channel words per u64, the odd last one zero-extended: tail bits
//! stay 0 in both operands), every output pixel gathers its receptive field into one contiguous
//! patch (out-of-image taps as zero words), and each output channel is one XOR + popcount pass over
//! patch and weight row. Zero padding then takes back the weight bits of the skipped taps
//! (precomputed per channel and tap) and counts only valid taps in K; one padding needs no fix-up
//! (a zero word is +1). Output rows are spread over threads with `std::thread::scope`, and the
//! inner loop is compiled three times (baseline, `popcnt`, `avx2`+`popcnt`) and picked at run time.
//!
//! Bit-exact with the kernels' `reference_*` functions (tests/bench_cpu.rs). This is what
//! `bnn bench` reports as `cpu_xnor` for machines whose only adapter is a CPU.

pub mod extractor;

use crate::bits::words;
use crate::error::{Error, Result};
use crate::kernels::xnor_dense::DenseShape;
use crate::kernels::{ConvShape, Padding, Threshold};

/// Threads used by default: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Regroups `rows` of `wpr` u32 words into rows of `wpr.div_ceil(2)` u64 words.
fn to_u64_rows(data: &[u32], wpr: usize) -> Vec<u64> {
    let q = wpr.div_ceil(2);
    let rows = data.len() / wpr;
    let mut out = vec![0u64; rows * q];
    for (src, dst) in data.chunks_exact(wpr).zip(out.chunks_exact_mut(q)) {
        for (j, d) in dst.iter_mut().enumerate() {
            let lo = src[2 * j] as u64;
            let hi = src.get(2 * j + 1).copied().unwrap_or(0) as u64;
            *d = lo | (hi << 32);
        }
    }
    out
}

/// A binary conv layer prepared for the CPU: weights regrouped once, reused for every input.
#[derive(Clone, Debug)]
pub struct CpuConv {
    shape: ConvShape,
    /// u64 words per pixel (and per tap of a weight row).
    q: usize,
    /// `[O][KH·KW·q]`.
    weights: Vec<u64>,
    /// `[O][KH·KW]`: set weight bits of each tap (what a skipped zero-padding tap must give back).
    tap_pop: Vec<u32>,
}

impl CpuConv {
    /// Prepares packed OHWI `weights` for `shape` (the batch of `shape` is the batch of every run).
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
        let w = to_u64_rows(weights, wpp);
        let tap_pop = w
            .chunks_exact(q)
            .map(|tap| tap.iter().map(|x| x.count_ones()).sum())
            .collect();
        Ok(CpuConv {
            shape: *shape,
            q,
            weights: w,
            tap_pop,
        })
    }

    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }

    fn check_input(&self, input: &[u32]) -> Result<Vec<u64>> {
        let s = &self.shape;
        if input.len() != s.batch * s.input_words_per_item() {
            return Err(Error::Shape(format!(
                "cpu conv: {} input words for {s:?}",
                input.len()
            )));
        }
        Ok(to_u64_rows(input, s.in_words()))
    }

    /// Integer dot products `[N][OH][OW][O]`, as `xnor_conv::reference_dot`.
    pub fn dot(&self, input: &[u32], threads: usize) -> Result<Vec<i32>> {
        let x = self.check_input(input)?;
        let s = &self.shape;
        let mut out = vec![0i32; s.batch * s.out_pixels_per_item() * s.out_c];
        self.par_rows(&mut out, s.out_w() * s.out_c, threads, |row, chunk| {
            let mut patch = vec![0u64; s.kernel_h * s.kernel_w * self.q];
            let mut skipped = Vec::with_capacity(s.kernel_h * s.kernel_w);
            for (ox, dots) in chunk.chunks_exact_mut(s.out_c).enumerate() {
                self.pixel(&x, row, ox, &mut patch, &mut skipped, dots);
            }
        });
        Ok(out)
    }

    /// Packed signs through the fused threshold, `[N][OH][OW][ceil(O/32)]`, as
    /// `xnor_conv::reference_bits`.
    pub fn bits(
        &self,
        input: &[u32],
        thresholds: &[Threshold],
        threads: usize,
    ) -> Result<Vec<u32>> {
        let s = &self.shape;
        if thresholds.len() != s.out_c {
            return Err(Error::Shape(format!(
                "{} thresholds for {} channels",
                thresholds.len(),
                s.out_c
            )));
        }
        let x = self.check_input(input)?;
        let ow = s.out_words();
        let mut out = vec![0u32; s.batch * s.out_pixels_per_item() * ow];
        self.par_rows(&mut out, s.out_w() * ow, threads, |row, chunk| {
            let mut patch = vec![0u64; s.kernel_h * s.kernel_w * self.q];
            let mut skipped = Vec::with_capacity(s.kernel_h * s.kernel_w);
            let mut dots = vec![0i32; s.out_c];
            for (ox, packed) in chunk.chunks_exact_mut(ow).enumerate() {
                self.pixel(&x, row, ox, &mut patch, &mut skipped, &mut dots);
                for (o, (&d, t)) in dots.iter().zip(thresholds).enumerate() {
                    if !t.plus_one(d) {
                        packed[o / 32] |= 1 << (o % 32);
                    }
                }
            }
        });
        Ok(out)
    }

    /// Splits `out` into output rows (`row_len` elements each, `N·OH` rows) over `threads` threads.
    fn par_rows<T: Send>(
        &self,
        out: &mut [T],
        row_len: usize,
        threads: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let rows = out.len() / row_len.max(1);
        let threads = threads.clamp(1, rows.max(1));
        let per = rows.div_ceil(threads);
        if threads == 1 {
            for (r, chunk) in out.chunks_exact_mut(row_len).enumerate() {
                f(r, chunk);
            }
            return;
        }
        std::thread::scope(|scope| {
            for (t, block) in out.chunks_mut(per * row_len).enumerate() {
                let f = &f;
                scope.spawn(move || {
                    for (i, chunk) in block.chunks_exact_mut(row_len).enumerate() {
                        f(t * per + i, chunk);
                    }
                });
            }
        });
    }

    /// All output channels of pixel (row = n·OH + oy, ox).
    fn pixel(
        &self,
        x: &[u64],
        row: usize,
        ox: usize,
        patch: &mut [u64],
        skipped: &mut Vec<usize>,
        dots: &mut [i32],
    ) {
        let s = &self.shape;
        let (n, oy) = (row / s.out_h(), row % s.out_h());
        let q = self.q;
        skipped.clear();
        for ky in 0..s.kernel_h {
            for kx in 0..s.kernel_w {
                let tap = ky * s.kernel_w + kx;
                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                let dst = &mut patch[tap * q..(tap + 1) * q];
                if iy >= 0 && ix >= 0 && (iy as usize) < s.in_h && (ix as usize) < s.in_w {
                    let a = ((n * s.in_h + iy as usize) * s.in_w + ix as usize) * q;
                    dst.copy_from_slice(&x[a..a + q]);
                } else {
                    dst.fill(0);
                    skipped.push(tap);
                }
            }
        }
        let taps = s.kernel_h * s.kernel_w;
        let (valid, zero_pad) = match s.padding {
            Padding::Zero => (taps - skipped.len(), !skipped.is_empty()),
            Padding::One => (taps, false),
        };
        let k = (valid * s.in_c) as i32;
        mismatches(patch, &self.weights, dots);
        for (o, d) in dots.iter_mut().enumerate() {
            let mut m = *d;
            if zero_pad {
                let pops = &self.tap_pop[o * taps..(o + 1) * taps];
                m -= skipped.iter().map(|&t| pops[t] as i32).sum::<i32>();
            }
            *d = k - 2 * m;
        }
    }
}

/// `out[o] = popcount(patch XOR weights[o])` summed over the row, for every output channel.
fn mismatches(patch: &[u64], weights: &[u64], out: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU supports the features this copy was compiled for (checked above).
            return unsafe { mismatches_avx2(patch, weights, out) };
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: as above.
            return unsafe { mismatches_popcnt(patch, weights, out) };
        }
    }
    mismatches_generic(patch, weights, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn mismatches_avx2(patch: &[u64], weights: &[u64], out: &mut [i32]) {
    mismatches_generic(patch, weights, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn mismatches_popcnt(patch: &[u64], weights: &[u64], out: &mut [i32]) {
    mismatches_generic(patch, weights, out)
}

#[inline(always)]
fn mismatches_generic(patch: &[u64], weights: &[u64], out: &mut [i32]) {
    let len = patch.len();
    for (o, row) in weights.chunks_exact(len).enumerate() {
        let mut m = 0u32;
        for (a, w) in patch.iter().zip(row) {
            m += (a ^ w).count_ones();
        }
        out[o] = m as i32;
    }
}

/// The dense layer as a 1×1 conv over a batch of one-pixel images.
fn dense_conv(shape: &DenseShape) -> ConvShape {
    ConvShape {
        batch: shape.batch,
        in_h: 1,
        in_w: 1,
        in_c: shape.in_features,
        out_c: shape.out_features,
        kernel_h: 1,
        kernel_w: 1,
        stride: 1,
        pad: 0,
        padding: Padding::Zero,
    }
}

/// A binary dense layer prepared for the CPU.
#[derive(Clone, Debug)]
pub struct CpuDense(CpuConv);

impl CpuDense {
    pub fn new(shape: &DenseShape, weights: &[u32]) -> Result<Self> {
        if weights.len() != shape.out_features * words(shape.in_features) {
            return Err(Error::Shape(format!(
                "cpu dense: {} weight words for {shape:?}",
                weights.len()
            )));
        }
        Ok(CpuDense(CpuConv::new(&dense_conv(shape), weights)?))
    }
    /// `[B][O]` dots, as `xnor_dense::reference_dot`.
    pub fn dot(&self, input: &[u32], threads: usize) -> Result<Vec<i32>> {
        self.0.dot(input, threads)
    }
    /// Packed signs `[B][ceil(O/32)]`, as `xnor_dense::reference_bits`.
    pub fn bits(
        &self,
        input: &[u32],
        thresholds: &[Threshold],
        threads: usize,
    ) -> Result<Vec<u32>> {
        self.0.bits(input, thresholds, threads)
    }
}

/// One-shot conv dots (prepares the weights, then runs on every core).
pub fn conv_dot(shape: &ConvShape, input: &[u32], weights: &[u32]) -> Result<Vec<i32>> {
    CpuConv::new(shape, weights)?.dot(input, default_threads())
}

/// One-shot fused conv + threshold.
pub fn conv_bits(
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: &[Threshold],
) -> Result<Vec<u32>> {
    CpuConv::new(shape, weights)?.bits(input, thresholds, default_threads())
}
