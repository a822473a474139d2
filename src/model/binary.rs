//! Binarization: `sign` with the straight-through estimator (STE).
//!
//! Forward: `sign(x) = +1 if x ≥ 0 else −1` (so `sign(0) = +1` and `sign(−0.0) = +1`, docs/FORMAT.md; a NaN
//! also maps to +1, as the packer's `x < 0` comparison does). Backward (Hubara et al.'s STE, the
//! gradient of hardtanh): the incoming gradient passes unchanged where `|x| ≤ 1` and is zero
//! elsewhere.
//!
//! burn 0.22 has no user-level custom backward that works on every backend, so the estimator is
//! built from differentiable ops whose forward value is exact:
//!
//! ```text
//! g = x with the entries where |x| > 1 set to 0     (mask_fill: ∂g/∂x = 1 where |x| ≤ 1, else 0)
//! y = sign(x) + (g − detach(g))                      (forward: sign(x) + 0 exactly; ∂y/∂x = ∂g/∂x)
//! ```
//!
//! `g − detach(g)` is `a − a = +0.0` for every finite `a`, and `s + 0.0 = s`, so the forward value is
//! exactly ±1 (no rounding), which keeps the binary layers' pre-activations integer-valued.

use burn::tensor::Tensor;

/// `+1` where `x ≥ 0` (NaN included), `−1` where `x < 0`. No gradient flows through it.
pub fn sign<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let negative = x.clone().lower_elem(0.0);
    x.detach().ones_like().mask_fill(negative, -1.0)
}

/// `sign(x)` forward, straight-through gradient (`1` where `|x| ≤ 1`, `0` elsewhere) backward.
/// Outside autodiff (or when `x` is not part of a graph) this is plain [`sign`].
pub fn sign_ste<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !x.is_autodiff() || !x.is_tracked() {
        return sign(x);
    }
    let s = sign(x.clone());
    let outside = x.clone().abs().greater_elem(1.0);
    let g = x.mask_fill(outside, 0.0);
    s + (g.clone() - g.detach())
}
