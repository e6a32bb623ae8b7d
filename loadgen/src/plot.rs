//! latency.svg: latency against percentile on the usual HdrHistogram axes: x is
//! 1/(1-percentile) on a log scale, so that 90%, 99%, 99.9% ... sit evenly apart, and y
//! is latency on a log scale, so that a 60 ms connect curve and a 50 µs end-to-end curve
//! both keep their shape on one chart.

use crate::config::RunConfig;
use crate::stats::{Hist, Histograms};
use plotters::prelude::*;
use std::path::Path;

/// The histograms worth a curve, with their colours.
const CURVES: [(Hist, RGBColor); 6] = [
    (Hist::E2eCorrected, RGBColor(0xd6, 0x27, 0x28)),
    (Hist::E2e, RGBColor(0x1f, 0x77, 0xb4)),
    (Hist::AckRtt, RGBColor(0x2c, 0xa0, 0x2c)),
    (Hist::Connect, RGBColor(0x94, 0x67, 0xbd)),
    (Hist::ConnectCorrected, RGBColor(0xff, 0x7f, 0x0e)),
    (Hist::RetainedDelivery, RGBColor(0x8c, 0x56, 0x4b)),
];

/// Furthest point on the x axis: the 99.9999th percentile.
const X_MAX: f64 = 1e6;

/// (1/(1-q), µs) points of a histogram's percentile curve.
pub fn curve(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    h.iter_quantiles(crate::hgrm::TICKS_PER_HALF_DISTANCE)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| ((1.0 / (1.0 - v.quantile_iterated_to())).min(X_MAX), v.value_iterated_to() as f64 / 1000.0))
        .collect()
}

/// The decades that hold every value (µs), for a log axis: values below 1 µs are drawn
/// at 1 µs, the histograms' resolution.
pub fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v.max(1.0)), hi.max(v)));
    if !lo.is_finite() {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.max(lo * 1.01).log10().ceil());
    (lo, hi.max(lo * 10.0))
}

/// Axis labels in the unit that reads best: "50 µs", "2 ms", "1.5 s".
pub fn us_label(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    let text = format!("{v:.1}");
    format!("{} {unit}", text.trim_end_matches('0').trim_end_matches('.'))
}

/// "99.9%" for x = 1000: the percentile at 1/(1-p) = x, without trailing zeros.
pub fn percentile_label(x: f64) -> String {
    let p = format!("{:.4}", 100.0 * (1.0 - 1.0 / x));
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

/// Series colours, in order (ringmq first in the bench report).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0x1f, 0x5f, 0xa8),
    RGBColor(0xe6, 0x76, 0x1b),
    RGBColor(0x2e, 0x9a, 0x3a),
    RGBColor(0x8e, 0x44, 0xad),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xc2, 0x18, 0x5b),
    RGBColor(0x60, 0x7d, 0x8b),
];

/// One curve of a percentile chart: (1/(1-q), µs) points.
pub struct PercentileCurve {
    pub label: String,
    pub colour: RGBColor,
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

/// (1/(1-q), µs) points of a `.hgrm` file's lines (value, percentile, count, ...).
pub fn hgrm_curve(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let v: f64 = f.next()?.parse().ok()?;
            let q: f64 = f.next()?.parse().ok()?;
            (q < 1.0).then(|| ((1.0 / (1.0 - q)).min(X_MAX), v))
        })
        .collect()
}

/// plotters' error, with the backend's error inside, as the crate's.
fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// Latency against percentile, both axes logarithmic (HdrHistogram's convention).
pub fn percentile_chart(path: &Path, title: &str, curves: &[PercentileCurve]) -> anyhow::Result<()> {
    let (y_min, y_max) = log_range(curves.iter().flat_map(|c| c.points.iter().map(|&(_, y)| y)));
    let x_max = curves.iter().flat_map(|c| c.points.iter().map(|&(x, _)| x)).fold(100.0f64, f64::max);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (log)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| us_label(*y))
        .draw()
        .map_err(plot_err)?;
    for c in curves {
        let colour = c.colour;
        let points = c.points.iter().map(move |&(x, y)| (x, y.max(y_min)));
        let style = colour.stroke_width(2);
        let drawn = if c.dashed {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style)).map_err(plot_err)?
        } else {
            chart.draw_series(LineSeries::new(points, style)).map_err(plot_err)?
        };
        drawn.label(c.label.clone()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// One bar: the median of a group's runs for one series, and the spread of the runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bar {
    pub group: usize,
    pub series: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// Panels of grouped bars side by side, each on a log axis, with a whisker from the
/// lowest to the highest run where a bar stands for several.
pub fn bar_panels(
    path: &Path,
    title: &str,
    groups: &[String],
    series: &[String],
    panels: &[(&str, Vec<Bar>)],
) -> anyhow::Result<()> {
    let width = (groups.len() as u32 * (series.len() as u32 * 34 + 30) + 140).max(420);
    let root = SVGBackend::new(path, (width * panels.len() as u32, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(plot_err)?;
    let areas = root.split_evenly((1, panels.len()));
    let n = groups.len().max(1) as f64;
    let slot = 0.8 / series.len().max(1) as f64;
    for (area, (desc, bars)) in areas.iter().zip(panels) {
        let (y_min, y_max) = log_range(bars.iter().flat_map(|b| [b.min, b.max, b.median]));
        let mut chart = ChartBuilder::on(area)
            .caption(*desc, ("sans-serif", 15))
            .margin(15)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..n, (y_min..y_max).log_scale())
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|y| count_label(*y))
            .draw()
            .map_err(plot_err)?;
        for (gi, g) in groups.iter().enumerate() {
            let at = (gi as f64 + 0.5, y_min);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(at)
                        + Text::new(g.clone(), (-(g.len() as i32) * 3, 8), ("sans-serif", 12)),
                ))
                .map_err(plot_err)?;
        }
        for (si, name) in series.iter().enumerate() {
            let colour = PALETTE[si % PALETTE.len()];
            let mine: Vec<&Bar> = bars.iter().filter(|b| b.series == si).collect();
            let x0 = |b: &Bar| b.group as f64 + 0.1 + si as f64 * slot;
            chart
                .draw_series(mine.iter().map(|b| {
                    Rectangle::new([(x0(b), y_min), (x0(b) + slot * 0.9, b.median)], colour.filled())
                }))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
            let whiskers = mine.iter().filter(|b| b.max > b.min).map(|b| {
                let x = x0(b) + slot * 0.45;
                PathElement::new(vec![(x, b.min), (x, b.max)], BLACK.stroke_width(2))
            });
            chart.draw_series(whiskers).map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Axis labels for counts: "10 k", "1.5 M".
pub fn count_label(v: f64) -> String {
    let (x, unit) = if v >= 1e9 {
        (v / 1e9, " G")
    } else if v >= 1e6 {
        (v / 1e6, " M")
    } else if v >= 1e3 {
        (v / 1e3, " k")
    } else {
        (v, "")
    };
    let text = format!("{x:.1}");
    format!("{}{unit}", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Draws the percentile curves of the run's latency histograms, titled with its settings.
pub fn latency_svg(path: &Path, c: &RunConfig, hists: &Histograms) -> anyhow::Result<()> {
    let curves: Vec<PercentileCurve> = CURVES
        .iter()
        .filter(|(h, _)| !hists.get(*h).is_empty())
        .map(|&(h, colour)| PercentileCurve {
            label: h.name().to_string(),
            colour,
            dashed: false,
            points: curve(hists.get(h)),
        })
        .collect();
    let title = format!(
        "{} qos {} {}x{} rate {} (MQTT {})",
        c.scenario.name(),
        c.qos,
        c.pubs,
        c.subs,
        c.rate_per_pub.map_or("max".to_string(), |r| format!("{r}/s")),
        c.mqtt.name()
    );
    percentile_chart(path, &title, &curves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_percentiles_by_their_nines() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e4), "99.99%");
    }

    #[test]
    fn log_axis_spans_whole_decades_from_one_microsecond() {
        assert_eq!(log_range([45.0, 60_000.0].into_iter()), (10.0, 100_000.0));
        assert_eq!(log_range([0.2, 7.0].into_iter()), (1.0, 10.0));
        assert_eq!(log_range(std::iter::empty()), (1.0, 10.0));
        assert_eq!(us_label(50.0), "50 µs");
        assert_eq!(us_label(2000.0), "2 ms");
        assert_eq!(us_label(1_500_000.0), "1.5 s");
        assert_eq!(count_label(1_500_000.0), "1.5 M");
    }

    #[test]
    fn reads_percentile_points_back_from_hgrm_text() {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let from_file = hgrm_curve(&crate::hgrm::percentile_distribution(&h, 1000.0));
        let direct = curve(&h);
        assert_eq!(from_file.len(), direct.len());
        for (a, b) in from_file.iter().zip(&direct) {
            assert!((a.0 - b.0).abs() / b.0 < 0.01 && (a.1 - b.1).abs() < 0.01, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn draws_bars_with_spread_and_dashed_curves() {
        let dir = std::env::temp_dir().join(format!("ringmq-loadgen-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bars = vec![
            Bar { group: 0, series: 0, median: 2e6, min: 1.5e6, max: 2.5e6 },
            Bar { group: 0, series: 1, median: 1e5, min: 1e5, max: 1e5 },
        ];
        let svg = dir.join("bars.svg");
        bar_panels(&svg, "t", &["QoS 0".into()], &["a".into(), "b".into()], &[("msgs/s", bars)]).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("QoS 0") && text.contains("</svg>"));
        let curves = [PercentileCurve {
            label: "x".into(),
            colour: PALETTE[0],
            dashed: true,
            points: vec![(1.0, 50.0), (100.0, 9e4)],
        }];
        percentile_chart(&dir.join("c.svg"), "c", &curves).unwrap();
        let text = std::fs::read_to_string(dir.join("c.svg")).unwrap();
        // Both ends of a log axis are labelled in their own unit.
        assert!(text.contains("\n10 µs\n") && text.contains("\n100 ms\n"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
