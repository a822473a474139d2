//! The output transform: batch norm + sign folded into a per-channel threshold on the
//! pre-activation ([`Threshold`] for integer dots, [`FloatThreshold`] for real values), giving
//! packed signs.
//!
//! For a pre-activation `x` followed by BN(γ, β, μ, σ) and sign, `sign(γ(x−μ)/σ + β)` is +1 iff
//! `x ≥ μ − βσ/γ` when γ > 0 and iff `x ≤ μ − βσ/γ` when γ < 0 (γ = 0: the constant sign of β).
//! For integer `x` the bound rounds to an integer (ceil for γ > 0, floor for γ < 0), so the
//! integer comparison reproduces the float forward pass exactly except where the float value sits
//! on the threshold itself.

use bytemuck::{Pod, Zeroable};

use crate::bits::words;

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
    /// use bnn_transfer::ops::Threshold;
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
