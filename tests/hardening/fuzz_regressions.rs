//! Inputs that crashed a parser (the cargo-fuzz targets in `fuzz/`, or found while writing them),
//! each kept as a regression test: loading returns a typed error naming the file, never a panic
//! or an abort. Built by hand from valid files so that each case says what it breaks.

use crate::data_fixtures;

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

/// A small extractor file with a classifier whose first weight is `marker` (to find it in the
/// bytes): the `tiny` network of `examples/fuzz_seeds.rs`.
fn extractor_with_classifier(marker: f32) -> Vec<u8> {
    use bnn_transfer::Arch;
    use bnn_transfer::arch::ConvBlock;
    use bnn_transfer::bench::extractor::random_file;
    use bnn_transfer::extractor::{ClassifierData, ClassifierSpec};
    let arch = Arch {
        name: "tiny".into(),
        input: 8,
        in_channels: 3,
        convs: vec![ConvBlock {
            out: 8,
            kernel: 3,
            stride: 2,
            pad: 1,
            pool: None,
            shortcut: false,
        }],
        dense: vec![4],
        classes: 2,
        blocks: Default::default(),
    };
    let mut file = random_file(&arch, 3).unwrap();
    file.graph.classifier = Some(ClassifierSpec {
        in_features: 4,
        classes: 2,
    });
    let mut weight = vec![0.5f32; 8];
    weight[0] = marker;
    file.classifier = Some(ClassifierData {
        weight,
        bias: vec![0.0; 2],
    });
    file.to_bytes().unwrap()
}

/// Found by `extractor_file` on the shipped asset: a bit flip in `classifier.weight` made a NaN,
/// which loaded (the head loader refuses non-finite weights; the first layer's NaN thresholds
/// were refused, the classifier's were not).
#[test]
fn an_extractor_whose_classifier_holds_nan_is_an_error() {
    use bnn_transfer::extractor::ExtractorFile;
    let marker = 1234.5f32;
    let good = extractor_with_classifier(marker);
    assert!(ExtractorFile::from_bytes(&good, Path::new("good")).is_ok());
    let at = good
        .windows(4)
        .position(|w| w == marker.to_le_bytes())
        .expect("the marker weight is in the file");
    for bad_value in [f32::NAN, f32::INFINITY] {
        let mut bytes = good.clone();
        bytes[at..at + 4].copy_from_slice(&bad_value.to_le_bytes());
        let path = Path::new("nan.safetensors");
        match ExtractorFile::from_bytes(&bytes, path) {
            Err(Error::ModelFile { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains("classifier"), "{message}");
            }
            Err(e) => panic!("not a model-file error: {e}"),
            Ok(_) => panic!("a classifier holding {bad_value} loaded"),
        }
    }
}

/// Found by `tests/hardening/model_file_mutations.rs`: a conv layer's `pad` near `u64::MAX` overflowed
/// `in + 2·pad` in the graph validation (a panic in debug builds, a wrapped sum and a wrong
/// accept/refuse in release).
#[test]
fn an_extractor_with_a_huge_pad_is_an_error() {
    use bnn_transfer::extractor::ExtractorFile;
    let good = extractor_with_classifier(0.5);
    let file = ExtractorFile::from_bytes(&good, Path::new("good")).unwrap();
    for pad in [u64::MAX as usize, 1 << 63, (1 << 62) + 1] {
        let mut graph = file.graph.clone();
        graph.layers[0].pad = pad;
        let path = Path::new("pad.safetensors");
        match graph.validate(path) {
            Err(Error::ModelFile { path: p, message }) => {
                assert_eq!(p, path);
                assert!(message.contains("conv1"), "{message}");
            }
            Err(e) => panic!("not a model-file error: {e}"),
            Ok(()) => panic!("pad {pad} validated"),
        }
    }
}

/// A .mat file with one double array `labels` of dimensions `dims` holding `values`.
fn mat_with_dims(dims: &[i32], values: &[f64]) -> Vec<u8> {
    use data_fixtures::{
        MI_DOUBLE, MI_INT8, MI_INT32, MI_MATRIX, MI_UINT32, MX_DOUBLE_CLASS, element,
    };
    let words = |v: &[u32]| v.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    let mut body = element(MI_UINT32, &words(&[MX_DOUBLE_CLASS, 0]), false);
    let dims: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
    body.extend(element(MI_INT32, &dims, false));
    body.extend(element(MI_INT8, b"labels", true));
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    body.extend(element(MI_DOUBLE, &data, false));
    let mut out = b"MATLAB 5.0 MAT-file".to_vec();
    out.resize(124, b' ');
    out.extend(0x0100u16.to_le_bytes());
    out.extend(b"IM");
    out.extend(element(MI_MATRIX, &body, false));
    out
}

/// Found by `flowers_mat` in a second: dimensions whose product overflows i32 panicked inside
/// the `matfile` crate (debug builds; release wrapped the product). The crate is replaced by
/// `data::mat`, which checks the product against the values present.
#[test]
fn a_mat_array_whose_dimensions_overflow_is_an_error() {
    use bnn_transfer::data::flowers102_split;
    let setid = mat_with_dims(&[1, 1], &[1.0]);
    let ok = mat_with_dims(&[1, 1], &[3.0]);
    assert!(matches!(
        flowers102_split(&ok, "labels.mat", &setid, "setid.mat", "train"),
        Err(Error::Dataset(m)) if m.contains("setid.mat") && m.contains("trnid")
    ));
    for dims in [[65536, 65536], [-134217727, 16777209], [i32::MAX, 2]] {
        let labels = mat_with_dims(&dims, &[3.0]);
        match flowers102_split(&labels, "labels.mat", &setid, "setid.mat", "train") {
            Err(Error::Dataset(m)) => {
                assert!(
                    m.contains("labels.mat") && m.contains("not a readable"),
                    "{m}"
                )
            }
            other => panic!("{dims:?}: {other:?}"),
        }
    }
}

/// Found by `tar_set` through a Flowers-102 layout: a data element declaring 0xFFFFFFF9 bytes
/// overflowed the padding arithmetic inside the `matfile` crate (`ceil_to_multiple`, a panic in
/// debug builds). `data::mat` compares a declared size with the bytes left first.
#[test]
fn a_mat_element_declaring_more_bytes_than_the_file_holds_is_an_error() {
    use bnn_transfer::data::flowers102_split;
    let setid = mat_with_dims(&[1, 1], &[1.0]);
    let mut labels = mat_with_dims(&[1, 1], &[3.0]);
    // The miMATRIX element's size field, right after the 128-byte header and its type.
    labels[132..136].copy_from_slice(&0xFFFF_FFF9u32.to_le_bytes());
    match flowers102_split(&labels, "labels.mat", &setid, "setid.mat", "train") {
        Err(Error::Dataset(m)) => assert!(
            m.contains("labels.mat") && m.contains("4294967289 bytes"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}
