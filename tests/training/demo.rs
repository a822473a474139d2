//! `bnn demo` with no arguments beyond an output folder: on the wgpu adapter, and on a machine
//! with no adapter at all (simulated with WGPU_ADAPTER_NAME naming none), where it must fall back
//! to the CPU binary path and say so.

#![cfg(feature = "train")]

use crate::common;

use std::path::PathBuf;
use std::process::Command;

fn demo(name: &str, env: &[(&str, &str)]) -> (String, serde_json::Value) {
    let out = std::env::temp_dir().join(format!("bnn-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_bnn"))
        .args(["demo", "--images-per-class", "6,2,4", "--out"])
        .arg(&out)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("{stdout}{stderr}");
    assert!(o.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["classes"], 8);
    assert_eq!(report["splits"][2][1], 32, "4 test images of 8 classes");
    // The generated task is seeded: the head scores 25% (8 of 32) on the adapter and on the CPU
    // path, twice chance (1/8). At least 6 of 32 leaves two images of margin and still fails a
    // head that learned nothing.
    let top1 = report["rows"][0]["test"]["top1"].as_f64().unwrap();
    assert!(
        top1 >= 6.0 / 32.0,
        "test top-1 {top1} is not above chance (0.125)"
    );
    assert!(
        PathBuf::from(report["rows"][0]["dir"].as_str().unwrap())
            .join("head.safetensors")
            .is_file()
    );
    (stdout + &stderr, report)
}

#[test]
fn demo_runs_on_the_adapter() {
    if common::gpu().is_none() {
        return;
    }
    let (_, report) = demo("gpu", &[]);
    let device = report["extractor_device"].as_str().unwrap();
    assert_eq!(report["extractor_on_cpu_path"], false, "{device}");
    assert!(!device.contains("CPU binary path"), "{device}");
}

#[test]
fn demo_falls_back_to_the_cpu_path_without_an_adapter() {
    let (text, report) = demo("cpu", &[("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere")]);
    assert!(
        text.contains("running the extractor on the CPU binary path"),
        "{text}"
    );
    assert_eq!(report["extractor_on_cpu_path"], true);
    let device = report["extractor_device"].as_str().unwrap();
    assert!(device.starts_with("the CPU binary path ("), "{device}");
}
