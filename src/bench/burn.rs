//! burn's side of the comparison (cargo feature `train`): float conv2d and matmul on burn's wgpu
//! backend (same adapter as the WGSL kernels) and on its flex CPU backend, and the float model's
//! forward pass. burn compiles and autotunes on first use, so warm-up runs happen outside the timed
//! region; every timed run ends with `device.sync()` (synchronized wall time).

use std::time::{Duration, Instant};

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::shapes::Op;
use super::timing::{Plan, Stats, measure};
use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::model::{Model, ModelConfig, Precision};
use crate::rng::Rng;

fn burn_err(e: impl std::fmt::Display) -> Error {
    Error::Gpu {
        context: "burn".into(),
        message: e.to_string(),
    }
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// burn's wgpu device on the adapter the WGSL kernels use (`WGPU_BACKEND` / `WGPU_ADAPTER_NAME`).
pub fn wgpu_device() -> Result<Device> {
    crate::train::device::resolve(crate::train::device::DeviceChoice::Wgpu).map(|d| d.device)
}

/// burn's flex (CPU) device.
pub fn flex_device() -> Device {
    Device::flex()
}

fn sync(device: &Device) -> Result<()> {
    device.sync().map_err(burn_err)
}

/// Median time of burn's float conv2d (NCHW × OIHW, no bias) or matmul for `op` on `device`.
pub fn time_op(device: &Device, op: &Op, plan: &Plan) -> Result<Stats> {
    let mut rng = Rng::new(7);
    match *op {
        Op::Conv(s) => {
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    random(&mut rng, s.batch * s.in_c * s.in_h * s.in_w),
                    [s.batch, s.in_c, s.in_h, s.in_w],
                ),
                device,
            );
            let w = Tensor::<4>::from_data(
                TensorData::new(
                    random(&mut rng, s.out_c * s.in_c * s.kernel_h * s.kernel_w),
                    [s.out_c, s.in_c, s.kernel_h, s.kernel_w],
                ),
                device,
            );
            let opts = ConvOptions::new([s.stride; 2], [s.pad; 2], [1, 1], 1);
            sync(device)?;
            measure(plan, || {
                let t = Instant::now();
                let y = conv2d(x.clone(), w.clone(), None, opts.clone());
                sync(device)?;
                let d = t.elapsed();
                drop(y);
                Ok(d)
            })
        }
        Op::Gemm(g) => {
            let a = Tensor::<2>::from_data(
                TensorData::new(
                    random(&mut rng, g.batch * g.in_features),
                    [g.batch, g.in_features],
                ),
                device,
            );
            let b = Tensor::<2>::from_data(
                TensorData::new(
                    random(&mut rng, g.in_features * g.out_features),
                    [g.in_features, g.out_features],
                ),
                device,
            );
            sync(device)?;
            measure(plan, || {
                let t = Instant::now();
                let y = a.clone().matmul(b.clone());
                sync(device)?;
                let d = t.elapsed();
                drop(y);
                Ok(d)
            })
        }
    }
}

/// Images/s of the float model of `arch` (burn's forward to the last hidden layer, eval mode:
/// conv + max-pool + batch norm + ReLU) on `device`: images uploaded and features read back inside
/// the timed region, like the extractor rows. Returns the per-batch stats.
pub fn time_float_model(device: &Device, arch: &Arch, batch: usize, plan: &Plan) -> Result<Stats> {
    let model = Model::new(&ModelConfig::new(arch.clone(), Precision::Float), device, 0);
    let mut rng = Rng::new(11);
    let n = batch * arch.in_channels * arch.input * arch.input;
    let data = TensorData::new(
        random(&mut rng, n),
        [batch, arch.in_channels, arch.input, arch.input],
    );
    measure(plan, || -> Result<Duration> {
        let t = Instant::now();
        let x = Tensor::<4>::from_data(data.clone(), device);
        let y = model.features(x);
        let _ = y.into_data().try_into_vec_as::<f32>().map_err(burn_err)?;
        Ok(t.elapsed())
    })
}

/// Images/s of EfficientNet-Lite0 ([`crate::teacher`], its weights from
/// [`default_weights`](crate::teacher::efficientnet::default_weights)) on `device`: `arch`'s
/// input images uploaded, upscaled bilinearly to 160 px inside the timed region, the forward pass
/// to its features (and logits), read back. An error (the row says "not measured") without the
/// weights file.
pub fn time_lite0(device: &Device, arch: &Arch, batch: usize, plan: &Plan) -> Result<Stats> {
    use crate::teacher::efficientnet::{self, RESOLUTION};
    let model = efficientnet::load(&efficientnet::default_weights(), device)?;
    let mut rng = Rng::new(13);
    let n = batch * 3 * arch.input * arch.input;
    let data = TensorData::new(random(&mut rng, n), [batch, 3, arch.input, arch.input]);
    measure(plan, || -> Result<Duration> {
        let t = Instant::now();
        let x = Tensor::<4>::from_data(data.clone(), device);
        let out = model.forward(efficientnet::upscale(x, RESOLUTION));
        let _ = out
            .features
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(burn_err)?;
        Ok(t.elapsed())
    })
}
