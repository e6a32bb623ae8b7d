//! The run's results: summary.json (every figure), the histograms as `.hgrm` files,
//! report.md, latency.svg, and the one-line summary printed on stdout.

use crate::config::{Kind, RunConfig};
use crate::procfs::Machine;
use crate::stats::{Counters, Hist, Histograms};
use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Exit status of a run whose checks passed.
pub const EXIT_OK: i32 = 0;
/// Exit status of a run that could not be carried out (connections refused or failed,
/// set-up incomplete), or of `conn` with failed connections.
pub const EXIT_RUN_FAILED: i32 = 1;
/// Exit status of a run that lost QoS 1/2 messages or duplicated QoS 2 messages.
pub const EXIT_DELIVERY_FAILED: i32 = 3;
/// Above this share of one core, a load thread may have been the bottleneck.
pub const BUSY_WARN_PCT: f64 = 90.0;

/// How the build was made.
#[derive(Clone, Debug, Serialize)]
pub struct Build {
    pub loadgen_version: &'static str,
    pub ringmq_crate_version: &'static str,
    pub git_commit: &'static str,
    pub rustc: &'static str,
    pub profile: &'static str,
}

impl Build {
    pub fn current() -> Build {
        Build {
            loadgen_version: env!("CARGO_PKG_VERSION"),
            ringmq_crate_version: env!("LOADGEN_RINGMQ_VERSION"),
            git_commit: env!("LOADGEN_GIT_COMMIT"),
            rustc: env!("LOADGEN_RUSTC_VERSION"),
            profile: env!("LOADGEN_PROFILE"),
        }
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Option<LatencySummary> {
        if h.is_empty() {
            return None;
        }
        let us = |v: u64| v as f64 / 1000.0;
        Some(LatencySummary {
            count: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            p99_99: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        })
    }
}

/// Message counts and rates of the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Messages {
    /// PUBLISH packets sent, warm-up and drain included.
    pub sent: u64,
    pub sent_in_window: u64,
    pub sent_per_s: f64,
    pub acked: u64,
    pub rejected: u64,
    /// Deliveries owed: each message times the subscribers (or groups) that match it.
    pub expected_deliveries: u64,
    /// PUBLISH packets received by subscribers.
    pub delivered: u64,
    pub delivered_in_window: u64,
    /// Deliveries per second inside the measurement window (for `retained`: all
    /// deliveries over the time from SUBSCRIBE to the last one).
    pub delivered_per_s: f64,
    pub unique: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    pub malformed: u64,
    pub qos2_redelivered: u64,
    pub written_off: u64,
    pub unverified: u64,
}

/// Connection figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Connections {
    pub planned: u64,
    pub attempted: u64,
    pub connected: u64,
    pub failed: u64,
    pub refused: u64,
    pub timed_out: u64,
    pub subscribe_failed: u64,
    pub subscribe_downgraded: u64,
    pub closed_mid_run: u64,
    /// `conn`: connections per second achieved (attempts over the connect phase).
    #[serde(deserialize_with = "Option::deserialize")]
    pub connect_rate_per_s: Option<f64>,
}

/// The broker's cost, from /proc.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Broker {
    /// The processes measured; every figure below is their sum.
    pub pids: Vec<u32>,
    pub cmdlines: Vec<String>,
    /// CPU time over the measurement window.
    pub cpu_s: f64,
    /// Cores' worth of CPU the broker used in the window.
    pub cpu_cores: f64,
    /// CPU microseconds per delivered message (equal to CPU seconds per million).
    #[serde(deserialize_with = "Option::deserialize")]
    pub cpu_us_per_msg: Option<f64>,
    /// `conn`: CPU microseconds per connection accepted.
    #[serde(deserialize_with = "Option::deserialize")]
    pub cpu_us_per_connection: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_start_kib: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_end_kib: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_peak_kib: Option<u64>,
    /// `conn`: (RSS held - RSS before) / connections.
    #[serde(deserialize_with = "Option::deserialize")]
    pub rss_bytes_per_connection: Option<f64>,
}

/// One load thread's CPU use.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadThread {
    pub index: usize,
    #[serde(deserialize_with = "Option::deserialize")]
    pub cpu: Option<usize>,
    pub tid: i32,
    /// Percent of one core over the measurement window.
    pub busy_pct: f64,
}

/// The load generator's own figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Loadgen {
    pub threads: Vec<LoadThread>,
    pub busy_max_pct: f64,
    /// A load thread above [`BUSY_WARN_PCT`]: the load generator, not the
    /// broker, may have been the limit.
    pub saturated: bool,
    /// How open-loop sends are timed: "timerfd" (µs precision) or "monoio-timer-1ms".
    pub pacing: String,
    pub nofile_limit: u64,
}

/// One publisher's deliveries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PublisherRow {
    pub id: u32,
    pub sent: u64,
    pub expected: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

/// One second of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimelineRow {
    pub t_s: f64,
    pub sent_per_s: f64,
    pub delivered_per_s: f64,
    pub gaps: u64,
    #[serde(deserialize_with = "Option::deserialize")]
    pub e2e_p50_us: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub e2e_p99_us: Option<f64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub e2e_max_us: Option<f64>,
    pub loadgen_busy_max_pct: f64,
    #[serde(deserialize_with = "Option::deserialize")]
    pub broker_rss_kib: Option<u64>,
    pub connected: u64,
}

/// A cause of loss (see `loss.rs`): a tag (`queue_limit`, `broker_dropped`, `refused`,
/// `unacknowledged`, `disconnects`, `loadgen_saturated`, `drain_ended`) and a sentence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossCause {
    pub kind: String,
    pub detail: String,
}

/// Verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub ok: bool,
    pub exit_code: i32,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    /// When messages were lost: the causes the load generator could see (`loss.rs`).
    pub loss_causes: Vec<LossCause>,
}

/// Everything a run found.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub tool: &'static str,
    pub build: Build,
    pub command_line: Vec<String>,
    pub started_unix_s: u64,
    pub machine: Machine,
    pub config: RunConfig,
    pub status: Status,
    /// Length of the measurement window.
    pub window_s: f64,
    pub messages: Messages,
    /// Keyed by histogram name (see `Hist::name`), in microseconds.
    pub latency_us: BTreeMap<&'static str, LatencySummary>,
    pub connections: Connections,
    pub broker: Option<Broker>,
    pub loadgen: Loadgen,
    pub counters: Counters,
    pub per_publisher: Vec<PublisherRow>,
    pub timeline: Vec<TimelineRow>,
    pub errors: Vec<String>,
}

impl Summary {
    /// The end-to-end latency to headline: corrected in open loop, measured otherwise.
    pub fn headline_latency(&self) -> Option<(&'static str, &LatencySummary)> {
        if self.config.scenario == Kind::Retained {
            return self.latency_us.get("retained_delivery").map(|l| ("retained", l));
        }
        if self.config.scenario == Kind::Conn {
            return self.latency_us.get("connect").map(|l| ("connect", l));
        }
        self.latency_us
            .get("e2e_corrected")
            .map(|l| ("e2e corrected", l))
            .or_else(|| self.latency_us.get("e2e").map(|l| ("e2e", l)))
    }

    /// The line printed on stdout.
    pub fn one_line(&self) -> String {
        let c = &self.config;
        let mut s = format!("ringmq-loadgen {} mqtt {}", c.scenario.name(), c.mqtt.name());
        match c.scenario {
            Kind::Conn => {
                let k = &self.connections;
                let _ =
                    write!(s, ": {} connections, {} connected, {} failed", k.planned, k.connected, k.failed);
                if let Some(r) = k.connect_rate_per_s {
                    let _ = write!(s, " ({r:.0}/s)");
                }
            }
            Kind::Retained => {
                let m = &self.messages;
                let _ = write!(
                    s,
                    " qos {} {} retained x {} subs: stored {} delivered {} of {} ({:.0}/s) lost {} dup {}",
                    c.qos,
                    c.retained_n,
                    c.subs,
                    m.sent,
                    m.unique,
                    m.expected_deliveries,
                    m.delivered_per_s,
                    m.lost,
                    m.duplicated
                );
            }
            Kind::File => {
                let m = &self.messages;
                let name = c.traffic.as_ref().map_or("", |t| t.name.as_str());
                let _ = write!(
                    s,
                    " \"{name}\" {}x{}: sent {:.0}/s delivered {:.0}/s lost {} dup {} reorder {}",
                    c.pubs, c.subs, m.sent_per_s, m.delivered_per_s, m.lost, m.duplicated, m.out_of_order
                );
            }
            _ => {
                let m = &self.messages;
                let rate = c.rate_per_pub.map_or("max".to_string(), |r| format!("{r}/s"));
                let _ = write!(
                    s,
                    " qos {} {}x{} rate {rate}: sent {:.0}/s delivered {:.0}/s lost {} dup {} reorder {}",
                    c.qos,
                    c.pubs,
                    c.subs,
                    m.sent_per_s,
                    m.delivered_per_s,
                    m.lost,
                    m.duplicated,
                    m.out_of_order
                );
            }
        }
        if let Some((name, l)) = self.headline_latency() {
            let _ = write!(
                s,
                " | {name} p50 {} p99 {} p99.9 {} max {}",
                fmt_us(l.p50),
                fmt_us(l.p99),
                fmt_us(l.p99_9),
                fmt_us(l.max)
            );
        }
        if let Some(b) = &self.broker {
            if let Some(v) = b.cpu_us_per_msg {
                let _ = write!(s, " | broker {v:.2} cpu-us/msg");
            }
            if let Some(v) = b.rss_bytes_per_connection {
                let _ = write!(s, " | broker {:.1} KiB/conn", v / 1024.0);
            }
            if let Some(v) = b.rss_peak_kib {
                let _ = write!(s, " peak rss {:.1} MiB", v as f64 / 1024.0);
            }
        }
        let _ = write!(s, " | loadgen busy max {:.0}%", self.loadgen.busy_max_pct);
        let verdict = if self.status.ok {
            "OK".to_string()
        } else {
            format!("FAILED: {}", self.status.problems.join("; "))
        };
        let _ = write!(s, " | {verdict}");
        if let Some(c) = self.status.loss_causes.first() {
            let _ = write!(s, " | likely cause: {}", c.kind.replace('_', " "));
        }
        s
    }

    /// report.md: the figures as tables.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(s, "# ringmq-loadgen: {}\n", c.scenario.name());
        let _ = writeln!(s, "`{}`\n", self.command_line.join(" "));
        let _ = writeln!(
            s,
            "- result: {}",
            if self.status.ok {
                "OK".to_string()
            } else {
                format!("FAILED ({})", self.status.problems.join("; "))
            }
        );
        for w in &self.status.warnings {
            let _ = writeln!(s, "- warning: {w}");
        }
        for c in &self.status.loss_causes {
            let _ = writeln!(s, "- likely cause of loss ({}): {}", c.kind.replace('_', " "), c.detail);
        }
        let _ = writeln!(
            s,
            "- machine: {} CPUs, {}, {}",
            self.machine.nproc, self.machine.cpu_model, self.machine.kernel
        );
        let _ = writeln!(
            s,
            "- broker: {} (MQTT {}), loadgen {} (commit {}, {})",
            c.broker,
            c.mqtt.name(),
            self.build.loadgen_version,
            self.build.git_commit,
            self.build.rustc
        );
        let _ = writeln!(
            s,
            "- load: {} thread(s), pacing {}, window {:.2} s\n",
            c.threads, self.loadgen.pacing, self.window_s
        );
        let _ = writeln!(s, "| figure | value |\n|---|---:|");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "| {k} | {v} |");
        };
        if c.scenario == Kind::Conn {
            let k = &self.connections;
            row("connections planned", k.planned.to_string());
            row("connected", k.connected.to_string());
            row("failed", k.failed.to_string());
            row("refused (CONNACK)", k.refused.to_string());
            row("timed out", k.timed_out.to_string());
            row("closed by the broker", k.closed_mid_run.to_string());
            if let Some(r) = k.connect_rate_per_s {
                row("connections per second", format!("{r:.0}"));
            }
        } else {
            let m = &self.messages;
            row("QoS", c.qos.to_string());
            row("payload bytes", c.size_bytes.to_string());
            row("publishers x subscribers", format!("{} x {}", c.pubs, c.subs));
            row(
                "rate per publisher",
                c.rate_per_pub.map_or("max (closed loop)".into(), |r| format!("{r}/s")),
            );
            row("sent", m.sent.to_string());
            row("sent per second (window)", format!("{:.0}", m.sent_per_s));
            row("delivered", m.delivered.to_string());
            row("delivered per second (window)", format!("{:.0}", m.delivered_per_s));
            row("expected deliveries", m.expected_deliveries.to_string());
            row("lost", m.lost.to_string());
            row("duplicated", m.duplicated.to_string());
            row("out of order", m.out_of_order.to_string());
            if c.qos > 0 {
                row("acknowledged", m.acked.to_string());
                row("refused by the broker", m.rejected.to_string());
            }
        }
        if let Some(b) = &self.broker {
            row("broker CPU s (window)", format!("{:.3}", b.cpu_s));
            if let Some(v) = b.cpu_us_per_msg {
                row("broker CPU-µs per delivered message", format!("{v:.3}"));
            }
            if let Some(v) = b.cpu_us_per_connection {
                row("broker CPU-µs per connection", format!("{v:.1}"));
            }
            if let Some(v) = b.rss_peak_kib {
                row("broker peak RSS MiB", format!("{:.1}", v as f64 / 1024.0));
            }
            if let Some(v) = b.rss_bytes_per_connection {
                row("broker RSS bytes per connection", format!("{v:.0}"));
            }
        }
        row("loadgen busiest thread %", format!("{:.1}", self.loadgen.busy_max_pct));
        let _ = writeln!(s, "\n## Latency (µs)\n");
        let _ = writeln!(s, "| histogram | count | p50 | p90 | p99 | p99.9 | p99.99 | max |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for h in Hist::ALL {
            if let Some(l) = self.latency_us.get(h.name()) {
                let _ = writeln!(
                    s,
                    "| {} ({}) | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    h.name(),
                    h.describe(),
                    l.count,
                    l.p50,
                    l.p90,
                    l.p99,
                    l.p99_9,
                    l.p99_99,
                    l.max
                );
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\n## First errors\n");
            for e in &self.errors {
                let _ = writeln!(s, "- {e}");
            }
        }
        s
    }
}

/// Microseconds, shown in the unit that keeps 3-4 digits.
pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.0}us")
    }
}

/// Writes summary.json, one `<name>_us.hgrm` per non-empty histogram, report.md and
/// latency.svg into `dir`.
pub fn write_files(dir: &Path, summary: &Summary, hists: &Histograms) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_string_pretty(summary)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    for h in Hist::ALL {
        let hist = hists.get(h);
        if !hist.is_empty() {
            std::fs::write(
                dir.join(format!("{}_us.hgrm", h.name())),
                crate::hgrm::percentile_distribution(hist, 1000.0),
            )?;
        }
    }
    std::fs::write(dir.join("report.md"), summary.markdown())?;
    crate::plot::latency_svg(&dir.join("latency.svg"), &summary.config, hists)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;

    /// A summary of a made-up `pairs --n 2 --qos 1` run and its histograms.
    pub(crate) fn summary() -> (Summary, Histograms) {
        let args = Args::try_parse_from(["ringmq-loadgen", "pairs", "--n", "2", "--qos", "1"]).unwrap();
        let cfg = RunConfig::from_args(&args, vec!["ringmq-loadgen".into(), "pairs".into()]).unwrap();
        let mut hists = Histograms::default();
        for v in 1..=1000u64 {
            hists.record(Hist::E2e, v * 1000);
            hists.record(Hist::E2eCorrected, v * 1100);
        }
        let latency_us = Hist::ALL
            .iter()
            .filter_map(|&h| LatencySummary::of(hists.get(h)).map(|l| (h.name(), l)))
            .collect();
        let s = Summary {
            tool: "ringmq-loadgen",
            build: Build::current(),
            command_line: cfg.command_line.clone(),
            started_unix_s: 0,
            machine: Machine::read(),
            config: cfg,
            status: Status {
                ok: true,
                exit_code: EXIT_OK,
                problems: vec![],
                warnings: vec![],
                loss_causes: vec![],
            },
            window_s: 1.0,
            messages: Messages { sent: 1000, unique: 1000, expected_deliveries: 1000, ..Default::default() },
            latency_us,
            connections: Connections::default(),
            broker: None,
            loadgen: Loadgen::default(),
            counters: Counters::default(),
            per_publisher: vec![],
            timeline: vec![],
            errors: vec![],
        };
        (s, hists)
    }

    #[test]
    fn writes_parseable_json_hgrm_markdown_and_svg() {
        let (s, hists) = summary();
        let dir = std::env::temp_dir().join(format!("ringmq-loadgen-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_files(&dir, &s, &hists).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
        assert_eq!(json["config"]["scenario"], "pairs");
        assert_eq!(json["config"]["qos"], 1);
        assert_eq!(json["latency_us"]["e2e"]["count"], 1000);
        assert!(json["latency_us"]["e2e"]["p50"].as_f64().unwrap() > 400.0);
        assert!(json["config"].get("password").is_none(), "the password is never written");
        let hgrm = std::fs::read_to_string(dir.join("e2e_us.hgrm")).unwrap();
        assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(!dir.join("ack_rtt_us.hgrm").exists(), "empty histograms are not written");
        let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
        assert!(md.contains("| e2e_corrected ("));
        assert!(std::fs::read_to_string(dir.join("latency.svg")).unwrap().contains("</svg>"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_line_says_ok_or_why_not() {
        let (mut s, _) = summary();
        let line = s.one_line();
        assert!(line.starts_with("ringmq-loadgen pairs mqtt 3.1.1 qos 1 2x2 rate 1000/s: sent"), "{line}");
        assert!(line.contains("e2e corrected p50"), "{line}");
        assert!(line.ends_with("| OK"), "{line}");
        s.status = Status {
            ok: false,
            exit_code: EXIT_DELIVERY_FAILED,
            problems: vec!["QoS 1: 3 lost".into()],
            warnings: vec![],
            loss_causes: vec![],
        };
        assert!(s.one_line().ends_with("| FAILED: QoS 1: 3 lost"));
    }

    #[test]
    fn formats_microseconds_in_a_readable_unit() {
        assert_eq!(fmt_us(85.4), "85us");
        assert_eq!(fmt_us(2_500.0), "2.50ms");
        assert_eq!(fmt_us(3_200_000.0), "3.20s");
    }
}
