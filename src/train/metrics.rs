//! Per-epoch metrics (`metrics.csv`) and the training-curve plot (`curves.svg`, drawn by hand: two
//! panels, loss and accuracy against epochs).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One row of `metrics.csv`. Accuracies are fractions in [0, 1]; NaN where there is no val split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Mean training cross-entropy over the epoch's images (taken as the weights changed).
    pub train_loss: f64,
    /// Training top-1 over the epoch's images.
    pub train_acc: f64,
    /// Validation cross-entropy.
    pub val_loss: f64,
    /// Validation top-1 accuracy.
    pub val_top1: f64,
    /// Validation top-5 accuracy.
    pub val_top5: f64,
    /// Wall time of the epoch (training and validation), seconds.
    pub time_s: f64,
    /// Training throughput over the epoch, images per second.
    pub images_per_s: f64,
}

/// A point of the running training curve: mean loss and accuracy over a window of steps, at a
/// fractional epoch (1.0 = end of the first epoch).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Fractional epoch at the end of the window.
    pub epoch: f64,
    /// Mean training loss over the window.
    pub loss: f64,
    /// Training top-1 over the window.
    pub acc: f64,
}

/// One chart panel: title, y maximum, and its series (name, colour, points, dashed).
type Panel<'a> = (&'a str, f64, Vec<(&'a str, &'a str, Vec<(f64, f64)>, bool)>);

/// The whole `metrics.csv` for `history` (header: the field names of [`EpochMetrics`]).
pub fn csv(history: &[EpochMetrics]) -> crate::error::Result<String> {
    crate::csv_file::to_string(history)
}

/// Width and height of the training-curve SVG.
const W: f64 = 900.0;
const H: f64 = 360.0;

/// An SVG with two panels side by side: loss (train curve, train per epoch, val per epoch) and
/// accuracy (train curve, val top-1, val top-5), against epochs.
pub fn svg(title: &str, history: &[EpochMetrics], curve: &[CurvePoint]) -> String {
    let x_max = history
        .iter()
        .map(|m| m.epoch as f64)
        .chain(curve.iter().map(|p| p.epoch))
        .fold(1.0f64, f64::max);
    let panels = panels(history, curve);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="16" text-anchor="middle" font-size="13">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        write_panel(&mut s, i, panel, x_max);
    }
    s.push_str("</svg>\n");
    s
}

/// The two panels: loss (y up to the largest finite loss) and accuracy, each with its series
/// (label, colour, points, whether the points are drawn as dots).
fn panels(history: &[EpochMetrics], curve: &[CurvePoint]) -> [Panel<'static>; 2] {
    let loss_max = history
        .iter()
        .flat_map(|m| [m.train_loss, m.val_loss])
        .chain(curve.iter().map(|p| p.loss))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let epochs = |f: fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|m| (m.epoch as f64, f(m)))
            .filter(|p| p.1.is_finite())
            .collect()
    };
    [
        (
            "loss",
            loss_max,
            vec![
                (
                    "train (running)",
                    "#9ecae1",
                    curve.iter().map(|p| (p.epoch, p.loss)).collect(),
                    false,
                ),
                ("train", "#1f77b4", epochs(|m| m.train_loss), true),
                ("val", "#d62728", epochs(|m| m.val_loss), true),
            ],
        ),
        (
            "accuracy",
            1.0,
            vec![
                (
                    "train (running)",
                    "#9ecae1",
                    curve.iter().map(|p| (p.epoch, p.acc)).collect(),
                    false,
                ),
                ("train", "#1f77b4", epochs(|m| m.train_acc), true),
                ("val top-1", "#d62728", epochs(|m| m.val_top1), true),
                ("val top-5", "#ff7f0e", epochs(|m| m.val_top5), true),
            ],
        ),
    ]
}

/// Panel `i` (0: left) of the SVG: frame, grid, axis labels, the series and their legend.
fn write_panel(s: &mut String, i: usize, (name, y_max, series): &Panel, x_max: f64) {
    let (x0, y0, pw, ph) = (55.0 + i as f64 * W / 2.0, 40.0, W / 2.0 - 85.0, H - 85.0);
    let px = |x: f64| x0 + x / x_max * pw;
    let py = |y: f64| y0 + ph - (y / y_max).clamp(0.0, 1.0) * ph;
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x0}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            x0 + pw,
            x0 - 4.0,
            py(v) + 4.0,
            y = py(v)
        );
    }
    for k in 0..=4 {
        let v = x_max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.1}</text>"#,
            px(v),
            y0 + ph + 14.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">epoch</text>"#,
        x0 + pw / 2.0,
        y0 + ph + 30.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{name}</text>"#,
        x0 + pw / 2.0,
        y0 - 6.0
    );
    for (j, (label, color, points, dots)) in series.iter().enumerate() {
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
        }
        if *dots {
            for &(x, y) in points {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                    px(x),
                    py(y)
                );
            }
        }
        let ly = y0 + ph + 48.0;
        let lx = x0 + j as f64 * 95.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{ly:.1}">{label}</text>"#,
            ly - 9.0,
            lx + 14.0
        );
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_svg() {
        let m = |epoch, loss| EpochMetrics {
            epoch,
            lr: 1e-3,
            train_loss: loss,
            train_acc: 0.5,
            val_loss: f64::NAN,
            val_top1: 0.25,
            val_top5: 0.75,
            time_s: 12.0,
            images_per_s: 80.0,
        };
        let h = vec![m(1, 2.0), m(2, 1.5)];
        let c = csv(&h).unwrap();
        assert_eq!(c.lines().count(), 3);
        assert!(c.starts_with(
            "epoch,lr,train_loss,train_acc,val_loss,val_top1,val_top5,time_s,images_per_s\n"
        ));
        assert_eq!(
            c.lines().nth(2).unwrap(),
            "2,0.001,1.5,0.5,NaN,0.25,0.75,12.0,80.0"
        );
        let curve = [CurvePoint {
            epoch: 0.5,
            loss: 2.5,
            acc: 0.1,
        }];
        let s = svg("a <b>", &h, &curve);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("a &lt;b&gt;") && s.contains("<polyline"));
    }
}
