//! PNG plots of a concurrency sweep: throughput and P99 latency against concurrency, one
//! line per target/workload.

use std::path::Path;

use plotters::prelude::*;

/// One line of the plot: a label and (concurrency, ops/s, P99 µs) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points in concurrency order.
    pub points: Vec<(f64, f64, f64)>,
}

/// Fonts tried, in order (Debian's fonts-dejavu-core provides the first).
const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a sans-serif font with plotters, once per process.
fn register_font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "no TrueType font found (tried {}); install fonts-dejavu-core",
                    FONT_PATHS.join(", ")
                )
            })?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the font file could not be parsed".to_string())
    })
    .clone()
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws throughput (left) and P99 (right, log scale) against concurrency (log scale).
pub fn sweep_png(path: &Path, title: &str, series: &[Series]) -> Result<(), String> {
    register_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let all = || series.iter().flat_map(|s| s.points.iter());
    let max_c = all().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let max_tp = all().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let min_p99 = all().map(|p| p.2).fold(f64::MAX, f64::min).max(1.0) / 1.5;
    let max_p99 = all().map(|p| p.2).fold(10.0, f64::max) * 1.5;

    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(700);

    let mut tp = ChartBuilder::on(&left)
        .caption("throughput (ops/s)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..max_c).log_scale(), 0f64..max_tp)
        .map_err(|e| err(&e))?;
    tp.configure_mesh()
        .x_desc("concurrency")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let mut lat = ChartBuilder::on(&right)
        .caption("P99 latency (µs)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..max_c).log_scale(), (min_p99..max_p99).log_scale())
        .map_err(|e| err(&e))?;
    lat.configure_mesh()
        .x_desc("concurrency")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| err(&e))?;

    for (i, s) in series.iter().enumerate() {
        let color = COLORS.get(i % COLORS.len()).copied().unwrap_or(BLACK);
        tp.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.0, p.1)),
            color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label(s.label.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        tp.draw_series(
            s.points
                .iter()
                .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
        )
        .map_err(|e| err(&e))?;
        lat.draw_series(LineSeries::new(
            s.points.iter().map(|p| (p.0, p.2)),
            color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?;
        lat.draw_series(
            s.points
                .iter()
                .map(|p| Circle::new((p.0, p.2), 3, color.filled())),
        )
        .map_err(|e| err(&e))?;
    }
    tp.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn a_sweep_plot_is_a_png_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sweep.png");
        let series = vec![
            Series {
                label: "pegasus C".into(),
                points: vec![
                    (1.0, 5000.0, 300.0),
                    (4.0, 15000.0, 500.0),
                    (16.0, 30000.0, 1500.0),
                ],
            },
            Series {
                label: "redis C".into(),
                points: vec![
                    (1.0, 20000.0, 80.0),
                    (4.0, 60000.0, 100.0),
                    (16.0, 90000.0, 300.0),
                ],
            },
        ];
        sweep_png(&path, "test sweep", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5_000, "{} bytes", bytes.len());
    }
}
