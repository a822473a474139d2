//! Network architectures as data: the topology shared by the burn model (`model/`), the exporter and
//! the WGSL extractor (`extractor/`). One `Arch` describes both the binary network and its float twin;
//! only the activation differs (sign vs ReLU) and whether weights are binarized.

use serde::{Deserialize, Serialize};

/// A max-pool window applied to the block's pre-activations (before batch norm), as BNN AlexNet does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Window side.
    pub kernel: usize,
    /// Window stride.
    pub stride: usize,
}

/// conv → [max-pool] → batch norm → activation (sign for the binary net, ReLU for the float twin).
/// The first conv block sees the real-valued image; its weights are still binary in the binary net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvBlock {
    /// Output channels.
    pub out: usize,
    /// Kernel side (square).
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding on every side (burn's convention; the binary kernels count valid taps).
    pub pad: usize,
    /// Max-pool after the conv, before batch norm.
    pub pool: Option<Pool>,
    /// Bi-Real shortcut ([`Blocks::BiReal`] only): the block's input is added to its batch-norm
    /// output, average-pooled with the block's pool window when it pools, and through a
    /// real-valued 1×1 conv + batch norm when the block changes the channel count (the
    /// downsampling path). Needs a conv that keeps the side (stride 1, `2·pad = kernel − 1`).
    #[serde(default)]
    pub shortcut: bool,
}

/// How the blocks of an [`Arch`] are wired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    /// Hubara et al.'s BNN: conv → [max-pool] → batch norm → sign, every block.
    #[default]
    Plain,
    /// Bi-Real / ReActNet: conv blocks carry a real-valued stream. A binary block binarizes its
    /// input with a learnable per-channel threshold (RSign, not on the first block, which sees the
    /// image), adds its input back through a shortcut where [`ConvBlock::shortcut`] says so, and
    /// ends with RPReLU (learnable shifts around a PReLU) instead of a sign. The first dense block
    /// binarizes the last conv block's output with its own RSign. The float twin has the same
    /// shortcuts, no RSign, and ReLU for RPReLU.
    BiReal,
}

/// A whole network: conv blocks, flatten (NHWC order on the extractor side), hidden dense blocks
/// (dense → batch norm → activation, binary in the binary net) and a float classifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// Name: `alexnet`, `small` or `mini`.
    pub name: String,
    /// Square input side in pixels.
    pub input: usize,
    /// Input channels (3: RGB).
    pub in_channels: usize,
    /// Conv blocks in order.
    pub convs: Vec<ConvBlock>,
    /// Widths of the hidden dense blocks.
    pub dense: Vec<usize>,
    /// Outputs of the classifier.
    pub classes: usize,
    /// How the blocks are wired (`plain` when absent, as in files written before Bi-Real blocks).
    #[serde(default)]
    pub blocks: Blocks,
}

/// Output side of a conv or pool window with `pad` zero padding on each side.
pub fn out_size(input: usize, kernel: usize, stride: usize, pad: usize) -> usize {
    (input + 2 * pad - kernel) / stride + 1
}

impl Arch {
    /// Feature map (side, channels) after each conv block, pooling included.
    pub fn conv_shapes(&self) -> Vec<(usize, usize)> {
        let mut side = self.input;
        self.convs
            .iter()
            .map(|c| {
                side = out_size(side, c.kernel, c.stride, c.pad);
                if let Some(p) = c.pool {
                    side = out_size(side, p.kernel, p.stride, 0);
                }
                (side, c.out)
            })
            .collect()
    }

    /// Length of the flattened conv features that feed the first dense block.
    pub fn flat_features(&self) -> usize {
        self.conv_shapes()
            .last()
            .map_or(self.input * self.input * self.in_channels, |&(s, c)| {
                s * s * c
            })
    }

    /// Multiply-accumulates per image, every layer included.
    pub fn macs(&self) -> u64 {
        let mut side = self.input;
        let mut cin = self.in_channels;
        let mut total = 0u64;
        for c in &self.convs {
            side = out_size(side, c.kernel, c.stride, c.pad);
            total += (side * side * c.out * c.kernel * c.kernel * cin) as u64;
            if let Some(p) = c.pool {
                side = out_size(side, p.kernel, p.stride, 0);
            }
            cin = c.out;
        }
        let mut fin = side * side * cin;
        for &d in self.dense.iter().chain(std::iter::once(&self.classes)) {
            total += (fin * d) as u64;
            fin = d;
        }
        total
    }

    /// Paper-size BNN AlexNet (Larq Zoo's rebuild of Hubara et al.), 224×224 input.
    pub fn alexnet(classes: usize) -> Self {
        let pool = Some(Pool {
            kernel: 3,
            stride: 2,
        });
        let conv = |out, kernel, stride, pad, pool| ConvBlock {
            out,
            kernel,
            stride,
            pad,
            pool,
            shortcut: false,
        };
        Arch {
            name: "alexnet".into(),
            input: 224,
            in_channels: 3,
            convs: vec![
                conv(64, 11, 4, 2, pool),
                conv(192, 5, 1, 2, pool),
                conv(384, 3, 1, 1, None),
                conv(384, 3, 1, 1, None),
                conv(256, 3, 1, 1, pool),
            ],
            dense: vec![4096, 4096],
            classes,
            blocks: Blocks::Plain,
        }
    }
}

/// Names accepted by [`Arch::by_name`], with a one-line description each.
pub const ARCH_NAMES: [(&str, &str); 7] = [
    (
        "small",
        "64 px, 5 conv + 2 dense blocks, ~44 M MACs: Tiny-ImageNet on a CPU (the default)",
    ),
    (
        "small-bireal",
        "`small` with Bi-Real blocks: shortcuts around conv3-5, RSign, RPReLU",
    ),
    (
        "small-bireal-full",
        "`small-bireal` with a shortcut around conv2 too (avg-pool + real 1×1 conv, 64→128)",
    ),
    (
        "wide-bireal",
        "`small-bireal` twice as wide: conv2-5 at 256 channels, fc 1024, 1024 (~130 M MACs)",
    ),
    (
        "mini-bireal",
        "32 px Bi-Real test network: 4 conv (identity, avg-pool + 1×1, avg-pool shortcuts) + 1 dense",
    ),
    (
        "alexnet",
        "224 px BNN AlexNet (Hubara et al. / Larq Zoo), ~0.84 G MACs: ImageNet on a GPU",
    ),
    (
        "mini",
        "32 px, 3 conv + 1 dense block, ~8 M MACs: smoke tests",
    ),
];

impl Arch {
    /// The default network for 64×64 inputs (Tiny-ImageNet here): AlexNet's shape scaled down so
    /// that an epoch of 30,000 images trains in about ten minutes on the flex CPU backend of a
    /// 2-core machine. Pools on pre-activations, like [`Arch::alexnet`].
    ///
    /// 64 → conv 64 5×5/2 → 32 → pool 3/2 → 15 → conv 128 3×3 → pool 3/2 → 7 → conv 128 3×3 →
    /// conv 128 3×3 → conv 128 3×3 → pool 3/2 → 3 → fc 512 → fc 512 → classes.
    pub fn small(classes: usize) -> Self {
        let pool = Some(Pool {
            kernel: 3,
            stride: 2,
        });
        let conv = |out, kernel, stride, pad, pool| ConvBlock {
            out,
            kernel,
            stride,
            pad,
            pool,
            shortcut: false,
        };
        Arch {
            name: "small".into(),
            input: 64,
            in_channels: 3,
            convs: vec![
                conv(64, 5, 2, 2, pool),
                conv(128, 3, 1, 1, pool),
                conv(128, 3, 1, 1, None),
                conv(128, 3, 1, 1, None),
                conv(128, 3, 1, 1, pool),
            ],
            dense: vec![512, 512],
            classes,
            blocks: Blocks::Plain,
        }
    }

    /// [`Arch::small`] with Bi-Real blocks (shortcuts around conv3-5) and twice the width where the
    /// binary layers are: conv2-5 at 256 channels, fc 1024, 1024. Tiny-ImageNet training
    /// underfits `small-bireal` (train accuracy on augmented crops ≈ val accuracy), so capacity
    /// is what the binary network lacks; the first layer stays at 64 channels (it is the CPU
    /// path's costliest layer per MAC).
    pub fn wide_bireal(classes: usize) -> Self {
        let mut arch = Arch::small(classes).bireal(&[2, 3, 4]);
        arch.name = "wide-bireal".into();
        for conv in &mut arch.convs[1..] {
            conv.out = 256;
        }
        arch.dense = vec![1024, 1024];
        arch
    }

    /// A 32×32 network of the same kind, small enough for tests (a few hundred steps in seconds).
    pub fn mini(classes: usize) -> Self {
        let pool = Some(Pool {
            kernel: 2,
            stride: 2,
        });
        let conv = |out, kernel, stride, pad, pool| ConvBlock {
            out,
            kernel,
            stride,
            pad,
            pool,
            shortcut: false,
        };
        Arch {
            name: "mini".into(),
            input: 32,
            in_channels: 3,
            convs: vec![
                conv(32, 3, 1, 1, pool),
                conv(64, 3, 1, 1, pool),
                conv(64, 3, 1, 1, pool),
            ],
            dense: vec![128],
            classes,
            blocks: Blocks::Plain,
        }
    }

    /// A 32×32 Bi-Real network for tests, with every kind of shortcut: 32 → conv 32 3×3 + pool 2
    /// → 16 → conv 32 3×3 (identity shortcut) → conv 64 3×3 + pool 2 (average-pool + 1×1
    /// projection shortcut) → 8 → conv 64 3×3 + pool 2 (average-pool shortcut) → 4 → fc 128 →
    /// classes.
    pub fn mini_bireal(classes: usize) -> Self {
        let pool = Some(Pool {
            kernel: 2,
            stride: 2,
        });
        let conv = |out, pool| ConvBlock {
            out,
            kernel: 3,
            stride: 1,
            pad: 1,
            pool,
            shortcut: false,
        };
        Arch {
            name: "mini".into(),
            input: 32,
            in_channels: 3,
            convs: vec![
                conv(32, pool),
                conv(32, None),
                conv(64, pool),
                conv(64, pool),
            ],
            dense: vec![128],
            classes,
            blocks: Blocks::Plain,
        }
        .bireal(&[1, 2, 3])
    }

    /// One of the named architectures ([`ARCH_NAMES`]), with `classes` outputs.
    pub fn by_name(name: &str, classes: usize) -> Option<Self> {
        match name {
            "small" => Some(Arch::small(classes)),
            "alexnet" => Some(Arch::alexnet(classes)),
            "mini" => Some(Arch::mini(classes)),
            "small-bireal" => Some(Arch::small(classes).bireal(&[2, 3, 4])),
            "small-bireal-full" => Some(Arch {
                name: "small-bireal-full".into(),
                ..Arch::small(classes).bireal(&[1, 2, 3, 4])
            }),
            "mini-bireal" => Some(Arch::mini_bireal(classes)),
            "wide-bireal" => Some(Arch::wide_bireal(classes)),
            _ => None,
        }
    }

    /// This architecture with [`Blocks::BiReal`] wiring and shortcuts around the conv blocks at
    /// `shortcuts` (0-based), named `{name}-bireal`.
    pub fn bireal(mut self, shortcuts: &[usize]) -> Self {
        self.name = format!("{}-bireal", self.name);
        self.blocks = Blocks::BiReal;
        for &i in shortcuts {
            self.convs[i].shortcut = true;
        }
        self
    }

    /// Checks what the types cannot: every shortcut joins maps of one shape, and shortcuts only
    /// appear in [`Blocks::BiReal`] networks. The message names the block.
    pub fn check(&self) -> Result<(), String> {
        let mut side = self.input;
        for (i, c) in self.convs.iter().enumerate() {
            let conv_side = (side + 2 * c.pad)
                .checked_sub(c.kernel)
                .map(|d| d / c.stride + 1);
            if c.shortcut {
                if self.blocks != Blocks::BiReal {
                    return Err(format!(
                        "conv{}: a shortcut needs `blocks: bi_real` (this network is plain)",
                        i + 1
                    ));
                }
                if i == 0 || conv_side != Some(side) {
                    return Err(format!(
                        "conv{}: a shortcut needs a block after the first whose conv keeps the \
                         side (stride 1, 2·pad = kernel − 1)",
                        i + 1
                    ));
                }
            }
            side = conv_side.unwrap_or(0);
            if let Some(p) = c.pool {
                side = side.checked_sub(p.kernel).map_or(0, |d| d / p.stride + 1);
            }
        }
        Ok(())
    }

    /// Parameters of the Bi-Real extras (binary network): RSign thresholds on the input of every
    /// conv block after the first and of the first dense block, RPReLU's three vectors after every
    /// conv block, and the 1×1 projections (with batch norm) of shortcuts that change the channel
    /// count. 0 for plain networks.
    pub fn bireal_params(&self) -> u64 {
        if self.blocks != Blocks::BiReal {
            return 0;
        }
        let mut n = 0;
        let mut cin = self.in_channels;
        for (i, c) in self.convs.iter().enumerate() {
            n += 3 * c.out + if i > 0 { cin } else { 0 };
            if c.shortcut && cin != c.out {
                // The 1×1 projection and its batch norm.
                n += cin * c.out + 2 * c.out;
            }
            cin = c.out;
        }
        if !self.dense.is_empty() && !self.convs.is_empty() {
            n += cin;
        }
        n as u64
    }

    /// Per-layer summary rows: conv blocks, dense blocks, then the classifier.
    pub fn layers(&self) -> Vec<LayerInfo> {
        let mut rows = Vec::new();
        let mut side = self.input;
        let mut cin = self.in_channels;
        for (i, c) in self.convs.iter().enumerate() {
            side = out_size(side, c.kernel, c.stride, c.pad);
            let macs = (side * side * c.out * c.kernel * c.kernel * cin) as u64;
            if let Some(p) = c.pool {
                side = out_size(side, p.kernel, p.stride, 0);
            }
            rows.push(LayerInfo {
                name: format!("conv{}", i + 1),
                kind: LayerKind::Conv { first: i == 0 },
                inputs: c.kernel * c.kernel * cin,
                outputs: c.out,
                taps: c.kernel * c.kernel,
                in_channels: cin,
                out_shape: (side, side, c.out),
                macs,
            });
            cin = c.out;
        }
        let mut fin = side * side * cin;
        for (i, &d) in self.dense.iter().enumerate() {
            rows.push(LayerInfo {
                name: format!("fc{}", i + 1),
                kind: LayerKind::Dense {
                    first: self.convs.is_empty() && i == 0,
                },
                inputs: fin,
                outputs: d,
                taps: 1,
                in_channels: fin,
                out_shape: (1, 1, d),
                macs: (fin * d) as u64,
            });
            fin = d;
        }
        rows.push(LayerInfo {
            name: "classifier".into(),
            kind: LayerKind::Classifier,
            inputs: fin,
            outputs: self.classes,
            taps: 1,
            in_channels: fin,
            out_shape: (1, 1, self.classes),
            macs: (fin * self.classes) as u64,
        });
        rows
    }

    /// Trainable parameters: conv and dense weights (no conv/dense bias: batch norm follows),
    /// batch-norm γ and β, classifier weights and bias. Batch-norm running statistics are not
    /// counted (they are state, not parameters). Bi-Real networks add [`Arch::bireal_params`].
    pub fn params(&self) -> u64 {
        self.layers()
            .iter()
            .map(|l| match l.kind {
                LayerKind::Classifier => (l.inputs * l.outputs + l.outputs) as u64,
                _ => (l.inputs * l.outputs + 2 * l.outputs) as u64,
            })
            .sum::<u64>()
            + self.bireal_params()
    }

    /// Bytes of the frozen binary network as the extractor stores it: binary weights packed 32 to
    /// a u32 along input channels (`ceil(C/32)` words per output channel and tap); the first
    /// layer's weights (±1, it sees the real image) and the classifier (weights + bias) as f32;
    /// one 4-byte threshold per output channel of every conv and dense block (batch norm and sign
    /// folded together). Metadata (the JSON graph) is not counted.
    pub fn packed_bytes(&self) -> u64 {
        self.layers()
            .iter()
            .map(|l| match l.kind {
                LayerKind::Conv { first: true } | LayerKind::Dense { first: true } => {
                    (4 * l.inputs * l.outputs + 4 * l.outputs) as u64
                }
                LayerKind::Conv { .. } | LayerKind::Dense { .. } => {
                    (4 * l.outputs * l.taps * l.in_channels.div_ceil(32) + 4 * l.outputs) as u64
                }
                LayerKind::Classifier => (4 * (l.inputs * l.outputs + l.outputs)) as u64,
            })
            .sum::<u64>()
            + self.bireal_bytes()
    }

    /// Extra bytes of a Bi-Real extractor: its conv layers store five more f32 per output channel
    /// (the folded batch-norm scale and bias, RPReLU's three vectors) besides the threshold, and
    /// a projection shortcut its f32 1×1 weights and bias.
    fn bireal_bytes(&self) -> u64 {
        if self.blocks != Blocks::BiReal {
            return 0;
        }
        let mut cin = self.in_channels;
        let mut bytes = 0;
        for c in &self.convs {
            bytes += 20 * c.out as u64;
            if c.shortcut && cin != c.out {
                bytes += 4 * (cin * c.out + c.out) as u64;
            }
            cin = c.out;
        }
        bytes
    }

    /// Bytes of the float twin for inference: every weight as f32 plus batch norm folded to a
    /// per-channel scale and shift (2 × f32), classifier weights and bias as f32.
    pub fn float_bytes(&self) -> u64 {
        self.layers()
            .iter()
            .map(|l| match l.kind {
                LayerKind::Classifier => (4 * (l.inputs * l.outputs + l.outputs)) as u64,
                _ => (4 * l.inputs * l.outputs + 8 * l.outputs) as u64,
            })
            .sum()
    }

    /// A multi-line table: one row per layer with its output shape, parameters and MACs, then
    /// the totals (parameters, MACs per image, packed binary size, float size).
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} ({}×{}×{} input, {} classes)",
            self.name, self.input, self.input, self.in_channels, self.classes
        );
        let _ = writeln!(
            s,
            "  {:<11} {:>15} {:>12} {:>14}",
            "layer", "output", "params", "MACs"
        );
        for l in self.layers() {
            let params = match l.kind {
                LayerKind::Classifier => l.inputs * l.outputs + l.outputs,
                _ => l.inputs * l.outputs + 2 * l.outputs,
            };
            let (h, w, c) = l.out_shape;
            let _ = writeln!(
                s,
                "  {:<11} {:>15} {:>12} {:>14}",
                l.name,
                format!("{h}×{w}×{c}"),
                group(params as u64),
                group(l.macs)
            );
        }
        let _ = writeln!(
            s,
            "  total: {} parameters, {} MACs/image, packed binary {}, float {}",
            group(self.params()),
            group(self.macs()),
            human_bytes(self.packed_bytes()),
            human_bytes(self.float_bytes()),
        );
        s
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// What a row of [`Arch::layers`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// A conv block; `first` is the one that sees the real-valued image.
    Conv {
        /// The first conv block (it sees the real-valued image).
        first: bool,
    },
    /// A hidden dense block; `first` only when there are no conv blocks.
    Dense {
        /// The network's first layer (no conv blocks before it).
        first: bool,
    },
    /// The float classifier.
    Classifier,
}

/// One layer of an [`Arch`], for summaries and size accounting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerInfo {
    /// `conv{i}`, `fc{j}` (1-based) or `classifier`.
    pub name: String,
    /// What the layer is.
    pub kind: LayerKind,
    /// Fan-in: kernel² × input channels for a conv, input features for a dense layer.
    pub inputs: usize,
    /// Output channels / features.
    pub outputs: usize,
    /// Kernel taps (kernel²; 1 for dense layers).
    pub taps: usize,
    /// Input channels (input features for dense layers).
    pub in_channels: usize,
    /// (height, width, channels) after the block, pooling included.
    pub out_shape: (usize, usize, usize),
    /// Multiply-accumulates per image.
    pub macs: u64,
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", n as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alexnet_shapes_match_the_reference() {
        let a = Arch::alexnet(1000);
        let sides: Vec<usize> = a.conv_shapes().iter().map(|s| s.0).collect();
        assert_eq!(sides, vec![27, 13, 13, 13, 6]);
        assert_eq!(a.flat_features(), 6 * 6 * 256);
    }

    #[test]
    fn named_archs_have_consistent_shapes_and_sizes() {
        for (name, _) in ARCH_NAMES {
            let a = Arch::by_name(name, 10).unwrap();
            assert_eq!(a.name, name);
            assert_eq!(a.layers().iter().map(|l| l.macs).sum::<u64>(), a.macs());
            assert!(a.packed_bytes() < a.float_bytes());
            assert!(a.summary().contains("MACs/image"));
        }
        assert!(Arch::by_name("resnet", 10).is_none());
        for (name, _) in ARCH_NAMES {
            assert_eq!(Arch::by_name(name, 10).unwrap().check(), Ok(()), "{name}");
        }
        let b = Arch::small(200).bireal(&[2, 3, 4]);
        assert_eq!(b.name, "small-bireal");
        // RSign on conv2-5 inputs (64 + 3·128) and fc1's (128), RPReLU 3 × (64 + 4·128).
        assert_eq!(b.bireal_params(), 64 + 3 * 128 + 128 + 3 * (64 + 4 * 128));
        assert_eq!(b.params(), Arch::small(200).params() + b.bireal_params());
        // The first block sees the image: no shortcut there.
        let bad = Arch::small(200).bireal(&[0]);
        assert!(
            bad.check().unwrap_err().contains("conv1"),
            "{:?}",
            bad.check()
        );
        // conv2 changes the channel count (64 → 128): its shortcut has a 1×1 projection.
        let full = Arch::by_name("small-bireal-full", 200).unwrap();
        assert_eq!(full.name, "small-bireal-full");
        assert_eq!(full.bireal_params(), b.bireal_params() + 64 * 128 + 2 * 128);
        let mut plain = Arch::small(200);
        plain.convs[2].shortcut = true;
        assert!(plain.check().unwrap_err().contains("bi_real"));
        let s = Arch::small(200);
        assert_eq!(s.conv_shapes().last(), Some(&(3, 128)));
        assert_eq!(s.flat_features(), 3 * 3 * 128);
        // AlexNet: 5 convs + 3 dense = ~61 M weights in Larq Zoo's count for 1000 classes.
        let a = Arch::alexnet(1000);
        assert!(
            (55_000_000..65_000_000).contains(&a.params()),
            "{}",
            a.params()
        );
        assert_eq!(group(1234567), "1,234,567");
    }
}
