//! The library's CPU binary path: the frozen extractor ([`CpuExtractor`]) and its layers
//! ([`CpuConv`], [`CpuDense`]) as register-blocked XNOR/popcount micro-kernels on packed u64
//! words, prepared once (weights regrouped into channel blocks), run on a persistent thread pool
//! ([`Threads`]) split over output rows × channel groups, with the popcount instruction picked at
//! run time ([`Isa`]: AVX-512 VPOPCNTDQ, AVX2 nibble lookup, scalar `popcnt`, portable).
//!
//! Module map: [`isa`] (instruction levels), `popcount` (micro-kernels), `conv` (a prepared
//! binary conv / dense layer), `first` (the real-valued first layer), [`parallel`] (pool and task
//! split), [`extractor`] (the whole network, conv → threshold → pack → pool fused per layer).
//!
//! Bit-exact with the ops' `reference_*` functions (`crate::ops`) for every level
//! (tests/extractor/bench_cpu.rs, tests/extractor/cpu_extractor.rs). `bnn bench` reports it as
//! `cpu_xnor` and `cpu_binary_extractor`.

mod conv;
pub mod extractor;
mod first;
pub mod isa;
pub mod parallel;
mod popcount;
mod real;

pub use extractor::CpuExtractor;
pub use isa::Isa;
pub use parallel::Threads;

use crate::bits::words;
use crate::error::{Error, Result};
use crate::ops::{ConvShape, DenseShape, Threshold};
use conv::XnorLayer;

/// Threads used by default: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A binary conv layer prepared for the CPU: weights regrouped once, reused for every input.
#[derive(Clone, Debug)]
pub struct CpuConv {
    layer: XnorLayer,
    batch: usize,
    isa: Isa,
}

impl CpuConv {
    /// Prepares packed OHWI `weights` for `shape` (its batch is the batch of every run) with the
    /// best kernels this CPU has (or `BNN_CPU_ISA`).
    pub fn new(shape: &ConvShape, weights: &[u32]) -> Result<Self> {
        CpuConv::with_isa(shape, weights, Isa::from_env()?)
    }

    /// As [`new`](Self::new) with the kernels of `isa` (an error if this CPU lacks it).
    pub fn with_isa(shape: &ConvShape, weights: &[u32], isa: Isa) -> Result<Self> {
        Ok(CpuConv {
            layer: XnorLayer::new(shape, weights)?,
            batch: shape.batch,
            isa: isa.require()?,
        })
    }

    /// The layer's shape (batch included).
    pub fn shape(&self) -> ConvShape {
        ConvShape {
            batch: self.batch,
            ..*self.layer.shape()
        }
    }

    /// The instruction set the kernels run with.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    fn check_input(&self, input: &[u32]) -> Result<()> {
        if input.len() != self.batch * self.layer.input_len() {
            return Err(Error::Shape(format!(
                "cpu conv: {} input words for {:?}",
                input.len(),
                self.shape()
            )));
        }
        Ok(())
    }

    /// Integer dot products `[N][OH][OW][O]`, as `ops::conv::reference_dot`.
    pub fn dot(&self, input: &[u32], threads: &Threads) -> Result<Vec<i32>> {
        self.check_input(input)?;
        let s = self.shape();
        let mut out = vec![0i32; s.batch * s.out_pixels_per_item() * s.out_c];
        self.layer
            .dots_into(self.isa, threads, input, self.batch, &mut out);
        Ok(out)
    }

    /// Packed signs through the fused threshold, `[N][OH][OW][ceil(O/32)]`, as
    /// `ops::conv::reference_bits`.
    pub fn bits(
        &self,
        input: &[u32],
        thresholds: &[Threshold],
        threads: &Threads,
    ) -> Result<Vec<u32>> {
        let s = self.shape();
        if thresholds.len() != s.out_c {
            return Err(Error::Shape(format!(
                "{} thresholds for {} channels",
                thresholds.len(),
                s.out_c
            )));
        }
        self.check_input(input)?;
        let mut out = vec![0u32; s.batch * s.out_pixels_per_item() * s.out_words()];
        self.layer
            .bits_into(self.isa, threads, input, self.batch, thresholds, &mut out);
        Ok(out)
    }
}

/// The first layer (real image × binary weights) prepared for the CPU.
#[derive(Clone, Debug)]
pub struct CpuFirstConv {
    layer: first::FirstLayer,
    shape: ConvShape,
    isa: Isa,
}

impl CpuFirstConv {
    /// Prepares packed OHWI `weights` for `shape` (its batch is the batch of every run).
    pub fn with_isa(shape: &ConvShape, weights: &[u32], isa: Isa) -> Result<Self> {
        Ok(CpuFirstConv {
            layer: first::FirstLayer::new(shape, weights)?,
            shape: *shape,
            isa: isa.require()?,
        })
    }

    /// f32 sums `[N][OH][OW][O]` of NHWC `images`, bit-identical to
    /// `ops::first_conv::reference_sum`.
    pub fn sums(&self, images: &[f32], threads: &Threads) -> Result<Vec<f32>> {
        let s = &self.shape;
        if images.len() != s.batch * s.in_h * s.in_w * s.in_c {
            return Err(Error::Shape(format!(
                "cpu first layer: {} input values for {s:?}",
                images.len()
            )));
        }
        let (ow, oc) = (s.out_w(), s.out_c);
        let rows = s.batch * s.out_h();
        let mut out = vec![0f32; rows * ow * oc];
        let per = rows.div_ceil(threads.count()).max(1);
        threads.for_chunks(&mut out, per * ow * oc, |task, chunk| {
            let r0 = task * per;
            let range = r0..(r0 + per).min(rows);
            self.layer
                .run(self.isa, images, range, &mut |row, ox, sums| {
                    let at = ((row - r0) * ow + ox) * oc;
                    chunk[at..at + oc].copy_from_slice(sums);
                });
        });
        Ok(out)
    }
}

/// A binary dense layer prepared for the CPU.
#[derive(Clone, Debug)]
pub struct CpuDense(CpuConv);

impl CpuDense {
    /// As [`CpuConv::new`].
    pub fn new(shape: &DenseShape, weights: &[u32]) -> Result<Self> {
        CpuDense::with_isa(shape, weights, Isa::from_env()?)
    }
    /// As [`CpuConv::with_isa`]: packed `[out][ceil(in/32)]` `weights` with the kernels of `isa`.
    pub fn with_isa(shape: &DenseShape, weights: &[u32], isa: Isa) -> Result<Self> {
        if weights.len() != shape.out_features * words(shape.in_features) {
            return Err(Error::Shape(format!(
                "cpu dense: {} weight words for {shape:?}",
                weights.len()
            )));
        }
        let conv = ConvShape::dense(shape.batch, shape.in_features, shape.out_features);
        Ok(CpuDense(CpuConv::with_isa(&conv, weights, isa)?))
    }
    /// `[B][O]` dots, as `ops::dense::reference_dot`.
    pub fn dot(&self, input: &[u32], threads: &Threads) -> Result<Vec<i32>> {
        self.0.dot(input, threads)
    }
    /// Packed signs `[B][ceil(O/32)]`, as `ops::dense::reference_bits`.
    pub fn bits(
        &self,
        input: &[u32],
        thresholds: &[Threshold],
        threads: &Threads,
    ) -> Result<Vec<u32>> {
        self.0.bits(input, thresholds, threads)
    }
}

/// One-shot conv dots (prepares the weights, then runs on every core).
pub fn conv_dot(shape: &ConvShape, input: &[u32], weights: &[u32]) -> Result<Vec<i32>> {
    CpuConv::new(shape, weights)?.dot(input, &Threads::all()?)
}

/// One-shot fused conv + threshold.
pub fn conv_bits(
    shape: &ConvShape,
    input: &[u32],
    weights: &[u32],
    thresholds: &[Threshold],
) -> Result<Vec<u32>> {
    CpuConv::new(shape, weights)?.bits(input, thresholds, &Threads::all()?)
}
