//! Mutated extractor files: bit flips, truncation, byte insertions and edits of the safetensors
//! header JSON (graph fields, tensor shapes, dtypes and offsets set to hostile values, keys
//! removed). Loading must never panic nor abort on a huge allocation: it either succeeds, and the
//! file then survives a save/load round trip, or it is an `Error::ModelFile` naming the file. The
//! cargo-fuzz target `extractor_file` (fuzz/) explores the same loader for longer.

use std::path::Path;
use std::sync::LazyLock;

use bnn_transfer::Arch;
use bnn_transfer::Error;
use bnn_transfer::arch::{ConvBlock, Pool};
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::extractor::{ClassifierData, ClassifierSpec, ExtractorFile};
use proptest::prelude::*;
use serde_json::Value;

/// An 8×8×3 network: a first conv, a pooled binary conv (40 channels: a partial second word)
/// and a dense layer reading the 2×2 map as is, then a float classifier. About 5 KB.
fn valid_file() -> Vec<u8> {
    static FILE: LazyLock<Vec<u8>> = LazyLock::new(build);
    FILE.clone()
}

fn build() -> Vec<u8> {
    let conv = |out, pool| ConvBlock {
        out,
        kernel: 3,
        stride: 1,
        pad: 1,
        pool,
        shortcut: false,
    };
    let arch = Arch {
        name: "tiny".into(),
        input: 8,
        in_channels: 3,
        convs: vec![
            conv(8, None),
            conv(
                40,
                Some(Pool {
                    kernel: 2,
                    stride: 2,
                }),
            ),
        ],
        dense: vec![16],
        classes: 3,
        blocks: Default::default(),
    };
    let mut file = random_file(&arch, 7).unwrap();
    file.graph.classifier = Some(ClassifierSpec {
        in_features: 16,
        classes: 3,
    });
    file.classifier = Some(ClassifierData {
        weight: (0..48).map(|i| i as f32 / 48.0).collect(),
        bias: vec![0.5, 0.0, -0.5],
    });
    file.to_bytes().unwrap()
}

/// Values a hostile header puts in a number field: zero, off-by-ones around word and limit
/// boundaries, and sizes whose sums, products or allocations overflow.
const NUMBERS: [i128; 16] = [
    0,
    1,
    2,
    31,
    33,
    65,
    16385,
    (1 << 20) + 1,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    1 << 63,
    u64::MAX as i128,
    -1,
    i32::MIN as i128,
];

/// The number fields of a graph a mutation aims at: `(object path, key, index in an array)`,
/// the object path relative to a layer (`None`: the graph root).
const FIELDS: [(Option<&str>, &str, Option<usize>); 17] = [
    (None, "in_shape", Some(0)),
    (None, "in_shape", Some(1)),
    (None, "in_shape", Some(2)),
    (None, "out_shape", Some(0)),
    (None, "out_shape", Some(1)),
    (None, "out_shape", Some(2)),
    (None, "kernel", None),
    (None, "stride", None),
    (None, "pad", None),
    (Some("pool"), "kernel", None),
    (Some("pool"), "stride", None),
    (None, "in_features", None),
    (None, "dot_offset", None),
    (Some("input"), "size", None),
    (Some("input"), "channels", None),
    (Some("classifier"), "in_features", None),
    (Some("classifier"), "classes", None),
];

#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// The `n`-th number of the header (the graph JSON's included) set to `NUMBERS[value]`.
    Number {
        n: usize,
        value: usize,
    },
    /// Field `FIELDS[field]` of layer `layer` (mod the layer count; the graph for the last four)
    /// set to `NUMBERS[value]`.
    GraphField {
        layer: usize,
        field: usize,
        value: usize,
    },
    /// The `n`-th string of the header set to `value`.
    Text {
        n: usize,
        value: String,
    },
    /// The `n`-th object key of the header removed.
    Remove {
        n: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 0..NUMBERS.len())
            .prop_map(|(n, value)| Mutation::Number { n, value }),
        4 => (any::<usize>(), 0..FIELDS.len(), 0..NUMBERS.len()).prop_map(
            |(layer, field, value)| Mutation::GraphField {
                layer,
                field,
                value
            }
        ),
        1 => (
            any::<usize>(),
            prop_oneof![
                Just(String::new()),
                Just("conv1".to_string()),
                Just("xnor_dense".to_string()),
                Just("first_conv".to_string()),
                Just("one".to_string()),
                Just("U8".to_string()),
                Just("F64".to_string()),
                Just("I32".to_string()),
                Just("2".to_string()),
                Just("{}".to_string()),
                "[a-z0-9_.]{1,12}",
            ]
        )
            .prop_map(|(n, value)| Mutation::Text { n, value }),
        1 => any::<usize>().prop_map(|n| Mutation::Remove { n }),
    ]
}

/// The header JSON of a safetensors file and the data after it.
fn split(bytes: &[u8]) -> Option<(Value, &[u8])> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header = serde_json::from_slice(bytes.get(8..8usize.checked_add(len)?)?).ok()?;
    Some((header, &bytes[8 + len..]))
}

fn join(header: &Value, data: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    out
}

/// Calls `f` on every JSON node, depth first; the `graph` metadata string is parsed and edited
/// as JSON too, then written back.
fn visit(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    if let Value::Object(m) = v
        && let Some(Value::String(graph)) = m.get_mut("graph")
        && let Ok(mut g) = serde_json::from_str::<Value>(graph)
    {
        visit(&mut g, f);
        *graph = g.to_string();
    }
    f(v);
    match v {
        Value::Object(m) => m.values_mut().for_each(|c| visit(c, f)),
        Value::Array(a) => a.iter_mut().for_each(|c| visit(c, f)),
        _ => {}
    }
}

/// Edits the `n`-th (mod the count) node for which `edit` returns true.
fn edit_nth(bytes: &mut Vec<u8>, n: usize, edit: &dyn Fn(&mut Value, bool) -> bool) {
    let Some((mut header, data)) = split(bytes) else {
        return;
    };
    let data = data.to_vec();
    let mut count = 0;
    visit(&mut header, &mut |v| {
        if edit(v, false) {
            count += 1;
        }
    });
    if count == 0 {
        return;
    }
    let target = n % count;
    let mut i = 0;
    visit(&mut header, &mut |v| {
        if edit(v, false) {
            if i == target {
                edit(v, true);
            }
            i += 1;
        }
    });
    *bytes = join(&header, &data);
}

/// Edits the graph JSON (metadata key `graph`) with `edit`; no change when it returns `None`.
fn edit_graph(bytes: &mut Vec<u8>, edit: &dyn Fn(&mut Value) -> Option<()>) {
    let Some((mut header, data)) = split(bytes) else {
        return;
    };
    let data = data.to_vec();
    let Some(Value::String(text)) = header.pointer_mut("/__metadata__/graph") else {
        return;
    };
    let Ok(mut graph) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if edit(&mut graph).is_some() {
        *text = graph.to_string();
        *bytes = join(&header, &data);
    }
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, bit } => {
            let at = at % bytes.len().max(1);
            if let Some(b) = bytes.get_mut(at) {
                *b ^= 1 << bit;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at % (bytes.len() + 1)),
        Mutation::Insert { at, bytes: new } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Number { n, value } => {
            let value = NUMBERS[*value];
            edit_nth(bytes, *n, &|v, apply| {
                let hit = v.is_number();
                if hit && apply {
                    *v = serde_json::from_str(&value.to_string()).unwrap();
                }
                hit
            })
        }
        Mutation::GraphField {
            layer,
            field,
            value,
        } => edit_graph(bytes, &|graph| {
            let (object, key, index) = FIELDS[*field];
            let node = match object {
                Some("pool") | None => {
                    let layers = graph.get_mut("layers")?.as_array_mut()?;
                    let n = layers.len();
                    let l = layers.get_mut(*layer % n.max(1))?;
                    match object {
                        Some(o) => l.get_mut(o)?,
                        None => l,
                    }
                }
                Some(o) => graph.get_mut(o)?,
            };
            let node = node.get_mut(key)?;
            let node = match index {
                Some(i) => node.get_mut(i)?,
                None => node,
            };
            *node = serde_json::from_str(&NUMBERS[*value].to_string()).ok()?;
            Some(())
        }),
        Mutation::Text { n, value } => edit_nth(bytes, *n, &|v, apply| {
            let hit = v.is_string();
            if hit && apply {
                *v = Value::String(value.clone());
            }
            hit
        }),
        Mutation::Remove { n } => {
            // Keys are counted object by object: the n-th key overall.
            edit_nth(bytes, *n, &|v, apply| {
                let hit = matches!(v, Value::Object(m) if !m.is_empty());
                if hit
                    && apply
                    && let Value::Object(m) = v
                {
                    let key = m.keys().nth(*n % m.len()).cloned().unwrap();
                    m.remove(&key);
                }
                hit
            })
        }
    }
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = Path::new("mutated.safetensors");
    match ExtractorFile::from_bytes(bytes, path) {
        Ok(file) => {
            let again = ExtractorFile::from_bytes(&file.to_bytes().unwrap(), path).unwrap();
            prop_assert_eq!(again, file);
        }
        Err(Error::ModelFile { path: p, message }) => {
            prop_assert_eq!(p.as_path(), path);
            prop_assert!(!message.is_empty());
        }
        Err(e) => prop_assert!(false, "not a model-file error: {e}"),
    }
    Ok(())
}

#[test]
fn the_valid_file_loads() {
    check(&valid_file()).unwrap();
    assert!(ExtractorFile::from_bytes(&valid_file(), Path::new("x")).is_ok());
}

proptest! {
    // A fixed seed: the same 1000 cases on every run (a failure reproduces; no flaky CI).
    #![proptest_config(ProptestConfig {
        cases: 1000,
        rng_seed: proptest::test_runner::RngSeed::Fixed(11),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_files_load_or_give_a_model_file_error(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let mut bytes = valid_file();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check(&bytes)?;
    }
}
