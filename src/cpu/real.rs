//! Real layers (Bi-Real blocks) on the CPU: the epilogue's constants as one vector per field, so
//! the per-pixel loops over channels vectorize, and one image per task: max-pool of the conv's
//! values, folded batch norm, shortcut, RPReLU, then the signs. The same operations, in the same
//! order, as [`real_epilogue::reference`](crate::ops::real_epilogue::reference) (bit-identical:
//! tests/kernels/real_layers.rs).

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
pub(super) enum Values<'a> {
    /// The first layer's f32 sums.
    Float(&'a [f32]),
    /// Integer dots.
    Int(&'a [i32]),
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

    /// The layer's packed signs and real output for `batch` images from the conv's `values`, with
    /// the previous layer's real output as `shortcut`.
    pub(super) fn run(
        &self,
        threads: &Threads,
        values: Values,
        batch: usize,
        shortcut: Option<&[f32]>,
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        let s = &self.spec;
        let (conv_h, conv_w) = s.conv_out();
        let c = s.out_channels();
        let shape = s.epilogue_shape(batch);
        let shortcut = shortcut.filter(|_| shape.shortcut.is_some());
        let per_pre = conv_h * conv_w * c;
        let len = match values {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        };
        if len != batch * per_pre || shortcut.map_or(0, <[f32]>::len) != shape.shortcut_len() {
            return Err(Error::Shape(format!(
                "layer '{}': real input sizes",
                s.name
            )));
        }
        let pool = s.pool.map(|p| PoolShape {
            batch: 1,
            in_h: conv_h,
            in_w: conv_w,
            channels: c,
            kernel: p.kernel,
            stride: p.stride,
        });
        let pixels = shape.h * shape.w;
        let per_in = shape
            .shortcut
            .map_or(0, |w| w.in_h * w.in_w * shape.shortcut_channels());
        let mut z = vec![0f32; batch * pixels * c];
        threads.for_chunks(&mut z, pixels * c, |n, z| {
            // This image's values as f32 (an i32 dot converts exactly, and max commutes with the
            // conversion), pooled.
            let range = n * per_pre..(n + 1) * per_pre;
            let v: Vec<f32> = match values_of(&values, range) {
                Values::Float(v) => v.to_vec(),
                Values::Int(v) => v.iter().map(|&d| d as f32).collect(),
            };
            let p = match &pool {
                Some(p) => max_pool(p, &v),
                None => v,
            };
            let x = shortcut.map(|x| &x[n * per_in..(n + 1) * per_in]);
            self.image(&shape, &p, x, z);
        });
        let wpo = c.div_ceil(32);
        let mut bits = vec![0u32; batch * pixels * wpo];
        threads.for_chunks(&mut bits, pixels * wpo, |n, words| {
            for (pixel, words) in words.chunks_exact_mut(wpo).enumerate() {
                let at = (n * pixels + pixel) * c;
                let z = &z[at..at + c];
                for (w, word) in words.iter_mut().enumerate() {
                    *word = pack(z, &self.thresholds, w * 32, |v, t| t.plus_one(v));
                }
            }
        });
        Ok((bits, z))
    }

    /// One image: `p` `[h][w][C]` pooled values, `x` the shortcut map, `out` `[h][w][C]`.
    fn image(&self, shape: &EpilogueShape, p: &[f32], x: Option<&[f32]>, out: &mut [f32]) {
        let c = shape.channels;
        // Every per-channel slice exactly `c` long, so the loops below index without bounds
        // checks and vectorize.
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
        let cs = shape.shortcut_channels();
        let mut sums = vec![0f32; cs];
        let projection = self.projection.as_ref().map(|p| ProjectionRef {
            weight: &p.weight,
            bias: &p.bias,
        });
        for (pixel, (z, p)) in out.chunks_exact_mut(c).zip(p.chunks_exact(c)).enumerate() {
            let (z, p) = (&mut z[..c], &p[..c]);
            match (shape.shortcut, x) {
                (Some(win), Some(x)) => {
                    let (ox, oy) = (pixel % shape.w, pixel / shape.w);
                    sums.fill(0.0);
                    for ky in 0..win.kernel {
                        for kx in 0..win.kernel {
                            let (iy, ix) = (oy * win.stride + ky, ox * win.stride + kx);
                            let at = (iy * win.in_w + ix) * cs;
                            for (s, v) in sums.iter_mut().zip(&x[at..at + cs]) {
                                *s += v;
                            }
                        }
                    }
                    let inv = win.inv();
                    if let Some(proj) = projection {
                        for i in 0..c {
                            let u = mul(p[i], scale[i]) + bias[i];
                            z[i] = rprelu(u + shortcut_term(&sums, inv, proj, i), i);
                        }
                        continue;
                    }
                    let sums = &sums[..c];
                    for i in 0..c {
                        let u = mul(p[i], scale[i]) + bias[i];
                        z[i] = rprelu(u + mul(sums[i], inv), i);
                    }
                }
                _ => {
                    for i in 0..c {
                        z[i] = rprelu(mul(p[i], scale[i]) + bias[i], i);
                    }
                }
            }
        }
    }
}

/// Max-pooling of one image `[in_h][in_w][C]` as `ops::pool::reference_f32` does it (row-major over
/// the window, a later value replaces the maximum only if greater), a pixel's channels at a time.
fn max_pool(p: &PoolShape, v: &[f32]) -> Vec<f32> {
    let (c, oh, ow) = (p.channels, p.out_h(), p.out_w());
    let mut out = vec![0f32; oh * ow * c];
    for (i, m) in out.chunks_exact_mut(c).enumerate() {
        let (y0, x0) = ((i / ow) * p.stride, (i % ow) * p.stride);
        let at = |y: usize, x: usize| (y * p.in_w + x) * c;
        m.copy_from_slice(&v[at(y0, x0)..at(y0, x0) + c]);
        for ky in 0..p.kernel {
            for kx in 0..p.kernel {
                let a = at(y0 + ky, x0 + kx);
                for (m, &t) in m.iter_mut().zip(&v[a..a + c]) {
                    *m = if t > *m { t } else { *m };
                }
            }
        }
    }
    out
}

fn values_of<'a>(v: &Values<'a>, range: std::ops::Range<usize>) -> Values<'a> {
    match v {
        Values::Float(v) => Values::Float(&v[range]),
        Values::Int(v) => Values::Int(&v[range]),
    }
}
