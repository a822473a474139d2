//! The benchmark report: serialisable rows (the JSON for machines), the device's popcount peak
//! with the inputs it was derived from, and the printed table (for people).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::kind::{Kernel, Run};
use super::shapes::ShapeInfo;
use super::timing::{Plan, Stats};

/// The adapter the run used.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// Adapter name as wgpu reports it.
    pub name: String,
    /// wgpu backend (`Vulkan`, `Metal`, `Dx12`, `Gl`).
    pub backend: String,
    /// wgpu device type (`DiscreteGpu`, `IntegratedGpu`, `Cpu`, …).
    pub device_type: String,
    /// Driver name and driver info, space-separated.
    pub driver: String,
    /// PCI vendor id.
    pub vendor: u32,
    /// Whether GPU times come from timestamp queries (else synchronized wall time).
    pub timestamps: bool,
}

/// One implementation's result on one shape.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Which implementation.
    pub kernel: Kernel,
    /// `gpu-timestamp` or `wall` (synchronized: submit → completion, or host time on the CPU).
    pub timer: String,
    /// Timing with `timer`; None when the case failed (see `error`).
    pub stats: Option<Stats>,
    /// Synchronized wall time of our GPU kernels too (what burn's rows are compared against).
    pub wall: Option<Stats>,
    /// MACs of the shape / median time of `stats`.
    pub macs_per_s: Option<f64>,
    /// Weights + input activations + output bytes the kernel reads and writes once.
    pub bytes: u64,
    /// Why there is no time (the device's limits, a burn error, …).
    pub error: Option<String>,
}

impl Measurement {
    /// Median time in seconds with this row's own timer.
    pub fn median_s(&self) -> Option<f64> {
        self.stats.map(|s| s.median_s)
    }
    /// Median synchronized wall time in seconds (the `stats` median when no separate wall time was
    /// taken).
    pub fn wall_s(&self) -> Option<f64> {
        self.wall.or(self.stats).map(|s| s.median_s)
    }
}

/// All implementations on one shape, and the ratios the targets are stated in.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeRow {
    /// `layers` or `gemm`.
    pub suite: String,
    /// Stable shape id, e.g. `56x56x64-64_k3s1p1_b1`.
    pub id: String,
    /// Where the shape comes from, e.g. `daBNN`, `small conv3-5`.
    pub source: String,
    /// The shape's dimensions and MAC count.
    pub shape: ShapeInfo,
    /// One measurement per implementation, in table order.
    pub results: Vec<Measurement>,
    /// float_wgsl time / xnor_dot time (same timer): how many times faster the binary conv is.
    pub speedup_vs_float: Option<f64>,
    /// float_wgsl / xnor_bits (conv + threshold + packing fused).
    pub speedup_fused_vs_float: Option<f64>,
    /// float_f16 / xnor_dot (same timer), where the adapter has shader-f16.
    pub speedup_vs_f16: Option<f64>,
    /// burn_wgpu / xnor_dot, both synchronized wall time.
    pub speedup_vs_burn: Option<f64>,
    /// burn_flex / cpu_xnor (CPU rows).
    pub cpu_speedup_vs_flex: Option<f64>,
    /// xnor_dot MAC/s / the device's binary peak.
    pub peak_fraction: Option<f64>,
    /// cpu_xnor MAC/s / the CPU path's binary peak ([`Report::cpu_peak`]).
    pub cpu_peak_fraction: Option<f64>,
}

impl ShapeRow {
    /// The measurement of implementation `kernel`, if it ran.
    pub fn get(&self, kernel: Kernel) -> Option<&Measurement> {
        self.results.iter().find(|m| m.kernel == kernel)
    }
}

/// Whole-extractor throughput at one batch size.
#[derive(Clone, Debug, Serialize)]
pub struct EndToEndRow {
    /// Architecture name.
    pub arch: String,
    /// Images per run.
    pub batch: usize,
    /// Multiply-accumulates per image through the extractor.
    pub macs_per_image: u64,
    /// Which network on which implementation.
    pub runs: Run,
    /// How `stats` was timed (wall: upload + compute + read-back).
    pub timer: String,
    /// Time per batch; None when the row failed (see `error`).
    pub stats: Option<Stats>,
    /// `batch` / median time per batch.
    pub images_per_s: Option<f64>,
    /// The binary row this float row is compared with on the same device: `binary_extractor`
    /// (WGSL) for the GPU rows, `cpu_binary_extractor` for burn's flex row; None for binary rows.
    pub versus: Option<Run>,
    /// This row's time per batch / the `versus` row's (how many times faster binary is).
    pub binary_speedup: Option<f64>,
    /// Why there is no time (a build failure, a skipped batch size, …).
    pub error: Option<String>,
}

/// Which binary extractor a stage belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageOf {
    /// The WGSL extractor: one row per dispatch, each timed alone (the adapter's kernel timer).
    Gpu,
    /// The library's CPU binary path (wall time per stage).
    Cpu,
}

/// One stage of a binary extractor at one batch size (median of profiled runs).
#[derive(Clone, Debug, Serialize)]
pub struct StageRow {
    /// The extractor profiled.
    pub of: StageOf,
    /// Batch size of the profiled runs.
    pub batch: usize,
    /// Stage name, e.g. `conv1 (first layer: conv + threshold)`, `conv1 pool (packed)`.
    pub stage: String,
    /// Median seconds spent in this stage per batch.
    pub median_s: f64,
    /// Share of the summed stage times.
    pub share: f64,
}

/// The device's binary (XNOR-popcount) MAC/s peak and how it was derived.
#[derive(Clone, Debug, Serialize)]
pub struct Peak {
    /// Binary MAC/s; None when an input (SMs, clock) is unknown.
    pub binary_macs_per_s: Option<f64>,
    /// The formula, in words.
    pub formula: String,
    /// The formula's inputs by name (cores, clock_mhz, …).
    pub inputs: BTreeMap<String, f64>,
    /// Where the inputs and constants come from.
    pub source: String,
}

/// A whole `bnn bench` run: what ran where, every row, and the notes (serialised as the JSON
/// report).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `bnn bench` and the crate version.
    pub tool: String,
    /// The adapter the GPU rows ran on.
    pub device: DeviceInfo,
    /// Timer of the kernel rows: GPU timestamp queries or synchronized wall time.
    pub timer: String,
    /// `--suite`, lowercase.
    pub suite: String,
    /// Batch of the per-layer shapes.
    pub batch: usize,
    /// Warm-up, repeats and per-case budget of the kernel rows.
    pub plan: Plan,
    /// Threads of the CPU binary path.
    pub cpu_threads: usize,
    /// The adapter's binary MAC/s peak.
    pub peak: Peak,
    /// The library's CPU binary path's peak (the `cpu_xnor` rows), when CPU rows ran.
    pub cpu_peak: Option<Peak>,
    /// The instruction set of the CPU binary path (`avx512`, `avx2`, `popcnt`, `portable`).
    pub cpu_isa: String,
    /// Per-shape rows.
    pub shapes: Vec<ShapeRow>,
    /// End-to-end rows.
    pub extractor: Vec<EndToEndRow>,
    /// Where the binary extractors' time goes, per stage (GPU: per dispatch; CPU: per stage).
    pub stages: Vec<StageRow>,
    /// Caveats printed under the table (skipped rows, what the columns mean).
    pub notes: Vec<String>,
    /// Wall time of the whole run, seconds.
    pub total_s: f64,
}

fn ms(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| {
        let v = s * 1e3;
        if v >= 100.0 {
            format!("{v:.0}")
        } else if v >= 1.0 {
            format!("{v:.2}")
        } else {
            format!("{v:.3}")
        }
    })
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| {
        if r >= 1.0 {
            format!("{r:.1}×")
        } else {
            format!("{r:.2}×")
        }
    })
}

impl Report {
    /// The human table: one line per shape, then the end-to-end rows and the notes.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let cpu = self
            .shapes
            .iter()
            .any(|r| r.get(Kernel::CpuXnor).is_some() || r.get(Kernel::BurnFlex).is_some());
        let f16 = self
            .shapes
            .iter()
            .any(|r| r.get(Kernel::FloatF16).is_some());
        self.write_header(&mut s, cpu, f16);
        for r in &self.shapes {
            write_shape_row(&mut s, r, cpu, f16);
        }
        self.write_not_measured(&mut s);
        self.write_end_to_end(&mut s);
        self.write_stages(&mut s);
        self.write_footer(&mut s);
        s
    }

    /// The title line (device, timer, plan) and the per-shape column headers.
    fn write_header(&self, s: &mut String, cpu: bool, f16: bool) {
        let d = &self.device;
        let _ = writeln!(
            s,
            "bnn bench on {} ({}, {}, {}); kernel timer: {}; warm-up {}, up to {} timed runs \
             (≤ {:.1} s) per case, median shown",
            d.name,
            d.backend,
            d.device_type,
            d.driver,
            self.timer,
            self.plan.warmup,
            self.plan.repeats,
            self.plan.budget_s
        );
        let _ = write!(
            s,
            "{:<17} {:<25} {:>9} {:>9} {:>9}",
            "source", "shape", "xnor ms", "fused ms", "float ms"
        );
        if f16 {
            let _ = write!(s, " {:>9}", "f16 ms");
        }
        let _ = write!(s, " {:>9} {:>9}", "burn ms", "xnor wall");
        let _ = write!(s, " {:>8} {:>8}", "x float", "x fused");
        if f16 {
            let _ = write!(s, " {:>8}", "x f16");
        }
        let _ = write!(s, " {:>8} {:>9} {:>7}", "x burn", "GMAC/s", "% peak");
        if cpu {
            let _ = write!(
                s,
                " {:>9} {:>9} {:>7} {:>9} {:>7}",
                "cpu ms", "flex ms", "x flex", "cpu GMAC", "% cpu"
            );
        }
        let _ = writeln!(s);
    }

    /// The shape-row measurements that failed, one line each.
    fn write_not_measured(&self, s: &mut String) {
        let errors: Vec<String> = self
            .shapes
            .iter()
            .flat_map(|r| {
                r.results.iter().filter_map(move |m| {
                    m.error
                        .as_ref()
                        .map(|e| format!("{} {}: {e}", r.id, m.kernel))
                })
            })
            .collect();
        for e in errors {
            let _ = writeln!(s, "  not measured: {e}");
        }
    }

    /// The end-to-end rows (images/s, and each against its binary row), if any.
    fn write_end_to_end(&self, s: &mut String) {
        if !self.extractor.is_empty() {
            let _ = writeln!(s, "\nend to end (images/s, {}):", self.extractor[0].timer);
            let _ = writeln!(
                s,
                "{:<8} {:>5} {:<26} {:>10} {:>12} {:>9}  = this / binary row",
                "arch", "batch", "runs", "ms/batch", "images/s", "binary"
            );
            for e in &self.extractor {
                let binary = e.versus.as_ref().and_then(|v| {
                    self.extractor
                        .iter()
                        .find(|b| b.batch == e.batch && b.runs == *v)
                });
                let _ = writeln!(
                    s,
                    "{:<8} {:>5} {:<26} {:>10} {:>12} {:>9}  {}",
                    e.arch,
                    e.batch,
                    e.runs,
                    ms(e.stats.map(|s| s.median_s)),
                    e.images_per_s.map_or("-".into(), |v| format!("{v:.1}")),
                    ratio(e.binary_speedup),
                    match (binary, e.binary_speedup) {
                        (Some(b), Some(_)) => format!(
                            "{} ms / {} ms ({})",
                            ms(e.stats.map(|s| s.median_s)),
                            ms(b.stats.map(|s| s.median_s)),
                            b.runs
                        ),
                        _ => String::new(),
                    }
                );
                if let Some(err) = &e.error {
                    let _ = writeln!(s, "  not measured: {err}");
                }
            }
        }
    }

    /// The per-stage tables of the binary extractors (GPU by dispatch, CPU by stage).
    fn write_stages(&self, s: &mut String) {
        for of in [StageOf::Gpu, StageOf::Cpu] {
            let rows: Vec<&StageRow> = self.stages.iter().filter(|r| r.of == of).collect();
            if rows.is_empty() {
                continue;
            }
            let title = match of {
                StageOf::Gpu => format!(
                    "WGSL binary extractor by dispatch ({}, each dispatch timed alone; median of \
                     profiled runs):",
                    self.timer
                ),
                StageOf::Cpu => format!(
                    "CPU binary extractor by stage ({}, {} threads; median of profiled runs):",
                    self.cpu_isa, self.cpu_threads
                ),
            };
            let _ = writeln!(s, "\n{title}");
            let _ = writeln!(
                s,
                "{:>5} {:<34} {:>9} {:>7}",
                "batch", "stage", "ms", "share"
            );
            for r in rows {
                let _ = writeln!(
                    s,
                    "{:>5} {:<34} {:>9} {:>6.1}%",
                    r.batch,
                    r.stage,
                    ms(Some(r.median_s)),
                    r.share * 100.0
                );
            }
        }
    }

    /// The peaks, the notes and the total time.
    fn write_footer(&self, s: &mut String) {
        let peak_line = |name: &str, p: &Peak| {
            format!(
                "{name}: {} = {}  [{}]",
                p.binary_macs_per_s.map_or("unknown".into(), |v| format!(
                    "{:.1} G binary MAC/s",
                    v / 1e9
                )),
                p.formula,
                p.inputs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let _ = writeln!(s, "\n{}", peak_line("binary peak", &self.peak));
        if let Some(p) = &self.cpu_peak {
            let _ = writeln!(s, "{}", peak_line("CPU path peak", p));
            let _ = writeln!(s, "  ({})", p.source);
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "total {:.1} s", self.total_s);
    }
}

/// One shape's line of the table: its times, speed-ups, throughput and, with `cpu`, the CPU path's.
fn write_shape_row(s: &mut String, r: &ShapeRow, cpu: bool, f16: bool) {
    let t = |k: Kernel| r.get(k).and_then(|m| m.median_s());
    let _ = write!(
        s,
        "{:<17} {:<25} {:>9} {:>9} {:>9}",
        r.source,
        r.id,
        ms(t(Kernel::XnorDot)),
        ms(t(Kernel::XnorBits)),
        ms(t(Kernel::FloatWgsl)),
    );
    if f16 {
        let _ = write!(s, " {:>9}", ms(t(Kernel::FloatF16)));
    }
    let _ = write!(
        s,
        " {:>9} {:>9}",
        ms(t(Kernel::BurnWgpu)),
        ms(r.get(Kernel::XnorDot).and_then(|m| m.wall_s()))
    );
    let gmacs = |k: Kernel| {
        r.get(k)
            .and_then(|m| m.macs_per_s)
            .map_or("-".into(), |v| format!("{:.1}", v / 1e9))
    };
    let percent = |f: Option<f64>| f.map_or("-".into(), |f| format!("{:.1}%", f * 100.0));
    let _ = write!(
        s,
        " {:>8} {:>8}",
        ratio(r.speedup_vs_float),
        ratio(r.speedup_fused_vs_float)
    );
    if f16 {
        let _ = write!(s, " {:>8}", ratio(r.speedup_vs_f16));
    }
    let _ = write!(
        s,
        " {:>8} {:>9} {:>7}",
        ratio(r.speedup_vs_burn),
        gmacs(Kernel::XnorDot),
        percent(r.peak_fraction)
    );
    if cpu {
        let _ = write!(
            s,
            " {:>9} {:>9} {:>7} {:>9} {:>7}",
            ms(t(Kernel::CpuXnor)),
            ms(t(Kernel::BurnFlex)),
            ratio(r.cpu_speedup_vs_flex),
            gmacs(Kernel::CpuXnor),
            percent(r.cpu_peak_fraction)
        );
    }
    let _ = writeln!(s);
}
