//! Distillation (`bnn pretrain --teacher`, ReActNet's distributional loss): the loss is the
//! cross-entropy of the student's softmax against the teacher's (checked against an f64 reference,
//! against burn's cross-entropy when the teacher is one-hot, and its gradient vanishes when the
//! student equals the teacher), and a binary run distils from a float run end to end on the
//! fixture set, recording its teacher for resume (a Bi-Real student too); a teacher of other images is refused naming
//! the flag.
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};

use bnn_transfer::model::Precision;
use bnn_transfer::train::pretrain::distillation_loss;
use bnn_transfer::train::{self, PretrainConfig, RunOptions, Schedule, ScheduleKind, TrainDevice};
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

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bnn-distil-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(data: &Path, precision: Precision, epochs: usize) -> PretrainConfig {
    let schedule = Schedule {
        kind: ScheduleKind::Constant,
        lr: 5e-3,
        step_epochs: 10,
        gamma: 0.5,
    };
    train::new_config(data, "mini", precision, epochs, 8, schedule, 3).unwrap()
}

fn options(out: &Path) -> RunOptions {
    let mut o = RunOptions::new(out, TrainDevice::flex("test"));
    o.progress = false;
    o.workers = 1;
    o
}

#[test]
fn a_binary_run_distils_from_a_float_run() {
    let data = common::fixture_set();
    let (teacher, student) = (tmp("teacher"), tmp("student"));
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
    let bireal_out = tmp("bireal");
    let report = train::pretrain(bireal, &options(&bireal_out)).unwrap();
    assert!(report.last.unwrap().train_loss.is_finite());
    // A teacher that reads other images is refused before anything is written.
    let mut other = config(&data, Precision::Binary, 1);
    other.model.arch = bnn_transfer::Arch::small(other.classes.len());
    other.teacher = Some(teacher.clone());
    let out = tmp("refused");
    let err = train::pretrain(other, &options(&out))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--teacher") && err.contains("same images and classes"),
        "{err}"
    );
    assert!(!out.exists());
    // Nor is a directory that holds no run.
    let mut none = config(&data, Precision::Binary, 1);
    none.teacher = Some(out.clone());
    let err = train::pretrain(none, &options(&out))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--teacher"), "{err}");
    for d in [teacher, student, out, bireal_out] {
        let _ = std::fs::remove_dir_all(d);
    }
}
