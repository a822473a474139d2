//! The shapes `bnn bench` runs: daBNN's per-layer set, the binary layers of our own networks
//! (`arch.rs`: small, and alexnet's binary convs), and a square GEMM. Shared with `benches/`.

use serde::Serialize;

use crate::arch::{Arch, out_size};
use crate::ops::{ConvShape, DenseShape, Padding};

/// What a case computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A convolution.
    Conv(ConvShape),
    /// `[M][K] × [K][N]`: a dense layer with batch M, K inputs, N outputs.
    Gemm(DenseShape),
}

/// One benchmark shape.
#[derive(Clone, Debug)]
pub struct Case {
    /// `layers` or `gemm`.
    pub suite: &'static str,
    /// Stable id used in JSON and criterion ids, e.g. `56x56x64-64_k3s1p1_b1`.
    pub id: String,
    /// Where the shape comes from, e.g. `daBNN`, `small conv3-5`.
    pub source: String,
    /// The shape and what it computes.
    pub op: Op,
}

impl Op {
    /// Multiply-accumulates of the whole op (all batch items).
    pub fn macs(&self) -> u64 {
        match self {
            Op::Conv(s) => s.macs(),
            Op::Gemm(d) => d.macs(),
        }
    }
    /// The op as a conv (a GEMM is a 1×1 conv over M one-pixel images).
    pub fn as_conv(&self) -> ConvShape {
        match *self {
            Op::Conv(s) => s,
            Op::Gemm(d) => ConvShape::dense(d.batch, d.in_features, d.out_features),
        }
    }
}

/// Serialisable description of a shape.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeInfo {
    /// Images (GEMM: rows M).
    pub batch: usize,
    /// Input height, pixels.
    pub in_h: usize,
    /// Input width, pixels.
    pub in_w: usize,
    /// Input channels (GEMM: K).
    pub in_c: usize,
    /// Output channels (GEMM: N).
    pub out_c: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding on each side.
    pub pad: usize,
    /// Output height, pixels.
    pub out_h: usize,
    /// Output width, pixels.
    pub out_w: usize,
    /// Multiply-accumulates of the whole op.
    pub macs: u64,
}

impl Case {
    /// The case's shape as a conv (GEMM as 1×1 conv), for the report.
    pub fn info(&self) -> ShapeInfo {
        let s = self.op.as_conv();
        ShapeInfo {
            batch: s.batch,
            in_h: s.in_h,
            in_w: s.in_w,
            in_c: s.in_c,
            out_c: s.out_c,
            kernel: s.kernel_h,
            stride: s.stride,
            pad: s.pad,
            out_h: s.out_h(),
            out_w: s.out_w(),
            macs: self.op.macs(),
        }
    }
}

/// A square-stride, zero-padded conv.
pub fn conv(
    batch: usize,
    side: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> ConvShape {
    ConvShape {
        batch,
        in_h: side,
        in_w: side,
        in_c: cin,
        out_c: cout,
        kernel_h: k,
        kernel_w: k,
        stride,
        pad,
        padding: Padding::Zero,
    }
}

fn conv_id(s: &ConvShape) -> String {
    format!(
        "{}x{}x{}-{}_k{}s{}p{}_b{}",
        s.in_h, s.in_w, s.in_c, s.out_c, s.kernel_h, s.stride, s.pad, s.batch
    )
}

fn conv_case(source: impl Into<String>, s: ConvShape) -> Case {
    Case {
        suite: "layers",
        id: conv_id(&s),
        source: source.into(),
        op: Op::Conv(s),
    }
}

/// daBNN's layer set: 3×3 at 56²×64, 28²×128, 14²×256, 7²×512 (same channels in and out, pad 1),
/// and 14²×256 at 5×5 (pad 2).
pub fn dabnn(batch: usize) -> Vec<Case> {
    let mut v: Vec<Case> = [(56, 64), (28, 128), (14, 256), (7, 512)]
        .into_iter()
        .map(|(side, c)| conv_case("daBNN", conv(batch, side, c, c, 3, 1, 1)))
        .collect();
    v.push(conv_case("daBNN", conv(batch, 14, 256, 256, 5, 1, 2)));
    v
}

/// The binary conv layers of `arch` (every conv but the first, which sees the real image), with
/// identical shapes merged (`small conv3-5`), and its binary dense layers as GEMMs of batch rows.
pub fn arch_layers(arch: &Arch, batch: usize) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut side = arch.input;
    let mut cin = arch.in_channels;
    let mut names: Vec<(ConvShape, Vec<usize>)> = Vec::new();
    for (i, c) in arch.convs.iter().enumerate() {
        if i > 0 {
            let s = conv(batch, side, cin, c.out, c.kernel, c.stride, c.pad);
            match names.iter_mut().find(|(t, _)| *t == s) {
                Some((_, idx)) => idx.push(i + 1),
                None => names.push((s, vec![i + 1])),
            }
        }
        side = out_size(side, c.kernel, c.stride, c.pad);
        if let Some(p) = c.pool {
            side = out_size(side, p.kernel, p.stride, 0);
        }
        cin = c.out;
    }
    for (s, idx) in names {
        let label = match idx.as_slice() {
            [one] => format!("{} conv{one}", arch.name),
            [first, .., last] => format!("{} conv{first}-{last}", arch.name),
            [] => unreachable!("at least one layer per shape"),
        };
        cases.push(conv_case(label, s));
    }
    let mut fin = side * side * cin;
    for (j, &d) in arch.dense.iter().enumerate() {
        let shape = DenseShape {
            batch,
            in_features: fin,
            out_features: d,
        };
        cases.push(Case {
            suite: "layers",
            id: gemm_id(&shape),
            source: format!("{} fc{}", arch.name, j + 1),
            op: Op::Gemm(shape),
        });
        fin = d;
    }
    cases
}

fn gemm_id(d: &DenseShape) -> String {
    format!("gemm_{}x{}x{}", d.batch, d.in_features, d.out_features)
}

/// A square GEMM of side `n` (M = K = N).
pub fn gemm(n: usize) -> Case {
    let shape = DenseShape {
        batch: n,
        in_features: n,
        out_features: n,
    };
    Case {
        suite: "gemm",
        id: gemm_id(&shape),
        source: format!("square GEMM {n}"),
        op: Op::Gemm(shape),
    }
}
