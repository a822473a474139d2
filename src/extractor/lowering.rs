//! The one lowering of an extractor graph and the trait its backends implement. [`lower`] turns a
//! file's layers, the taps and the output asked for into [`Step`]s and decides fusion once (see
//! [`ConvOut`] and [`Step::RealEpilogue`]); [`execute`] walks the steps over a [`Backend`]: the
//! scalar reference (`reference.rs`), the CPU path (`cpu/extractor.rs`) and the WGSL recorder
//! (`runtime.rs`). A new layer kind is one lowering rule here and one method per backend. Also the
//! shapes every backend reads off a layer ([`conv_shape`], [`pool_shape`]).

use super::{ExtractorFile, LayerData, LayerKind, Output};
use crate::error::Result;
use crate::ops::{ConvShape, PoolShape};

/// What a conv-like step (first conv, XNOR conv, XNOR dense) leaves for the next step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvOut {
    /// The layer's packed signs after its max-pool. The fusion the fast backends run: the
    /// threshold is fused into the conv (conv → threshold → pack per output pixel; the
    /// pre-activation map never reaches memory), then the pool runs on the packed signs, AND for
    /// the channels with `pre ≥ t` and OR for `pre ≤ t`: exact, a threshold being monotone
    /// (docs/FORMAT.md, Pooling). The reference pools the values, then thresholds them.
    Signs,
    /// The pre-activations after the max-pool (a plain last layer under `Output::Preact`): the
    /// first layer's f32 sums, else integer dots (a dense layer's `dot_offset` is removed before
    /// they are returned). The CPU path has no such step: it computes packed signs only.
    Preact,
    /// The conv's values for the real epilogue that follows, which max-pools them itself (one pass
    /// less on the GPU and the CPU; the reference pools them in the conv step).
    Values,
}

/// One operation a backend executes, in order. Each reads what the previous step left (the image
/// before the first layer, then packed signs or values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Real image (f32 NHWC) × binary weights → f32 sums, then as `out` says.
    FirstConv { layer: usize, out: ConvOut },
    /// Packed signs × packed weights → integer dots, then as `out` says.
    XnorConv { layer: usize, out: ConvOut },
    /// Packed features × packed weights → integer dots, then as `out` says (never `Values`).
    XnorDense { layer: usize, out: ConvOut },
    /// A real layer's epilogue over its conv's values: max-pool, folded batch norm, the shortcut
    /// (the previous layer's real output, when `shortcut`), RPReLU → the real output `z`, kept for
    /// the next layer's shortcut; then, when `signs`, the threshold of `z` to packed signs. Without
    /// `signs`, `z` is the result (`Output::Preact` of a real last layer).
    RealEpilogue {
        layer: usize,
        shortcut: bool,
        signs: bool,
    },
    /// The packed signs just computed are layer `.0`'s output, asked for (a tap: read back).
    Tap(usize),
}

/// Executes [`Step`]s: one method per step. `i` is the layer's index in the file; a backend reads
/// the layer's tensors there or from what it prepared for the layer.
pub(crate) trait Backend {
    /// [`Step::FirstConv`].
    fn first_conv(&mut self, i: usize, out: ConvOut) -> Result<()>;
    /// [`Step::XnorConv`].
    fn xnor_conv(&mut self, i: usize, out: ConvOut) -> Result<()>;
    /// [`Step::XnorDense`].
    fn xnor_dense(&mut self, i: usize, out: ConvOut) -> Result<()>;
    /// [`Step::RealEpilogue`].
    fn real_epilogue(&mut self, i: usize, shortcut: bool, signs: bool) -> Result<()>;
    /// [`Step::Tap`].
    fn tap(&mut self, i: usize) -> Result<()>;
}

/// What the lowering reads of a layer: a backend that does not keep the file keeps these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    kind: LayerKind,
    /// The layer has a real epilogue.
    real: bool,
    /// Its epilogue adds a shortcut.
    shortcut: bool,
}

impl Node {
    /// The lowering's view of `l`.
    pub(crate) fn of(l: &LayerData) -> Node {
        Node {
            kind: l.spec.kind,
            real: l.real.is_some(),
            shortcut: l.spec.shortcut_window().is_some(),
        }
    }
}

/// The steps computing `file`'s packed signs at each layer of `taps` (any order, duplicates
/// allowed, all below the layer count) or, under `Output::Preact`, the last layer's
/// pre-activations (a real layer's `z`). Layers after the last one needed are not lowered.
pub(crate) fn lower(file: &ExtractorFile, taps: &[usize], output: Output) -> Vec<Step> {
    let nodes: Vec<Node> = file.layers.iter().map(Node::of).collect();
    lower_nodes(&nodes, taps, output == Output::Preact)
}

/// [`lower`] over a run of layers (`nodes[0]` reads the image or the signs given to the
/// backend); `preact`: the last of them stops at its pre-activations.
pub(crate) fn lower_nodes(nodes: &[Node], taps: &[usize], preact: bool) -> Vec<Step> {
    let last = nodes.len().saturating_sub(1);
    let stop = if preact {
        last
    } else {
        taps.iter().copied().max().unwrap_or(0)
    };
    let mut steps = Vec::new();
    for (i, n) in nodes.iter().enumerate().take(stop + 1) {
        let to_preact = preact && i == last;
        let out = match (n.real, to_preact) {
            (true, _) => ConvOut::Values,
            (false, true) => ConvOut::Preact,
            (false, false) => ConvOut::Signs,
        };
        steps.push(conv_step(i, n.kind, out));
        if n.real {
            steps.push(Step::RealEpilogue {
                layer: i,
                shortcut: n.shortcut,
                signs: !to_preact,
            });
        }
        if !to_preact && taps.contains(&i) {
            steps.push(Step::Tap(i));
        }
    }
    steps
}

/// The conv-like step of layer `i` of `kind`.
pub(crate) fn conv_step(i: usize, kind: LayerKind, out: ConvOut) -> Step {
    match kind {
        LayerKind::FirstConv => Step::FirstConv { layer: i, out },
        LayerKind::XnorConv => Step::XnorConv { layer: i, out },
        LayerKind::XnorDense => Step::XnorDense { layer: i, out },
    }
}

/// Runs `steps` on `backend`, in order.
pub(crate) fn execute(steps: &[Step], backend: &mut impl Backend) -> Result<()> {
    for step in steps {
        match *step {
            Step::FirstConv { layer, out } => backend.first_conv(layer, out),
            Step::XnorConv { layer, out } => backend.xnor_conv(layer, out),
            Step::XnorDense { layer, out } => backend.xnor_dense(layer, out),
            Step::RealEpilogue {
                layer,
                shortcut,
                signs,
            } => backend.real_epilogue(layer, shortcut, signs),
            Step::Tap(layer) => backend.tap(layer),
        }?;
    }
    Ok(())
}

/// A conv layer's shape over `batch` images (a dense layer's is not this: `ConvShape::dense`).
pub(crate) fn conv_shape(l: &LayerData, batch: usize) -> ConvShape {
    let s = &l.spec;
    ConvShape {
        batch,
        in_h: s.in_shape[0],
        in_w: s.in_shape[1],
        in_c: s.in_shape[2],
        out_c: s.out_channels(),
        kernel_h: s.kernel,
        kernel_w: s.kernel,
        stride: s.stride,
        pad: s.pad,
        padding: s.padding,
    }
}

/// A pooled layer's max-pool over its conv's output, `batch` images.
pub(crate) fn pool_shape(l: &LayerData, batch: usize) -> Option<PoolShape> {
    let (h, w) = l.spec.conv_out();
    l.spec.pool.map(|p| PoolShape {
        batch,
        in_h: h,
        in_w: w,
        channels: l.spec.out_channels(),
        kernel: p.kernel,
        stride: p.stride,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: LayerKind, real: bool, shortcut: bool) -> Node {
        Node {
            kind,
            real,
            shortcut,
        }
    }

    #[test]
    fn plain_layers_fuse_the_threshold_and_stop_at_the_last_tap() {
        let nodes = [
            node(LayerKind::FirstConv, false, false),
            node(LayerKind::XnorConv, false, false),
            node(LayerKind::XnorDense, false, false),
        ];
        assert_eq!(
            lower_nodes(&nodes, &[1, 1], false),
            [
                Step::FirstConv {
                    layer: 0,
                    out: ConvOut::Signs
                },
                Step::XnorConv {
                    layer: 1,
                    out: ConvOut::Signs
                },
                Step::Tap(1),
            ]
        );
        assert_eq!(
            lower_nodes(&nodes, &[0], true)[2..],
            [
                Step::XnorConv {
                    layer: 1,
                    out: ConvOut::Signs
                },
                Step::XnorDense {
                    layer: 2,
                    out: ConvOut::Preact
                },
            ]
        );
    }

    #[test]
    fn real_layers_hand_their_values_to_the_epilogue() {
        let nodes = [
            node(LayerKind::FirstConv, true, false),
            node(LayerKind::XnorConv, true, true),
        ];
        assert_eq!(
            lower_nodes(&nodes, &[0, 1], true),
            [
                Step::FirstConv {
                    layer: 0,
                    out: ConvOut::Values
                },
                Step::RealEpilogue {
                    layer: 0,
                    shortcut: false,
                    signs: true
                },
                Step::Tap(0),
                Step::XnorConv {
                    layer: 1,
                    out: ConvOut::Values
                },
                Step::RealEpilogue {
                    layer: 1,
                    shortcut: true,
                    signs: false
                },
            ]
        );
    }
}
