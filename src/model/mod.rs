//! burn modules: the binary network (sign with the straight-through estimator, binary conv and
//! dense layers with latent float weights) and its float twin, built from an
//! [`Arch`]. This module knows burn and nothing of WGSL.
//!
//! # Structure (mirrors `Arch` one to one; parameter paths in the checkpoint)
//!
//! ```text
//! Model
//!   convs.{i}.weight                 [out, in, k, k]  latent float weights (OIHW), no bias
//!   convs.{i}.bn.{gamma,beta}        [out]
//!   convs.{i}.bn.{running_mean,running_var}  [out]
//!   dense.{j}.weight                 [out, in]        latent float weights, no bias
//!   dense.{j}.bn.{gamma,beta,running_mean,running_var}  [out]
//!   classifier.weight                [classes, in]    float
//!   classifier.bias                  [classes]        float
//! ```
//!
//! # What the eval-mode forward computes (after `Module::valid`; what the exporter reproduces)
//!
//! Input: images `[n, 3, H, W]` (NCHW), already normalised by the data module. Then, for each conv
//! block `i` (Arch order), with `s(x) = +1 if x ≥ 0 else −1` applied elementwise:
//!
//! 1. `w = s(convs.i.weight)` in the binary net, `convs.i.weight` in the float twin.
//! 2. `y = conv2d(x, w, stride, zero padding pad, no bias)`. Block 0 sees the real image; later
//!    binary blocks see ±1 activations, so `y` is an integer: Σ over *in-image* taps of ±1·±1
//!    (zero padding contributes 0, i.e. `y = K_valid − 2·popcount(a XOR w)` with K_valid the valid
//!    taps × channels at that output pixel).
//! 3. If the block pools: `y = maxpool(y, kernel, stride, no padding, floor)`: pooling is on the
//!    pre-activations, before batch norm.
//! 4. If `weight_scale` (binary only, XNOR-Net α): `y[c] *= α[c]`, `α[c] = mean |convs.i.weight[c]|`
//!    over the latent weights of output channel c (α > 0 unless the channel's weights are all 0).
//! 5. Batch norm with running statistics: `z = (y − running_mean) / sqrt(running_var + ε) · γ + β`,
//!    ε = `bn.epsilon` (config.json `model.bn_epsilon`, 1e-5 by default); burn computes exactly
//!    `((y − mean) / sqrt(var + ε)) * γ + β` in f32. `running_var` is the biased (population)
//!    batch variance averaged with momentum `bn_momentum` (burn: `new = (1−m)·old + m·batch`).
//! 6. Activation: `x = s(z)` (binary) or `x = max(z, 0)` (float twin).
//!
//! Flatten: `x` `[n, C, H, W]` → `[n, C·H·W]` in **C, H, W order** (burn's NCHW memory order; the
//! extractor works NHWC and must permute the first dense layer's weight columns accordingly).
//!
//! Each dense block `j`: `y = x · s(dense.j.weight)ᵀ` (binary; integer for ±1 inputs) or
//! `x · dense.j.weightᵀ` (float), optional α as in 4, batch norm as in 5, activation as in 6.
//!
//! Classifier (always float): `logits = x · classifier.weightᵀ + classifier.bias`.
//!
//! # Bi-Real wiring (`arch.blocks = bi_real`, e.g. `small-bireal`)
//!
//! Conv blocks carry a real-valued stream `x` (the image before block 0). Block `i`:
//!
//! 1. input signs: `a = s(x − convs.i.rsign)` (RSign, binary blocks after the first); block 0 and
//!    the float twin use `x` as it is;
//! 2. steps 1–5 above on `a` give `y` (pre-BN) and the batch-norm output;
//! 3. with a shortcut, add `x` (average-pooled with the block's window when it pools; through
//!    `convs.i.project`, a float 1×1 conv and batch norm, when the block changes the channel
//!    count): `u = bn(y) + project(avgpool(x))`;
//! 4. `x = rprelu(u) = prelu(u − shift_in, slope) + shift_out` per channel (binary), `max(u, 0)`
//!    (float twin).
//!
//! The first dense block reads `s(x − dense.0.rsign)` (binary) or `x` (float), flattened as above.
//! Extra parameters: `convs.{i}.rsign [in]`, `convs.{i}.rprelu.{shift_in,slope,shift_out} [out]`,
//! `dense.0.rsign [channels of the last conv]`, `convs.{i}.project.weight [out, in, 1, 1]` and
//! `convs.{i}.project.bn.*`. The exporter folds batch norm and α into each
//! layer's `scale`/`bias` and the next RSign into its thresholds (docs/FORMAT.md, real layers).
//!
//! In training mode batch norm uses the batch's statistics and updates the running ones, and
//! both the weight and the activation `s` use the straight-through estimator ([`binary`]).
//!
//! [`Model::trace`] returns every block's pre-BN values, post-BN values and activations for the
//! equivalence test of the packed kernels.

pub mod binary;
mod net;

use serde::{Deserialize, Serialize};

use crate::arch::Arch;

pub use binary::{sign, sign_ste};
pub use net::{
    BlockTrace, Classifier, ConvBlock, DenseBlock, Model, Projection, Rprelu, Trace, binarize,
};

/// Binary network or float twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// ±1 weights and activations (the first layer sees the real image), float classifier.
    Binary,
    /// The same topology with float weights and ReLU.
    Float,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Binary => "binary",
            Precision::Float => "float",
        })
    }
}

/// Everything needed to build a [`Model`]: saved in `config.json` (field `model`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The topology.
    pub arch: Arch,
    /// Binary network or float twin.
    pub precision: Precision,
    /// XNOR-Net per-output-channel weight scale α on the binary layers.
    #[serde(default)]
    pub weight_scale: bool,
    /// Batch-norm ε (burn's default, 1e-5).
    pub bn_epsilon: f64,
    /// Batch-norm momentum in burn's convention (`new = (1 − m)·old + m·batch`; Keras 0.9 = 0.1).
    pub bn_momentum: f64,
    /// Width of the feature-distillation projection ([`Model::feature_head`]); 0: none.
    #[serde(default)]
    pub feature_head: usize,
}

impl ModelConfig {
    /// A configuration with burn's batch-norm defaults (ε 1e-5, momentum 0.1) and no weight scale.
    pub fn new(arch: Arch, precision: Precision) -> Self {
        ModelConfig {
            arch,
            precision,
            weight_scale: false,
            bn_epsilon: 1e-5,
            bn_momentum: 0.1,
            feature_head: 0,
        }
    }
}
