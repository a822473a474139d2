//! Every check a graph must pass before anything runs it ([`Graph::validate`]): shapes chain from
//! the input to the cut, sizes are bounded so no later product overflows. See `docs/FORMAT.md`.

use std::path::Path;

use super::format::{Graph, LayerKind, LayerSpec, Shortcut, bad};
use crate::arch::out_size;
use crate::bits::words;
use crate::error::Result;
use crate::ops::Padding;

/// The largest size of a dimension, channels and classes: no later product of them overflows.
const MAX_DIM: usize = 1 << 20;

impl Graph {
    /// Checks the graph's internal consistency: shapes chain from the input to the cut, each
    /// layer's output shape follows from its kernel, stride, padding and pooling, names are
    /// unique and the cut is the last layer. Sizes are bounded so no later product overflows.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let err = |m: String| Err(bad(path, m));
        self.check_input().map_err(|m| bad(path, m))?;
        if self.layers.is_empty() {
            return err("the graph has no layers".into());
        }
        let i = &self.input;
        let mut prev = [i.size, i.size, i.channels];
        let mut seen = std::collections::HashSet::new();
        for (n, l) in self.layers.iter().enumerate() {
            let at = |m: String| bad(path, format!("layer {n} ('{}'): {m}", l.name));
            if l.name.is_empty() || !seen.insert(l.name.as_str()) {
                return Err(at("empty or duplicate name".into()));
            }
            if l.in_shape != prev {
                return Err(at(format!(
                    "input shape {:?} does not follow the previous output {prev:?}",
                    l.in_shape
                )));
            }
            let expected_kind = match (n, l.kind) {
                (0, LayerKind::FirstConv) => true,
                (_, LayerKind::FirstConv) => false,
                (0, _) => false,
                (_, LayerKind::XnorConv) => self.layers[n - 1].kind != LayerKind::XnorDense,
                (_, LayerKind::XnorDense) => true,
            };
            if !expected_kind {
                return Err(at(format!("a {:?} layer cannot be layer {n} here", l.kind)));
            }
            let c = l.out_shape[2];
            if c == 0 || c > MAX_DIM || l.out_shape.iter().any(|&d| d == 0 || d > MAX_DIM) {
                return Err(at(format!("output shape {:?} out of range", l.out_shape)));
            }
            check_shape(l, prev).map_err(at)?;
            self.check_real(n).map_err(at)?;
            prev = l.out_shape;
        }
        let last = self.layers.last().expect("non-empty");
        if self.cut != last.name {
            return err(format!(
                "cut '{}' is not the last layer stored ('{}')",
                self.cut, last.name
            ));
        }
        if let Some(c) = &self.classifier
            && (c.in_features != last.out_len() || c.classes == 0 || c.classes > MAX_DIM)
        {
            return err(format!(
                "classifier of {} inputs does not fit the {} features at the cut",
                c.in_features,
                last.out_len()
            ));
        }
        Ok(())
    }

    /// The input's size and channels in range, one finite mean and one finite positive std per
    /// channel; the error message otherwise.
    fn check_input(&self) -> std::result::Result<(), String> {
        let i = &self.input;
        if i.size == 0 || i.size > 16384 || i.channels == 0 || i.channels > 4096 {
            return Err(format!(
                "input {}×{}×{} out of range",
                i.size, i.size, i.channels
            ));
        }
        if i.mean.len() != i.channels || i.std.len() != i.channels {
            return Err(format!(
                "input.mean has {} and input.std {} values; input.channels is {}: give one per channel",
                i.mean.len(),
                i.std.len(),
                i.channels
            ));
        }
        if let Some(m) = i.mean.iter().find(|m| !m.is_finite()) {
            return Err(format!("input.mean holds {m}: every mean must be finite"));
        }
        if let Some(s) = i.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!(
                "input.std holds {s}: every std must be finite and > 0 (it divides)"
            ));
        }
        Ok(())
    }

    /// Layer `n`'s real epilogue, if it has one: a conv layer whose shortcut keeps the side and
    /// joins a real layer before it; the error message otherwise.
    fn check_real(&self, n: usize) -> std::result::Result<(), String> {
        let l = &self.layers[n];
        let Some(r) = l.real else {
            return Ok(());
        };
        let c = l.out_shape[2];
        let before = n.checked_sub(1).map(|p| &self.layers[p]);
        let ok = match r.shortcut {
            _ if l.kind == LayerKind::XnorDense => false,
            Shortcut::None => true,
            Shortcut::Identity => {
                l.pool.is_none() && l.conv_out() == (l.in_shape[0], l.in_shape[1])
            }
            Shortcut::AvgPool => l.pool.is_some() && l.conv_out() == (l.in_shape[0], l.in_shape[1]),
        };
        // A shortcut reads the previous real output; without a projection it must have
        // this layer's channels, and a projection needs a shortcut.
        let joins = match (r.shortcut, r.project) {
            (Shortcut::None, project) => !project,
            (_, project) => {
                before.is_some_and(|b| b.real.is_some() && b.out_shape == l.in_shape)
                    && (project || l.in_shape[2] == c)
            }
        };
        if !ok || !joins {
            return Err(format!(
                "a real epilogue with shortcut {:?} (project: {}) needs a conv layer that \
                 keeps the side (identity: no pool; avg_pool: a pool) and, with a \
                 shortcut, a real layer before it with as many channels (or a projection)",
                r.shortcut, r.project
            ));
        }
        Ok(())
    }
}

/// Layer `l`'s kernel, stride, padding, pooling and feature counts against its input shape
/// `prev` and its output shape; the error message otherwise.
fn check_shape(l: &LayerSpec, prev: [usize; 3]) -> std::result::Result<(), String> {
    let c = l.out_shape[2];
    match l.kind {
        LayerKind::XnorDense => {
            let [h, w, ch] = prev;
            let (feat, offset) = if h * w == 1 {
                (ch, 0)
            } else {
                (h * w * words(ch) * 32, h * w * (words(ch) * 32 - ch))
            };
            if l.in_features != feat || l.dot_offset as i64 != offset as i64 {
                return Err(format!(
                    "in_features {} / dot_offset {} should be {feat} / {offset} for input {prev:?}",
                    l.in_features, l.dot_offset
                ));
            }
            if l.out_shape[..2] != [1, 1] || l.pool.is_some() || l.pad != 0 {
                return Err("a dense layer has output [1, 1, n], no pool, no pad".into());
            }
        }
        _ => {
            if l.kernel == 0
                || l.stride == 0
                || l.kernel > 64
                || l.pad > 64
                || prev[0] + 2 * l.pad < l.kernel
                || prev[1] + 2 * l.pad < l.kernel
                || l.in_features != 0
                || l.dot_offset != 0
            {
                return Err("invalid kernel, stride or padding".into());
            }
            if l.kind == LayerKind::FirstConv && l.padding != Padding::Zero {
                return Err("the first layer pads with zeros only".into());
            }
            let (mut h, mut w) = l.conv_out();
            if let Some(p) = l.pool {
                if p.kernel == 0 || p.stride == 0 || p.kernel > h || p.kernel > w {
                    return Err(format!("invalid pool {p:?} on {h}×{w}"));
                }
                h = out_size(h, p.kernel, p.stride, 0);
                w = out_size(w, p.kernel, p.stride, 0);
            }
            if [h, w] != l.out_shape[..2] {
                return Err(format!(
                    "output shape {:?} should be [{h}, {w}, {c}]",
                    l.out_shape
                ));
            }
        }
    }
    Ok(())
}
