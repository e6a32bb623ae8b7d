//! The bench report's plots, drawn with [`crate::plot`] (the same code as each run's
//! latency.svg): throughput per scenario with the spread of the runs, the fixed-rate
//! latency curves, and the closed-loop latency curves per QoS.

use crate::bench_fmt::broker_name;
use crate::bench_read::{median, Results, Run, RunKind};
use crate::matrix::{self, SCENARIOS};
use crate::plot::{self, Bar, PercentileCurve, PALETTE};
use std::collections::BTreeMap;

/// Paths of the plots written, relative to the results directory.
#[derive(Default)]
pub struct Plots {
    /// By scenario key.
    pub throughput: BTreeMap<&'static str, String>,
    pub fixed_rate: Option<String>,
    pub per_qos: Vec<(u8, String)>,
}

/// The curve of one run's histogram file, if it has one.
fn curve(
    r: &Run,
    file: &str,
    label: String,
    colour: plotters::style::RGBColor,
    dashed: bool,
) -> Option<PercentileCurve> {
    let text = std::fs::read_to_string(r.dir.join(file)).ok()?;
    let points = plot::hgrm_curve(&text);
    (!points.is_empty()).then_some(PercentileCurve { label, colour, dashed, points })
}

/// Median and spread of the values present.
fn bar(group: usize, series: usize, values: &[Option<f64>]) -> Option<Bar> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let min = present.iter().copied().reduce(f64::min)?;
    let max = present.iter().copied().reduce(f64::max)?;
    Some(Bar { group, series, median: median(values.iter().copied())?, min, max })
}

/// Writes `plots/*.svg` under the results directory.
pub fn write(res: &Results) -> anyhow::Result<Plots> {
    let dir = res.dir.join("plots");
    std::fs::create_dir_all(&dir)?;
    let mut plots = Plots::default();
    let series: Vec<String> = res.brokers.iter().map(|b| broker_name(b).to_string()).collect();
    let colour = |b: &str| PALETTE[res.brokers.iter().position(|x| x == b).unwrap_or(0) % PALETTE.len()];
    let mut sizes: Vec<usize> = res
        .runs
        .iter()
        .filter(|r| r.kind == RunKind::Throughput)
        .filter_map(|r| r.case.map(|c| c.size_bytes))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for sc in SCENARIOS {
        let mut groups = Vec::new();
        let (mut rate, mut eff) = (Vec::new(), Vec::new());
        for &size in &sizes {
            for q in matrix::QOSES {
                let id = matrix::case_id(sc.key, q, size);
                if !res.brokers.iter().any(|b| !res.case_runs(b, &id).is_empty()) {
                    continue;
                }
                let g = groups.len();
                groups.push(format!("QoS {q}, {}", matrix::size_label(size)));
                for (si, b) in res.brokers.iter().enumerate() {
                    let runs = res.case_runs(b, &id);
                    rate.extend(bar(g, si, &runs.iter().map(|r| r.rate()).collect::<Vec<_>>()));
                    eff.extend(bar(g, si, &runs.iter().map(|r| r.per_cpu_s()).collect::<Vec<_>>()));
                }
            }
        }
        if groups.is_empty() {
            continue;
        }
        let name = format!("throughput-{}.svg", sc.key);
        plot::bar_panels(
            &dir.join(&name),
            &format!("{}: closed loop (bars: median of the runs; lines: lowest to highest)", sc.label),
            &groups,
            &series,
            &[("delivered msgs/s (log)", rate), ("delivered msgs per broker CPU-s (log)", eff)],
        )?;
        plots.throughput.insert(sc.key, format!("plots/{name}"));
    }
    // Fixed rate: each broker's round with the median p99 stands for it.
    let mut curves = Vec::new();
    for b in &res.brokers {
        let mut rounds: Vec<&Run> = res.of(b, RunKind::Latency).filter(|r| r.e2e("p99").is_some()).collect();
        rounds.sort_by(|x, y| x.e2e("p99").partial_cmp(&y.e2e("p99")).unwrap_or(std::cmp::Ordering::Equal));
        let Some(mid) = rounds.get(rounds.len().saturating_sub(1) / 2) else { continue };
        let name = broker_name(b);
        curves.extend(curve(
            mid,
            "e2e_corrected_us.hgrm",
            format!("{name}, from the scheduled send"),
            colour(b),
            false,
        ));
        curves.extend(curve(mid, "e2e_us.hgrm", format!("{name}, from the actual send"), colour(b), true));
    }
    if !curves.is_empty() {
        plot::percentile_chart(
            &dir.join("latency-fixed-rate.svg"),
            "Fixed rate: end-to-end latency (each broker's median round)",
            &curves,
        )?;
        plots.fixed_rate = Some("plots/latency-fixed-rate.svg".into());
    }
    // Closed loop per QoS: pairs 10 solid, fan-out 1 → 50 dashed.
    for q in matrix::QOSES {
        let mut curves = Vec::new();
        for (key, dashed) in [("pairs-10", false), ("fanout-50", true)] {
            let label = matrix::scenario(key).map_or(key, |s| s.label);
            for b in &res.brokers {
                let id = matrix::case_id(key, q, 64);
                if let Some(r) = res.of(b, RunKind::Throughput).find(|r| r.id == id) {
                    curves.extend(curve(
                        r,
                        "e2e_us.hgrm",
                        format!("{}, {label}", broker_name(b)),
                        colour(b),
                        dashed,
                    ));
                }
            }
        }
        if curves.is_empty() {
            continue;
        }
        let name = format!("latency-qos{q}.svg");
        plot::percentile_chart(
            &dir.join(&name),
            &format!("QoS {q}, 64 B, closed loop: end-to-end latency"),
            &curves,
        )?;
        plots.per_qos.push((q, format!("plots/{name}")));
    }
    Ok(plots)
}
