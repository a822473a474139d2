//! Two-step training (ReActNet; `bnn pretrain --float-weight-epochs N`): in the first step the
//! binary net's activations are ±1 but its weights are real-valued (pre-activations are not
//! integers, a step moves them differently), afterwards the weights are binarized again; a run
//! switches at the epoch boundary, resumes, and exports exactly. Bad settings are refused naming the
//! flag.
#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::{options, schedule, scratch};

use std::path::Path;

use bnn_transfer::arch::Arch;
use bnn_transfer::export::{self, ExportSource};
use bnn_transfer::model::{Model, ModelConfig, Precision};
use bnn_transfer::train::pretrain::train_step;
use bnn_transfer::train::{self, ScheduleKind};
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn batch(device: &Device, n: usize, seed: u64) -> (Tensor<4>, Tensor<1, Int>) {
    let mut rng = bnn_transfer::rng::Rng::new(seed);
    let images: Vec<f32> = (0..n * 3 * 32 * 32).map(|_| rng.range(-2.0, 2.0)).collect();
    let labels: Vec<i64> = (0..n).map(|i| (i % 5) as i64).collect();
    (
        Tensor::<4>::from_data(TensorData::new(images, [n, 3, 32, 32]), device),
        Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device),
    )
}

#[test]
fn real_weights_give_real_pre_activations_and_a_different_step() {
    let device = Device::flex().autodiff();
    let config = ModelConfig::new(Arch::mini(5), Precision::Binary);
    let (images, labels) = batch(&device, 8, 3);
    let stepped = |binary_weights: bool| {
        let model = Model::new(&config, &device, 4).with_binary_weights(binary_weights);
        let mut optimizer = AdamConfig::new().init();
        let (m, _, _) =
            train_step(model, &mut optimizer, images.clone(), labels.clone(), 1e-2).unwrap();
        values(m.convs[1].weight.val())
    };
    assert_ne!(stepped(false), stepped(true));

    let model = Model::new(&config, &Device::flex(), 4);
    let (x, _) = batch(&Device::flex(), 2, 9);
    let pre = |m: Model| values(m.trace(x.clone()).convs[1].pre_bn.clone());
    let binary = pre(model.clone());
    assert!(binary.iter().all(|v| v.fract() == 0.0));
    let real = pre(model.clone().with_binary_weights(false));
    assert!(real.iter().any(|v| v.fract() != 0.0));
    // The activations stay ±1 in both steps.
    let act = values(
        model.with_binary_weights(false).trace(x).convs[1]
            .act
            .clone(),
    );
    assert!(act.iter().all(|&v| v == 1.0 || v == -1.0));
}

fn config(data: &Path, epochs: usize, float_weight_epochs: usize) -> train::PretrainConfig {
    let schedule = schedule(ScheduleKind::Cosine, 5e-3);
    let mut c = train::new_config(
        data,
        "mini-bireal",
        Precision::Binary,
        epochs,
        8,
        schedule,
        3,
    )
    .unwrap();
    c.float_weight_epochs = float_weight_epochs;
    c
}

#[test]
fn a_two_step_run_switches_resumes_and_exports() {
    let data = common::fixture_set();
    let out = scratch("two-step-run");
    let o = options(&out);
    let report = train::pretrain(config(&data, 2, 1), &o).unwrap();
    assert_eq!(report.epochs_done, 2);
    assert_eq!(
        train::checkpoint::read_config(&out)
            .unwrap()
            .float_weight_epochs,
        1
    );
    assert!(!config(&data, 2, 1).binary_weights_at(0));
    assert!(config(&data, 2, 1).binary_weights_at(1));
    assert_eq!(train::resume(&o, Some(3)).unwrap().epochs_done, 3);

    // The finished model binarizes its weights, and exports bit for bit.
    let device = Device::flex();
    let (cfg, model) = train::checkpoint::load_model(&out, &device).unwrap();
    assert!(model.binary_weights);
    let src = ExportSource {
        val_top1: None,
        epochs: Some(3),
        checkpoint: out.display().to_string(),
    };
    let file = export::build(&model, &cfg, None, src).unwrap();
    let mut rng = bnn_transfer::rng::Rng::new(1);
    let images: Vec<f32> = (0..4 * 32 * 32 * 3).map(|_| rng.range(-2.0, 2.0)).collect();
    let v = export::verify(&model.valid(), &file, &images, 4, &device, None).unwrap();
    v.check().unwrap();

    // Refused: as many real-weight epochs as epochs, or a float network.
    for bad in [config(&data, 2, 2), {
        let mut c = config(&data, 2, 1);
        c.model.precision = Precision::Float;
        c
    }] {
        let dir = scratch("two-step-refused");
        let err = train::pretrain(bad, &options(&dir))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`float_weight_epochs`"), "{err}");
        assert!(!dir.exists());
    }
    let _ = std::fs::remove_dir_all(out);
}
