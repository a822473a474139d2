//! Writes the seed corpus of the fuzz targets (`fuzz/corpus/<target>/seed-*`): small valid inputs
//! made with the library's own writers (extractor files and their graph JSON, feature caches,
//! heads), the tests' MAT v5 writer (Flowers-102's .mat files) and the `tar` crate (data sets in
//! every layout). A rerun writes equivalent files (the safetensors metadata order can differ: its
//! writers keep the metadata in a HashMap).
//! Run: `cargo run --no-default-features --example fuzz_seeds -- fuzz/corpus`.

#[path = "../tests/data_fixtures/mod.rs"]
mod data_fixtures;

use std::path::{Path, PathBuf};

use bnn_transfer::Arch;
use bnn_transfer::arch::{ConvBlock, Pool};
use bnn_transfer::bench::extractor::random_file;
use bnn_transfer::extractor::{
    ClassifierData, ClassifierSpec, ExtractorFile, FeatureCache, Features, Output, cache::CacheInfo,
};
use bnn_transfer::ops::Padding;
use bnn_transfer::transfer::{BackboneInfo, BackboneKind, Dense, Head, HeadInfo};
use data_fixtures::{Entry, Storage, dir, file, mat_file, write_tar};

/// A network small enough for a seed of a few KB: 8×8×3 input, two convs (the second pooled) and
/// one dense layer that reads the 3×3 map as is (a `dot_offset`).
fn tiny_arch(dense: Vec<usize>) -> Arch {
    let conv = |out, pool| ConvBlock {
        out,
        kernel: 3,
        stride: 1,
        pad: 1,
        pool,
        shortcut: false,
    };
    Arch {
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
        dense,
        classes: 4,
        blocks: Default::default(),
    }
}

fn extractor_seeds(out: &Path) -> anyhow::Result<()> {
    let convs_only = random_file(&tiny_arch(vec![]), 1)?;
    let mut one_padding = convs_only.clone();
    one_padding.layers[1].spec.padding = Padding::One;
    one_padding.graph.layers[1].padding = Padding::One;
    let dense = random_file(&tiny_arch(vec![16]), 2)?;
    let mut classified = dense.clone();
    classified.graph.classifier = Some(ClassifierSpec {
        in_features: 16,
        classes: 4,
    });
    classified.classifier = Some(ClassifierData {
        weight: (0..64).map(|i| i as f32 / 64.0 - 0.5).collect(),
        bias: vec![0.25, -0.25, 0.0, 1.0],
    });
    // Bi-Real: a first layer, an identity and an average-pool shortcut (version 2, `L.real`).
    let mut bireal_arch = tiny_arch(vec![16]);
    bireal_arch.convs[1].out = 8;
    bireal_arch.convs.insert(1, bireal_arch.convs[0]);
    let bireal_arch = bireal_arch.bireal(&[1, 2]);
    let bireal = random_file(&bireal_arch, 3)?;
    let files: [(&str, &ExtractorFile); 5] = [
        ("convs", &convs_only),
        ("one-padding", &one_padding),
        ("dense", &dense),
        ("classifier", &classified),
        ("bireal", &bireal),
    ];
    for (name, f) in files {
        write(
            out,
            "extractor_file",
            &format!("seed-{name}.safetensors"),
            &f.to_bytes()?,
        )?;
        let graph = serde_json::to_string_pretty(&f.graph)?;
        write(
            out,
            "extractor_graph",
            &format!("seed-{name}.json"),
            graph.as_bytes(),
        )?;
    }
    Ok(())
}

fn cache_seeds(out: &Path) -> anyhow::Result<()> {
    let info = |output, per_image| CacheInfo {
        output,
        dim: 40,
        per_image,
        shape: [1, 1, 40],
        classes: vec!["a".into(), "b".into()],
        model: "tiny.safetensors".into(),
        cut: "conv2".into(),
        data: "set.tar".into(),
        split: "train".into(),
        key: "0123abcd".into(),
    };
    let caches = [
        (
            "bits",
            info(Output::Bits, 2),
            Features::Bits(vec![1, 2, 3, 0xffff_ffff, 5, 6]),
        ),
        (
            "preact",
            info(Output::Preact, 40),
            Features::Int((0..120).map(|i| i - 60).collect()),
        ),
        (
            "signs",
            info(Output::Signs, 40),
            Features::Float(
                (0..120)
                    .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
                    .collect(),
            ),
        ),
    ];
    let tmp = std::env::temp_dir().join(format!("bnn-fuzz-seeds-{}", std::process::id()));
    for (name, info, features) in caches {
        let cache = FeatureCache {
            info,
            features,
            labels: vec![0, 1, 1],
        };
        cache.save(&tmp)?;
        write(
            out,
            "feature_cache",
            &format!("seed-{name}.safetensors"),
            &std::fs::read(&tmp)?,
        )?;
    }
    for (name, hidden) in [("linear", vec![]), ("mlp", vec![3])] {
        let dim = 6;
        let classes = vec!["cat".to_string(), "dog".into()];
        let mut layers = Vec::new();
        let mut inputs = dim;
        for outputs in hidden.iter().copied().chain([classes.len()]) {
            layers.push(Dense {
                inputs,
                outputs,
                weight: (0..inputs * outputs)
                    .map(|i| i as f32 * 0.1 - 0.3)
                    .collect(),
                bias: vec![0.5; outputs],
            });
            inputs = outputs;
        }
        let head = Head {
            info: HeadInfo {
                version: 1,
                classes,
                backbone: BackboneInfo {
                    kind: BackboneKind::Extractor,
                    path: "tiny.safetensors".into(),
                    fingerprint: "00ff".into(),
                },
                cut: "conv2".into(),
                dim,
                hidden,
                input_size: 8,
                data: "set.tar".into(),
                layout: "imagefolder".into(),
            },
            mean: vec![0.0; dim],
            scale: vec![1.0; dim],
            layers,
        };
        head.save(&tmp)?;
        write(
            out,
            "head",
            &format!("seed-{name}.safetensors"),
            &std::fs::read(&tmp)?,
        )?;
    }
    std::fs::remove_file(&tmp)?;
    Ok(())
}

/// Flowers-102's two .mat files for 6 images: (imagelabels.mat, setid.mat).
fn flowers_mats(compressed: bool) -> (Vec<u8>, Vec<u8>) {
    let labels = mat_file(
        &[("labels", vec![3.0, 1.0, 102.0, 3.0, 1.0, 2.0], Storage::U8)],
        compressed,
    );
    let setid = mat_file(
        &[
            ("trnid", vec![5.0, 1.0], Storage::U16),
            ("valid", vec![2.0, 6.0], Storage::Double),
            ("tstid", vec![3.0, 4.0], Storage::U16),
        ],
        compressed,
    );
    (labels, setid)
}

fn mat_seeds(out: &Path) -> anyhow::Result<()> {
    for (name, compressed) in [("plain", false), ("compressed", true)] {
        let (labels, setid) = flowers_mats(compressed);
        let mut input = (labels.len() as u16).to_le_bytes().to_vec();
        input.extend(labels);
        input.extend(setid);
        write(out, "flowers_mat", &format!("seed-{name}.bin"), &input)?;
    }
    Ok(())
}

fn tar_seeds(out: &Path) -> anyhow::Result<()> {
    let img = |i: u8| vec![0xff, 0xd8, i, 0xff, 0xd9];
    let image_folder: Vec<Entry> = vec![
        dir("train"),
        dir("train/cat"),
        file("train/cat/1.jpg", img(1)),
        file("train/cat/sub/2.png", img(2)),
        file("train/dog/3.JPEG", img(3)),
        file("train/dog/.hidden.jpg", img(4)),
        file("train/dog/notes.txt", b"x".to_vec()),
        file("val/cat/4.jpg", img(5)),
        file("val/dog/5.jpg", img(6)),
    ];
    let wrapped: Vec<Entry> = image_folder
        .iter()
        .map(|(p, b)| (format!("set/{p}"), b.clone()))
        .collect();
    let (labels, setid) = flowers_mats(true);
    let mut flowers: Vec<Entry> = (1..=6)
        .map(|i| file(&format!("jpg/image_{i:05}.jpg"), img(i)))
        .collect();
    flowers.push(file("imagelabels.mat", labels));
    flowers.push(file("setid.mat", setid));
    let cub: Vec<Entry> = vec![
        file("images/001.A/a_1.jpg", img(1)),
        file("images/002.B/b_2.jpg", img(2)),
        file("images/002.B/b_3.jpg", img(3)),
        file("classes.txt", b"1 001.A\n2 002.B\n".to_vec()),
        file(
            "images.txt",
            b"1 001.A/a_1.jpg\n2 002.B/b_2.jpg\n3 002.B/b_3.jpg\n".to_vec(),
        ),
        file("image_class_labels.txt", b"1 1\n2 2\n3 2\n".to_vec()),
        file("train_test_split.txt", b"1 1\n2 0\n3 1\n".to_vec()),
    ];
    let mit: Vec<Entry> = vec![
        file("Images/bar/b1.jpg", img(1)),
        file("Images/kitchen/k1.jpg", img(2)),
        file("Images/kitchen/k2.jpg", img(3)),
        file(
            "TrainImages.txt",
            b"bar/b1.jpg\r\nkitchen/k1.jpg\r\n".to_vec(),
        ),
        file("TestImages.txt", b"kitchen/k2.jpg\n".to_vec()),
    ];
    let sets = [
        ("imagefolder", image_folder),
        ("wrapped", wrapped),
        ("flowers102", flowers),
        ("cub200", cub),
        ("mit67", mit),
    ];
    let dir = out.join("tar_set");
    std::fs::create_dir_all(&dir)?;
    for (name, entries) in sets {
        write_tar(&dir.join(format!("seed-{name}.tar")), &entries);
    }
    Ok(())
}

fn write(out: &Path, target: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    extractor_seeds(&out)?;
    cache_seeds(&out)?;
    mat_seeds(&out)?;
    tar_seeds(&out)?;
    println!("seeds written under {}", out.display());
    Ok(())
}
