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

/// A histogram's name, colour and points.
type Curve = (Hist, RGBColor, Vec<(f64, f64)>);

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

/// Draws the percentile curves of the run's latency histograms, titled with its settings.
pub fn latency_svg(path: &Path, c: &RunConfig, hists: &Histograms) -> anyhow::Result<()> {
    let curves: Vec<Curve> = CURVES
        .iter()
        .filter(|(h, _)| !hists.get(*h).is_empty())
        .map(|&(h, c)| (h, c, curve(hists.get(h))))
        .collect();
    let (y_min, y_max) = log_range(curves.iter().flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y)));
    let x_max = curves.iter().flat_map(|(_, _, p)| p.iter().map(|&(x, _)| x)).fold(100.0f64, f64::max);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("plotting latency.svg: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "{} qos {} {}x{} rate {} (MQTT {})",
        c.scenario.name(),
        c.qos,
        c.pubs,
        c.subs,
        c.rate_per_pub.map_or("max".to_string(), |r| format!("{r}/s")),
        c.mqtt.name()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (log)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| us_label(*y))
        .draw()
        .map_err(err)?;
    for (h, colour, points) in curves {
        chart
            .draw_series(LineSeries::new(
                points.into_iter().map(|(x, y)| (x, y.max(y_min))),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(h.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
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
    }
}
