//! The float dense layer of the float baseline, `y[b][o] = Σ_k x[b][k]·W[o][k]`, in the summation
//! order of the small-batch kernel (`shaders/float_dense.wgsl`): the order depends on its workgroup
//! size, so the reference takes it.

/// Scalar reference in the small-batch kernel's order (see `shaders/float_dense.wgsl`) with
/// workgroups of `wg` invocations (the launcher's `Tuning::float_dense_workgroup`): per invocation
/// a sequential sum over its vec4 steps, then the pairwise tree over the invocations. Each product
/// is rounded before it is added (`fma` unfused, as lavapipe runs it); [`reference_fused`] is the
/// other rounding WGSL allows.
pub fn reference(
    wg: u32,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &[f32],
    weights: &[f32],
) -> Vec<f32> {
    let shape = (batch, in_features, out_features);
    reference_by(wg, shape, input, weights, |acc, a, w| acc + a * w)
}

/// [`reference()`] with each product added in one rounding (`fma` fused).
pub fn reference_fused(
    wg: u32,
    batch: usize,
    in_features: usize,
    out_features: usize,
    input: &[f32],
    weights: &[f32],
) -> Vec<f32> {
    let shape = (batch, in_features, out_features);
    reference_by(wg, shape, input, weights, |acc, a, w| a.mul_add(w, acc))
}

fn reference_by(
    wg: u32,
    (batch, in_features, out_features): (usize, usize, usize),
    input: &[f32],
    weights: &[f32],
    add: impl Fn(f32, f32, f32) -> f32,
) -> Vec<f32> {
    let wg = wg as usize;
    let k4 = in_features / 4;
    let mut out = Vec::with_capacity(batch * out_features);
    for b in 0..batch {
        let x = &input[b * in_features..(b + 1) * in_features];
        for o in 0..out_features {
            let w = &weights[o * in_features..(o + 1) * in_features];
            let mut partial: Vec<f32> = (0..wg)
                .map(|i| {
                    let mut s = 0.0f32;
                    for kq in (i..k4).step_by(wg) {
                        for c in 0..4 {
                            s = add(s, x[4 * kq + c], w[4 * kq + c]);
                        }
                    }
                    s
                })
                .collect();
            let mut s = wg / 2;
            while s > 0 {
                for i in 0..s {
                    partial[i] += partial[i + s];
                }
                s /= 2;
            }
            out.push(partial[0]);
        }
    }
    out
}
