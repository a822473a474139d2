//! Inputs that crashed a parser (the cargo-fuzz targets in `fuzz/`, or found while writing them),
//! each kept as a regression test: loading returns a typed error naming the file, never a panic
//! or an abort. Built by hand from valid files so that each case says what it breaks.

use std::collections::HashMap;
use std::path::Path;

use bnn_transfer::Error;
use bnn_transfer::extractor::cache::CacheInfo;
use bnn_transfer::extractor::{FeatureCache, Output};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn cache_info(output: Output, per_image: usize) -> CacheInfo {
    CacheInfo {
        output,
        dim: 40,
        per_image,
        shape: [1, 1, 40],
        classes: vec!["a".into(), "b".into()],
        model: "m.safetensors".into(),
        cut: "conv2".into(),
        data: "set.tar".into(),
        split: "train".into(),
        key: String::new(),
    }
}

/// A feature cache from raw tensors: (name, dtype, shape, bytes) and the `info` metadata.
fn raw_cache(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], info: &CacheInfo) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let meta = HashMap::from([
        ("format".to_string(), "bnn-features".to_string()),
        ("info".to_string(), serde_json::to_string(info).unwrap()),
    ]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn cache_error(bytes: &[u8]) -> String {
    let path = Path::new("cache.safetensors");
    match FeatureCache::from_bytes(bytes, path) {
        Err(Error::ModelFile { path: p, message }) => {
            assert_eq!(p, path);
            message
        }
        Err(e) => panic!("not a model-file error: {e}"),
        Ok(c) => panic!("loaded: {c:?}"),
    }
}

#[test]
fn a_valid_cache_round_trips() {
    let info = cache_info(Output::Bits, 2);
    let bytes = raw_cache(
        &[
            (
                "features",
                Dtype::U32,
                vec![3, 2],
                words(&[1, 2, 3, 4, 5, 6]),
            ),
            ("labels", Dtype::U32, vec![3], words(&[0, 1, 1])),
        ],
        &info,
    );
    let cache = FeatureCache::from_bytes(&bytes, Path::new("c")).unwrap();
    assert_eq!(cache.labels, [0, 1, 1]);
    assert_eq!(cache.info, info);
}

/// Panicked indexing `labels.shape()[0]`.
#[test]
fn a_cache_whose_labels_are_a_scalar_is_an_error() {
    let bytes = raw_cache(
        &[
            ("features", Dtype::U32, vec![1, 2], words(&[1, 2])),
            ("labels", Dtype::U32, vec![], words(&[0])),
        ],
        &cache_info(Output::Bits, 2),
    );
    let msg = cache_error(&bytes);
    assert!(msg.contains("labels"), "{msg}");
}

/// A label past the class list made `transfer`'s evaluation index out of range.
#[test]
fn a_cache_label_out_of_range_is_an_error() {
    let bytes = raw_cache(
        &[
            ("features", Dtype::U32, vec![2, 2], words(&[1, 2, 3, 4])),
            ("labels", Dtype::U32, vec![2], words(&[1, 2])),
        ],
        &cache_info(Output::Bits, 2),
    );
    let msg = cache_error(&bytes);
    assert!(
        msg.contains("label 2") && msg.contains("2 classes"),
        "{msg}"
    );
}

/// `per_image` and `dim` must follow from the cut shape, or a reader slicing rows by them goes
/// out of bounds.
#[test]
fn a_cache_whose_sizes_disagree_with_its_shape_is_an_error() {
    let bytes = raw_cache(
        &[
            ("features", Dtype::U32, vec![1, 3], words(&[1, 2, 3])),
            ("labels", Dtype::U32, vec![1], words(&[0])),
        ],
        &cache_info(Output::Bits, 3),
    );
    let msg = cache_error(&bytes);
    assert!(msg.contains("per_image"), "{msg}");
    let mut info = cache_info(Output::Signs, 40);
    info.dim = 41;
    let bytes = raw_cache(
        &[
            ("features", Dtype::F32, vec![1, 40], vec![0; 160]),
            ("labels", Dtype::U32, vec![1], words(&[0])),
        ],
        &info,
    );
    let msg = cache_error(&bytes);
    assert!(msg.contains("dim"), "{msg}");
}
