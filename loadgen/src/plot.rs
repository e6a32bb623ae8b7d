//! latency.svg: latency against percentile on the usual HdrHistogram axis, where the x
//! axis is 1/(1-percentile) on a log scale so that 90%, 99%, 99.9% ... sit evenly apart.

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
    let y_max = curves.iter().flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y)).fold(1.0f64, f64::max) * 1.05;
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
        .build_cartesian_2d((1.0f64..x_max).log_scale(), 0f64..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(err)?;
    for (h, colour, points) in curves {
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
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
}
