//! The device's binary (XNOR + popcount) MAC/s peak, derived from a few inputs that are printed
//! with it, so the reader can check the arithmetic:
//!
//! * CPU adapters (lavapipe/llvmpipe): `cores × (SIMD bits / 32) × clock × 32 / ops per word`, one
//!   vector instruction per cycle per core, each 32-bit lane handling one packed word (32 binary
//!   MACs) in `ops per word` instructions: XOR, popcount, accumulate. AVX2 has no vector popcount
//!   (LLVM emulates it with nibble table lookups, ~10 instructions), so 12 per word; with
//!   AVX-512 VPOPCNTDQ, 3.
//! * The library's CPU path ([`cpu_path_peak`]): `cores × clock × vector_bits × issue_per_cycle /
//!   ops_per_word` for the instruction set it runs. AVX-512: `vpxorq`, `vpopcntq`, `vpaddq` per
//!   512-bit word (3), two 512-bit ops per cycle (Zen 4's four 256-bit pipes pair up; Intel server
//!   cores fuse ports 0+1 and have port 5). AVX2 has no vector popcount: XOR, two ANDs, a shift,
//!   two `vpshufb` lookups and a byte add per 256-bit word (7; the `vpsadbw` every 31 words is
//!   left out), three vector ops per cycle. Scalar `popcnt`: XOR, POPCNT, ADD per 64-bit word,
//!   bound by one POPCNT per cycle on Intel (so 3 ops at 3 per cycle). Portable code: the
//!   compiler vectorises `count_ones` over 128-bit registers (SSE2 on x86-64, NEON on aarch64)
//!   with a shift-and-mask popcount, about 12 ops per register at 3 per cycle. The clock is the nominal one the
//!   kernel reports; turbo can push a measured fraction above what the formula assumes.
//! * NVIDIA GPUs: `SMs × popc per SM per clock × clock × 32`, with 16 32-bit `popc` per SM per
//!   clock (CUDA C Programming Guide, arithmetic instruction throughput, compute capability 5.x
//!   to 9.0; XOR runs at 64 and is not the bound). wgpu reports neither SMs nor clock, so they come
//!   from a table of known boards or from `--peak-sms` / `--peak-clock-mhz`.

use std::collections::BTreeMap;

use super::report::Peak;

/// User overrides of the GPU inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeakOverrides {
    /// Streaming multiprocessors (`--peak-sms`).
    pub sms: Option<f64>,
    /// Clock in MHz (`--peak-clock-mhz`); on CPU adapters and the CPU path it replaces the detected
    /// CPU clock.
    pub clock_mhz: Option<f64>,
}

fn cpu_clock_mhz() -> Option<f64> {
    let max = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|khz| khz / 1e3);
    max.or_else(|| {
        std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
            s.lines()
                .filter(|l| l.starts_with("cpu MHz"))
                .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
                .reduce(f64::max)
        })
    })
}

fn cpu_has(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == flag))
    })
}

/// The peak of the library's CPU binary path with `threads` threads and kernels `isa`.
pub fn cpu_path_peak(isa: crate::cpu::Isa, threads: usize, clock_mhz: Option<f64>) -> Peak {
    use crate::cpu::Isa;
    let (ops, issue) = match isa {
        Isa::Avx512 => (3.0, 2.0),
        Isa::Avx2 => (7.0, 3.0),
        Isa::Popcnt => (3.0, 3.0),
        Isa::Portable => (12.0, 3.0),
    };
    let bits = isa.vector_bits() as f64;
    let cores = (threads as f64).min(crate::cpu::default_threads() as f64);
    let clock = clock_mhz.or_else(cpu_clock_mhz);
    let mut inputs = BTreeMap::new();
    inputs.insert("cores".into(), cores);
    inputs.insert("vector_bits".into(), bits);
    inputs.insert("ops_per_word".into(), ops);
    inputs.insert("issue_per_cycle".into(), issue);
    if let Some(c) = clock {
        inputs.insert("clock_mhz".into(), c);
    }
    Peak {
        binary_macs_per_s: clock.map(|c| cores * c * 1e6 * bits * issue / ops),
        formula: "cores × clock × vector_bits × issue_per_cycle / ops_per_word".into(),
        inputs,
        source: format!(
            "CPU path with {isa} kernels: ops and issue per instruction set (bench/peak.rs), \
             cores = threads used (at most the machine's), nominal clock from cpufreq or \
             /proc/cpuinfo"
        ),
    }
}

/// The peak for the adapter described by `info`.
pub fn peak(info: &wgpu::AdapterInfo, overrides: PeakOverrides) -> Peak {
    let mut inputs = BTreeMap::new();
    if info.device_type == wgpu::DeviceType::Cpu {
        // "llvmpipe (LLVM 15.0.6, 256 bits)"
        let simd = info
            .name
            .split(['(', ',', ')'])
            .find_map(|p| p.trim().strip_suffix(" bits")?.trim().parse::<f64>().ok())
            .unwrap_or(128.0);
        let cores = std::env::var("LP_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|&n| n > 0.0)
            .unwrap_or(crate::cpu::default_threads() as f64);
        let ops = if cpu_has("avx512_vpopcntdq") {
            3.0
        } else {
            12.0
        };
        let clock = overrides.clock_mhz.or_else(cpu_clock_mhz);
        inputs.insert("cores".into(), cores);
        inputs.insert("simd_bits".into(), simd);
        inputs.insert("ops_per_word".into(), ops);
        if let Some(c) = clock {
            inputs.insert("clock_mhz".into(), c);
        }
        return Peak {
            binary_macs_per_s: clock.map(|c| cores * (simd / 32.0) * c * 1e6 * 32.0 / ops),
            formula: "cores × (simd_bits/32) × clock × 32 / ops_per_word".into(),
            inputs,
            source: "CPU adapter: cores from LP_NUM_THREADS or the machine, SIMD width from the \
                     llvmpipe name, clock from cpufreq or /proc/cpuinfo"
                .into(),
        };
    }
    let known = crate::gpu::known_board(info);
    let sms = overrides.sms.or(known.map(|k| k.1 as f64));
    let clock = overrides.clock_mhz.or(known.map(|k| k.2));
    let per_sm = 16.0;
    inputs.insert("popc_per_sm_per_clock".into(), per_sm);
    if let Some(s) = sms {
        inputs.insert("sms".into(), s);
    }
    if let Some(c) = clock {
        inputs.insert("clock_mhz".into(), c);
    }
    Peak {
        binary_macs_per_s: sms.zip(clock).map(|(s, c)| s * per_sm * c * 1e6 * 32.0),
        formula: "sms × popc_per_sm_per_clock × clock × 32".into(),
        inputs,
        source: match (
            known,
            overrides.sms.is_some() || overrides.clock_mhz.is_some(),
        ) {
            (_, true) => "`peak_sms` / `peak_clock_mhz`".into(),
            (Some(k), false) => format!("table of known boards: '{}' (boost clock)", k.0),
            (None, false) => {
                "unknown board: pass `peak_sms` and `peak_clock_mhz` (NVIDIA formula)".into()
            }
        },
    }
}
