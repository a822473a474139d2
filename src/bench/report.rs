//! The benchmark report: serialisable rows (the JSON for machines), the device's popcount peak
//! with the inputs it was derived from, and the printed table (for people).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::shapes::ShapeInfo;
use super::timing::{Plan, Stats};

/// The adapter the run used.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub vendor: u32,
    /// Whether GPU times come from timestamp queries (else synchronized wall time).
    pub timestamps: bool,
}

/// One implementation's result on one shape.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// `xnor_dot`, `xnor_bits`, `float_wgsl`, `burn_wgpu`, `burn_flex` or `cpu_xnor`.
    pub kernel: String,
    /// `gpu-timestamp` or `wall` (synchronized: submit → completion, or host time on the CPU).
    pub timer: String,
    pub stats: Option<Stats>,
    /// Synchronized wall time of our GPU kernels too (what burn's rows are compared against).
    pub wall: Option<Stats>,
    pub macs_per_s: Option<f64>,
    /// Weights + input activations + output bytes the kernel reads and writes once.
    pub bytes: u64,
    /// Why there is no time (the device's limits, a burn error, …).
    pub error: Option<String>,
}

impl Measurement {
    pub fn median_s(&self) -> Option<f64> {
        self.stats.map(|s| s.median_s)
    }
    pub fn wall_s(&self) -> Option<f64> {
        self.wall.or(self.stats).map(|s| s.median_s)
    }
}

/// All implementations on one shape, and the ratios the targets are stated in.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeRow {
    pub suite: String,
    pub id: String,
    pub source: String,
    pub shape: ShapeInfo,
    pub results: Vec<Measurement>,
    /// float_wgsl time / xnor_dot time (same timer): how many times faster the binary conv is.
    pub speedup_vs_float: Option<f64>,
    /// float_wgsl / xnor_bits (conv + threshold + packing fused).
    pub speedup_fused_vs_float: Option<f64>,
    /// burn_wgpu / xnor_dot, both synchronized wall time.
    pub speedup_vs_burn: Option<f64>,
    /// burn_flex / cpu_xnor (CPU rows).
    pub cpu_speedup_vs_flex: Option<f64>,
    /// xnor_dot MAC/s / the device's binary peak.
    pub peak_fraction: Option<f64>,
}

impl ShapeRow {
    pub fn get(&self, kernel: &str) -> Option<&Measurement> {
        self.results.iter().find(|m| m.kernel == kernel)
    }
}

/// Whole-extractor throughput at one batch size.
#[derive(Clone, Debug, Serialize)]
pub struct EndToEndRow {
    pub arch: String,
    pub batch: usize,
    pub macs_per_image: u64,
    /// `binary_extractor`, `float_twin_wgsl`, `burn_float_model_wgpu`, `burn_float_model_flex`.
    pub runs: String,
    pub timer: String,
    pub stats: Option<Stats>,
    pub images_per_s: Option<f64>,
    /// This row's images/s relative to the binary extractor's (binary / this), or None for the
    /// binary row itself.
    pub binary_speedup: Option<f64>,
    pub error: Option<String>,
}

/// The device's binary (XNOR-popcount) MAC/s peak and how it was derived.
#[derive(Clone, Debug, Serialize)]
pub struct Peak {
    pub binary_macs_per_s: Option<f64>,
    pub formula: String,
    pub inputs: BTreeMap<String, f64>,
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: String,
    pub device: DeviceInfo,
    pub timer: String,
    pub suite: String,
    pub batch: usize,
    pub plan: Plan,
    pub cpu_threads: usize,
    pub peak: Peak,
    pub shapes: Vec<ShapeRow>,
    pub extractor: Vec<EndToEndRow>,
    pub notes: Vec<String>,
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
        let cpu = self
            .shapes
            .iter()
            .any(|r| r.get("cpu_xnor").is_some() || r.get("burn_flex").is_some());
        let _ = write!(
            s,
            "{:<17} {:<25} {:>9} {:>9} {:>9} {:>9}",
            "source", "shape", "xnor ms", "fused ms", "float ms", "burn ms"
        );
        if cpu {
            let _ = write!(s, " {:>9} {:>9}", "cpuxnor", "flex ms");
        }
        let _ = writeln!(
            s,
            " {:>8} {:>8} {:>8} {:>9} {:>7}",
            "x float", "x fused", "x burn", "GMAC/s", "% peak"
        );
        for r in &self.shapes {
            let t = |k: &str| r.get(k).and_then(|m| m.median_s());
            let _ = write!(
                s,
                "{:<17} {:<25} {:>9} {:>9} {:>9} {:>9}",
                r.source,
                r.id,
                ms(t("xnor_dot")),
                ms(t("xnor_bits")),
                ms(t("float_wgsl")),
                ms(t("burn_wgpu"))
            );
            if cpu {
                let _ = write!(s, " {:>9} {:>9}", ms(t("cpu_xnor")), ms(t("burn_flex")));
            }
            let gmacs = r
                .get("xnor_dot")
                .and_then(|m| m.macs_per_s)
                .map_or("-".into(), |v| format!("{:.1}", v / 1e9));
            let _ = writeln!(
                s,
                " {:>8} {:>8} {:>8} {:>9} {:>7}",
                ratio(r.speedup_vs_float),
                ratio(r.speedup_fused_vs_float),
                ratio(r.speedup_vs_burn),
                gmacs,
                r.peak_fraction
                    .map_or("-".into(), |f| format!("{:.1}%", f * 100.0))
            );
        }
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
        if !self.extractor.is_empty() {
            let _ = writeln!(s, "\nend to end (images/s, {}):", self.extractor[0].timer);
            let _ = writeln!(
                s,
                "{:<8} {:>5} {:<26} {:>10} {:>12} {:>16}",
                "arch", "batch", "runs", "ms/batch", "images/s", "binary speedup"
            );
            for e in &self.extractor {
                let _ = writeln!(
                    s,
                    "{:<8} {:>5} {:<26} {:>10} {:>12} {:>16}",
                    e.arch,
                    e.batch,
                    e.runs,
                    ms(e.stats.map(|s| s.median_s)),
                    e.images_per_s.map_or("-".into(), |v| format!("{v:.1}")),
                    ratio(e.binary_speedup)
                );
                if let Some(err) = &e.error {
                    let _ = writeln!(s, "  not measured: {err}");
                }
            }
        }
        let p = &self.peak;
        let _ = writeln!(
            s,
            "\nbinary peak: {} = {}  [{}]",
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
        );
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(s, "total {:.1} s", self.total_s);
        s
    }
}
