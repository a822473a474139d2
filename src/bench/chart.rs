//! The chart for people: per shape, the median time of every implementation as grouped bars on a
//! log scale (SVG through plotters' SVG backend only).

use super::kind::Kernel;
use std::path::Path;

use plotters::prelude::*;

use super::report::Report;
use crate::error::{Error, Result};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Shape(format!("chart: {e}"))
}

/// Draws `report` into an SVG file at `path`.
pub fn write_svg(report: &Report, path: &Path) -> Result<()> {
    let svg = svg(report)?;
    crate::atomic::write_atomic(path, svg.as_bytes())
}

/// The SVG text of the chart.
pub fn svg(report: &Report) -> Result<String> {
    let kernels: Vec<Kernel> = {
        let mut k: Vec<Kernel> = Vec::new();
        for r in &report.shapes {
            for m in &r.results {
                if m.stats.is_some() && !k.contains(&m.kernel) {
                    k.push(m.kernel);
                }
            }
        }
        k
    };
    let times: Vec<f64> = report
        .shapes
        .iter()
        .flat_map(|r| r.results.iter().filter_map(|m| m.median_s()))
        .map(|s| s * 1e3)
        .collect();
    // No timed shape (e.g. `--suite extractor`): an empty chart on a fixed, finite axis.
    let lo = if times.is_empty() {
        1e-3
    } else {
        times
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(1e-6)
    };
    let hi = times.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let n = report.shapes.len().max(1);
    let width = (160 + 90 * n) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width.max(640), 480)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let labels: Vec<String> = report.shapes.iter().map(|r| r.id.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("bnn bench: median time per shape, {}", report.device.name),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(120)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n as f64, (lo / 2.0..hi * 2.0).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.01 {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style(
                ("sans-serif", 10)
                    .into_font()
                    .transform(FontTransform::Rotate90),
            )
            .y_desc("ms (log)")
            .draw()
            .map_err(plot_err)?;
        let slot = 0.8 / kernels.len().max(1) as f64;
        for (ki, kernel) in kernels.iter().enumerate() {
            let color = COLORS[ki % COLORS.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = report
                .shapes
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let t = r.get(*kernel)?.median_s()? * 1e3;
                    let x0 = i as f64 + 0.1 + ki as f64 * slot;
                    Some(Rectangle::new(
                        [(x0, lo / 2.0), (x0 + slot * 0.9, t)],
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(plot_err)?
                .label(kernel.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(out)
}
