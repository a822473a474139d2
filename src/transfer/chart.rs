//! The chart of a transfer run: test top-1 and top-5 of every row (backbone × cut/head, and the
//! scratch baseline) as bars, one colour per backbone (SVG through plotters' SVG backend).

use plotters::prelude::*;

use crate::error::{Error, Result};

/// One bar group: a row of the results table.
#[derive(Debug)]
pub struct Bar {
    /// Backbone name (picks the colour).
    pub backbone: String,
    /// The row's label: cut and head, or `retrain k`.
    pub label: String,
    /// Test top-1, a fraction.
    pub top1: f64,
    /// Test top-5, a fraction.
    pub top5: f64,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Shape(format!("chart: {e}"))
}

/// The SVG text: solid bars top-1, light bars top-5, in percent.
pub fn svg(title: &str, bars: &[Bar]) -> Result<String> {
    let mut backbones: Vec<&str> = Vec::new();
    for b in bars {
        if !backbones.contains(&b.backbone.as_str()) {
            backbones.push(&b.backbone);
        }
    }
    let n = bars.len().max(1);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, ((200 + 70 * n).max(640) as u32, 480))
            .into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let labels: Vec<String> = bars
            .iter()
            .map(|b| format!("{} {}", b.backbone, b.label))
            .collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(150)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..100f64)
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
            .y_desc("test accuracy, % (solid: top-1, light: top-5)")
            .draw()
            .map_err(plot_err)?;
        for (k, name) in backbones.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let mine: Vec<(usize, &Bar)> = bars
                .iter()
                .enumerate()
                .filter(|(_, b)| b.backbone == *name)
                .collect();
            chart
                .draw_series(mine.iter().map(|&(i, b)| {
                    Rectangle::new(
                        [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, 100.0 * b.top5)],
                        color.mix(0.3).filled(),
                    )
                }))
                .map_err(plot_err)?;
            chart
                .draw_series(mine.iter().map(|&(i, b)| {
                    Rectangle::new(
                        [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, 100.0 * b.top1)],
                        color.filled(),
                    )
                }))
                .map_err(plot_err)?
                .label(name.to_string())
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
