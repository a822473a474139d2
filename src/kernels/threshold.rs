//! The output transform (`shaders/threshold.wgsl`): batch norm + sign folded into a per-channel
//! threshold on the pre-activation, written straight to packed signs.
//!
//! For a pre-activation `x` followed by BN(γ, β, μ, σ) and sign, `sign(γ(x−μ)/σ + β)` is +1 iff
//! `x ≥ μ − βσ/γ` when γ > 0 and iff `x ≤ μ − βσ/γ` when γ < 0 (γ = 0: the constant sign of β).
//! For integer `x` the bound rounds to an integer (ceil for γ > 0, floor for γ < 0), so the
//! integer comparison reproduces the float forward pass exactly except where the float value sits
//! on the threshold itself.

use bytemuck::{Pod, Zeroable};

use super::{Shader, WORKGROUP, dispatch};
use crate::bits::words;
use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, PipelineKey, Storage};

/// Integer threshold: +1 iff `v >= t` (mode 0) or `v <= t` (mode 1).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable, serde::Serialize, serde::Deserialize,
)]
pub struct Threshold {
    /// The bound.
    pub t: i32,
    /// 0: +1 iff `v >= t`; 1: +1 iff `v <= t`.
    pub mode: u32,
}

/// Float threshold for real-valued pre-activations (the first layer).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct FloatThreshold {
    /// The bound.
    pub t: f32,
    /// 0: +1 iff `v >= t`; 1: +1 iff `v <= t`.
    pub mode: u32,
}

impl Threshold {
    /// Always +1: `pre >= i32::MIN` holds for every pre-activation.
    pub const ALWAYS_PLUS: Threshold = Threshold {
        t: i32::MIN,
        mode: 0,
    };
    /// Always −1: `pre >= i32::MAX` never holds, because every pre-activation is bounded by the
    /// layer's depth K (plus a dense layer's `dot_offset`), far below `i32::MAX`.
    pub const ALWAYS_MINUS: Threshold = Threshold {
        t: i32::MAX,
        mode: 0,
    };

    /// +1 iff the pre-activation is `>= t` (mode 0).
    pub fn at_least(t: i32) -> Self {
        Threshold { t, mode: 0 }
    }
    /// +1 iff the pre-activation is `<= t` (mode 1).
    pub fn at_most(t: i32) -> Self {
        Threshold { t, mode: 1 }
    }
    /// Whether pre-activation `v` maps to +1.
    ///
    /// ```
    /// use bnn_transfer::kernels::Threshold;
    /// // BN with γ > 0 folded to `pre ≥ 3`; with γ < 0 to `pre ≤ 3`.
    /// assert!(Threshold::at_least(3).plus_one(3) && !Threshold::at_least(3).plus_one(2));
    /// assert!(Threshold::at_most(3).plus_one(-7) && !Threshold::at_most(3).plus_one(4));
    /// assert!(!Threshold::ALWAYS_MINUS.plus_one(i32::MAX - 1));
    /// ```
    pub fn plus_one(&self, v: i32) -> bool {
        if self.mode == 1 {
            v <= self.t
        } else {
            v >= self.t
        }
    }
}

impl FloatThreshold {
    /// Always +1: `pre >= f32::MIN` holds for every finite pre-activation. Finite on purpose:
    /// WGSL lets an implementation assume that no value is infinite.
    pub const ALWAYS_PLUS: FloatThreshold = FloatThreshold {
        t: f32::MIN,
        mode: 0,
    };
    /// Always −1: `pre >= f32::MAX` never holds, because a first-layer sum of normalised pixels
    /// is bounded far below `f32::MAX`.
    pub const ALWAYS_MINUS: FloatThreshold = FloatThreshold {
        t: f32::MAX,
        mode: 0,
    };

    /// Whether pre-activation `v` maps to +1.
    pub fn plus_one(&self, v: f32) -> bool {
        if self.mode == 1 {
            v <= self.t
        } else {
            v >= self.t
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    channels: u32,
    words: u32,
    _pad: u32,
}

fn encode_any(
    gpu: &Gpu,
    values: &Storage<u32>,
    channels: usize,
    thresholds: &wgpu::Buffer,
    float: bool,
) -> Result<(Dispatch, Storage<u32>)> {
    if channels == 0 || !values.len.is_multiple_of(channels) {
        return Err(Error::Shape(format!(
            "threshold: {} values are not rows of {channels}",
            values.len
        )));
    }
    let rows = values.len / channels;
    let out = gpu.zeros::<u32>(rows * words(channels), "threshold bits")?;
    let params = gpu.uniform(&Params {
        rows: rows as u32,
        channels: channels as u32,
        words: words(channels) as u32,
        _pad: 0,
    });
    let key = PipelineKey::new(
        Shader::Threshold,
        "threshold",
        &[
            ("WG", WORKGROUP as f64),
            ("FLOAT", if float { 1.0 } else { 0.0 }),
        ],
    );
    let pipeline = gpu.pipeline(key)?;
    let buffers = [&params, &values.buffer, &out.buffer, thresholds];
    Ok((dispatch(gpu, pipeline, &buffers, out.len, "threshold"), out))
}

/// Thresholds i32 pre-activations (`[rows][channels]`, stored as u32 bits) to packed signs.
pub fn encode(
    gpu: &Gpu,
    values: &Storage<u32>,
    thresholds: &Storage<Threshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    encode_any(gpu, values, thresholds.len, &thresholds.buffer, false)
}

/// Thresholds f32 pre-activations (stored as u32 bits) to packed signs.
pub fn encode_f32(
    gpu: &Gpu,
    values: &Storage<u32>,
    thresholds: &Storage<FloatThreshold>,
) -> Result<(Dispatch, Storage<u32>)> {
    encode_any(gpu, values, thresholds.len, &thresholds.buffer, true)
}

/// On the device, host in and out.
pub fn run(gpu: &Gpu, values: &[i32], thresholds: &[Threshold]) -> Result<Vec<u32>> {
    let v = gpu.upload(bytemuck::cast_slice::<i32, u32>(values), "values")?;
    let t = gpu.upload(thresholds, "thresholds")?;
    let (d, out) = encode(gpu, &v, &t)?;
    gpu.run(&[d])?;
    gpu.read(&out)
}

/// On the device, host in and out (f32 values).
pub fn run_f32(gpu: &Gpu, values: &[f32], thresholds: &[FloatThreshold]) -> Result<Vec<u32>> {
    let v = gpu.upload(bytemuck::cast_slice::<f32, u32>(values), "values")?;
    let t = gpu.upload(thresholds, "thresholds")?;
    let (d, out) = encode_f32(gpu, &v, &t)?;
    gpu.run(&[d])?;
    gpu.read(&out)
}

fn pack_with(values_len: usize, channels: usize, minus: impl Fn(usize, usize) -> bool) -> Vec<u32> {
    let wpr = words(channels);
    let rows = values_len / channels;
    let mut out = vec![0u32; rows * wpr];
    for r in 0..rows {
        for c in 0..channels {
            if minus(r, c) {
                out[r * wpr + c / 32] |= 1 << (c % 32);
            }
        }
    }
    out
}

/// Scalar reference: `[rows][C]` i32 → packed signs.
pub fn reference(values: &[i32], thresholds: &[Threshold]) -> Vec<u32> {
    let c = thresholds.len();
    pack_with(values.len(), c, |r, ch| {
        !thresholds[ch].plus_one(values[r * c + ch])
    })
}

/// Scalar reference: `[rows][C]` f32 → packed signs.
pub fn reference_f32(values: &[f32], thresholds: &[FloatThreshold]) -> Vec<u32> {
    let c = thresholds.len();
    pack_with(values.len(), c, |r, ch| {
        !thresholds[ch].plus_one(values[r * c + ch])
    })
}
