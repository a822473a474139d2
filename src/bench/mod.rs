//! The binary-vs-float benchmark suite behind `bnn bench` (and the shapes `benches/` reuses): for
//! every shape, the XNOR/popcount kernel (dots, and fused with the threshold), our float WGSL
//! kernel of the same shape and burn's float conv2d / matmul on its wgpu backend, all on one
//! adapter in one run; on CPU-only machines also the library's CPU binary path ([`crate::cpu`])
//! and burn's flex conv2d. End-to-end rows run the frozen extractor against its float twin.
//!
//! Kernel times are GPU time from timestamp queries where the adapter has them (synchronized wall
//! time otherwise); burn, CPU and end-to-end rows are synchronized wall time. Ratios only ever
//! divide times taken with the same timer.

#[cfg(feature = "train")]
pub mod burn;
pub mod chart;
pub mod extractor;
pub mod kind;
pub mod peak;
pub mod report;
pub mod shapes;
pub mod timing;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::arch::Arch;
use crate::bits::pack_rows;
use crate::cpu::{CpuConv, CpuDense, CpuExtractor, Threads};
use crate::error::{Error, Result};
use crate::extractor::{Extractor, Output};
use crate::gpu::{Dispatch, Gpu};
use crate::kernels::{float_conv, float_conv_f16, float_dense, xnor_conv, xnor_dense};
use crate::ops::Threshold;
use crate::progress::{Observer, Task};
use crate::rng::Rng;
pub use kind::{Kernel, Run};
use report::{DeviceInfo, EndToEndRow, Measurement, Report, ShapeRow, StageOf, StageRow};
use shapes::{Case, Op};
use timing::{Plan, Stats, measure, wall};

/// `--suite`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// daBNN's layer set and the binary layers of our networks.
    Layers,
    /// One large square GEMM.
    Gemm,
    /// The whole extractor against its float twin, images/s.
    Extractor,
    /// Everything above.
    All,
    /// Tiny shapes, few repeats: a smoke run in seconds (tests use it).
    Quick,
}

/// What to run and how long to spend on it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which cases and rows run.
    pub suite: Suite,
    /// Batch of the per-layer shapes.
    pub batch: usize,
    /// Warm-up / repeats / budget of our kernels and the CPU path.
    pub plan: Plan,
    /// The same for burn's rows (slow on lavapipe).
    pub burn_plan: Plan,
    /// Side of the square GEMM.
    pub gemm: usize,
    /// Batches of the end-to-end rows.
    pub e2e_batches: Vec<usize>,
    /// Timing of end-to-end rows after the first batch size (each size still gets its warm-up).
    pub e2e_plan: Plan,
    /// burn's float-model row runs only up to this batch (burn-wgpu on lavapipe takes minutes per
    /// batch of 64).
    pub burn_model_max_batch: usize,
    /// Architecture of the end-to-end rows.
    pub e2e_arch: Arch,
    /// Include alexnet's binary layers in the layer suite.
    pub alexnet: bool,
    /// CPU rows (cpu_xnor, burn_flex): by default only where the adapter is a CPU.
    pub cpu_rows: bool,
    /// burn rows (needs the `train` feature).
    pub burn: bool,
    /// The f16 baseline's rows (`float_f16`): where the adapter has shader-f16.
    pub f16: bool,
    /// Threads of the CPU binary path's rows.
    pub threads: usize,
    /// User overrides of the GPU peak's inputs.
    pub peak: peak::PeakOverrides,
}

impl Config {
    /// Defaults that keep `--suite all` within a few minutes on lavapipe and bounded on a GPU.
    pub fn defaults(gpu: &Gpu, suite: Suite) -> Config {
        let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
        let quick = suite == Suite::Quick;
        let plan = match (quick, cpu) {
            (true, _) => Plan {
                warmup: 1,
                repeats: 3,
                budget_s: 0.5,
            },
            (false, true) => Plan {
                warmup: 1,
                repeats: 7,
                budget_s: 1.5,
            },
            (false, false) => Plan {
                warmup: 3,
                repeats: 25,
                budget_s: 2.0,
            },
        };
        let burn_plan = if cpu {
            Plan {
                warmup: 1,
                repeats: if quick { 1 } else { 3 },
                budget_s: 1.0,
            }
        } else {
            plan
        };
        Config {
            suite,
            batch: 1,
            plan,
            burn_plan,
            gemm: match (quick, cpu) {
                (true, _) => 64,
                (false, true) => 512,
                (false, false) => 4096,
            },
            e2e_batches: if quick { vec![1] } else { vec![1, 64] },
            e2e_plan: if cpu {
                // One untimed run per batch size: a new batch size compiles pipelines and grows
                // buffers, which must not land in the timed runs.
                Plan {
                    warmup: 1,
                    repeats: 2,
                    budget_s: 1.0,
                }
            } else {
                plan
            },
            burn_model_max_batch: if cpu { 1 } else { usize::MAX },
            // The embedded backbone's architecture: the end-to-end rows time what users run.
            e2e_arch: if quick {
                Arch::mini(10)
            } else {
                crate::assets::default_arch().unwrap_or_else(|_| Arch::small(200))
            },
            alexnet: !cpu,
            cpu_rows: cpu,
            burn: cfg!(feature = "train"),
            f16: gpu.has_f16(),
            threads: crate::cpu::default_threads(),
            peak: peak::PeakOverrides::default(),
        }
    }

    /// The per-shape cases of this suite.
    pub fn cases(&self) -> Vec<Case> {
        let b = self.batch;
        let layers = || {
            let mut v = shapes::dabnn(b);
            v.extend(shapes::arch_layers(&Arch::small(200), b));
            if self.alexnet {
                v.extend(shapes::arch_layers(&Arch::alexnet(1000), b));
            }
            v
        };
        match self.suite {
            Suite::Layers => layers(),
            Suite::Gemm => vec![shapes::gemm(self.gemm)],
            Suite::Extractor => Vec::new(),
            Suite::All => {
                let mut v = layers();
                v.push(shapes::gemm(self.gemm));
                v
            }
            Suite::Quick => {
                let mut v = vec![
                    Case {
                        suite: "layers",
                        id: "9x9x64-64_k3s1p1".into(),
                        source: "quick".into(),
                        op: Op::Conv(shapes::conv(b, 9, 64, 64, 3, 1, 1)),
                    },
                    Case {
                        suite: "layers",
                        id: "11x11x33-40_k3s2p1".into(),
                        source: "quick".into(),
                        op: Op::Conv(shapes::conv(b, 11, 33, 40, 3, 2, 1)),
                    },
                ];
                v.push(shapes::gemm(self.gemm));
                v
            }
        }
    }

    fn e2e(&self) -> bool {
        matches!(self.suite, Suite::Extractor | Suite::All | Suite::Quick)
    }

    /// Implementations timed per shape, in table order.
    pub fn kernels(&self) -> Vec<Kernel> {
        let mut k = vec![Kernel::XnorDot, Kernel::XnorBits, Kernel::FloatWgsl];
        if self.f16 {
            k.push(Kernel::FloatF16);
        }
        if self.burn {
            k.push(Kernel::BurnWgpu);
        }
        if self.cpu_rows {
            k.push(Kernel::CpuXnor);
            if self.burn {
                k.push(Kernel::BurnFlex);
            }
        }
        k
    }

    /// Progress steps: one per (shape, kernel) and per end-to-end row.
    pub fn steps(&self) -> u64 {
        let e2e = if self.e2e() {
            self.e2e_batches.len() * self.e2e_runs().len()
        } else {
            0
        };
        (self.cases().len() * self.kernels().len() + e2e) as u64
    }

    fn e2e_runs(&self) -> Vec<Run> {
        let mut r = vec![Run::BinaryExtractor, Run::FloatTwinWgsl];
        if self.cpu_rows {
            r.push(Run::CpuBinaryExtractor);
        }
        if self.burn {
            r.push(Run::BurnFloatModelWgpu);
            if self.cpu_rows {
                r.push(Run::BurnFloatModelFlex);
                r.push(Run::EfficientnetLite0Flex);
            }
        }
        r
    }
}

/// Random operands of one case, in every layout the kernels take.
struct Operands {
    x: Vec<f32>,
    w: Vec<f32>,
    px: Vec<u32>,
    pw: Vec<u32>,
    th: Vec<Threshold>,
}

impl Operands {
    fn new(op: &Op, seed: u64) -> Operands {
        let s = op.as_conv();
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = (0..s.batch * s.in_h * s.in_w * s.in_c)
            .map(|_| rng.range(-1.0, 1.0))
            .collect();
        let w: Vec<f32> = (0..s.out_c * s.kernel_h * s.kernel_w * s.in_c)
            .map(|_| rng.range(-1.0, 1.0))
            .collect();
        let k = (s.kernel_h * s.kernel_w * s.in_c) as f32;
        let th = (0..s.out_c)
            .map(|_| Threshold::at_least(rng.range(-k / 8.0, k / 8.0) as i32))
            .collect();
        Operands {
            px: pack_rows(&x, s.in_c),
            pw: pack_rows(&w, s.in_c),
            x,
            w,
            th,
        }
    }
}

/// Bytes a kernel reads and writes once: weights, input activations, output.
pub fn bytes_moved(op: &Op, kernel: Kernel) -> u64 {
    let s = op.as_conv();
    let in_px = s.batch * s.in_h * s.in_w;
    let out_px = s.batch * s.out_pixels_per_item();
    let b = match kernel {
        Kernel::XnorDot | Kernel::CpuXnor => {
            (in_px * s.in_words() + s.weight_words() + out_px * s.out_c) * 4
        }
        Kernel::XnorBits => {
            (in_px * s.in_words() + s.weight_words() + out_px * s.out_words()) * 4 + 8 * s.out_c
        }
        Kernel::FloatF16 => {
            (in_px * s.in_c + s.out_c * s.kernel_h * s.kernel_w * s.in_c + out_px * s.out_c) * 2
        }
        _ => (in_px * s.in_c + s.out_c * s.kernel_h * s.kernel_w * s.in_c + out_px * s.out_c) * 4,
    };
    b as u64
}

/// GPU time (timestamps, else wall) and synchronized wall time of one encoded dispatch.
fn time_dispatch(gpu: &Gpu, d: Dispatch, plan: &Plan) -> Result<(Stats, Option<Stats>)> {
    let ds = std::slice::from_ref(&d);
    let main = measure(plan, || Ok(gpu.time(ds)?.elapsed))?;
    let wall_stats = if gpu.timestamps {
        Some(measure(plan, || wall(|| gpu.run(ds)))?)
    } else {
        None
    };
    Ok((main, wall_stats))
}

fn run_wgsl(
    gpu: &Gpu,
    op: &Op,
    data: &Operands,
    kernel: Kernel,
    plan: &Plan,
) -> Result<(Stats, Option<Stats>)> {
    match kernel {
        Kernel::FloatWgsl => {
            let x = gpu.upload(&data.x, "bench x")?;
            let w = gpu.upload(&data.w, "bench w")?;
            let (d, _out) = match op {
                Op::Conv(s) => float_conv::encode(gpu, s, &x, &w)?,
                Op::Gemm(g) => {
                    float_dense::encode(gpu, g.batch, g.in_features, g.out_features, &x, &w)?
                }
            };
            time_dispatch(gpu, d, plan)
        }
        Kernel::FloatF16 => {
            let s = op.as_conv();
            let x = gpu.upload(&float_conv_f16::to_f16(&data.x), "bench x f16")?;
            let w = gpu.upload(&float_conv_f16::to_f16(&data.w), "bench w f16")?;
            let (d, _out) = float_conv_f16::encode(gpu, &s, &x, &w)?;
            time_dispatch(gpu, d, plan)
        }
        Kernel::XnorDot | Kernel::XnorBits => {
            let x = gpu.upload(&data.px, "bench x")?;
            let w = gpu.upload(&data.pw, "bench w")?;
            let th = gpu.upload(&data.th, "bench thresholds")?;
            let th = (kernel == Kernel::XnorBits).then_some(&th);
            let (d, _out) = match op {
                Op::Conv(s) => xnor_conv::encode(gpu, s, &x, &w, th)?,
                Op::Gemm(g) => xnor_dense::encode(gpu, g, &x, &w, th)?,
            };
            time_dispatch(gpu, d, plan)
        }
        other => Err(Error::Shape(format!("no WGSL kernel '{other}'"))),
    }
}

fn run_cpu(
    op: &Op,
    data: &Operands,
    plan: &Plan,
    threads: &Threads,
    isa: crate::cpu::Isa,
) -> Result<Stats> {
    match op {
        Op::Conv(s) => {
            let c = CpuConv::with_isa(s, &data.pw, isa)?;
            measure(plan, || {
                let t = Instant::now();
                std::hint::black_box(c.dot(&data.px, threads)?);
                Ok(t.elapsed())
            })
        }
        Op::Gemm(g) => {
            let c = CpuDense::with_isa(g, &data.pw, isa)?;
            measure(plan, || {
                let t = Instant::now();
                std::hint::black_box(c.dot(&data.px, threads)?);
                Ok(t.elapsed())
            })
        }
    }
}

/// burn's devices, opened once (`None` with the reason in the notes when one cannot open).
#[derive(Default)]
struct BurnDevices {
    #[cfg(feature = "train")]
    wgpu: Option<::burn::tensor::Device>,
    #[cfg(feature = "train")]
    flex: Option<::burn::tensor::Device>,
}

impl BurnDevices {
    /// Opens the devices the config asks for; a device that cannot open is a note, not an error.
    #[allow(unused_variables)]
    fn open(cfg: &Config) -> (BurnDevices, Option<String>) {
        #[cfg(feature = "train")]
        if cfg.burn {
            let (wgpu, note) = match burn::wgpu_device() {
                Ok(d) => (Some(d), None),
                Err(e) => (None, Some(format!("burn-wgpu rows skipped: {e}"))),
            };
            let flex = cfg.cpu_rows.then(burn::flex_device);
            return (BurnDevices { wgpu, flex }, note);
        }
        (BurnDevices::default(), None)
    }

    #[allow(unused_variables)]
    fn time(&self, kernel: Kernel, op: &Op, plan: &Plan) -> Result<Stats> {
        #[cfg(feature = "train")]
        {
            let device = match kernel {
                Kernel::BurnWgpu => self.wgpu.as_ref(),
                _ => self.flex.as_ref(),
            };
            let device = device.ok_or_else(|| Error::Gpu {
                context: kernel.to_string(),
                message: "device not available".into(),
            })?;
            burn::time_op(device, op, plan)
        }
        #[cfg(not(feature = "train"))]
        Err(Error::Shape(
            "built without the `train` feature (burn)".into(),
        ))
    }

    #[allow(unused_variables)]
    fn time_model(&self, run: Run, arch: &Arch, batch: usize, plan: &Plan) -> Result<Stats> {
        #[cfg(feature = "train")]
        {
            let device = if run == Run::BurnFloatModelWgpu {
                self.wgpu.as_ref()
            } else {
                self.flex.as_ref()
            };
            let device = device.ok_or_else(|| Error::Gpu {
                context: run.to_string(),
                message: "device not available".into(),
            })?;
            if run == Run::EfficientnetLite0Flex {
                burn::time_lite0(device, arch, batch, plan)
            } else {
                burn::time_float_model(device, arch, batch, plan)
            }
        }
        #[cfg(not(feature = "train"))]
        Err(Error::Shape(
            "built without the `train` feature (burn)".into(),
        ))
    }
}

fn ratio(num: Option<f64>, den: Option<f64>) -> Option<f64> {
    match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n / d),
        _ => None,
    }
}

/// Runs the suite on `gpu`, reporting one step per measurement ([`Config::steps`]) to
/// `observer`.
pub fn run(gpu: &Gpu, cfg: &Config, observer: &dyn Observer) -> Result<Report> {
    let task = Task::start(observer, "bench", cfg.steps());
    let start = Instant::now();
    let (burn_devices, burn_note) = BurnDevices::open(cfg);
    let mut notes: Vec<String> = burn_note.into_iter().collect();
    let peak = peak::peak(&gpu.info, cfg.peak);
    let isa = crate::cpu::Isa::from_env()?;
    let cpu_peak = cfg
        .cpu_rows
        .then(|| peak::cpu_path_peak(isa, cfg.threads, cfg.peak.clock_mhz));
    let timer = if gpu.timestamps {
        "GPU timestamp queries"
    } else {
        "synchronized wall time (no timestamp queries on this adapter)"
    };
    let threads = Threads::new(cfg.threads)?;
    let timers = Timers {
        gpu,
        cfg,
        threads: &threads,
        isa,
        burn: &burn_devices,
    };
    let mut rows = Vec::new();
    for (i, case) in cfg.cases().iter().enumerate() {
        let data = Operands::new(&case.op, i as u64 + 1);
        let mut results = Vec::new();
        for kernel in cfg.kernels() {
            task.set(task.done(), &format!("{} {kernel}", case.id));
            results.push(measure_kernel(&timers, case, &data, kernel));
            task.advance(1);
        }
        rows.push(shape_row(case, results, &peak, cpu_peak.as_ref()));
    }
    let (extractor, stages) = if cfg.e2e() {
        end_to_end(gpu, cfg, &threads, isa, &burn_devices, &task)?
    } else {
        Default::default()
    };
    push_notes(&mut notes, gpu, cfg, isa);
    Ok(Report {
        tool: format!("bnn bench {}", env!("CARGO_PKG_VERSION")),
        device: DeviceInfo {
            name: gpu.info.name.clone(),
            backend: format!("{:?}", gpu.info.backend),
            device_type: format!("{:?}", gpu.info.device_type),
            driver: format!("{} {}", gpu.info.driver, gpu.info.driver_info),
            vendor: gpu.info.vendor,
            timestamps: gpu.timestamps,
        },
        timer: timer.into(),
        suite: format!("{:?}", cfg.suite).to_lowercase(),
        batch: cfg.batch,
        plan: cfg.plan,
        cpu_threads: cfg.threads,
        peak,
        cpu_peak,
        cpu_isa: isa.to_string(),
        shapes: rows,
        extractor,
        stages,
        notes,
        total_s: start.elapsed().as_secs_f64(),
    })
}

/// What timing one kernel needs: the adapter, the settings, the CPU path's threads and
/// instruction set, and burn's devices.
struct Timers<'a> {
    gpu: &'a Gpu,
    cfg: &'a Config,
    threads: &'a Threads,
    isa: crate::cpu::Isa,
    burn: &'a BurnDevices,
}

/// Times `kernel` on `case` with operands `data`; a kernel that fails is a measurement with
/// its error, not an error.
fn measure_kernel(t: &Timers, case: &Case, data: &Operands, kernel: Kernel) -> Measurement {
    let outcome: Result<(Stats, Option<Stats>, &str)> = match kernel {
        k if k.is_wgsl() => run_wgsl(t.gpu, &case.op, data, kernel, &t.cfg.plan).map(|(s, w)| {
            (
                s,
                w,
                if t.gpu.timestamps {
                    "gpu-timestamp"
                } else {
                    "wall"
                },
            )
        }),
        Kernel::CpuXnor => {
            run_cpu(&case.op, data, &t.cfg.plan, t.threads, t.isa).map(|s| (s, None, "wall"))
        }
        _ => t
            .burn
            .time(kernel, &case.op, &t.cfg.burn_plan)
            .map(|s| (s, None, "wall")),
    };
    match outcome {
        Ok((stats, wall_stats, timer)) => Measurement {
            kernel,
            timer: timer.into(),
            macs_per_s: Some(case.op.macs() as f64 / stats.median_s.max(1e-12)),
            stats: Some(stats),
            wall: wall_stats,
            bytes: bytes_moved(&case.op, kernel),
            error: None,
        },
        Err(e) => Measurement {
            kernel,
            timer: "-".into(),
            stats: None,
            wall: None,
            macs_per_s: None,
            bytes: bytes_moved(&case.op, kernel),
            error: Some(e.to_string()),
        },
    }
}

/// One shape's row: its measurements and the speed-ups and peak fractions computed from them.
fn shape_row(
    case: &Case,
    results: Vec<Measurement>,
    peak: &report::Peak,
    cpu_peak: Option<&report::Peak>,
) -> ShapeRow {
    let mut row = ShapeRow {
        suite: case.suite.into(),
        id: case.id.clone(),
        source: case.source.clone(),
        shape: case.info(),
        results,
        speedup_vs_float: None,
        speedup_fused_vs_float: None,
        speedup_vs_f16: None,
        speedup_vs_burn: None,
        cpu_speedup_vs_flex: None,
        peak_fraction: None,
        cpu_peak_fraction: None,
    };
    let t = |k: Kernel| row.get(k).and_then(|m| m.median_s());
    let w = |k: Kernel| row.get(k).and_then(|m| m.wall_s());
    let f16 = ratio(t(Kernel::FloatF16), t(Kernel::XnorDot));
    let speedups = (
        ratio(t(Kernel::FloatWgsl), t(Kernel::XnorDot)),
        ratio(t(Kernel::FloatWgsl), t(Kernel::XnorBits)),
        ratio(w(Kernel::BurnWgpu), w(Kernel::XnorDot)),
        ratio(t(Kernel::BurnFlex), t(Kernel::CpuXnor)),
        ratio(
            row.get(Kernel::XnorDot).and_then(|m| m.macs_per_s),
            peak.binary_macs_per_s,
        ),
    );
    (
        row.speedup_vs_float,
        row.speedup_fused_vs_float,
        row.speedup_vs_burn,
        row.cpu_speedup_vs_flex,
        row.peak_fraction,
    ) = speedups;
    row.speedup_vs_f16 = f16;
    row.cpu_peak_fraction = ratio(
        row.get(Kernel::CpuXnor).and_then(|m| m.macs_per_s),
        cpu_peak.and_then(|p| p.binary_macs_per_s),
    );
    row
}

/// The notes under the table: what the columns mean and which rows were not measured.
fn push_notes(notes: &mut Vec<String>, gpu: &Gpu, cfg: &Config, isa: crate::cpu::Isa) {
    notes.push(
        "float ms = float_conv.wgsl (convs; dense layers from batch 9) or float_dense.wgsl (dense \
         layers up to batch 8); x float = float ms / xnor ms and x fused = float ms / fused ms \
         (same timer); x burn = burn ms / xnor wall, both synchronized wall time (submit → \
         completion)"
            .into(),
    );
    notes.push(if cfg.f16 {
        "f16 ms = float_conv.wgsl in f16 (f16 storage and math; dense rows as its 1×1 case); \
         x f16 = f16 ms / xnor ms (same timer)"
            .into()
    } else {
        format!(
            "float_f16: not measured: adapter has no shader-f16 ({})",
            gpu.describe()
        )
    });
    if cfg.e2e() {
        notes.push(extractor::FLOAT_TWIN.into());
    }
    if cfg.cpu_rows {
        notes.push(format!(
            "cpu ms = cpu_xnor, the library's CPU binary path ({isa} kernels, {} threads, integer \
             dots out); flex ms = burn's flex conv2d / matmul; x flex = flex ms / cpu ms, both \
             wall time; cpu_binary_extractor = the whole extractor on that path (conv → \
             threshold → pack fused, pooling on packed signs), burn_float_model_flex = burn's \
             float model of the same arch (conv, max-pool, batch norm, ReLU) on flex; \
             efficientnet_lite0_flex = EfficientNet-Lite0 with its ImageNet weights on flex, the \
             images upscaled to 160 px inside the timed region (the float network a user would \
             pick instead); all start from the same f32 images, preprocessing excluded",
            cfg.threads
        ));
    }
}

fn end_to_end(
    gpu: &Gpu,
    cfg: &Config,
    threads: &Threads,
    isa: crate::cpu::Isa,
    burn_devices: &BurnDevices,
    task: &Task,
) -> Result<(Vec<EndToEndRow>, Vec<StageRow>)> {
    let arch = &cfg.e2e_arch;
    let file = extractor::random_file(arch, 3)?;
    let extractor = Extractor::new(gpu, file.clone());
    let twin = extractor::FloatTwin::new(gpu, &file, 5);
    let cpu = CpuExtractor::with_isa(&file, threads, isa);
    let mut stages = Vec::new();
    // Everything but the float classifier, which the extractor does not run.
    let last = arch.dense.last().copied().unwrap_or(arch.flat_features());
    let macs = arch.macs() - (last * arch.classes) as u64;
    let mut rng = Rng::new(9);
    let mut out = Vec::new();
    for (bi, &batch) in cfg.e2e_batches.iter().enumerate() {
        let n = batch * arch.input * arch.input * arch.in_channels;
        let images: Vec<f32> = (0..n).map(|_| rng.range(-2.0, 2.0)).collect();
        let mut binary_s: Vec<(Run, f64)> = Vec::new();
        for run in cfg.e2e_runs() {
            task.set(task.done(), &format!("{} batch {batch} {run}", arch.name));
            let plan = match (run.is_burn(), bi) {
                (true, _) => &cfg.burn_plan,
                (false, 0) => &cfg.plan,
                (false, _) => &cfg.e2e_plan,
            };
            let stats: Result<Stats> = match run {
                Run::BinaryExtractor => match &extractor {
                    Ok(b) => measure(plan, || wall(|| b.run(&images, Output::Bits).map(|_| ()))),
                    Err(e) => Err(Error::Shape(e.to_string())),
                },
                Run::CpuBinaryExtractor => match &cpu {
                    Ok(c) => measure(plan, || wall(|| c.run_bits(&images, batch).map(|_| ()))),
                    Err(e) => Err(Error::Shape(e.to_string())),
                },
                Run::FloatTwinWgsl => match &twin {
                    Ok(t) => measure(plan, || wall(|| t.run(&images).map(|_| ()))),
                    Err(e) => Err(Error::Shape(e.to_string())),
                },
                Run::BurnFloatModelWgpu if batch > cfg.burn_model_max_batch => {
                    Err(Error::Limits(format!(
                        "skipped above batch {} on a CPU adapter (minutes per batch); see the \
                         flex row",
                        cfg.burn_model_max_batch
                    )))
                }
                _ => burn_devices.time_model(run, arch, batch, plan),
            };
            let median = stats.as_ref().ok().map(|s| s.median_s);
            let ips = median.map(|m| batch as f64 / m.max(1e-12));
            let versus = run.versus();
            if let (None, Some(m)) = (versus, median) {
                binary_s.push((run, m));
            }
            let binary = versus.and_then(|v| binary_s.iter().find(|(r, _)| *r == v));
            out.push(EndToEndRow {
                arch: arch.name.clone(),
                batch,
                macs_per_image: macs,
                runs: run,
                timer: "wall: upload + GPU + read-back".into(),
                stats: stats.as_ref().ok().copied(),
                images_per_s: ips,
                versus,
                binary_speedup: binary.and_then(|(_, b)| ratio(median, Some(*b))),
                error: stats.err().map(|e| e.to_string()),
            });
            let runs = plan.repeats.max(3);
            if run == Run::CpuBinaryExtractor
                && let Ok(c) = &cpu
            {
                stages.extend(stage_medians(StageOf::Cpu, batch, runs, || {
                    Ok(c.profile(&images, batch)?
                        .into_iter()
                        .map(|s| (s.stage, s.time))
                        .collect())
                })?);
            }
            if run == Run::BinaryExtractor
                && let Ok(b) = &extractor
            {
                stages.extend(stage_medians(StageOf::Gpu, batch, runs, || {
                    Ok(b.profile(batch)?
                        .into_iter()
                        .map(|(layer, kernel, t)| (format!("{layer} {kernel}"), t.elapsed))
                        .collect())
                })?);
            }
            task.advance(1);
        }
    }
    Ok((out, stages))
}

/// Median time of each stage over `runs` profiled runs (`profile` returns one run's
/// `(stage, time)` list, stages in the same order every time), with each stage's share of their
/// sum.
fn stage_medians(
    of: StageOf,
    batch: usize,
    runs: usize,
    mut profile: impl FnMut() -> Result<Vec<(String, Duration)>>,
) -> Result<Vec<StageRow>> {
    let runs: Vec<Vec<(String, Duration)>> = (0..runs).map(|_| profile()).collect::<Result<_>>()?;
    let Some(first) = runs.first() else {
        return Ok(Vec::new());
    };
    let medians: Vec<(String, f64)> = (0..first.len())
        .map(|i| {
            let t: Vec<f64> = runs.iter().map(|r| r[i].1.as_secs_f64()).collect();
            (first[i].0.clone(), timing::median(&t))
        })
        .collect();
    let total: f64 = medians.iter().map(|(_, t)| t).sum();
    Ok(medians
        .into_iter()
        .map(|(stage, median_s)| StageRow {
            of,
            batch,
            stage,
            median_s,
            share: median_s / total.max(1e-12),
        })
        .collect())
}
