//! The network: conv blocks, dense blocks and a float classifier, mirrored one to one on
//! [`Arch`](crate::arch::Arch). See the module docs of [`crate::model`] for what it computes.

use burn::module::{Module, Param, ParamId};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::binary::{sign, sign_ste};
use super::{ModelConfig, Precision};
use crate::arch::{Blocks, Pool};
use crate::rng::Rng;

/// conv (no bias) → [max-pool] → batch norm → sign / ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// Latent float weights `[out, in, k, k]` (burn's OIHW). The binary net uses `sign(weight)`.
    pub weight: Param<Tensor<4>>,
    /// Batch norm over the output channels (parameters `bn.{gamma,beta}`, running statistics).
    pub bn: BatchNorm,
    /// Conv stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
    /// Max-pool window on the pre-activations; 0 = no pooling.
    pub pool_kernel: usize,
    /// Max-pool stride (unused without pooling).
    pub pool_stride: usize,
    /// Bi-Real binary blocks after the first: RSign's learnable threshold per input channel
    /// (`sign(x − rsign)` replaces `sign(x)`).
    pub rsign: Option<Param<Tensor<1>>>,
    /// Bi-Real binary blocks: the activation after batch norm and shortcut.
    pub rprelu: Option<Rprelu>,
    /// Bi-Real: add the block's input (average-pooled with the block's window when it pools).
    pub shortcut: bool,
    /// Bi-Real shortcut of a block that changes the channel count: a real-valued 1×1 conv and
    /// batch norm after the average pool (the downsampling path).
    pub project: Option<Projection>,
}

/// The real-valued 1×1 conv (no bias) + batch norm of a downsampling shortcut.
#[derive(Module, Debug)]
pub struct Projection {
    /// `[out, in, 1, 1]` float weights (never binarized).
    pub weight: Param<Tensor<4>>,
    /// Batch norm over the outputs.
    pub bn: BatchNorm,
}

/// ReActNet's RPReLU: `prelu(x − shift_in, slope) + shift_out`, every vector per channel.
#[derive(Module, Debug)]
pub struct Rprelu {
    /// Subtracted before the PReLU (init 0).
    pub shift_in: Param<Tensor<1>>,
    /// Slope of the negative side (init 0.25).
    pub slope: Param<Tensor<1>>,
    /// Added after the PReLU (init 0).
    pub shift_out: Param<Tensor<1>>,
}

/// dense (no bias) → batch norm → sign / ReLU.
#[derive(Module, Debug)]
pub struct DenseBlock {
    /// Latent float weights `[out, in]`. The binary net uses `sign(weight)`.
    pub weight: Param<Tensor<2>>,
    /// Batch norm over the outputs.
    pub bn: BatchNorm,
    /// Bi-Real binary networks, first dense block after the convs: RSign's threshold per channel of
    /// the last conv block's output, applied before flattening.
    pub rsign: Option<Param<Tensor<1>>>,
}

/// The float classifier: `logits = x · weightᵀ + bias`.
#[derive(Module, Debug)]
pub struct Classifier {
    /// `[classes, in]`.
    pub weight: Param<Tensor<2>>,
    /// `[classes]`.
    pub bias: Param<Tensor<1>>,
}

/// A binary network or its float twin (see [`crate::model`]).
#[derive(Module, Debug)]
pub struct Model {
    /// Conv blocks, in [`Arch`](crate::arch::Arch) order.
    pub convs: Vec<ConvBlock>,
    /// Hidden dense blocks, in order.
    pub dense: Vec<DenseBlock>,
    /// The float classifier.
    pub classifier: Classifier,
    /// Feature distillation's learned projection of the classifier's input onto a teacher's
    /// features (`[teacher width, features]`); training only, never exported.
    pub feature_head: Option<Classifier>,
    /// Binary net (sign weights and activations) or float twin (float weights, ReLU).
    pub binary: bool,
    /// Multiply each binary layer's output channel by α = mean |latent weight| of that channel
    /// (XNOR-Net). Always false for the float twin.
    pub weight_scale: bool,
    /// Bi-Real wiring ([`Blocks::BiReal`]): conv blocks carry a real-valued stream.
    pub bireal: bool,
    /// Whether the binary net binarizes its weights (true but in the first step of two-step
    /// training, which trains binary activations with real-valued weights). Not saved: a loaded
    /// model binarizes them.
    pub binary_weights: bool,
}

/// What one block computed, for equivalence tests against the packed kernels. Dense blocks are
/// reported as `[n, features, 1, 1]`. In a Bi-Real conv block `post_bn` includes the shortcut and
/// `act` is the RPReLU (ReLU in the float twin) output: the real value the next block binarizes.
#[derive(Clone, Debug)]
pub struct BlockTrace {
    /// The block's output before batch norm: conv (or dense) output, after max-pool when the block
    /// pools, times α when weight scaling is on. For binary blocks after the first, without α,
    /// these are integers `K_valid − 2·popcount(a XOR w)`.
    pub pre_bn: Tensor<4>,
    /// After batch norm (running statistics in eval mode).
    pub post_bn: Tensor<4>,
    /// After the activation: ±1 (binary) or ReLU (float).
    pub act: Tensor<4>,
}

/// Every block of a forward pass, then the logits.
#[derive(Clone, Debug)]
pub struct Trace {
    /// One per conv block.
    pub convs: Vec<BlockTrace>,
    /// One per hidden dense block.
    pub dense: Vec<BlockTrace>,
    /// The classifier's output `[n, classes]`.
    pub logits: Tensor<2>,
}

impl Model {
    /// A freshly initialised model: latent/float weights Glorot-uniform from a SplitMix64 stream
    /// seeded with `seed` (the same on every backend), batch norm γ = 1, β = 0, classifier bias 0.
    pub fn new(config: &ModelConfig, device: &Device, seed: u64) -> Model {
        let arch = &config.arch;
        let mut rng = Rng::new(seed);
        let bn = |n: usize| {
            BatchNormConfig::new(n)
                .with_epsilon(config.bn_epsilon)
                .with_momentum(config.bn_momentum)
                .init(device)
        };
        let binary = config.precision == Precision::Binary;
        let bireal = arch.blocks == Blocks::BiReal;
        let filled = |n: usize, v: f32| Param::from_tensor(Tensor::full([n], v, device));
        let mut cin = arch.in_channels;
        let convs = arch
            .convs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let k2 = c.kernel * c.kernel;
                let weight = glorot(
                    &mut rng,
                    [c.out, cin, c.kernel, c.kernel],
                    cin * k2,
                    c.out * k2,
                    device,
                );
                let rsign = (binary && bireal && i > 0).then(|| filled(cin, 0.0));
                let project = (bireal && c.shortcut && cin != c.out).then(|| Projection {
                    weight: glorot(&mut rng, [c.out, cin, 1, 1], cin, c.out, device),
                    bn: bn(c.out),
                });
                cin = c.out;
                let (pool_kernel, pool_stride) = c.pool.map_or((0, 0), |p| (p.kernel, p.stride));
                ConvBlock {
                    weight,
                    bn: bn(c.out),
                    stride: c.stride,
                    pad: c.pad,
                    pool_kernel,
                    pool_stride,
                    rsign,
                    rprelu: (binary && bireal).then(|| Rprelu {
                        shift_in: filled(c.out, 0.0),
                        slope: filled(c.out, 0.25),
                        shift_out: filled(c.out, 0.0),
                    }),
                    shortcut: bireal && c.shortcut,
                    project,
                }
            })
            .collect();
        let mut fin = arch.flat_features();
        let dense = arch
            .dense
            .iter()
            .enumerate()
            .map(|(j, &d)| {
                let weight = glorot(&mut rng, [d, fin], fin, d, device);
                fin = d;
                let rsign = (binary && bireal && j == 0 && !arch.convs.is_empty())
                    .then(|| filled(cin, 0.0));
                DenseBlock {
                    weight,
                    bn: bn(d),
                    rsign,
                }
            })
            .collect();
        let classifier = Classifier {
            weight: glorot(&mut rng, [arch.classes, fin], fin, arch.classes, device),
            bias: Param::from_tensor(Tensor::zeros([arch.classes], device)),
        };
        let width = config.feature_head;
        let feature_head = (width > 0).then(|| Classifier {
            weight: glorot(&mut rng, [width, fin], fin, width, device),
            bias: Param::from_tensor(Tensor::zeros([width], device)),
        });
        Model {
            convs,
            dense,
            classifier,
            feature_head,
            binary,
            weight_scale: binary && config.weight_scale,
            bireal,
            binary_weights: true,
        }
    }

    /// Logits `[n, classes]` for images `[n, 3, H, W]` (NCHW, normalised by the data module).
    /// Training behaviour (batch statistics, running-stat updates, STE) on an autodiff device with a
    /// module in training mode; eval behaviour after [`Module::valid`].
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classifier.forward(self.features(images))
    }

    /// Logits and, with a [`Model::feature_head`], its projection of the classifier's input onto the
    /// teacher's features (feature distillation), from one forward pass.
    pub fn forward_distill(&self, images: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        let features = self.features(images);
        let projected = self
            .feature_head
            .as_ref()
            .map(|h| h.forward(features.clone()));
        (self.classifier.forward(features), projected)
    }

    /// The classifier's input `[n, features]`: the last dense block's activations (±1 in the binary
    /// net), or the flattened conv features when the architecture has no dense block.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.run(images, None)
    }

    /// The forward pass with every block's intermediate values kept (see [`BlockTrace`]).
    pub fn trace(&self, images: Tensor<4>) -> Trace {
        let mut trace = Trace {
            convs: Vec::new(),
            dense: Vec::new(),
            logits: Tensor::zeros([1, 1], &images.device()),
        };
        let features = self.run(images, Some(&mut trace));
        trace.logits = self.classifier.forward(features);
        trace
    }

    /// Conv and dense blocks, recording each block into `trace` when given.
    fn run(&self, images: Tensor<4>, mut trace: Option<&mut Trace>) -> Tensor<2> {
        let mut x = images;
        for block in &self.convs {
            let sign_w = self.binary && self.binary_weights;
            let (pre_bn, post_bn, act) = if self.bireal {
                block.forward_bireal(x, sign_w, self.weight_scale)
            } else {
                let (pre, post) = block.forward(x, sign_w, self.weight_scale);
                let act = self.act(post.clone());
                (pre, post, act)
            };
            if let Some(t) = trace.as_deref_mut() {
                t.convs.push(BlockTrace {
                    pre_bn,
                    post_bn,
                    act: act.clone(),
                });
            }
            x = act;
        }
        if let Some(b) = self.dense.first().and_then(|d| d.rsign.as_ref()) {
            x = sign_ste(x - per_channel(b));
        }
        let mut x = flatten(x);
        for block in &self.dense {
            let sign_w = self.binary && self.binary_weights;
            let (pre_bn, post_bn) = block.forward(x, sign_w, self.weight_scale);
            let act = self.act(post_bn.clone());
            if let Some(t) = trace.as_deref_mut() {
                let as4 = |t: Tensor<2>| {
                    let [n, d] = t.dims();
                    t.reshape([n, d, 1, 1])
                };
                t.dense.push(BlockTrace {
                    pre_bn: as4(pre_bn),
                    post_bn: as4(post_bn),
                    act: as4(act.clone()),
                });
            }
            x = act;
        }
        x
    }

    fn act<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.binary {
            sign_ste(x)
        } else {
            burn::tensor::activation::relu(x)
        }
    }

    /// Clip the latent weights of the binary layers to [−1, 1] (after every optimizer step, as
    /// Hubara et al. do). The float twin and the classifier are left alone. Parameter ids and
    /// gradient settings are kept, so the optimizer state still matches.
    pub fn clip_latent(self) -> Model {
        if !self.binary {
            return self;
        }
        let Model {
            convs,
            dense,
            classifier,
            feature_head,
            binary,
            weight_scale,
            bireal,
            binary_weights,
        } = self;
        let convs = convs
            .into_iter()
            .map(|b| ConvBlock {
                weight: b.weight.map(clip),
                ..b
            })
            .collect();
        let dense = dense
            .into_iter()
            .map(|b| DenseBlock {
                weight: b.weight.map(clip),
                ..b
            })
            .collect();
        Model {
            convs,
            dense,
            classifier,
            feature_head,
            binary,
            weight_scale,
            bireal,
            binary_weights,
        }
    }

    /// The same model with its weights binarized or not (two-step training's first step trains
    /// binary activations with real-valued weights; without α, which belongs to binary weights).
    /// Parameters are untouched.
    pub fn with_binary_weights(self, on: bool) -> Model {
        Model {
            binary_weights: on,
            ..self
        }
    }

    /// The ids of the latent binary weights (empty for the float twin).
    pub fn latent_ids(&self) -> Vec<ParamId> {
        if !self.binary {
            return Vec::new();
        }
        let mut ids: Vec<ParamId> = self.convs.iter().map(|b| b.weight.id).collect();
        ids.extend(self.dense.iter().map(|b| b.weight.id));
        ids
    }
}

impl ConvBlock {
    /// (pre-BN, post-BN) for input `x` `[n, c, h, w]`.
    fn forward(&self, x: Tensor<4>, binary: bool, weight_scale: bool) -> (Tensor<4>, Tensor<4>) {
        let w = self.weight.val();
        let scale = (binary && weight_scale).then(|| alpha(w.clone()));
        let w = if binary { sign_ste(w) } else { w };
        let options = ConvOptions::new([self.stride; 2], [self.pad; 2], [1, 1], 1);
        let mut y = conv2d(x, w, None, options);
        if self.pool_kernel > 0 {
            let pool =
                MaxPoolOptions::new([self.pool_kernel; 2]).with_stride([self.pool_stride; 2]);
            y = max_pool2d(y, pool);
        }
        if let Some(alpha) = scale {
            let [c] = alpha.dims();
            y = y * alpha.reshape([1, c, 1, 1]);
        }
        let z = self.bn.forward(y.clone());
        (y, z)
    }

    /// Bi-Real: (pre-BN, BN + shortcut, RPReLU or ReLU) for the real-valued input `x`. A binary
    /// block after the first binarizes `x − rsign`; the first sees the image as it is.
    fn forward_bireal(
        &self,
        x: Tensor<4>,
        binary: bool,
        weight_scale: bool,
    ) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
        let a = match &self.rsign {
            Some(b) => sign_ste(x.clone() - per_channel(b)),
            None => x.clone(),
        };
        let (pre, mut post) = self.forward(a, binary, weight_scale);
        if self.shortcut {
            let mut s = match self.pool() {
                Some(p) => avg_pool2d(
                    x,
                    AvgPoolOptions::new([p.kernel; 2]).with_stride([p.stride; 2]),
                ),
                None => x,
            };
            if let Some(pr) = &self.project {
                let one = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
                s = pr.bn.forward(conv2d(s, pr.weight.val(), None, one));
            }
            post = post + s;
        }
        let act = match &self.rprelu {
            Some(r) => r.forward(post.clone()),
            None => burn::tensor::activation::relu(post.clone()),
        };
        (pre, post, act)
    }

    /// The block's pooling window, if any.
    pub fn pool(&self) -> Option<Pool> {
        (self.pool_kernel > 0).then_some(Pool {
            kernel: self.pool_kernel,
            stride: self.pool_stride,
        })
    }
}

impl DenseBlock {
    fn forward(&self, x: Tensor<2>, binary: bool, weight_scale: bool) -> (Tensor<2>, Tensor<2>) {
        let w = self.weight.val();
        let scale = (binary && weight_scale).then(|| alpha(w.clone()));
        let w = if binary { sign_ste(w) } else { w };
        let mut y = x.matmul(w.transpose());
        if let Some(alpha) = scale {
            let [c] = alpha.dims();
            y = y * alpha.reshape([1, c]);
        }
        let z = self.bn.forward(y.clone());
        (y, z)
    }
}

impl Rprelu {
    /// `prelu(x − shift_in, slope) + shift_out` per channel of `x` `[n, c, h, w]`, computed as
    /// `relu(t) + (t − relu(t))·slope + shift_out` with `t = x − shift_in`: `t + 0` where `t > 0`,
    /// `0 + t·slope` elsewhere, so the value is `t > 0 ? t : t·slope` exactly (docs/FORMAT.md).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let t = x - per_channel(&self.shift_in);
        let pos = burn::tensor::activation::relu(t.clone());
        let neg = t - pos.clone();
        pos + neg * per_channel(&self.slope) + per_channel(&self.shift_out)
    }
}

/// A per-channel vector `[c]` as `[1, c, 1, 1]`, to broadcast over NCHW maps.
fn per_channel(v: &Param<Tensor<1>>) -> Tensor<4> {
    let [c] = v.dims();
    v.val().reshape([1, c, 1, 1])
}

impl Classifier {
    /// `x · weightᵀ + bias` for `x` `[n, in]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [c] = self.bias.dims();
        x.matmul(self.weight.val().transpose()) + self.bias.val().reshape([1, c])
    }
}

/// XNOR-Net's per-output-channel scale: mean |w| over everything but the first axis.
fn alpha<const D: usize>(w: Tensor<D>) -> Tensor<1> {
    let out = w.dims()[0];
    let w: Tensor<2> = w.reshape([out as i64, -1]);
    w.abs().mean_dim(1).reshape([out])
}

/// `[n, c, h, w]` → `[n, c·h·w]` in C, H, W order (burn's NCHW memory order).
fn flatten(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c * h * w])
}

fn clip<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    let (autodiff, require_grad) = (t.is_autodiff(), t.is_require_grad());
    let clipped = t.inner().clamp(-1.0, 1.0);
    match (autodiff, require_grad) {
        (true, true) => clipped.autodiff().require_grad(),
        (true, false) => clipped.autodiff(),
        (false, _) => clipped,
    }
}

/// Glorot (Xavier) uniform: U(−l, l), l = √(6 / (fan_in + fan_out)).
fn glorot<const D: usize>(
    rng: &mut Rng,
    shape: [usize; D],
    fan_in: usize,
    fan_out: usize,
    device: &Device,
) -> Param<Tensor<D>> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.range(-limit, limit)).collect();
    Param::from_data(TensorData::new(values, shape), device)
}

/// Sign of a tensor with sign(0) = +1, re-exported for tests and the exporter.
pub fn binarize<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    sign(x)
}
