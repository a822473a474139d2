//! Distillation (`bnn pretrain --teacher`, ReActNet's distributional loss): the loss is the
//! cross-entropy of the student's softmax against the teacher's (checked against an f64 reference,
//! against burn's cross-entropy when the teacher is one-hot, and its gradient vanishes when the
//! student equals the teacher), and a binary run distils from a float run end to end on the
//! fixture set, recording its teacher for resume (a Bi-Real student too); a teacher of other images is refused naming
//! the flag.
#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::{options, schedule, scratch};

use std::path::{Path, PathBuf};

use bnn_transfer::model::Precision;
use bnn_transfer::train::pretrain::distillation_loss;
use bnn_transfer::train::{self, PretrainConfig, ScheduleKind};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn logits(rows: &[[f32; 4]], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), 4]), device)
}

/// −mean_b Σ_c softmax(t_b)_c · log softmax(s_b)_c in f64.
fn reference(student: &[[f32; 4]], teacher: &[[f32; 4]]) -> f64 {
    let log_softmax = |r: &[f32; 4]| {
        let m = r.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
        let z: f64 = r.iter().map(|&v| (v as f64 - m).exp()).sum();
        r.map(|v| v as f64 - m - z.ln())
    };
    let total: f64 = student
        .iter()
        .zip(teacher)
        .map(|(s, t)| {
            let (ls, lt) = (log_softmax(s), log_softmax(t));
            -(0..4).map(|c| lt[c].exp() * ls[c]).sum::<f64>()
        })
        .sum();
    total / student.len() as f64
}

#[test]
fn the_loss_is_the_soft_cross_entropy() {
    let device = Device::flex();
    let s = [
        [0.5, -1.0, 2.0, 0.0],
        [3.0, 1.0, -2.0, 0.5],
        [0.0, 0.0, 0.0, 0.0],
    ];
    let t = [
        [1.0, 0.0, 1.5, -0.5],
        [-1.0, 2.0, 0.0, 0.0],
        [4.0, -4.0, 0.0, 1.0],
    ];
    let got = values(distillation_loss(logits(&s, &device), logits(&t, &device)))[0] as f64;
    let want = reference(&s, &t);
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );

    // A one-hot teacher (softmax of ±60 is one-hot in f32) gives burn's cross-entropy on its labels.
    let onehot = [
        [60.0, -60.0, -60.0, -60.0],
        [-60.0, -60.0, 60.0, -60.0],
        [-60.0, -60.0, -60.0, 60.0],
    ];
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 3], [3]), &device);
    let ce = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits(&s, &device), labels);
    let got = values(distillation_loss(
        logits(&s, &device),
        logits(&onehot, &device),
    ))[0];
    assert!((got - values(ce)[0]).abs() < 1e-5, "{got}");
}

#[test]
fn the_gradient_vanishes_where_the_student_is_the_teacher() {
    let device = Device::flex().autodiff();
    let t = [[1.0, 0.0, 1.5, -0.5], [-1.0, 2.0, 0.0, 0.0]];
    let student = logits(&t, &device).require_grad();
    let loss = distillation_loss(student.clone(), logits(&t, &device));
    let grads = loss.backward();
    let g = values(student.grad(&grads).unwrap());
    assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    // And it does not vanish elsewhere: softmax(s) − softmax(t), over the batch.
    let other = logits(&[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], &device).require_grad();
    let grads = distillation_loss(other.clone(), logits(&t, &device)).backward();
    let g = values(other.grad(&grads).unwrap());
    assert!(g.iter().any(|v| v.abs() > 1e-2), "{g:?}");
}

fn config(data: &Path, precision: Precision, epochs: usize) -> PretrainConfig {
    let schedule = schedule(ScheduleKind::Constant, 5e-3);
    train::new_config(data, "mini", precision, epochs, 8, schedule, 3).unwrap()
}

#[test]
fn a_binary_run_distils_from_a_float_run() {
    let data = common::fixture_set();
    let (teacher, student) = (scratch("distil-teacher"), scratch("distil-student"));
    train::pretrain(config(&data, Precision::Float, 3), &options(&teacher)).unwrap();

    let mut cfg = config(&data, Precision::Binary, 2);
    cfg.teacher = Some(teacher.clone());
    let report = train::pretrain(cfg, &options(&student)).unwrap();
    assert_eq!(report.epochs_done, 2);
    let last = report.last.unwrap();
    assert!(
        last.train_loss.is_finite() && last.train_loss > 0.0,
        "{last:?}"
    );
    assert!(last.val_loss.is_finite(), "{last:?}");
    // The run remembers its teacher, and a resume distils from it again.
    let saved = train::checkpoint::read_config(&student).unwrap();
    assert_eq!(saved.teacher.as_deref(), Some(teacher.as_path()));
    let report = train::resume(&options(&student), Some(3)).unwrap();
    assert_eq!(report.epochs_done, 3);

    // A student of another architecture over the same images distils too (a Bi-Real student of
    // the plain float teacher, as ReActNet distils from a ResNet).
    let mut bireal = config(&data, Precision::Binary, 1);
    bireal.model.arch = bnn_transfer::Arch::by_name("mini-bireal", bireal.classes.len()).unwrap();
    bireal.teacher = Some(teacher.clone());
    let bireal_out = scratch("distil-bireal");
    let report = train::pretrain(bireal, &options(&bireal_out)).unwrap();
    assert!(report.last.unwrap().train_loss.is_finite());
    // A teacher that reads other images is refused before anything is written.
    let mut other = config(&data, Precision::Binary, 1);
    other.model.arch = bnn_transfer::Arch::small(other.classes.len());
    other.teacher = Some(teacher.clone());
    let out = scratch("distil-refused");
    let err = train::pretrain(other, &options(&out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`teacher`") && err.contains("same images and classes"),
        "{err}"
    );
    assert!(!out.exists());
    // Nor is a directory that holds no run.
    let mut none = config(&data, Precision::Binary, 1);
    none.teacher = Some(out.clone());
    let err = train::pretrain(none, &options(&out))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`teacher`"), "{err}");
    for d in [teacher, student, out, bireal_out] {
        let _ = std::fs::remove_dir_all(d);
    }
}

// ---------------------------------------------------------------------------------------------
// Distillation from EfficientNet-Lite0 (`--teacher FILE.pth`).

use bnn_transfer::data::ImageFolder;
use bnn_transfer::progress::Silent;
use bnn_transfer::teacher::efficientnet::{self, Verify};
use bnn_transfer::teacher::targets::{self, TargetSpec};
use bnn_transfer::train::distill::{Lite0Distill, lite0_loss};
use std::sync::Arc;

fn kd(label: f32, logit: f32, feature: f32, temperature: f32) -> Lite0Distill {
    Lite0Distill {
        weights: PathBuf::from("lite0.pth"),
        sha256: String::new(),
        resolution: 64,
        views: 2,
        temperature,
        label_weight: label,
        logit_weight: logit,
        feature_weight: feature,
        cache_dir: PathBuf::from("unused"),
    }
}

#[test]
fn each_lite0_loss_term_is_what_the_docs_say() {
    let device = Device::flex();
    let s = [[0.5, -1.0, 2.0, 0.0], [3.0, 1.0, -2.0, 0.5]];
    let t = [[1.0, 0.0, 1.5, -0.5], [-1.0, 2.0, 0.0, 0.0]];
    let labels = || Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &device);
    let feats = |v: &[[f32; 4]]| logits(v, &device);
    let one = |cfg: &Lite0Distill, proj: Option<Tensor<2>>| {
        values(
            lite0_loss(
                cfg,
                logits(&s, &device),
                labels(),
                proj,
                Some(logits(&t, &device)),
                feats(&t),
            )
            .unwrap(),
        )[0]
    };
    // Labels only: burn's cross-entropy.
    let ce = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits(&s, &device), labels());
    assert!((one(&kd(1.0, 0.0, 0.0, 1.0), None) - values(ce)[0]).abs() < 1e-6);
    // Soft logits at T = 1: the distributional loss; at T = 2, T² times it on logits / 2.
    let want = reference(&s, &t) as f32;
    assert!((one(&kd(0.0, 1.0, 0.0, 1.0), None) - want).abs() < 1e-5);
    let half = |v: &[[f32; 4]; 2]| v.map(|r| r.map(|x| x / 2.0));
    let want2 = 4.0 * reference(&half(&s), &half(&t)) as f32;
    assert!((one(&kd(0.0, 1.0, 0.0, 2.0), None) - want2).abs() < 1e-5);
    // Features: the mean squared difference between the projection and the (given) targets.
    let mse: f32 = s
        .iter()
        .flatten()
        .zip(t.iter().flatten())
        .map(|(a, b)| (a - b) * (a - b))
        .sum::<f32>()
        / 8.0;
    let got = one(&kd(0.0, 0.0, 3.0, 1.0), Some(logits(&s, &device)));
    assert!((got - 3.0 * mse).abs() < 1e-5, "{got} vs {}", 3.0 * mse);
    // The feature term without a projection is an error, not a silent zero.
    let cfg = kd(0.0, 0.0, 1.0, 1.0);
    let err = lite0_loss(&cfg, logits(&s, &device), labels(), None, None, feats(&t));
    assert!(err.is_err());
    // Weights are checked, naming the setting.
    assert!(kd(0.0, 0.0, 0.0, 1.0).validate().is_err());
    let e = kd(-1.0, 1.0, 1.0, 1.0).validate().unwrap_err().to_string();
    assert!(e.contains("`kd.labels`"), "{e}");
}

#[test]
fn a_wrong_teacher_file_is_a_clear_error_naming_it() {
    let dir = scratch("distil-wrong-teacher");
    std::fs::create_dir_all(&dir).unwrap();
    let device = Device::flex();
    // Missing: says where the weights come from.
    let missing = dir.join("nothing.pth");
    let e = efficientnet::load(&missing, &device)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nothing.pth") && e.contains("fetch-teacher"),
        "{e}"
    );
    // Another file: the sha256 check names it and both hashes.
    let other = dir.join("other.pth");
    std::fs::write(&other, b"not a checkpoint").unwrap();
    let e = efficientnet::load(&other, &device).unwrap_err().to_string();
    assert!(
        e.contains("other.pth") && e.contains(efficientnet::WEIGHTS_SHA256),
        "{e}"
    );
    // Without the hash check, a file that is no PyTorch checkpoint is still refused by name.
    let e = efficientnet::load_with(&other, &device, Verify::ShapesOnly)
        .unwrap_err()
        .to_string();
    assert!(e.contains("other.pth"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lite0_in_burn_knows_tiny_imagenet() {
    let (Some(weights), Some(data)) = (
        common::real_teacher(),
        common::real_data("tinyimagenet-64.tar"),
    ) else {
        return;
    };
    let device = Device::flex();
    let model = efficientnet::load(&weights, &device).unwrap();
    let wnids = efficientnet::wnids_beside(&weights).unwrap().unwrap();
    let set = ImageFolder::open(&data, "val").unwrap();
    let map =
        efficientnet::class_map(&set.classes, &wnids).expect("Tiny-ImageNet classes are wnids");
    // The first 128 val images at 160 px (58.3 % over all 10,000, per the teacher's README): a
    // wrong layout, padding, normalisation or key mapping scores near chance (0.5 %).
    let s = bnn_transfer::teacher::score(
        &model,
        Arc::new(set),
        &map,
        64,
        efficientnet::RESOLUTION,
        Some(128),
        &device,
        &Silent,
    )
    .unwrap();
    assert_eq!(s.images, 128);
    assert!(s.top1 > 0.4 && s.top5 > 0.65, "{s:?}");
}

/// The fixture set with its 8 class folders renamed to the first 8 ImageNet-1k WordNet ids, so the
/// teacher's logits map onto its classes.
fn wnid_fixture(wnids: &[String]) -> PathBuf {
    let dir = scratch("distil-wnid-set");
    let tree = dir.join("tree");
    let per_class = common::FIXTURE_PER_SPLIT / common::FIXTURE_CLASSES;
    let splits = [("train", per_class), ("val", per_class)];
    bnn_transfer::data::shapes::write(&tree, &splits, 40, 11).unwrap();
    for (split, _) in splits {
        let mut classes: Vec<_> = std::fs::read_dir(tree.join(split))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        classes.sort();
        for (c, w) in classes.iter().zip(wnids) {
            std::fs::rename(c, tree.join(split).join(w)).unwrap();
        }
    }
    tree
}

#[test]
fn a_run_distils_from_lite0_and_its_targets_are_computed_once() {
    let Some(weights) = common::real_teacher() else {
        return;
    };
    let wnids = efficientnet::wnids_beside(&weights).unwrap().unwrap();
    let data = wnid_fixture(&wnids[..common::FIXTURE_CLASSES]);
    let cache = scratch("distil-lite0-cache");
    let mut cfg = config(&data, Precision::Binary, 1);
    cfg.model.arch = bnn_transfer::Arch::by_name("mini-bireal", cfg.classes.len()).unwrap();
    let mut d = kd(1.0, 1.0, 1.0, 2.0);
    d.weights = weights.clone();
    d.sha256 = efficientnet::WEIGHTS_SHA256.into();
    d.resolution = 64;
    d.cache_dir = cache.clone();
    cfg.model.feature_head = d.feature_head();
    cfg.lite0 = Some(d.clone());
    let out = scratch("distil-lite0-student");
    let report = train::pretrain(cfg, &options(&out)).unwrap();
    let last = report.last.unwrap();
    assert!(
        last.train_loss.is_finite() && last.val_loss.is_finite(),
        "{last:?}"
    );
    // The run records the teacher (file and hash), and a resume continues the same distillation.
    let saved = train::checkpoint::read_config(&out).unwrap();
    assert_eq!(saved.lite0.as_ref(), Some(&d));
    let report = train::resume(&options(&out), Some(2)).unwrap();
    assert_eq!(report.epochs_done, 2);

    // The targets were cached once: asking again reads them back without the teacher, identical.
    let set = Arc::new(ImageFolder::open(&data, "train").unwrap());
    let spec = TargetSpec {
        weights: weights.clone(),
        sha256: d.sha256.clone(),
        class_map: efficientnet::class_map(&set.classes, &wnids),
        input: 32,
        resolution: 64,
        views: 2,
        cache_dir: cache.clone(),
    };
    let device = Device::flex();
    let (t, _, cached) = targets::load_or_compute(
        &spec,
        set.clone(),
        || panic!("recomputed"),
        &device,
        &Silent,
    )
    .unwrap();
    assert!(cached);
    assert_eq!(
        (t.views, t.n, t.classes),
        (2, set.len(), common::FIXTURE_CLASSES)
    );
    // ... and they are the teacher's outputs: recomputing gives the same numbers.
    let model = efficientnet::load(&weights, &device).unwrap();
    let fresh = targets::compute(&spec, set.clone(), &model, &device, &Silent).unwrap();
    assert_eq!(fresh.logits, t.logits);
    assert_eq!(fresh.features, t.features);
    // The mirror view differs from the centre view (it is a real second view).
    assert_ne!(t.logits_row(0, 0), t.logits_row(1, 0));
    // Another resolution is another key: the closure runs.
    let other = TargetSpec {
        resolution: 96,
        ..spec
    };
    assert_ne!(
        targets::cache_key(&other, &set).unwrap(),
        targets::cache_key(
            &TargetSpec {
                resolution: 64,
                ..other.clone()
            },
            &set
        )
        .unwrap()
    );
    for d in [out, cache, data] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn an_unfinished_or_swapped_teacher_run_is_refused() {
    let data = common::fixture_set();
    // A teacher stopped after two steps is no teacher yet.
    let unfinished = scratch("distil-unfinished-teacher");
    let mut o = options(&unfinished);
    o.max_steps = Some(2);
    train::pretrain(config(&data, Precision::Float, 2), &o).unwrap();
    let mut cfg = config(&data, Precision::Binary, 1);
    cfg.teacher = Some(unfinished.clone());
    let out = scratch("distil-student-of-unfinished");
    let err = train::pretrain(cfg, &options(&out))
        .unwrap_err()
        .to_string();
    assert!(err.contains("stopped after 0 of its 2 epochs"), "{err}");

    // A student records its teacher's fingerprint; a resume after the teacher changed is refused.
    let (teacher, other) = (scratch("distil-teacher-a"), scratch("distil-teacher-b"));
    train::pretrain(config(&data, Precision::Float, 1), &options(&teacher)).unwrap();
    let mut c = config(&data, Precision::Float, 1);
    c.seed = 99;
    train::pretrain(c, &options(&other)).unwrap();
    let mut cfg = config(&data, Precision::Binary, 1);
    cfg.teacher = Some(teacher.clone());
    let student = scratch("distil-student-of-a");
    train::pretrain(cfg, &options(&student)).unwrap();
    let saved = train::checkpoint::read_config(&student).unwrap();
    assert_eq!(saved.teacher_sha256.as_ref().map(String::len), Some(64));
    let ckpt = |d: &Path| d.join("checkpoint");
    std::fs::remove_dir_all(ckpt(&teacher)).unwrap();
    std::fs::rename(ckpt(&other), ckpt(&teacher)).unwrap();
    let err = train::resume(&options(&student), Some(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed since this run started"), "{err}");
    for d in [unfinished, out, teacher, other, student] {
        let _ = std::fs::remove_dir_all(d);
    }
}
