//! `bnn bench --suite quick` end to end on the default adapter: the JSON parses, has one row per
//! shape of the quick suite with a positive time for every kernel that ran, the ratios follow
//! from the times, and the chart is an SVG. Skips (with the reason) when no adapter exists.

use crate::common;

use std::process::Command;

#[test]
fn quick_suite_writes_a_consistent_report() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("bnn-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("bench.json"), dir.join("bench.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_bnn"))
        .args(["bench", "--suite", "quick", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bnn bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["device"]["name"], gpu.info.name.as_str());
    assert_eq!(report["device"]["timestamps"], gpu.timestamps);
    let shapes = report["shapes"].as_array().unwrap();
    let ids: Vec<&str> = shapes.iter().map(|s| s["id"].as_str().unwrap()).collect();
    // The quick suite: two convs and one GEMM, each once.
    assert_eq!(ids.len(), 3, "{ids:?}");
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), 3);
    for s in shapes {
        let results = s["results"].as_array().unwrap();
        let kernels: Vec<&str> = results
            .iter()
            .map(|m| m["kernel"].as_str().unwrap())
            .collect();
        for k in ["xnor_dot", "xnor_bits", "float_wgsl"] {
            assert!(kernels.contains(&k), "{kernels:?}");
        }
        let time = |k: &str| -> f64 {
            let m = results.iter().find(|m| m["kernel"] == k).unwrap();
            assert!(m["error"].is_null(), "{k}: {}", m["error"]);
            m["stats"]["median_s"].as_f64().unwrap()
        };
        for k in &kernels {
            let m = results.iter().find(|m| m["kernel"] == *k).unwrap();
            if m["error"].is_null() {
                let t = m["stats"]["median_s"].as_f64().unwrap();
                assert!(t > 0.0 && t.is_finite(), "{k}: {t}");
                assert!(m["stats"]["runs"].as_u64().unwrap() >= 1);
                assert!(m["bytes"].as_u64().unwrap() > 0);
            }
        }
        let ratio = s["speedup_vs_float"].as_f64().unwrap();
        let expected = time("float_wgsl") / time("xnor_dot");
        assert!(
            (ratio - expected).abs() <= 1e-9 * expected,
            "{ratio} vs {expected}"
        );
        let macs = s["shape"]["macs"].as_u64().unwrap() as f64;
        let m = results.iter().find(|m| m["kernel"] == "xnor_dot").unwrap();
        let rate = m["macs_per_s"].as_f64().unwrap();
        assert!((rate - macs / time("xnor_dot")).abs() <= 1e-6 * rate);
    }
    let e2e = report["extractor"].as_array().unwrap();
    let binary = e2e
        .iter()
        .find(|r| r["runs"] == "binary_extractor")
        .unwrap();
    assert!(binary["images_per_s"].as_f64().unwrap() > 0.0);
    let twin = e2e.iter().find(|r| r["runs"] == "float_twin_wgsl").unwrap();
    assert!(twin["images_per_s"].as_f64().unwrap() > 0.0);
    // EfficientNet-Lite0 beside the CPU binary path (a CPU adapter has CPU rows): timed when its
    // weights are there, else a row that says where to get them.
    if let Some(lite0) = e2e.iter().find(|r| r["runs"] == "efficientnet_lite0_flex") {
        assert_eq!(lite0["versus"], "cpu_binary_extractor");
        if common::real_teacher().is_some() {
            assert!(lite0["error"].is_null(), "{lite0}");
            assert!(lite0["binary_speedup"].as_f64().unwrap() > 1.0, "{lite0}");
        } else {
            let why = lite0["error"].as_str().unwrap();
            assert!(why.contains("fetch-teacher"), "{why}");
        }
    } else {
        // burn's rows (Lite0 among them) exist only with the `train` feature.
        assert!(
            !cfg!(feature = "train") || gpu.info.device_type != wgpu::DeviceType::Cpu,
            "a CPU adapter has the Lite0 row"
        );
    }
    assert!(
        stdout.contains("timer"),
        "the table names its timer:\n{stdout}"
    );
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("xnor_dot"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn chart_of_a_report_without_shapes_is_still_an_svg() {
    let Some(gpu) = common::gpu() else {
        return;
    };
    use bnn_transfer::bench::{Config, Suite, chart};
    let mut cfg = Config::defaults(gpu, Suite::Extractor);
    cfg.burn = false;
    cfg.cpu_rows = false;
    cfg.e2e_batches = vec![1];
    cfg.e2e_arch = bnn_transfer::Arch::mini(10);
    let report = bnn_transfer::bench::run(gpu, &cfg, &bnn_transfer::progress::Silent).unwrap();
    assert!(report.shapes.is_empty());
    assert_eq!(report.extractor.len(), 2);
    assert!(
        report
            .extractor
            .iter()
            .all(|r| r.images_per_s.unwrap() > 0.0)
    );
    let svg = chart::svg(&report).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn the_end_to_end_rows_run_a_bireal_extractor_on_request() {
    if common::gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("bnn-bench-bireal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_bnn"))
        .args([
            "bench",
            "--suite",
            "extractor",
            "--e2e-arch",
            "mini-bireal",
            "--e2e-batch",
            "2",
            "--repeats",
            "1",
            "--no-burn",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["extractor"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["arch"] == "mini-bireal"), "{rows:?}");
    let binary = rows
        .iter()
        .find(|r| r["runs"] == "binary_extractor")
        .unwrap();
    assert!(binary["error"].is_null(), "{binary}");
    // The profile shows the real layers' own dispatches.
    let stages = report["stages"].as_array().unwrap();
    assert!(
        stages
            .iter()
            .any(|s| s["stage"].as_str().unwrap().contains("real_epilogue")),
        "{stages:?}"
    );
    // An unknown architecture is refused naming the flag.
    let bad = Command::new(env!("CARGO_BIN_EXE_bnn"))
        .args(["bench", "--suite", "quick", "--e2e-arch", "resnet"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("--e2e-arch resnet"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
