//! The binary layers on burn's flex backend: sign and its straight-through gradient (exact values),
//! clipping of the latent weights after an optimizer step, integer pre-activations, shapes, and a
//! checkpoint round trip.
#![cfg(feature = "train")]

use bnn_transfer::arch::Arch;
use bnn_transfer::model::{Model, ModelConfig, Precision, sign, sign_ste};
use bnn_transfer::train::pretrain::train_step;
use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

#[test]
fn sign_maps_zero_and_negative_zero_to_plus_one() {
    let device = Device::flex();
    let x = Tensor::<1>::from_floats([-3.0, -1e-30, -0.0, 0.0, 1e-30, 2.0, f32::NAN], &device);
    assert_eq!(
        values(sign(x.clone())),
        vec![-1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    // Without autodiff the STE version is plain sign.
    assert_eq!(
        values(sign_ste(x)),
        vec![-1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
}

#[test]
fn ste_gradient_passes_where_abs_x_at_most_one() {
    let device = Device::flex().autodiff();
    let x = Tensor::<1>::from_floats(
        [-2.0, -1.0, -0.5, -0.0, 0.0, 0.25, 1.0, 1.0001, 7.0],
        &device,
    )
    .require_grad();
    let y = sign_ste(x.clone());
    // Forward: exactly ±1.
    assert_eq!(
        values(y.clone()),
        vec![-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    );
    // d(Σ y·u)/dx = u where |x| ≤ 1, else 0.
    let u = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], &device);
    let grads = (y * u).sum().backward();
    let g = values(x.grad(&grads).expect("x has a gradient"));
    assert_eq!(g, vec![0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0, 0.0]);
}

#[test]
fn ste_gradient_on_a_2d_tensor_through_a_product() {
    // y = sign(x) · w with w = [[1, -2], [3, 0.5]]: ∂L/∂x = w where |x| ≤ 1.
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_floats([[0.5, -1.5], [-0.75, 1.0]], &device).require_grad();
    let w = Tensor::<2>::from_floats([[1.0, -2.0], [3.0, 0.5]], &device);
    let grads = (sign_ste(x.clone()) * w).sum().backward();
    assert_eq!(values(x.grad(&grads).unwrap()), vec![1.0, 0.0, 3.0, 0.5]);
}

fn mini(precision: Precision) -> ModelConfig {
    ModelConfig::new(Arch::mini(5), precision)
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
fn latent_weights_are_clipped_after_a_step_and_the_classifier_is_not() {
    let device = Device::flex().autodiff();
    let model = Model::new(&mini(Precision::Binary), &device, 1);
    let mut optimizer = AdamConfig::new().init();
    let (images, labels) = batch(&device, 8, 2);
    // Adam moves every weight by ~lr on its first step: lr 5 pushes most past ±1.
    let (model, loss, _) = train_step(model, &mut optimizer, images, labels, 5.0).unwrap();
    assert!(loss.is_finite());
    let mut at_bound = 0;
    for w in model
        .convs
        .iter()
        .map(|b| values(b.weight.val()))
        .chain(model.dense.iter().map(|b| values(b.weight.val())))
    {
        assert!(
            w.iter().all(|v| (-1.0..=1.0).contains(v)),
            "latent weight outside [-1, 1]"
        );
        at_bound += w.iter().filter(|v| v.abs() == 1.0).count();
    }
    assert!(
        at_bound > 1000,
        "the step should have pushed many weights to ±1 ({at_bound})"
    );
    let cls = values(model.classifier.weight.val());
    assert!(
        cls.iter().any(|v| v.abs() > 1.0),
        "the float classifier is not clipped"
    );
    // The weights still train after clipping (gradients flow, ids kept).
    let (images, labels) = batch(&device, 8, 3);
    let (_, loss2, _) = train_step(model, &mut optimizer, images, labels, 1e-3).unwrap();
    assert!(loss2.is_finite());
}

#[test]
fn float_twin_is_not_clipped() {
    let device = Device::flex().autodiff();
    let model = Model::new(&mini(Precision::Float), &device, 1);
    let mut optimizer = AdamConfig::new().init();
    let (images, labels) = batch(&device, 8, 2);
    let (model, _, _) = train_step(model, &mut optimizer, images, labels, 5.0).unwrap();
    assert!(
        values(model.convs[1].weight.val())
            .iter()
            .any(|v| v.abs() > 1.0)
    );
}

#[test]
fn eval_trace_has_integer_pre_activations_and_sign_outputs() {
    let device = Device::flex().autodiff();
    let mut model = Model::new(&mini(Precision::Binary), &device, 4);
    let mut optimizer = AdamConfig::new().init();
    for s in 0..3 {
        let (images, labels) = batch(&device, 8, 10 + s);
        model = train_step(model, &mut optimizer, images, labels, 1e-2)
            .unwrap()
            .0;
    }
    let eval = model.valid();
    let (images, _) = batch(&Device::flex(), 4, 99);
    let trace = eval.trace(images.clone());
    assert_eq!(trace.convs.len(), 3);
    assert_eq!(trace.dense.len(), 1);
    assert_eq!(trace.logits.dims(), [4, 5]);
    assert_eq!(trace.convs[0].act.dims(), [4, 32, 16, 16]);
    assert_eq!(trace.convs[2].act.dims(), [4, 64, 4, 4]);
    assert_eq!(trace.dense[0].pre_bn.dims(), [4, 128, 1, 1]);
    for (i, b) in trace.convs.iter().chain(&trace.dense).enumerate() {
        let act = values(b.act.clone());
        assert!(
            act.iter().all(|&v| v == 1.0 || v == -1.0),
            "block {i}: activations are ±1"
        );
        if i > 0 {
            let pre = values(b.pre_bn.clone());
            assert!(
                pre.iter().all(|v| v.fract() == 0.0),
                "block {i}: pre-BN values are integers"
            );
        }
    }
    // trace and forward agree.
    assert_eq!(values(trace.logits), values(eval.forward(images)));
}

#[test]
fn checkpoint_roundtrip_reproduces_the_eval_forward() {
    use bnn_transfer::train::checkpoint;
    let dir = std::env::temp_dir().join(format!("bnn-model-roundtrip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let device = Device::flex().autodiff();
    let mut model = Model::new(&mini(Precision::Binary), &device, 5);
    let mut optimizer = AdamConfig::new().init();
    for s in 0..2 {
        let (images, labels) = batch(&device, 8, 20 + s);
        model = train_step(model, &mut optimizer, images, labels, 1e-2)
            .unwrap()
            .0;
    }
    let config = bnn_transfer::train::PretrainConfig {
        model: mini(Precision::Binary),
        data: "none".into(),
        layout: Default::default(),
        train_split: "train".into(),
        val_split: None,
        classes: (0..5).map(|i| i.to_string()).collect(),
        epochs: 1,
        batch_size: 8,
        schedule: bnn_transfer::train::Schedule {
            kind: bnn_transfer::train::ScheduleKind::Constant,
            lr: 1e-2,
            step_epochs: 10,
            gamma: 0.5,
        },
        adam: Default::default(),
        seed: 0,
        teacher: None,
        teacher_sha256: None,
        float_weight_epochs: 0,
        lite0: None,
    };
    checkpoint::write_config(&dir, &config).unwrap();
    checkpoint::save(&dir, &model, &optimizer, &Default::default()).unwrap();
    let (arch, precision, loaded) =
        bnn_transfer::train::checkpoint::load(&dir, &Device::flex()).unwrap();
    assert_eq!(arch, Arch::mini(5));
    assert_eq!(precision, Precision::Binary);
    let (images, _) = batch(&Device::flex(), 4, 77);
    assert_eq!(
        values(model.valid().forward(images.clone())),
        values(loaded.forward(images))
    );

    // A truncated model file is a clear error.
    let ckpt = dir.join("checkpoint");
    let bytes = std::fs::read(ckpt.join("model.bpk")).unwrap();
    std::fs::write(ckpt.join("model.bpk"), &bytes[..bytes.len() / 2]).unwrap();
    let err = bnn_transfer::train::checkpoint::load(&dir, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt checkpoint"), "{err}");
    std::fs::remove_dir_all(&ckpt).unwrap();
    let err = bnn_transfer::train::checkpoint::load(&dir, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no checkpoint"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weight_scale_multiplies_integer_sums_by_the_mean_absolute_latent_weight() {
    let device = Device::flex().autodiff();
    let mut config = mini(Precision::Binary);
    config.weight_scale = true;
    let mut model = Model::new(&config, &device, 6);
    assert!(model.weight_scale);
    let mut optimizer = AdamConfig::new().init();
    let (images, labels) = batch(&device, 8, 30);
    model = train_step(model, &mut optimizer, images, labels, 1e-2)
        .unwrap()
        .0;
    let eval = model.valid();
    let (images, _) = batch(&Device::flex(), 2, 31);
    let trace = eval.trace(images);
    // Block 1 (conv2): pre_bn[c] / α[c] is an integer, α[c] = mean |w[c]|.
    let w = values(eval.convs[1].weight.val());
    let per = w.len() / 64;
    let alpha: Vec<f32> = w
        .chunks(per)
        .map(|c| c.iter().map(|v| v.abs()).sum::<f32>() / per as f32)
        .collect();
    let pre = values(trace.convs[1].pre_bn.clone()); // [2, 64, 8, 8]
    for (i, v) in pre.iter().enumerate() {
        let c = (i / 64) % 64;
        let k = v / alpha[c];
        assert!(
            (k - k.round()).abs() < 1e-3 * k.abs().max(1.0),
            "channel {c}: {v} / {} = {k}",
            alpha[c]
        );
    }
}
