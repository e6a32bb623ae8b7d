//! `ringmq-loadgen report DIR`: the comparison report of a `scripts/bench.sh` results
//! directory: report.md with its tables and plots, headline.md (the README's table), and
//! optionally the index of all results and the README's headline.
//!
//! Every table shows, per broker, the same figures a reader asks for first: delivered
//! messages per second, delivered messages per broker CPU-second, p50/p99 latency, loss,
//! and ringmq's ratio to each peer on rate and on efficiency.

use crate::bench_fmt::{self as fmt, broker_name, table, NONE};
use crate::bench_read::{fleet_qos, median, Results, Run, RunKind};
use crate::bench_setup;
use crate::matrix::{self, Matrix, HEADLINE, HEADLINE_SIZE_BYTES, SCENARIOS};
use anyhow::Context;
use std::path::Path;

/// Where the README's headline goes.
pub const README_START: &str = "<!-- bench-headline:start -->";
pub const README_END: &str = "<!-- bench-headline:end -->";

/// The figures of one broker in one case, over its runs.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    pub runs: usize,
    pub rate: Option<f64>,
    pub per_cpu_s: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub lost: Option<u64>,
}

impl Figures {
    /// Medians of rate, efficiency and latency; loss summed over the runs.
    pub fn of(runs: &[&Run]) -> Figures {
        let done: Vec<&&Run> = runs.iter().filter(|r| r.summary.is_some()).collect();
        Figures {
            runs: done.len(),
            rate: median(done.iter().map(|r| r.rate())),
            per_cpu_s: median(done.iter().map(|r| r.per_cpu_s())),
            p50: median(done.iter().map(|r| r.e2e("p50"))),
            p99: median(done.iter().map(|r| r.e2e("p99"))),
            lost: (!done.is_empty()).then(|| done.iter().filter_map(|r| r.lost()).sum()),
        }
    }

    /// The row cells: msgs/s, msgs per CPU-s, p50, p99, lost, and ringmq's ratios to
    /// this broker (`base` is ringmq's figures; none on ringmq's own row).
    pub fn cells(&self, base: Option<&Figures>) -> Vec<String> {
        let (r_rate, r_eff) = match base {
            Some(b) => (fmt::ratio(b.rate, self.rate), fmt::ratio(b.per_cpu_s, self.per_cpu_s)),
            None => (NONE.into(), NONE.into()),
        };
        vec![
            fmt::si(self.rate),
            fmt::si(self.per_cpu_s),
            fmt::us(self.p50),
            fmt::us(self.p99),
            fmt::int(self.lost),
            r_rate,
            r_eff,
        ]
    }
}

/// The column names that go with [`Figures::cells`].
pub const FIGURE_COLUMNS: [&str; 7] = [
    "delivered msgs/s",
    "msgs per broker CPU-s",
    "p50",
    "p99",
    "lost",
    "ringmq ÷ it: msgs/s",
    "ringmq ÷ it: per CPU-s",
];

/// The headline: the [`HEADLINE`] cases, every broker, medians of each case's runs.
/// `link` is report.md as seen from the file the headline goes into.
pub fn headline(res: &Results, link: &str) -> Option<String> {
    if !res.brokers.iter().any(|b| b == "ringmq") || res.brokers.len() < 2 {
        return None;
    }
    let mut rows = Vec::new();
    let mut most_runs = 0;
    for (key, q) in HEADLINE {
        let id = matrix::case_id(key, q, HEADLINE_SIZE_BYTES);
        let base = Figures::of(&res.case_runs("ringmq", &id));
        for b in &res.brokers {
            let f = Figures::of(&res.case_runs(b, &id));
            if f.runs == 0 {
                continue;
            }
            most_runs = most_runs.max(f.runs);
            let label = format!("QoS {q} {}", matrix::scenario(key).map_or(key, |s| s.label));
            let mut row = vec![label, broker_name(b).to_string()];
            row.extend(f.cells((b != "ringmq").then_some(&base)));
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return None;
    }
    let m = &res.meta;
    let runs = if most_runs > 1 {
        format!(" Each figure is the median of {most_runs} runs, loss their sum.")
    } else {
        " One run per figure.".to_string()
    };
    let mode = if m.get("mode") == "quick" { "`--quick` run, " } else { "" };
    let mut header = vec!["case", "broker"];
    header.extend(FIGURE_COLUMNS);
    let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i >= 2).collect();
    Some(format!(
        "Delivered messages per second, and per second of broker CPU (higher is better), closed loop \
         (`--rate max`; QoS 1/2 with 20 messages in flight per publisher), {} B payloads, ringmq with \
         {} shard(s). Latency in closed loop is mostly queueing in a full pipeline (the report has a \
         fixed-rate run for latency). Measured {} on {}: {}; {mode}{} s per run, broker on CPU {}, \
         load generator on CPU {}.{runs} Full report: [{link}]({link}).\n\n{}",
        HEADLINE_SIZE_BYTES,
        m.get("ringmq_cores"),
        &m.get("date")[..m.get("date").len().min(10)],
        m.get("host"),
        bench_setup::machine_line(m),
        m.get("duration_s"),
        m.get("broker_cpus"),
        m.get("loadgen_cpus"),
        table(&header, &right, &rows)
    ))
}

/// One table of closed-loop cases: per size, QoS and broker.
fn throughput_table(res: &Results, key: &str, sizes: &[usize]) -> Option<String> {
    let mut rows = Vec::new();
    for &size in sizes {
        for q in matrix::QOSES {
            let id = matrix::case_id(key, q, size);
            let base = Figures::of(&res.case_runs("ringmq", &id));
            for b in &res.brokers {
                let runs = res.case_runs(b, &id);
                let Some(first) = runs.first() else { continue };
                let f = Figures::of(&runs);
                let mut row = vec![
                    q.to_string(),
                    matrix::size_label(size),
                    broker_name(b).to_string(),
                    f.runs.to_string(),
                ];
                row.extend(f.cells((b != "ringmq").then_some(&base)));
                let busy = median(runs.iter().map(|r| r.summary.as_ref().map(|s| s.loadgen.busy_max_pct)));
                let saturated = runs.iter().any(|r| r.summary.as_ref().is_some_and(|s| s.loadgen.saturated));
                row.push(
                    busy.map_or(NONE.into(), |v| format!("{v:.0}%{}", if saturated { " ⚠" } else { "" })),
                );
                row.push(first.status());
                rows.push(row);
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let mut header = vec!["QoS", "size", "broker", "runs"];
    header.extend(FIGURE_COLUMNS);
    header.extend(["loadgen busy", "status"]);
    let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i != 2 && i + 1 != header.len()).collect();
    Some(table(&header, &right, &rows))
}

/// Figures of the open-loop runs of one kind (and QoS for the fleet): per broker, the
/// medians over the rounds.
fn rounds_table(res: &Results, kind: RunKind, qos: Option<u8>) -> Option<String> {
    let pick = |b: &str| -> Vec<&Run> {
        res.of(b, kind).filter(|r| qos.is_none_or(|q| fleet_qos(&r.id) == Some(q))).collect()
    };
    let base = Figures::of(&pick("ringmq"));
    let mut rows = Vec::new();
    for b in &res.brokers {
        let runs = pick(b);
        if runs.is_empty() {
            continue;
        }
        let f = Figures::of(&runs);
        let mut row = vec![broker_name(b).to_string(), f.runs.to_string()];
        row.extend(f.cells((b != "ringmq").then_some(&base)));
        row.push(fmt::us(median(runs.iter().map(|r| r.latency("e2e_corrected", "p99_9")))));
        row.push(fmt::us(median(runs.iter().map(|r| r.latency("e2e", "p99")))));
        let p99_ratio = if b == "ringmq" { NONE.into() } else { fmt::ratio(f.p99, base.p99) };
        row.push(p99_ratio);
        row.push(runs.iter().map(|r| r.status()).collect::<Vec<_>>().join(", "));
        rows.push(row);
    }
    if rows.is_empty() {
        return None;
    }
    let mut header = vec!["broker", "rounds"];
    header.extend(FIGURE_COLUMNS);
    header.extend(["p99.9", "measured p99", "its p99 ÷ ringmq's", "status"]);
    let right: Vec<bool> = header.iter().enumerate().map(|(i, _)| i != 0 && i + 1 != header.len()).collect();
    Some(table(&header, &right, &rows))
}

/// The idle-connection runs.
fn conn_table(res: &Results) -> Option<String> {
    let mut rows = Vec::new();
    let base_of = |id: &str| {
        res.of("ringmq", RunKind::Conn)
            .find(|r| r.id == id)
            .and_then(|r| r.summary.as_ref()?.broker.as_ref()?.rss_bytes_per_connection)
    };
    for b in &res.brokers {
        for r in res.of(b, RunKind::Conn) {
            let Some(s) = &r.summary else {
                rows.push(vec![
                    broker_name(b).to_string(),
                    r.id.clone(),
                    NONE.into(),
                    NONE.into(),
                    NONE.into(),
                    NONE.into(),
                    r.status(),
                ]);
                continue;
            };
            let rss = s.broker.as_ref().and_then(|x| x.rss_bytes_per_connection);
            let ratio = if b == "ringmq" { NONE.into() } else { fmt::ratio(rss, base_of(&r.id)) };
            rows.push(vec![
                broker_name(b).to_string(),
                format!(
                    "{} of {}",
                    fmt::int(Some(s.connections.connected)),
                    fmt::int(Some(s.config.conn_n as u64))
                ),
                rss.map_or(NONE.into(), |v| format!("{:.2} KiB", v / 1024.0)),
                fmt::us(r.latency("connect", "p99")),
                fmt::cpu(s.broker.as_ref().and_then(|x| x.cpu_us_per_connection)),
                ratio,
                r.status(),
            ]);
        }
    }
    (!rows.is_empty()).then(|| {
        table(
            &[
                "broker",
                "connected",
                "RSS per connection",
                "connect p99",
                "CPU-µs per connection",
                "its RSS ÷ ringmq's",
                "status",
            ],
            &[false, true, true, true, true, true, false],
            &rows,
        )
    })
}

/// Runs that lost messages, with the causes their summaries name.
fn loss_section(res: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for r in &res.runs {
        let Some(s) = &r.summary else { continue };
        if s.messages.lost == 0 {
            continue;
        }
        let causes: Vec<String> = s.status.loss_causes.iter().map(|c| c.detail.clone()).collect();
        let why = if causes.is_empty() {
            "no cause the load generator could see".to_string()
        } else {
            causes.join("; ")
        };
        out.push(format!(
            "- {}/{} (QoS {}): {} of {} lost. Likely: {why}.",
            r.broker,
            r.id,
            s.config.qos,
            fmt::int(Some(s.messages.lost)),
            fmt::int(Some(s.messages.expected_deliveries))
        ));
    }
    out
}

/// report.md.
pub fn build_report(res: &Results, plots: &crate::bench_plots::Plots) -> String {
    let m = &res.meta;
    let mut out = bench_setup::setup_sections(res);
    let push = |out: &mut Vec<String>, s: String| out.push(s);
    if let Some(h) = headline(res, "report.md") {
        push(&mut out, format!("## Headline\n\n{h}"));
    }
    let sizes: Vec<usize> = {
        let mut v: Vec<usize> = res
            .runs
            .iter()
            .filter(|r| r.kind == RunKind::Throughput)
            .filter_map(|r| r.case.map(|c| c.size_bytes))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    push(&mut out, "## Throughput (closed loop)".into());
    for sc in SCENARIOS {
        if let Some(t) = throughput_table(res, sc.key, &sizes) {
            let plot = plots
                .throughput
                .get(sc.key)
                .map_or(String::new(), |p| format!("\n![throughput, {}]({p})\n", sc.label));
            push(&mut out, format!("### {}\n\n{}.\n\n{t}{plot}", sc.label, sc.describe));
        }
    }
    if let Some(t) = rounds_table(res, RunKind::Latency, None) {
        let plot = plots
            .fixed_rate
            .as_ref()
            .map_or(String::new(), |p| format!("\n![latency at a fixed rate]({p})\n"));
        push(
            &mut out,
            format!(
                "## Latency at a fixed rate (open loop)\n\n{}. Latency is end to end from the *scheduled* \
                 send time (corrected for coordinated omission); \"measured p99\" is from the actual send \
                 time. Medians over the rounds (a fresh broker process each round).\n\n{t}{plot}",
                m.get("latency_run")
            ),
        );
    }
    let fleet: Vec<String> = matrix::FLEET_QOSES
        .iter()
        .filter_map(|&q| rounds_table(res, RunKind::Fleet, Some(q)).map(|t| format!("QoS {q}:\n\n{t}")))
        .collect();
    if !fleet.is_empty() {
        push(
            &mut out,
            format!(
                "## Many connections at a modest rate\n\n{}: the kernel's cost per packet dominates. \
                 Medians over the rounds.\n\n{}",
                matrix::FLEET_DESCRIBE,
                fleet.join("\n")
            ),
        );
    }
    if !plots.per_qos.is_empty() {
        let imgs: Vec<String> =
            plots.per_qos.iter().map(|(q, p)| format!("![QoS {q} latency percentiles]({p})")).collect();
        push(
            &mut out,
            format!(
                "## Latency percentile curves per QoS (closed loop, 64 B)\n\nFrom each matrix run's \
                 `e2e_us.hgrm`, both axes logarithmic. These runs are saturated, so the curves show \
                 queueing in a full pipeline, not what a client at a modest rate sees.\n\n{}\n",
                imgs.join("\n\n")
            ),
        );
    }
    if let Some(t) = conn_table(res) {
        push(
            &mut out,
            format!(
                "## Idle connections\n\n`conn`: opens N connections from 20 loopback source addresses and \
                 holds them; RSS per connection = (RSS held − RSS before) ÷ connections.\n\n{t}"
            ),
        );
    }
    let loss = loss_section(res);
    if !loss.is_empty() {
        push(
            &mut out,
            format!(
                "## Where messages were lost\n\nEach run with loss, and the likely cause its summary names \
                 (QoS 0 may lose messages; QoS 1/2 must not).\n\n{}\n",
                loss.join("\n")
            ),
        );
    }
    out.push(bench_setup::every_run(res));
    out.join("\n\n") + "\n"
}

/// Replaces the headline between the README's markers; false when it has none.
pub fn replace_headline(text: &str, headline: &str) -> Option<String> {
    let a = text.find(README_START)? + README_START.len();
    let b = text.find(README_END)?;
    (a <= b).then(|| format!("{}\n{}\n{}", &text[..a], headline.trim_end(), &text[b..]))
}

/// Writes report.md, headline.md and the plots; with `index`, rewrites the results
/// index; with `readme`, replaces its headline. Prints the headline.
pub fn run(dir: &Path, index: Option<&Path>, readme: Option<&Path>) -> anyhow::Result<()> {
    let res = Results::read(dir)?;
    anyhow::ensure!(!res.runs.is_empty(), "no runs under {}", dir.display());
    let plots = crate::bench_plots::write(&res)?;
    std::fs::write(dir.join("report.md"), build_report(&res, &plots))?;
    let name = dir.canonicalize()?.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match headline(&res, "report.md") {
        Some(h) => {
            std::fs::write(dir.join("headline.md"), h + "\n")?;
            println!("{}\n", headline(&res, &format!("results/{name}/report.md")).unwrap_or_default());
            if let Some(readme) = readme {
                let base = readme.canonicalize()?.parent().map(Path::to_path_buf).unwrap_or_default();
                let link = pathdiff(&dir.canonicalize()?.join("report.md"), &base);
                let text = std::fs::read_to_string(readme)?;
                let new = replace_headline(&text, &headline(&res, &link).unwrap_or_default()).with_context(
                    || format!("{} has no {README_START} ... {README_END}", readme.display()),
                )?;
                std::fs::write(readme, new)?;
                println!("updated {}", readme.display());
            }
        }
        None => eprintln!("no headline: it needs ringmq and a peer on the headline cases"),
    }
    if let Some(index) = index {
        bench_setup::write_index(index)?;
        println!("updated {}", index.display());
    }
    println!("wrote {}", dir.join("report.md").display());
    Ok(())
}

/// The lowest delivered msgs/s any broker reached in run `id` (0 when none finished it).
pub fn slowest_rate(dir: &Path, id: &str) -> anyhow::Result<u64> {
    let res = Results::read(dir)?;
    let rates = res.runs.iter().filter(|r| r.id == id).filter_map(|r| r.rate()).filter(|&r| r > 0.0);
    Ok(rates.reduce(f64::min).map_or(0, |r| r as u64))
}

/// `path` relative to `base` (both absolute), for links.
fn pathdiff(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// The matrix a results directory ran: quick or full, from meta.tsv.
pub fn matrix_of(res: &Results) -> Matrix {
    if res.meta.get("mode") == "quick" {
        Matrix::quick()
    } else {
        Matrix::full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_between_the_markers() {
        let text = format!("a\n{README_START}\nold\n{README_END}\nb\n");
        assert_eq!(
            replace_headline(&text, "new").unwrap(),
            format!("a\n{README_START}\nnew\n{README_END}\nb\n")
        );
        assert_eq!(replace_headline("no markers", "new"), None);
    }
}
