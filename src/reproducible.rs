//! Byte-for-byte reproducible safetensors files. `safetensors::serialize` orders tensors
//! deterministically but writes the `__metadata__` map in `HashMap` order, so two writes of the
//! same content could differ in their header bytes (and so in every fingerprint taken of them).
//! [`serialize`] rewrites the JSON header with every key in byte order; tensor bytes and offsets
//! are untouched.

use std::collections::{BTreeMap, HashMap};

use safetensors::View;

use crate::error::{Error, Result};

/// `safetensors::serialize` with a header whose keys (tensor names and metadata keys) are sorted,
/// so the same tensors and metadata always give the same bytes.
pub fn serialize<S, V, I>(tensors: I, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>>
where
    S: AsRef<str> + Ord + std::fmt::Display,
    V: View,
    I: IntoIterator<Item = (S, V)>,
{
    let err = |e: String| Error::Shape(format!("safetensors: {e}"));
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| err(e.to_string()))?;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| err(e.to_string()))?;
    let sorted: BTreeMap<&str, SortedValue> = header
        .iter()
        .map(|(k, v)| (k.as_str(), SortedValue(v)))
        .collect();
    let mut json = serde_json::to_vec(&sorted).map_err(|e| err(e.to_string()))?;
    // The header is padded with spaces to a multiple of 8 bytes, as safetensors does.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// A JSON value serialized with the keys of every object in byte order, whatever map type
/// serde_json was built with.
struct SortedValue<'a>(&'a serde_json::Value);

impl serde::Serialize for SortedValue<'_> {
    fn serialize<Z: serde::Serializer>(&self, s: Z) -> std::result::Result<Z::Ok, Z::Error> {
        match self.0 {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&str, SortedValue> = m
                    .iter()
                    .map(|(k, v)| (k.as_str(), SortedValue(v)))
                    .collect();
                sorted.serialize(s)
            }
            serde_json::Value::Array(a) => s.collect_seq(a.iter().map(SortedValue)),
            v => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::{Dtype, SafeTensors, tensor::TensorView};

    fn write(keys: &[&str]) -> Vec<u8> {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let views = vec![
            (
                "b",
                TensorView::new(Dtype::U8, vec![4], &data[..4]).unwrap(),
            ),
            (
                "a",
                TensorView::new(Dtype::U8, vec![4], &data[4..]).unwrap(),
            ),
        ];
        let meta = keys
            .iter()
            .map(|k| (k.to_string(), format!("value of {k}")))
            .collect();
        serialize(views, &meta).unwrap()
    }

    #[test]
    fn same_content_gives_same_bytes_and_reads_back() {
        let keys = ["zeta", "alpha", "graph", "format", "version", "m", "n", "o"];
        let first = write(&keys);
        for _ in 0..20 {
            assert_eq!(write(&keys), first);
        }
        let st = SafeTensors::deserialize(&first).unwrap();
        assert_eq!(st.tensor("a").unwrap().data(), &[5, 6, 7, 8]);
        assert_eq!(st.tensor("b").unwrap().data(), &[1, 2, 3, 4]);
        let (n, meta) = SafeTensors::read_metadata(&first).unwrap();
        assert_eq!(n % 8, 0);
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta.len(), keys.len());
        assert_eq!(meta["graph"], "value of graph");
        let header = std::str::from_utf8(&first[8..8 + n]).unwrap();
        let alpha = header.find("\"alpha\"").unwrap();
        assert!(alpha < header.find("\"zeta\"").unwrap(), "{header}");
    }
}
