//! Real layers (Bi-Real blocks) on the CPU: the epilogue's constants as one vector per field, so
//! the per-pixel loops over channels vectorize, and a range of output rows per task (a single
//! image uses every thread): per output pixel, max-pool of the conv's values read in place,
//! folded batch norm, shortcut, RPReLU; then the signs. Outputs go to buffers the caller reuses,
//! so a run allocates nothing per layer. The same operations, in the same
//! order, as [`real_epilogue::reference`](crate::ops::real_epilogue::reference) (bit-identical:
//! tests/kernels/real_layers.rs).

use std::cell::RefCell;

use super::conv::pack;
use super::parallel::Threads;
use crate::error::{Error, Result};
use crate::extractor::{LayerSpec, Projection};
use crate::ops::FloatThreshold;
use crate::ops::pool::PoolShape;
use crate::ops::real_epilogue::{EpilogueShape, ProjectionRef, RealChannel, mul, shortcut_term};

/// A real layer's epilogue, prepared.
pub(super) struct RealLayer {
    spec: LayerSpec,
    /// Per output channel, field by field.
    scale: Vec<f32>,
    bias: Vec<f32>,
    shift_in: Vec<f32>,
    slope: Vec<f32>,
    shift_out: Vec<f32>,
    thresholds: Vec<FloatThreshold>,
    /// A projection shortcut's folded 1×1 conv.
    projection: Option<Projection>,
}

/// A conv's values before pooling, `[batch][conv_h][conv_w][C]`.
#[derive(Clone, Copy)]
pub(super) enum Values<'a> {
    /// The first layer's f32 sums.
    Float(&'a [f32]),
    /// Integer dots.
    Int(&'a [i32]),
}

/// Where a real layer's conv values come from.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// Every image's values, computed already.
    Values(Values<'a>),
    /// Computed by the epilogue's own tasks, one image at a time.
    PerImage(PerImage<'a>),
}

/// `f(n, out)` writes image `n`'s conv values (`[conv_h][conv_w][C]`) into `out`.
#[derive(Clone, Copy)]
pub(super) enum PerImage<'a> {
    /// The first layer's f32 sums.
    Float(&'a (dyn Fn(usize, &mut [f32]) + Sync)),
    /// Integer dots.
    Int(&'a (dyn Fn(usize, &mut [i32]) + Sync)),
}

/// Outputs below which an epilogue pass runs on the calling thread: waking the pool costs more
/// than the work (at batch 1 every map of `small-bireal` is below it).
const PARALLEL_MIN_OUTPUTS: usize = 32 << 10;

thread_local! {
    /// One image's conv values, per thread, grown once and reused.
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_I32: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// What every output pixel of one run of a real layer shares.
struct Epilogue<'a> {
    layer: &'a RealLayer,
    shape: &'a EpilogueShape,
    map: &'a Map,
    shortcut: Option<&'a [f32]>,
}

impl Epilogue<'_> {
    /// Output rows from `r0` (row = n·h + py) into `z`, from the whole batch's `values`.
    fn rows(&self, values: Values, r0: usize, z: &mut [f32]) {
        let (h, c) = (self.shape.h, self.shape.channels);
        let mut pooled = vec![0f32; c];
        let mut sums = vec![0f32; self.shape.shortcut_channels()];
        for (k, z) in z.chunks_exact_mut(self.shape.w * c).enumerate() {
            let (n, py) = ((r0 + k) / h, (r0 + k) % h);
            self.row(values, (n, n, py), (&mut pooled, &mut sums), z);
        }
    }

    /// Every output row of image `n` into `z`, from that image's `values` alone.
    fn image(&self, values: Values, n: usize, z: &mut [f32]) {
        let c = self.shape.channels;
        let mut pooled = vec![0f32; c];
        let mut sums = vec![0f32; self.shape.shortcut_channels()];
        for (py, z) in z.chunks_exact_mut(self.shape.w * c).enumerate() {
            self.row(values, (0, n, py), (&mut pooled, &mut sums), z);
        }
    }

    /// Output row `py` of image `n`, its conv values image `vn` of `values`.
    #[inline(always)]
    fn row(
        &self,
        values: Values,
        (vn, n, py): (usize, usize, usize),
        (pooled, sums): (&mut [f32], &mut [f32]),
        z: &mut [f32],
    ) {
        let c = self.shape.channels;
        for (px, z) in z.chunks_exact_mut(c).enumerate() {
            match values {
                Values::Float(v) => self.map.pooled(v, vn, py, px, |x| x, pooled),
                Values::Int(v) => self.map.pooled(v, vn, py, px, |d| d as f32, pooled),
            }
            let at = (n, py, px);
            self.layer
                .pixel(self.shape, at, pooled, self.shortcut, sums, z);
        }
    }
}

impl RealLayer {
    pub(super) fn new(
        spec: &LayerSpec,
        channels: &[RealChannel],
        thresholds: &[FloatThreshold],
        projection: Option<&Projection>,
    ) -> Self {
        let field = |f: fn(&RealChannel) -> f32| channels.iter().map(f).collect();
        RealLayer {
            spec: spec.clone(),
            scale: field(|c| c.scale),
            bias: field(|c| c.bias),
            shift_in: field(|c| c.shift_in),
            slope: field(|c| c.slope),
            shift_out: field(|c| c.shift_out),
            thresholds: thresholds.to_vec(),
            projection: projection.cloned(),
        }
    }

    /// The layer's packed signs (into `bits`) and real output (into `z`) for `batch` images
    /// from the conv's values (`source`), with the previous layer's real output as `shortcut`.
    /// Both outputs are reused buffers, resized here. Values computed already are split by output
    /// rows, so a single image uses every thread too; values computed here are made one image
    /// per task into a per-thread buffer and read back while still in cache.
    pub(super) fn run(
        &self,
        threads: &Threads,
        source: Source,
        batch: usize,
        shortcut: Option<&[f32]>,
        (bits, z): (&mut Vec<u32>, &mut Vec<f32>),
    ) -> Result<()> {
        let s = &self.spec;
        let (conv_h, conv_w) = s.conv_out();
        let c = s.out_channels();
        let shape = s.epilogue_shape(batch);
        let shortcut = shortcut.filter(|_| shape.shortcut.is_some());
        let per_image = conv_h * conv_w * c;
        let len = match source {
            Source::Values(Values::Float(v)) => v.len(),
            Source::Values(Values::Int(v)) => v.len(),
            Source::PerImage(_) => batch * per_image,
        };
        if len != batch * per_image || shortcut.map_or(0, <[f32]>::len) != shape.shortcut_len() {
            return Err(Error::Shape(format!(
                "layer '{}': real input sizes",
                s.name
            )));
        }
        let map = Map {
            h: conv_h,
            w: conv_w,
            c,
            pool: s.pool.map(|p| PoolShape {
                batch: 1,
                in_h: conv_h,
                in_w: conv_w,
                channels: c,
                kernel: p.kernel,
                stride: p.stride,
            }),
        };
        let rows = batch * shape.h;
        let row_len = shape.w * c;
        z.resize(rows * row_len, 0.0);
        let epilogue = Epilogue {
            layer: self,
            shape: &shape,
            map: &map,
            shortcut,
        };
        let threads_used = if z.len() < PARALLEL_MIN_OUTPUTS {
            1
        } else {
            threads.count()
        };
        let split = super::parallel::Split::new(rows, 1, threads_used);
        match source {
            Source::Values(values) => {
                threads.for_chunks(z, split.rows_per_task * row_len, |task, z| {
                    epilogue.rows(values, task * split.rows_per_task, z);
                });
            }
            Source::PerImage(PerImage::Float(f)) => {
                threads.for_chunks(z, shape.h * row_len, |n, z| {
                    SCRATCH_F32.with_borrow_mut(|v| {
                        v.resize(per_image, 0.0);
                        f(n, v);
                        epilogue.image(Values::Float(v), n, z);
                    });
                });
            }
            Source::PerImage(PerImage::Int(f)) => {
                threads.for_chunks(z, shape.h * row_len, |n, z| {
                    SCRATCH_I32.with_borrow_mut(|v| {
                        v.resize(per_image, 0);
                        f(n, v);
                        epilogue.image(Values::Int(v), n, z);
                    });
                });
            }
        }
        let wpo = c.div_ceil(32);
        let z = &z[..];
        bits.resize(rows * shape.w * wpo, 0);
        threads.for_chunks(bits, split.rows_per_task * shape.w * wpo, |task, words| {
            let p0 = task * split.rows_per_task * shape.w;
            for (k, words) in words.chunks_exact_mut(wpo).enumerate() {
                let z = &z[(p0 + k) * c..(p0 + k + 1) * c];
                for (w, word) in words.iter_mut().enumerate() {
                    *word = pack(z, &self.thresholds, w * 32, |v, t| t.plus_one(v));
                }
            }
        });
        Ok(())
    }

    /// One output pixel (image `n`, row `py`, column `px`): `p` its pooled values, `shortcut` the
    /// batch's shortcut map, `sums` scratch of the shortcut's channels, `z` its `C` outputs.
    fn pixel(
        &self,
        shape: &EpilogueShape,
        (n, py, px): (usize, usize, usize),
        p: &[f32],
        shortcut: Option<&[f32]>,
        sums: &mut [f32],
        z: &mut [f32],
    ) {
        let c = shape.channels;
        // Every per-channel slice exactly `c` long, so the loops below index without bounds
        // checks and vectorize.
        let (z, p) = (&mut z[..c], &p[..c]);
        let (scale, bias) = (&self.scale[..c], &self.bias[..c]);
        let (shift_in, slope, shift_out) =
            (&self.shift_in[..c], &self.slope[..c], &self.shift_out[..c]);
        let rprelu = |u: f32, i: usize| {
            let t = u - shift_in[i];
            // Both sides computed, then selected: branch-free, so the loop vectorizes.
            let m = mul(t, slope[i]);
            let v = if t > 0.0 { t } else { m };
            v + shift_out[i]
        };
        let (Some(win), Some(x)) = (shape.shortcut, shortcut) else {
            for i in 0..c {
                z[i] = rprelu(mul(p[i], scale[i]) + bias[i], i);
            }
            return;
        };
        let cs = shape.shortcut_channels();
        let x = &x[n * win.in_h * win.in_w * cs..(n + 1) * win.in_h * win.in_w * cs];
        win.sums(x, (py, px), &mut sums[..cs]);
        let inv = win.inv();
        if let Some(proj) = &self.projection {
            let proj = ProjectionRef {
                weight: &proj.weight,
                bias: &proj.bias,
            };
            for i in 0..c {
                let u = mul(p[i], scale[i]) + bias[i];
                z[i] = rprelu(u + shortcut_term(sums, inv, proj, i), i);
            }
            return;
        }
        let sums = &sums[..c];
        for i in 0..c {
            let u = mul(p[i], scale[i]) + bias[i];
            z[i] = rprelu(u + mul(sums[i], inv), i);
        }
    }
}

/// A conv's output map of one layer: `[batch][h][w][c]`, and the max-pooling that follows it.
struct Map {
    h: usize,
    w: usize,
    c: usize,
    pool: Option<PoolShape>,
}

impl Map {
    /// The values of output pixel (`py`, `px`) of image `n` as f32 (`f` converts; an i32 dot
    /// converts exactly and max commutes with the conversion), max-pooled as
    /// `ops::pool::reference_f32` does it: row-major over the window, a later value replaces the
    /// maximum only if greater.
    #[inline(always)]
    fn pooled<T: Copy>(
        &self,
        v: &[T],
        n: usize,
        py: usize,
        px: usize,
        f: impl Fn(T) -> f32,
        out: &mut [f32],
    ) {
        let c = self.c;
        let out = &mut out[..c];
        let image = &v[n * self.h * self.w * c..(n + 1) * self.h * self.w * c];
        let at = |y: usize, x: usize| (y * self.w + x) * c;
        let Some(p) = &self.pool else {
            let a = at(py, px);
            for (o, &t) in out.iter_mut().zip(&image[a..a + c]) {
                *o = f(t);
            }
            return;
        };
        let (y0, x0) = (py * p.stride, px * p.stride);
        let a = at(y0, x0);
        for (o, &t) in out.iter_mut().zip(&image[a..a + c]) {
            *o = f(t);
        }
        for ky in 0..p.kernel {
            for kx in 0..p.kernel {
                let a = at(y0 + ky, x0 + kx);
                for (m, &t) in out.iter_mut().zip(&image[a..a + c]) {
                    let t = f(t);
                    *m = if t > *m { t } else { *m };
                }
            }
        }
    }
}
