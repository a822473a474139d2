//! criterion benches over the `bnn bench` kernels at CPU-friendly sizes: the XNOR conv (dots and
//! fused threshold), our float WGSL conv, the library's CPU binary path and, with the `train`
//! feature, burn's conv2d on flex. GPU work is submitted and waited for inside the timed region
//! (`iter_custom`), so the times are what a caller waits for. Ids: `{device}_{kernel}_{shape}`.
//! The `extractor` group times the whole `small` extractor on the CPU binary path against burn's
//! float model of the same arch on flex (with `train`), and the WGSL extractor against its float
//! twin on the adapter, batch 1 and 64, images/s.
//! Run: `cargo bench --bench kernels` (adapter from WGPU_BACKEND / WGPU_ADAPTER_NAME).

use std::time::{Duration, Instant};

use bnn_transfer::bench::shapes::{self, Case, Op};
use bnn_transfer::bits::pack_rows;
use bnn_transfer::cpu::CpuConv;
use bnn_transfer::gpu::Gpu;
use bnn_transfer::kernels::{float_conv, xnor_conv};
use bnn_transfer::ops::Threshold;
use bnn_transfer::rng::Rng;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// daBNN's two smallest layers and our `small` net's conv3-5, batch 1.
fn cases() -> Vec<Case> {
    let mut v: Vec<Case> = shapes::dabnn(1)
        .into_iter()
        .filter(|c| c.op.macs() < 300_000_000 && c.id.contains("k3"))
        .collect();
    v.extend(
        shapes::arch_layers(&bnn_transfer::Arch::small(200), 1)
            .into_iter()
            .filter(|c| matches!(c.op, Op::Conv(_)))
            .take(2),
    );
    v
}

/// A short lowercase name for ids: the adapter's first word.
fn device_name(gpu: &Gpu) -> String {
    gpu.info
        .name
        .split_whitespace()
        .next()
        .unwrap_or("gpu")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase()
}

fn operands(case: &Case) -> (Vec<f32>, Vec<f32>, Vec<Threshold>) {
    let s = case.op.as_conv();
    let mut rng = Rng::new(1);
    let x = (0..s.batch * s.in_h * s.in_w * s.in_c)
        .map(|_| rng.range(-1.0, 1.0))
        .collect();
    let w = (0..s.out_c * s.kernel_h * s.kernel_w * s.in_c)
        .map(|_| rng.range(-1.0, 1.0))
        .collect();
    let th = (0..s.out_c).map(|_| Threshold::at_least(0)).collect();
    (x, w, th)
}

/// Submits the dispatch and waits, `iters` times.
fn gpu_loop(gpu: &Gpu, d: &bnn_transfer::gpu::Dispatch, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        gpu.run(std::slice::from_ref(d)).expect("gpu run");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let gpu = match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("no GPU adapter ({e}): GPU benches skipped");
            None
        }
    };
    let dev = gpu.as_ref().map(device_name).unwrap_or_default();
    let mut group = c.benchmark_group("kernels");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for case in cases() {
        let Op::Conv(s) = case.op else { continue };
        let (x, w, th) = operands(&case);
        let (px, pw) = (pack_rows(&x, s.in_c), pack_rows(&w, s.in_c));
        group.throughput(Throughput::Elements(s.macs()));
        let cpu = CpuConv::new(&s, &pw).expect("cpu conv");
        let threads = bnn_transfer::cpu::Threads::all().expect("threads");
        group.bench_function(format!("cpu_cpu_xnor_{}", case.id), |b| {
            b.iter(|| cpu.dot(&px, &threads).expect("cpu dot"))
        });
        #[cfg(feature = "train")]
        {
            use burn::tensor::module::conv2d;
            use burn::tensor::ops::ConvOptions;
            use burn::tensor::{Device, Tensor, TensorData};
            let device = Device::flex();
            let xt = Tensor::<4>::from_data(
                TensorData::new(x.clone(), [s.batch, s.in_c, s.in_h, s.in_w]),
                &device,
            );
            let wt = Tensor::<4>::from_data(
                TensorData::new(w.clone(), [s.out_c, s.in_c, s.kernel_h, s.kernel_w]),
                &device,
            );
            let opts = ConvOptions::new([s.stride; 2], [s.pad; 2], [1, 1], 1);
            group.bench_function(format!("cpu_burn_flex_{}", case.id), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let y = conv2d(xt.clone(), wt.clone(), None, opts.clone());
                        device.sync().expect("sync");
                        drop(y);
                    }
                    start.elapsed()
                })
            });
        }
        let Some(gpu) = gpu.as_ref() else { continue };
        let xg = gpu.upload(&px, "x").expect("upload");
        let wg = gpu.upload(&pw, "w").expect("upload");
        let tg = gpu.upload(&th, "th").expect("upload");
        let xf = gpu.upload(&x, "xf").expect("upload");
        let wf = gpu.upload(&w, "wf").expect("upload");
        let (dot, _o1) = xnor_conv::encode(gpu, &s, &xg, &wg, None).expect("encode");
        let (fused, _o2) = xnor_conv::encode(gpu, &s, &xg, &wg, Some(&tg)).expect("encode");
        let (float, _o3) = float_conv::encode(gpu, &s, &xf, &wf).expect("encode");
        for (kernel, d) in [
            ("xnor_dot", &dot),
            ("xnor_bits", &fused),
            ("float_wgsl", &float),
        ] {
            gpu.run(std::slice::from_ref(d)).expect("warm-up");
            group.bench_function(format!("{dev}_{kernel}_{}", case.id), |b| {
                b.iter_custom(|iters| gpu_loop(gpu, d, iters))
            });
        }
    }
    group.finish();
}

/// The whole `small` extractor: CPU binary path vs burn's flex float model, and the WGSL
/// extractor vs its float twin on the adapter, same images.
fn extractor(c: &mut Criterion) {
    let arch = bnn_transfer::Arch::small(200);
    let file = bnn_transfer::bench::extractor::random_file(&arch, 3).expect("file");
    let threads = bnn_transfer::cpu::Threads::all().expect("threads");
    let cpu = bnn_transfer::cpu::CpuExtractor::new(&file, &threads).expect("cpu extractor");
    let gpu = Gpu::new().ok();
    let wgsl = gpu.as_ref().map(|gpu| {
        let binary =
            bnn_transfer::extractor::Extractor::new(gpu, file.clone()).expect("wgsl extractor");
        let twin = bnn_transfer::bench::extractor::FloatTwin::new(gpu, &file, 5).expect("twin");
        (device_name(gpu), binary, twin)
    });
    let mut group = c.benchmark_group("extractor");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for batch in [1usize, 64] {
        let mut rng = Rng::new(9);
        let images: Vec<f32> = (0..batch * arch.input * arch.input * arch.in_channels)
            .map(|_| rng.range(-2.0, 2.0))
            .collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("cpu_binary_{}_b{batch}", arch.name), |b| {
            b.iter(|| cpu.run_bits(&images, batch).expect("cpu run"))
        });
        if let Some((dev, binary, twin)) = &wgsl {
            let bits = bnn_transfer::extractor::Output::Bits;
            group.bench_function(format!("{dev}_wgsl_binary_{}_b{batch}", arch.name), |b| {
                b.iter(|| binary.run(&images, bits).expect("wgsl run"))
            });
            group.bench_function(
                format!("{dev}_wgsl_float_twin_{}_b{batch}", arch.name),
                |b| b.iter(|| twin.run(&images).expect("twin run")),
            );
        }
        #[cfg(feature = "train")]
        {
            use bnn_transfer::model::{Model, ModelConfig, Precision};
            use burn::tensor::{Device, Tensor, TensorData};
            let device = Device::flex();
            let model = Model::new(
                &ModelConfig::new(arch.clone(), Precision::Float),
                &device,
                0,
            );
            // burn takes NCHW; the values are random either way.
            let data = TensorData::new(
                images.clone(),
                [batch, arch.in_channels, arch.input, arch.input],
            );
            group.bench_function(format!("burn_flex_float_{}_b{batch}", arch.name), |b| {
                b.iter(|| {
                    let x = Tensor::<4>::from_data(data.clone(), &device);
                    model
                        .features(x)
                        .into_data()
                        .try_into_vec_as::<f32>()
                        .expect("features")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench, extractor);
criterion_main!(benches);
