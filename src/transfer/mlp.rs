//! The arithmetic of head training in plain Rust: dense layers with ReLU between them, softmax
//! cross-entropy, back-propagation and AdamW — one implementation for native builds and the web
//! page, so a head trained in the browser is the head `bnn transfer` would train, bit for bit.
//!
//! Every result is defined by a fixed order of f32 operations, whatever the thread count or the
//! target:
//! - a dot product sums in 8 lanes (lane `k` takes elements `k, k+8, …` in order), the lanes
//!   combined as `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`, then the `len % 8` tail in order
//!   ([`dot`]);
//! - every other sum runs in index order (over the batch for weight gradients, over the outputs
//!   for input gradients); threads split independent outputs only;
//! - `exp` and `ln` are the `libm` crate's (the platform's libm differs between glibc and wasm),
//!   no operation is fused (Rust never contracts `a*b+c`), and square roots and divisions are
//!   IEEE-exact everywhere.

use crate::cpu::Threads;
use crate::rng::Rng;
use crate::transfer::head::Dense;

/// `Σ a[i]·b[i]` in the fixed 8-lane order described in the module doc.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    let mut sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (x, y) in ta.iter().zip(tb) {
        sum += x * y;
    }
    sum
}

/// [`dot`] of each of `R` rows with one `w`, sharing the loads of `w` (the same sums, in the same
/// order, as `R` calls of [`dot`]).
fn dots<const R: usize>(rows: [&[f32]; R], w: &[f32]) -> [f32; R] {
    let mut lanes = [[0f32; 8]; R];
    let cw = w.chunks_exact(8);
    let tail = cw.remainder();
    for (c, wc) in cw.enumerate() {
        let wc: &[f32; 8] = wc.try_into().expect("8");
        for (lane, row) in lanes.iter_mut().zip(&rows) {
            let xc: &[f32; 8] = row[c * 8..c * 8 + 8].try_into().expect("8");
            for k in 0..8 {
                lane[k] += xc[k] * wc[k];
            }
        }
    }
    let base = w.len() - tail.len();
    std::array::from_fn(|r| {
        let l = &lanes[r];
        let mut sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        for (x, y) in rows[r][base..].iter().zip(tail) {
            sum += x * y;
        }
        sum
    })
}

/// Rows per task of the blocked loops: one weight row is loaded once for this many batch rows.
const BLOCK: usize = 4;

/// `out[r][o] = dot(x[r], w[o])` for the `rows` rows of `x` (`[rows][inputs]`) in a block.
fn dot_block(x: &[f32], inputs: usize, w: &[f32], out: &mut [f32], outputs: usize) {
    let rows = x.len() / inputs;
    let row = |r: usize| &x[r * inputs..(r + 1) * inputs];
    for o in 0..outputs {
        let wo = &w[o * inputs..(o + 1) * inputs];
        let mut store = |sums: &[f32]| {
            for (r, v) in sums.iter().enumerate() {
                out[r * outputs + o] = *v;
            }
        };
        match rows {
            4 => store(&dots([row(0), row(1), row(2), row(3)], wo)),
            3 => store(&dots([row(0), row(1), row(2)], wo)),
            2 => store(&dots([row(0), row(1)], wo)),
            _ => store(&dots([row(0)], wo)),
        }
    }
}

/// `y[i] += a·x[i]` for every `i`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// AdamW's settings (burn's defaults for the betas and ε).
const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// One parameter tensor with its AdamW moments.
#[derive(Clone, Debug)]
struct Param {
    value: Vec<f32>,
    grad: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Param {
    fn new(value: Vec<f32>) -> Param {
        let n = value.len();
        Param {
            value,
            grad: vec![0.0; n],
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// `w ← w − lr·(m̂ / (√v̂ + ε) + wd·w)`, with `m̂ = m / c1`, `v̂ = v / c2` (the bias
    /// corrections `1 − β^t`, computed by the caller as running products).
    fn adamw(&mut self, lr: f32, wd: f32, c1: f32, c2: f32) {
        for i in 0..self.value.len() {
            let g = self.grad[i];
            self.m[i] = BETA1 * self.m[i] + (1.0 - BETA1) * g;
            self.v[i] = BETA2 * self.v[i] + (1.0 - BETA2) * (g * g);
            let m_hat = self.m[i] / c1;
            let v_hat = self.v[i] / c2;
            let w = self.value[i];
            self.value[i] = w - lr * (m_hat / (v_hat.sqrt() + EPSILON) + wd * w);
        }
    }
}

/// One dense layer being trained: `weight` `[outputs][inputs]`, `bias` `[outputs]`.
#[derive(Clone, Debug)]
struct Layer {
    inputs: usize,
    outputs: usize,
    weight: Param,
    bias: Param,
}

/// A head being trained: dense layers, ReLU between them, logits out.
#[derive(Clone, Debug)]
pub struct Mlp {
    layers: Vec<Layer>,
    /// `β1^t` and `β2^t` after `t` steps, as running products (`powi` may differ by platform).
    c1: f64,
    c2: f64,
}

impl Mlp {
    /// Layers `dims[0] → dims[1] → …`, weights drawn from `rng` as `U(−l, l)` with
    /// `l = ½·√(6 / inputs)` (in order: layer by layer, row by row), biases 0.
    pub fn new(dims: &[usize], rng: &mut Rng) -> Mlp {
        let layers = dims
            .windows(2)
            .map(|w| {
                let (inputs, outputs) = (w[0], w[1]);
                let limit = (6.0 / inputs as f64).sqrt() as f32 * 0.5;
                let values = (0..inputs * outputs)
                    .map(|_| rng.range(-limit, limit))
                    .collect();
                Layer {
                    inputs,
                    outputs,
                    weight: Param::new(values),
                    bias: Param::new(vec![0.0; outputs]),
                }
            })
            .collect();
        Mlp {
            layers,
            c1: 1.0,
            c2: 1.0,
        }
    }

    /// The layers as a head stores them.
    pub fn to_dense(&self) -> Vec<Dense> {
        self.layers
            .iter()
            .map(|l| Dense {
                inputs: l.inputs,
                outputs: l.outputs,
                weight: l.weight.value.clone(),
                bias: l.bias.value.clone(),
            })
            .collect()
    }

    /// Logits `[n][classes]` of `x` (`[n][inputs]`), and every layer's input (for backward).
    fn forward_all(&self, x: &[f32], threads: &Threads) -> Vec<Vec<f32>> {
        let mut acts = vec![x.to_vec()];
        let last = self.layers.len() - 1;
        for (li, l) in self.layers.iter().enumerate() {
            let input = acts.last().expect("input");
            let n = input.len() / l.inputs;
            let mut out = vec![0f32; n * l.outputs];
            threads.for_chunks(&mut out, BLOCK * l.outputs, |block, y| {
                let first = block * BLOCK;
                let rows = y.len() / l.outputs;
                let xb = &input[first * l.inputs..(first + rows) * l.inputs];
                dot_block(xb, l.inputs, &l.weight.value, y, l.outputs);
                for row in y.chunks_exact_mut(l.outputs) {
                    for (v, b) in row.iter_mut().zip(&l.bias.value) {
                        let z = *v + b;
                        *v = if li < last { z.max(0.0) } else { z };
                    }
                }
            });
            acts.push(out);
        }
        acts
    }

    /// Logits `[n][classes]` of `x` (`[n][inputs]`).
    pub fn logits(&self, x: &[f32], threads: &Threads) -> Vec<f32> {
        self.forward_all(x, threads).pop().expect("logits")
    }

    /// One AdamW step on the batch `x` (`[n][inputs]`) with `labels`: mean softmax
    /// cross-entropy. Returns the batch's logits and its summed loss.
    pub fn step(
        &mut self,
        x: &[f32],
        labels: &[usize],
        lr: f32,
        weight_decay: f32,
        threads: &Threads,
    ) -> (Vec<f32>, f64) {
        let acts = self.forward_all(x, threads);
        let logits = acts.last().expect("logits").clone();
        let n = labels.len();
        let classes = self.layers.last().expect("layer").outputs;
        let (mut grad, loss) = softmax_cross_entropy(&logits, labels, classes);
        for li in (0..self.layers.len()).rev() {
            let input = &acts[li];
            let l = &mut self.layers[li];
            let (inputs, outputs) = (l.inputs, l.outputs);
            // Weight gradients: per output row, a sum over the batch in order.
            let g = &grad;
            threads.for_chunks(&mut l.weight.grad, BLOCK * inputs, |block, dw| {
                dw.fill(0.0);
                let first = block * BLOCK;
                for r in 0..n {
                    let xr = &input[r * inputs..(r + 1) * inputs];
                    for (k, dwo) in dw.chunks_exact_mut(inputs).enumerate() {
                        axpy(dwo, g[r * outputs + first + k], xr);
                    }
                }
            });
            for (o, db) in l.bias.grad.iter_mut().enumerate() {
                *db = 0.0;
                for r in 0..n {
                    *db += g[r * outputs + o];
                }
            }
            if li > 0 {
                // Input gradients: per row, a sum over the outputs in order, through the ReLU.
                let w = &l.weight.value;
                let mut dx = vec![0f32; n * inputs];
                threads.for_chunks(&mut dx, BLOCK * inputs, |block, dx| {
                    let first = block * BLOCK;
                    for o in 0..outputs {
                        let wo = &w[o * inputs..(o + 1) * inputs];
                        for (k, dxr) in dx.chunks_exact_mut(inputs).enumerate() {
                            axpy(dxr, g[(first + k) * outputs + o], wo);
                        }
                    }
                    let rows = dx.len() / inputs;
                    let acts = &input[first * inputs..(first + rows) * inputs];
                    for (d, &a) in dx.iter_mut().zip(acts) {
                        if a <= 0.0 {
                            *d = 0.0;
                        }
                    }
                });
                grad = dx;
            }
        }
        self.c1 *= BETA1 as f64;
        self.c2 *= BETA2 as f64;
        let (c1, c2) = ((1.0 - self.c1) as f32, (1.0 - self.c2) as f32);
        for l in &mut self.layers {
            l.weight.adamw(lr, weight_decay, c1, c2);
            l.bias.adamw(lr, weight_decay, c1, c2);
        }
        (logits, loss)
    }
}

/// The gradient of the mean softmax cross-entropy of `logits` (`[n][classes]`) against `labels`
/// with respect to the logits, and the summed loss (`Σ −ln softmax[label]`, in f64). Softmax is
/// taken after subtracting each row's maximum.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[usize], classes: usize) -> (Vec<f32>, f64) {
    let n = labels.len();
    let mut grad = vec![0f32; logits.len()];
    let mut loss = 0f64;
    for (r, &label) in labels.iter().enumerate() {
        let z = &logits[r * classes..(r + 1) * classes];
        let g = &mut grad[r * classes..(r + 1) * classes];
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sum = 0f32;
        for (g, &v) in g.iter_mut().zip(z) {
            *g = libm::expf(v - max);
            sum += *g;
        }
        loss += (libm::logf(sum) - (z[label] - max)) as f64;
        for (c, g) in g.iter_mut().enumerate() {
            let p = *g / sum;
            *g = (p - if c == label { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    (grad, loss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_sums_in_eight_lanes_then_the_tail() {
        let a: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 0.37).collect();
        let b: Vec<f32> = (0..19).map(|i| 0.5 - i as f32 * 0.11).collect();
        let mut lanes = [0f32; 8];
        for i in 0..16 {
            lanes[i % 8] += a[i] * b[i];
        }
        let mut want = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
            + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        for i in 16..19 {
            want += a[i] * b[i];
        }
        assert_eq!(dot(&a, &b).to_bits(), want.to_bits());
        assert_eq!(dot(&[], &[]), 0.0);
    }

    /// The analytic gradient of a 2-layer head against central differences of the loss.
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = Rng::new(3);
        let mut mlp = Mlp::new(&[5, 4, 3], &mut rng);
        let x: Vec<f32> = (0..10).map(|_| rng.range(-1.0, 1.0)).collect();
        let labels = [2usize, 0];
        let loss = |m: &Mlp| {
            let z = m.logits(&x, &Threads::new(1).unwrap());
            softmax_cross_entropy(&z, &labels, 3).1 / 2.0
        };
        // lr 0: the step computes the gradients and leaves the weights as they are (wd 0).
        let mut probe = mlp.clone();
        probe.step(&x, &labels, 0.0, 0.0, &Threads::new(1).unwrap());
        for li in 0..2 {
            for i in 0..mlp.layers[li].weight.value.len() {
                let h = 1e-2f32;
                let w = mlp.layers[li].weight.value[i];
                mlp.layers[li].weight.value[i] = w + h;
                let up = loss(&mlp);
                mlp.layers[li].weight.value[i] = w - h;
                let down = loss(&mlp);
                mlp.layers[li].weight.value[i] = w;
                let numeric = (up - down) / (2.0 * h as f64);
                let analytic = probe.layers[li].weight.grad[i] as f64;
                assert!(
                    (numeric - analytic).abs() < 2e-3,
                    "layer {li} weight {i}: {numeric} vs {analytic}"
                );
            }
        }
    }

    #[test]
    fn blocked_dots_are_single_dots() {
        let mut rng = Rng::new(4);
        let x: Vec<f32> = (0..3 * 21).map(|_| rng.range(-1.0, 1.0)).collect();
        let w: Vec<f32> = (0..5 * 21).map(|_| rng.range(-1.0, 1.0)).collect();
        let mut out = vec![0f32; 3 * 5];
        dot_block(&x, 21, &w, &mut out, 5);
        for r in 0..3 {
            for o in 0..5 {
                let want = dot(&x[r * 21..(r + 1) * 21], &w[o * 21..(o + 1) * 21]);
                assert_eq!(out[r * 5 + o].to_bits(), want.to_bits());
            }
        }
    }

    #[test]
    fn the_thread_count_does_not_change_a_bit() {
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..37 * 23).map(|_| rng.range(-2.0, 2.0)).collect();
        let labels: Vec<usize> = (0..37).map(|i| i % 5).collect();
        let run = |threads: usize| {
            let t = Threads::new(threads).unwrap();
            let mut m = Mlp::new(&[23, 17, 5], &mut Rng::new(1));
            for _ in 0..5 {
                m.step(&x, &labels, 1e-2, 1e-2, &t);
            }
            m.to_dense()
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }
}
