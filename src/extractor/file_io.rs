//! The extractor file as bytes: [`ExtractorFile`] written and read with safetensors (tensors +
//! the graph and conventions as metadata), with every tensor checked against the graph on load.
//! See `docs/FORMAT.md`.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use super::format::{
    CONVENTIONS, ClassifierData, ExtractorFile, FORMAT, Graph, LayerData, LayerKind, LayerSpec,
    Projection, Thresholds, VERSION, VERSION_REAL, bad,
};
use crate::atomic::write_atomic;
use crate::bits::words;
use crate::error::{Error, Result};
use crate::ops::real_epilogue::RealChannel;
use crate::ops::{FloatThreshold, Threshold};

fn view<'a>(dtype: Dtype, shape: Vec<usize>, bytes: &'a [u8]) -> Result<TensorView<'a>> {
    TensorView::new(dtype, shape, bytes).map_err(|e| Error::Shape(format!("safetensors: {e}")))
}

impl ExtractorFile {
    /// The safetensors bytes of this file (tensors + metadata), after validating the graph.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let here = Path::new("<in memory>");
        self.graph.validate(here)?;
        self.check_tensors(here)?;
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for l in &self.layers {
            let s = &l.spec;
            owned.push((
                format!("{}.weight", s.name),
                Dtype::U32,
                s.weight_shape(),
                bytemuck::cast_slice(&l.weights).to_vec(),
            ));
            let (t, flip): (Vec<u8>, Vec<u8>) = match &l.thresholds {
                Thresholds::Int(v) => (
                    bytemuck::cast_slice(&v.iter().map(|t| t.t).collect::<Vec<i32>>()).to_vec(),
                    v.iter().map(|t| t.mode as u8).collect(),
                ),
                Thresholds::Float(v) => (
                    bytemuck::cast_slice(&v.iter().map(|t| t.t).collect::<Vec<f32>>()).to_vec(),
                    v.iter().map(|t| t.mode as u8).collect(),
                ),
            };
            let dtype = match l.thresholds {
                Thresholds::Int(_) => Dtype::I32,
                Thresholds::Float(_) => Dtype::F32,
            };
            let c = s.out_channels();
            owned.push((format!("{}.threshold", s.name), dtype, vec![c], t));
            owned.push((format!("{}.flip", s.name), Dtype::U8, vec![c], flip));
            if let Some(real) = &l.real {
                let v: Vec<f32> = real.iter().flat_map(|r| r.to_array()).collect();
                owned.push((
                    format!("{}.real", s.name),
                    Dtype::F32,
                    vec![c, 5],
                    bytemuck::cast_slice(&v).to_vec(),
                ));
            }
            if let Some(p) = &l.projection {
                owned.push((
                    format!("{}.shortcut_weight", s.name),
                    Dtype::F32,
                    vec![c, s.in_shape[2]],
                    bytemuck::cast_slice(&p.weight).to_vec(),
                ));
                owned.push((
                    format!("{}.shortcut_bias", s.name),
                    Dtype::F32,
                    vec![c],
                    bytemuck::cast_slice(&p.bias).to_vec(),
                ));
            }
        }
        if let (Some(spec), Some(c)) = (&self.graph.classifier, &self.classifier) {
            owned.push((
                "classifier.weight".into(),
                Dtype::F32,
                vec![spec.classes, spec.in_features],
                bytemuck::cast_slice(&c.weight).to_vec(),
            ));
            owned.push((
                "classifier.bias".into(),
                Dtype::F32,
                vec![spec.classes],
                bytemuck::cast_slice(&c.bias).to_vec(),
            ));
        }
        let views = owned
            .iter()
            .map(|(n, d, s, b)| Ok((n.clone(), view(*d, s.clone(), b)?)))
            .collect::<Result<Vec<_>>>()?;
        let graph = serde_json::to_string(&self.graph)
            .map_err(|e| Error::Shape(format!("graph to JSON: {e}")))?;
        let meta = BTreeMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("version".to_string(), self.version().to_string()),
            ("conventions".to_string(), CONVENTIONS.to_string()),
            ("graph".to_string(), graph),
        ]);
        crate::reproducible::serialize(views, &meta)
    }

    /// Writes the file atomically (temp file in the same directory, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<u64> {
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<ExtractorFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// Parses and validates file bytes; `path` only names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<ExtractorFile> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(path, format!("not a valid safetensors file: {e}")))?;
        let (graph, version) = read_graph(bytes, path)?;
        let layers = graph
            .layers
            .iter()
            .map(|s| read_layer(&st, path, s))
            .collect::<Result<Vec<_>>>()?;
        let classifier = match &graph.classifier {
            None => None,
            Some(c) => Some(ClassifierData {
                weight: bytemuck::pod_collect_to_vec(tensor(
                    &st,
                    path,
                    "classifier.weight",
                    Dtype::F32,
                    &[c.classes, c.in_features],
                )?),
                bias: bytemuck::pod_collect_to_vec(tensor(
                    &st,
                    path,
                    "classifier.bias",
                    Dtype::F32,
                    &[c.classes],
                )?),
            }),
        };
        let file = ExtractorFile {
            graph,
            layers,
            classifier,
        };
        file.check_tensors(path)?;
        if file.version() != version {
            return Err(bad(
                path,
                format!(
                    "format version {version}, but the graph is of version {}: version {VERSION_REAL} \
                     is written exactly when a layer has a `real` epilogue",
                    file.version()
                ),
            ));
        }
        Ok(file)
    }

    /// The format version this file is written with: [`VERSION_REAL`] when a layer has a real
    /// epilogue, else [`VERSION`] (so files of plain networks stay readable by older builds).
    pub fn version(&self) -> u32 {
        if self.graph.layers.iter().any(|l| l.real.is_some()) {
            VERSION_REAL
        } else {
            VERSION
        }
    }

    /// Tensor sizes match the graph, packed tail bits are clear and the classifier is finite.
    fn check_tensors(&self, path: &Path) -> Result<()> {
        if self.layers.len() != self.graph.layers.len() {
            return Err(bad(path, "layers and graph differ"));
        }
        for (l, s) in self.layers.iter().zip(&self.graph.layers) {
            let want: usize = s.weight_shape().iter().product();
            if l.spec != *s || l.weights.len() != want || l.thresholds.len() != s.out_channels() {
                return Err(bad(
                    path,
                    format!("layer '{}': tensor sizes do not fit the graph", s.name),
                ));
            }
            let float = matches!(l.thresholds, Thresholds::Float(_));
            if float != (s.kind == LayerKind::FirstConv || s.real.is_some()) {
                return Err(bad(path, format!("layer '{}': threshold type", s.name)));
            }
            let c = s.out_channels();
            let projection_fits = match (&l.projection, s.real.is_some_and(|r| r.project)) {
                (None, false) => true,
                (Some(p), true) => p.weight.len() == c * s.in_shape[2] && p.bias.len() == c,
                _ => false,
            };
            if l.real.as_ref().map(Vec::len) != s.real.map(|_| c) || !projection_fits {
                return Err(bad(
                    path,
                    format!(
                        "layer '{}': real epilogue tensors do not fit the graph",
                        s.name
                    ),
                ));
            }
            if let (Some(_), Thresholds::Float(t)) = (s.real, &l.thresholds)
                && t.iter().any(|t| t.mode != 0)
            {
                return Err(bad(
                    path,
                    format!("layer '{}': a real layer's flips must all be 0", s.name),
                ));
            }
            // Bits per packed group: a conv tap's channels; a dense row after a 1×1 map; a pixel's
            // channels of a dense row after an H×W map, whose padding channels' weight bits must
            // be clear (each adds +1 through `dot_offset`).
            let [h, w, c] = s.in_shape;
            let bits = match s.kind {
                LayerKind::XnorDense if h * w == 1 => s.in_features,
                _ => c,
            };
            if bits % 32 != 0 {
                let row = words(bits);
                let mask = !0u32 << (bits % 32);
                if l.weights.chunks_exact(row).any(|r| r[row - 1] & mask != 0) {
                    return Err(bad(
                        path,
                        format!(
                            "layer '{}': weight bits past the {bits} channels of a packed group \
                             are set (they must be 0: docs/FORMAT.md, bit conventions)",
                            s.name
                        ),
                    ));
                }
            }
        }
        match (&self.graph.classifier, &self.classifier) {
            (None, None) => Ok(()),
            (Some(s), Some(c))
                if c.weight.len() == s.classes * s.in_features && c.bias.len() == s.classes =>
            {
                if c.weight.iter().chain(&c.bias).any(|v| !v.is_finite()) {
                    return Err(bad(path, "the classifier holds NaN or infinite values"));
                }
                Ok(())
            }
            _ => Err(bad(path, "classifier tensors do not fit the graph")),
        }
    }

    /// Index of the layer called `name` (`conv1`, `fc2`, ...).
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers
            .iter()
            .position(|l| l.spec.name == name)
            .ok_or_else(|| {
                Error::Shape(format!(
                    "no layer '{name}' in this extractor; its layers: {}",
                    self.layer_names().join(", ")
                ))
            })
    }

    /// Names of the stored layers, input to cut.
    pub fn layer_names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.spec.name.clone()).collect()
    }

    /// The same extractor cut earlier, after layer `name` (the classifier is dropped unless the
    /// cut stays where it was).
    pub fn truncated(&self, name: &str) -> Result<ExtractorFile> {
        let i = self.layer_index(name)?;
        if i + 1 == self.layers.len() {
            return Ok(self.clone());
        }
        let mut graph = self.graph.clone();
        graph.layers.truncate(i + 1);
        graph.cut = name.to_string();
        graph.classifier = None;
        Ok(ExtractorFile {
            graph,
            layers: self.layers[..=i].to_vec(),
            classifier: None,
        })
    }

    /// The last layer (the cut).
    pub fn cut(&self) -> &LayerSpec {
        &self
            .layers
            .last()
            .expect("validated: at least one layer")
            .spec
    }
}

/// The largest magnitude the real-valued tensors of an extractor (a real layer's channel fields
/// and projection) and of a transfer head may hold: far beyond any trained value, and far enough
/// below `f32::MAX` that their products and sums stay finite (finite ±3e38 scales overflow to
/// ±inf in the epilogue and make NaN features).
pub const MAX_MAGNITUDE: f32 = 1e30;

/// The file's metadata checked (format, version) and its graph, validated; and the version.
fn read_graph(bytes: &[u8], path: &Path) -> Result<(Graph, u32)> {
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(path, format!("not a valid safetensors file: {e}")))?;
    let meta = meta
        .metadata()
        .clone()
        .ok_or_else(|| bad(path, "no metadata: not an extractor file"))?;
    let key = |k: &str| {
        meta.get(k)
            .ok_or_else(|| bad(path, format!("metadata key '{k}' is missing")))
    };
    if key("format")? != FORMAT {
        return Err(bad(
            path,
            format!("format is '{}', not '{FORMAT}'", key("format")?),
        ));
    }
    let version = key("version")?;
    let version = version.parse::<u32>().ok().filter(|v| [VERSION, VERSION_REAL].contains(v))
        .ok_or_else(|| bad(
            path,
            format!("format version {version}; this build reads versions {VERSION} and {VERSION_REAL}"),
        ))?;
    let graph: Graph =
        serde_json::from_str(key("graph")?).map_err(|e| bad(path, format!("graph JSON: {e}")))?;
    graph.validate(path)?;
    Ok((graph, version))
}

/// The bytes of tensor `name`, which must be a `dtype` tensor of shape `shape`.
fn tensor<'a>(
    st: &'a SafeTensors<'a>,
    path: &Path,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<&'a [u8]> {
    let t = st
        .tensor(name)
        .map_err(|_| bad(path, format!("tensor '{name}' is missing")))?;
    if t.dtype() != dtype || t.shape() != shape {
        return Err(bad(
            path,
            format!(
                "tensor '{name}' is {:?} {:?}; the graph needs {dtype:?} {shape:?}",
                t.dtype(),
                t.shape()
            ),
        ));
    }
    Ok(t.data())
}

/// The tensors of layer `s`, checked: packed weights, flip flags (0 or 1), the real epilogue
/// and projection when it has them, and thresholds (float or integer).
fn read_layer(st: &SafeTensors, path: &Path, s: &LayerSpec) -> Result<LayerData> {
    let weights: Vec<u32> = bytemuck::pod_collect_to_vec(tensor(
        st,
        path,
        &format!("{}.weight", s.name),
        Dtype::U32,
        &s.weight_shape(),
    )?);
    let c = s.out_channels();
    let flip = tensor(st, path, &format!("{}.flip", s.name), Dtype::U8, &[c])?;
    if flip.iter().any(|&f| f > 1) {
        return Err(bad(
            path,
            format!("'{}.flip' holds values other than 0 and 1", s.name),
        ));
    }
    let name = format!("{}.threshold", s.name);
    let real = match s.real {
        None => None,
        Some(_) => {
            let rname = format!("{}.real", s.name);
            let v: Vec<f32> =
                bytemuck::pod_collect_to_vec(tensor(st, path, &rname, Dtype::F32, &[c, 5])?);
            in_range(path, &rname, &v)?;
            Some(
                v.chunks_exact(5)
                    .map(|r| RealChannel::from_array([r[0], r[1], r[2], r[3], r[4]]))
                    .collect(),
            )
        }
    };
    let projection = match s.real.filter(|r| r.project) {
        None => None,
        Some(_) => {
            let finite = |name: String, shape: &[usize]| -> Result<Vec<f32>> {
                let v: Vec<f32> =
                    bytemuck::pod_collect_to_vec(tensor(st, path, &name, Dtype::F32, shape)?);
                in_range(path, &name, &v)?;
                Ok(v)
            };
            Some(Projection {
                weight: finite(format!("{}.shortcut_weight", s.name), &[c, s.in_shape[2]])?,
                bias: finite(format!("{}.shortcut_bias", s.name), &[c])?,
            })
        }
    };
    let thresholds = if s.kind == LayerKind::FirstConv || s.real.is_some() {
        let t: Vec<f32> = bytemuck::pod_collect_to_vec(tensor(st, path, &name, Dtype::F32, &[c])?);
        if t.iter().any(|t| t.is_nan()) {
            return Err(bad(path, format!("'{name}' holds NaN")));
        }
        // ±inf (written by older exports for constant channels) becomes ±f32::MAX: the
        // same outcome for every finite pre-activation, and WGSL may assume no infinities.
        Thresholds::Float(
            t.iter()
                .zip(flip)
                .map(|(&t, &m)| FloatThreshold {
                    t: t.clamp(f32::MIN, f32::MAX),
                    mode: m as u32,
                })
                .collect(),
        )
    } else {
        let t: Vec<i32> = bytemuck::pod_collect_to_vec(tensor(st, path, &name, Dtype::I32, &[c])?);
        Thresholds::Int(
            t.iter()
                .zip(flip)
                .map(|(&t, &m)| Threshold { t, mode: m as u32 })
                .collect(),
        )
    };
    Ok(LayerData {
        spec: s.clone(),
        weights,
        thresholds,
        real,
        projection,
    })
}

/// Refuses a real-valued tensor with a NaN, an infinity or a value of magnitude
/// [`MAX_MAGNITUDE`] or more, naming it.
fn in_range(path: &Path, name: &str, v: &[f32]) -> Result<()> {
    match v
        .iter()
        .find(|v| !v.is_finite() || v.abs() >= MAX_MAGNITUDE)
    {
        Some(x) => Err(bad(
            path,
            format!(
                "'{name}' holds {x:e}: every value must be finite and of magnitude below \
                 {MAX_MAGNITUDE:e} (NaN or infinite values, or values that overflow)"
            ),
        )),
        None => Ok(()),
    }
}
