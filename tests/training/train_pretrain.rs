//! Pretraining end to end on the generated fixture set (`common::fixture_set`: 8 classes, 48 train /
//! 48 val images) with the 32 px `mini` network on flex: the loss goes down and val accuracy rises above
//! chance; a run stopped mid-epoch or killed (SIGKILL) and resumed ends exactly where an
//! uninterrupted run does.
#![cfg(feature = "train")]

use crate::common;
use crate::fixtures::{options, schedule, scratch};

use std::path::Path;

use std::process::Command;
use std::time::{Duration, Instant};

use bnn_transfer::model::Precision;
use bnn_transfer::train::{self, EpochMetrics, PretrainConfig, ScheduleKind, TrainState};

fn config(data: &Path, epochs: usize, kind: ScheduleKind, lr: f64) -> PretrainConfig {
    let schedule = schedule(kind, lr);
    train::new_config(data, "mini", Precision::Binary, epochs, 8, schedule, 7).unwrap()
}

fn history(out: &Path) -> Vec<EpochMetrics> {
    let (_, state): (_, TrainState) = train::checkpoint::load_state(out).unwrap();
    state.history
}

fn csv_rows(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect()
}

#[test]
fn a_few_hundred_steps_drive_the_loss_down_and_val_accuracy_above_chance() {
    let data = common::fixture_set();
    let out = scratch("train-learn");
    // 48 images / batch 8 = 6 steps per epoch: 60 epochs = 360 steps.
    let cfg = config(&data, 60, ScheduleKind::Cosine, 5e-3);
    let report = train::pretrain(cfg, &options(&out)).unwrap();
    assert_eq!(report.epochs_done, 60);
    assert!(!report.interrupted);
    let h = history(&out);
    assert_eq!(h.len(), 60);
    let first = h[0].train_loss;
    let last = h.iter().rev().take(5).map(|m| m.train_loss).sum::<f64>() / 5.0;
    eprintln!("train loss {first:.3} -> {last:.3}");
    for m in h.iter().step_by(10) {
        eprintln!(
            "epoch {}: loss {:.3} acc {:.2} val top-1 {:.2}",
            m.epoch, m.train_loss, m.train_acc, m.val_top1
        );
    }
    assert!(last < 0.5 * first, "train loss {first:.3} -> {last:.3}");
    let val = h.iter().rev().take(5).map(|m| m.val_top1).sum::<f64>() / 5.0;
    assert!(val > 0.25, "val top-1 {val:.3} is not twice chance (0.125)");
    // The files beside the checkpoint.
    assert_eq!(csv_rows(&out).len(), 60);
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["arch"]["name"], "mini");
    assert!(out.join("report.json").is_file());
    // Starting again over an existing run is refused.
    let err = train::pretrain(
        self::config(&data, 1, ScheduleKind::Constant, 1e-3),
        &options(&out),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`resume`"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

fn assert_same_run(a: &[EpochMetrics], b: &[EpochMetrics]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.epoch, y.epoch);
        assert!(
            (x.train_loss - y.train_loss).abs() < 1e-4,
            "epoch {}: {} vs {}",
            x.epoch,
            x.train_loss,
            y.train_loss
        );
        assert!((x.train_acc - y.train_acc).abs() < 1e-9);
        assert!((x.val_top1 - y.val_top1).abs() < 1e-9);
        assert!((x.lr - y.lr).abs() < 1e-12);
    }
}

#[test]
fn stopped_mid_epoch_and_resumed_equals_uninterrupted() {
    let data = common::fixture_set();
    let epochs = 4;
    let full = scratch("train-full");
    train::pretrain(
        config(&data, epochs, ScheduleKind::Cosine, 5e-3),
        &options(&full),
    )
    .unwrap();

    let part = scratch("train-part");
    let mut o = options(&part);
    o.max_steps = Some(7); // epoch 2, batch 1 of 6
    let r = train::pretrain(config(&data, epochs, ScheduleKind::Cosine, 5e-3), &o).unwrap();
    assert!(r.interrupted);
    assert_eq!(r.epochs_done, 1);
    let (_, state) = train::checkpoint::load_state(&part).unwrap();
    assert_eq!(
        (state.epochs_done, state.batches_done, state.global_step),
        (1, 1, 7)
    );
    assert_eq!(csv_rows(&part).len(), 1);
    let before = csv_rows(&part);

    let r = train::resume(&options(&part), None).unwrap();
    assert!(!r.interrupted);
    assert_eq!(r.epochs_done, epochs);
    // The rows written before the stop are rewritten from state.json byte for byte.
    assert_eq!(csv_rows(&part)[..1], before[..]);
    assert_same_run(&history(&full), &history(&part));
    let (_, state) = train::checkpoint::load_state(&part).unwrap();
    assert_eq!(state.global_step, 6 * epochs as u64);
    let _ = std::fs::remove_dir_all(&full);
    let _ = std::fs::remove_dir_all(&part);
}

#[test]
fn killed_and_resumed_continues_the_curve_to_the_same_epoch_count() {
    let data = common::fixture_set();
    let bnn = env!("CARGO_BIN_EXE_bnn");
    let epochs = 8;
    let args = |out: &Path| {
        vec![
            "pretrain".to_string(),
            "--data".into(),
            data.display().to_string(),
            "--arch".into(),
            "mini".into(),
            "--epochs".into(),
            epochs.to_string(),
            "--batch-size".into(),
            "8".into(),
            "--lr".into(),
            "0.005".into(),
            "--schedule".into(),
            "step".into(),
            "--lr-step-epochs".into(),
            "3".into(),
            "--seed".into(),
            "7".into(),
            "--device".into(),
            "cpu".into(),
            "--workers".into(),
            "1".into(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    // Uninterrupted reference.
    let full = scratch("train-kill-full");
    let status = Command::new(bnn)
        .args(args(&full))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Killed once at least two epochs are checkpointed.
    let killed = scratch("train-kill");
    let mut child = Command::new(bnn)
        .args(args(&killed))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let done = train::checkpoint::load_state(&killed)
            .map(|(_, s)| s.epochs_done)
            .unwrap_or(0);
        if done >= 2 || start.elapsed() > Duration::from_secs(120) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to save
    child.wait().unwrap();
    let done = history(&killed).len();
    assert!(done >= 2);
    eprintln!("killed after {done} checkpointed epoch(s)");

    let status = Command::new(bnn)
        .args([
            "pretrain",
            "--resume",
            "--device",
            "cpu",
            "--workers",
            "1",
            "--out",
        ])
        .arg(&killed)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (a, b) = (history(&full), history(&killed));
    assert_eq!(b.len(), epochs);
    assert_eq!(csv_rows(&killed).len(), epochs);
    assert_same_run(&a, &b);
    // Resuming with a changed setting is refused with a clear message.
    let out = Command::new(bnn)
        .args([
            "pretrain", "--resume", "--device", "cpu", "--lr", "0.1", "--out",
        ])
        .arg(&killed)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only --epochs may change"));
    let _ = std::fs::remove_dir_all(&full);
    let _ = std::fs::remove_dir_all(&killed);
}

#[test]
fn a_kill_after_the_last_checkpoint_loses_no_metrics_and_leaves_no_stray_files() {
    let data = common::fixture_set();
    let out = scratch("train-atomic");
    train::pretrain(
        config(&data, 2, ScheduleKind::Constant, 1e-3),
        &options(&out),
    )
    .unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    // The state a kill between the checkpoint swap and the metrics rewrite leaves: the last
    // checkpoint complete, a stray checkpoint.old, metrics without the last epoch, temp files of
    // interrupted atomic writes.
    let main = out.join("checkpoint");
    let old = out.join("checkpoint.old");
    std::fs::create_dir_all(&old).unwrap();
    for f in std::fs::read_dir(&main).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), old.join(f.file_name())).unwrap();
    }
    let first_row: String = metrics.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";
    std::fs::write(out.join("metrics.csv"), &first_row).unwrap();
    std::fs::write(out.join(".metrics.csv.tmp4242"), b"half").unwrap();
    std::fs::write(out.join(".report.json.tmp4243"), b"half").unwrap();

    let r = train::resume(&options(&out), None).unwrap();
    assert_eq!(r.epochs_done, 2);
    // Every epoch is back, byte for byte as the uninterrupted run wrote it (rewritten from the
    // checkpoint's state.json, which keeps every float exactly).
    let rewritten = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(rewritten, metrics);
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "checkpoint",
            "config.json",
            "curves.svg",
            "metrics.csv",
            "report.json"
        ]
    );

    // Killed between the two renames: only checkpoint.old is complete; it becomes the checkpoint.
    std::fs::rename(&main, &old).unwrap();
    std::fs::create_dir_all(&main).unwrap();
    let r = train::resume(&options(&out), None).unwrap();
    assert_eq!(r.epochs_done, 2);
    assert!(main.join("state.json").is_file() && !old.exists());
    assert_eq!(history(&out).len(), 2);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_diverged_step_is_an_error_and_a_corrupt_checkpoint_is_found_on_reading() {
    use bnn_transfer::model::{Model, ModelConfig};
    use burn::optim::AdamConfig;
    use burn::tensor::{Device, Int, Tensor, TensorData};
    // A non-finite loss stops the step before it is applied, naming the likely causes.
    let device = Device::flex().autodiff();
    let arch = bnn_transfer::Arch::mini(4);
    let model = Model::new(&ModelConfig::new(arch, Precision::Binary), &device, 1);
    let mut optimizer = AdamConfig::new().init();
    let mut px = vec![0.5f32; 2 * 3 * 32 * 32];
    px[7] = f32::NAN;
    let images = Tensor::<4>::from_data(TensorData::new(px, [2, 3, 32, 32]), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
    let err = train::pretrain::train_step(model, &mut optimizer, images, labels, 1e-3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("diverged") && err.contains("`lr`"), "{err}");
    // A learning rate no step survives is refused before anything is written.
    let data = common::fixture_set();
    let out = scratch("train-huge-lr");
    let err = train::pretrain(
        config(&data, 1, ScheduleKind::Constant, 3e38),
        &options(&out),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`lr`"), "{err}");
    assert!(!out.exists());

    // A checkpoint file changed in place (same size) is refused when read, by its sha256.
    let out = scratch("train-flipped-byte");
    train::pretrain(
        config(&data, 1, ScheduleKind::Constant, 5e-3),
        &options(&out),
    )
    .unwrap();
    let model = out.join("checkpoint").join("model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&model, &bytes).unwrap();
    let err = train::checkpoint::load_state(&out).unwrap_err().to_string();
    assert!(err.contains("sha256") && err.contains("model.bpk"), "{err}");
    let err = train::resume(&options(&out), Some(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("sha256"), "{err}");
    let _ = std::fs::remove_dir_all(out);
}

/// state.json keeps every float of the history, the curve and a partial epoch exactly (NaN too,
/// the val metrics of a set without a val split), so the `metrics.csv` a resumed run rewrites from
/// it is byte-identical to the one written before the stop.
#[test]
fn the_training_state_round_trips_its_floats_exactly() {
    // Values like a run's: means of f32 sums, 17 significant digits.
    let mut x = 0.123_456_789_f64;
    let mut next = || {
        x = (x * 3.987_654_321 + 0.1).fract();
        x * 4.0 / 3.0
    };
    let history: Vec<EpochMetrics> = (1..=200)
        .map(|epoch| EpochMetrics {
            epoch,
            lr: next() * 1e-3,
            train_loss: next() * 5.0,
            train_acc: next(),
            val_loss: if epoch % 2 == 0 { f64::NAN } else { next() },
            val_top1: if epoch % 2 == 0 { f64::NAN } else { next() },
            val_top5: next(),
            time_s: next() * 100.0,
            images_per_s: next() * 1e4,
        })
        .collect();
    let state = TrainState {
        epochs_done: history.len(),
        batches_done: 3,
        global_step: 1234,
        partial: Some(train::checkpoint::PartialEpoch {
            loss_sum: next() * 1e3,
            correct: 5,
            seen: 24,
            train_time_s: next(),
            time_s: f64::NAN,
        }),
        curve: (0..200)
            .map(|_| train::CurvePoint {
                epoch: next() * 10.0,
                loss: next(),
                acc: next(),
            })
            .collect(),
        history,
        ..TrainState::default()
    };
    // As checkpoint::save writes it and checkpoint::load_state reads it.
    let text = serde_json::to_string_pretty(&state).unwrap();
    let back: TrainState = serde_json::from_str(&text).unwrap();
    let csv = train::metrics::csv(&state.history).unwrap();
    assert_eq!(train::metrics::csv(&back.history).unwrap(), csv);
    let bits = |s: &TrainState| -> Vec<u64> {
        let p = s.partial.as_ref().unwrap();
        s.curve
            .iter()
            .flat_map(|c| [c.epoch, c.loss, c.acc])
            .chain([p.loss_sum, p.train_time_s, p.time_s])
            .map(f64::to_bits)
            .collect()
    };
    assert_eq!(bits(&back), bits(&state));
    // A state.json written before (floats as JSON numbers) still reads.
    let old = serde_json::to_string(&serde_json::json!({
        "epochs_done": 1, "batches_done": 0, "global_step": 6, "partial": null,
        "history": [{"epoch": 1, "lr": 0.001, "train_loss": 2.5, "train_acc": 0.25,
                     "val_loss": 1.5, "val_top1": 0.5, "val_top5": 1.0, "time_s": 3.0,
                     "images_per_s": 16.0}],
        "curve": [{"epoch": 0.5, "loss": 2.0, "acc": 0.125}],
        "model_bytes": 1, "optimizer_bytes": 1
    }))
    .unwrap();
    let old: TrainState = serde_json::from_str(&old).unwrap();
    assert_eq!(old.history[0].train_loss, 2.5);
    assert_eq!(old.curve[0].acc, 0.125);
}
