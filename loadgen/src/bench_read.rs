//! Reads a `scripts/bench.sh` results directory: `meta.tsv` (bench.sh's notes on the
//! machine and the set-up) and every `BROKER/RUN/` with bench.sh's `run.json` and the
//! loadgen's `summary.json`.
//!
//! `summary.json` is read through the loadgen's own types ([`Messages`], [`Broker`],
//! [`LatencySummary`], ...), with every field the report uses required: a field renamed
//! in the summary fails `tests::reads_back_what_the_loadgen_writes` and, for files
//! already written, the report's run with the file and field named, never a "?" in a
//! table. `Option` fields are required too (`deserialize_with = "Option::deserialize"`:
//! present, maybe `null`), since serde would otherwise read a missing one as `None` and
//! the table would print a dash where a renamed figure was.

use crate::config::Kind;
use crate::matrix::{self, Case};
use crate::report::{Broker, Connections, LatencySummary, Loadgen, Messages, Status};
use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the report reads of a run's settings.
#[derive(Clone, Debug, Deserialize)]
pub struct ConfigRead {
    pub scenario: Kind,
    pub qos: u8,
    pub size_bytes: usize,
    pub pubs: u32,
    pub subs: u32,
    #[serde(deserialize_with = "Option::deserialize")]
    pub rate_per_pub: Option<f64>,
    pub conn_n: u32,
}

/// What the report reads of a summary.json.
#[derive(Clone, Debug, Deserialize)]
pub struct SummaryRead {
    pub config: ConfigRead,
    pub status: Status,
    pub window_s: f64,
    pub messages: Messages,
    pub latency_us: BTreeMap<String, LatencySummary>,
    pub connections: Connections,
    #[serde(deserialize_with = "Option::deserialize")]
    pub broker: Option<Broker>,
    pub loadgen: Loadgen,
}

/// bench.sh's note on one run (`run.json`).
#[derive(Clone, Debug, Deserialize)]
pub struct RunInfo {
    pub kind: String,
    pub exit_code: i32,
}

/// What a run was for, from bench.sh's run id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// A closed-loop matrix case.
    Throughput,
    /// A closed-loop headline case rerun in a later round.
    Headline,
    Latency,
    Fleet,
    Conn,
}

/// One loadgen run of the results directory.
#[derive(Clone, Debug)]
pub struct Run {
    pub broker: String,
    pub id: String,
    pub dir: PathBuf,
    pub kind: RunKind,
    pub round: u32,
    /// The matrix case (closed loop, latency and fleet runs).
    pub case: Option<Case>,
    pub exit_code: Option<i32>,
    pub summary: Option<SummaryRead>,
}

impl Run {
    /// Delivered messages per second in the window.
    pub fn rate(&self) -> Option<f64> {
        self.summary.as_ref().map(|s| s.messages.delivered_per_s)
    }

    /// Delivered messages per second of broker CPU.
    pub fn per_cpu_s(&self) -> Option<f64> {
        let c = self.summary.as_ref()?.broker.as_ref()?.cpu_us_per_msg?;
        (c > 0.0).then(|| 1e6 / c)
    }

    /// A latency percentile (µs) of one histogram: `p50`, `p99`, `p99_9` or `max`.
    pub fn latency(&self, hist: &str, p: &str) -> Option<f64> {
        let l = self.summary.as_ref()?.latency_us.get(hist)?;
        Some(match p {
            "p50" => l.p50,
            "p99" => l.p99,
            "p99_9" => l.p99_9,
            "max" => l.max,
            other => panic!("unknown percentile {other}"),
        })
    }

    /// The headline latency: corrected in open loop, measured in closed loop.
    pub fn e2e(&self, p: &str) -> Option<f64> {
        self.latency("e2e_corrected", p).or_else(|| self.latency("e2e", p))
    }

    pub fn lost(&self) -> Option<u64> {
        self.summary.as_ref().map(|s| s.messages.lost)
    }

    /// "OK", "QoS 1/2 LOSS", "FAILED (exit N)", "TIMED OUT".
    pub fn status(&self) -> String {
        match (self.exit_code, &self.summary) {
            (Some(124 | 137), _) => "TIMED OUT".into(),
            (Some(3), Some(_)) => "**QoS 1/2 LOSS**".into(),
            (Some(0) | None, Some(_)) => "OK".into(),
            (Some(rc), _) => format!("FAILED (exit {rc})"),
            (None, None) => "no result".into(),
        }
    }
}

/// bench.sh's `meta.tsv`: `KEY<TAB>VALUE` lines; `note` may repeat.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    values: BTreeMap<String, String>,
    pub notes: Vec<String>,
}

impl Meta {
    pub fn parse(text: &str) -> Meta {
        let mut m = Meta::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('\t') else { continue };
            if k == "note" {
                m.notes.push(v.to_string());
            } else {
                m.values.insert(k.to_string(), v.to_string());
            }
        }
        m
    }

    /// The value, or "?" where bench.sh did not record it (an older or cut-short run).
    pub fn get(&self, key: &str) -> &str {
        self.values.get(key).map_or("?", String::as_str)
    }

    pub fn has(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| !v.trim().is_empty())
    }
}

/// A results directory, read.
pub struct Results {
    pub dir: PathBuf,
    pub meta: Meta,
    /// ringmq first, then the others in bench.sh's order.
    pub brokers: Vec<String>,
    pub runs: Vec<Run>,
}

/// The run-kind prefix and round of a run id: `latency-r2-pairs-100-q1-64B`.
fn split_id(id: &str) -> (RunKind, u32, &str) {
    for (prefix, kind) in
        [("latency-", RunKind::Latency), ("fleet-", RunKind::Fleet), ("headline-", RunKind::Headline)]
    {
        if let Some(rest) = id.strip_prefix(prefix) {
            let (round, rest) = match rest.strip_prefix('r').and_then(|r| r.split_once('-')) {
                Some((n, tail)) if n.parse::<u32>().is_ok() => (n.parse().unwrap(), tail),
                _ => (1, rest),
            };
            return (kind, round, rest);
        }
    }
    if id.starts_with("conn-") {
        return (RunKind::Conn, 1, id);
    }
    (RunKind::Throughput, 1, id)
}

/// The fleet run ids carry their own shape (`pairs-1000-q0-64B`): the QoS is what differs.
pub fn fleet_qos(id_tail: &str) -> Option<u8> {
    id_tail.rsplit_once("-q")?.1.split_once('-')?.0.parse().ok()
}

fn read_run(broker: &str, id: &str, dir: &Path) -> anyhow::Result<Run> {
    let info: Option<RunInfo> = match std::fs::read_to_string(dir.join("run.json")) {
        Ok(t) => Some(serde_json::from_str(&t).with_context(|| format!("{}/run.json", dir.display()))?),
        Err(_) => None,
    };
    let summary: Option<SummaryRead> = match std::fs::read_to_string(dir.join("summary.json")) {
        Ok(t) => Some(serde_json::from_str(&t).with_context(|| format!("{}/summary.json", dir.display()))?),
        Err(_) => None,
    };
    let (kind, round, tail) = split_id(id);
    let kind = match info.as_ref().map(|i| i.kind.as_str()) {
        Some("headline") => RunKind::Headline,
        _ => kind,
    };
    Ok(Run {
        broker: broker.to_string(),
        id: id.to_string(),
        dir: dir.to_path_buf(),
        kind,
        round,
        case: matrix::parse_case(tail),
        exit_code: info.map(|i| i.exit_code).or(summary.as_ref().map(|s| s.status.exit_code)),
        summary,
    })
}

impl Results {
    /// Reads every run; a summary.json that does not parse is an error naming it.
    pub fn read(dir: &Path) -> anyhow::Result<Results> {
        let meta = Meta::parse(&std::fs::read_to_string(dir.join("meta.tsv")).unwrap_or_default());
        let listed: Vec<String> = meta.get("brokers").split_whitespace().map(str::to_string).collect();
        let mut brokers: Vec<String> = Vec::new();
        let mut runs = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for b in names {
            let bdir = dir.join(&b);
            let mut ids: Vec<String> = std::fs::read_dir(&bdir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.path().join("run.json").exists() || e.path().join("summary.json").exists())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if ids.is_empty() {
                continue; // plots/, profiles: no runs
            }
            ids.sort();
            for id in ids {
                runs.push(read_run(&b, &id, &bdir.join(&id))?);
            }
            brokers.push(b);
        }
        let rank = |b: &String| match (b.as_str(), listed.iter().position(|l| l == b)) {
            ("ringmq", _) => (0, 0),
            (_, Some(i)) => (1, i),
            _ => (2, 0),
        };
        brokers.sort_by_key(|b| rank(b));
        Ok(Results { dir: dir.to_path_buf(), meta, brokers, runs })
    }

    /// The runs of one broker and kind.
    pub fn of<'a>(&'a self, broker: &str, kind: RunKind) -> impl Iterator<Item = &'a Run> + 'a {
        let broker = broker.to_string();
        self.runs.iter().filter(move |r| r.broker == broker && r.kind == kind)
    }

    /// A closed-loop case's runs: the matrix run, then its reruns in later rounds.
    pub fn case_runs(&self, broker: &str, id: &str) -> Vec<&Run> {
        let mut out: Vec<&Run> = self.of(broker, RunKind::Throughput).filter(|r| r.id == id).collect();
        let mut reruns: Vec<&Run> = self
            .of(broker, RunKind::Headline)
            .filter(|r| r.case.is_some_and(|c| matrix::case_id(c.scenario.key, c.qos, c.size_bytes) == id))
            .collect();
        reruns.sort_by_key(|r| r.round);
        out.extend(reruns);
        out
    }
}

/// The median of the values present; `None` when there are none.
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_the_loadgen_writes() {
        let (s, _) = crate::report::tests::summary();
        let json = serde_json::to_string(&s).unwrap();
        let back: SummaryRead = serde_json::from_str(&json).expect("summary.json reads through its types");
        assert_eq!(back.config.scenario, Kind::Pairs);
        assert_eq!(back.messages.sent, s.messages.sent);
        assert_eq!(back.latency_us["e2e"], s.latency_us["e2e"]);
        // A renamed field is an error, not a blank: drop one the report needs.
        let broken = json.replace("\"delivered_per_s\"", "\"delivered_rate\"");
        let err = serde_json::from_str::<SummaryRead>(&broken).unwrap_err().to_string();
        assert!(err.contains("delivered_per_s"), "{err}");
        let broken = json.replace("\"connect_rate_per_s\"", "\"connect_rate\"");
        let err = serde_json::from_str::<SummaryRead>(&broken).unwrap_err().to_string();
        assert!(err.contains("connect_rate_per_s"), "an Option is required too: {err}");
    }

    #[test]
    fn run_ids_give_kind_round_and_case() {
        assert_eq!(split_id("latency-r2-pairs-100-q1-64B"), (RunKind::Latency, 2, "pairs-100-q1-64B"));
        assert_eq!(split_id("headline-r3-fanout-50-q0-64B"), (RunKind::Headline, 3, "fanout-50-q0-64B"));
        assert_eq!(split_id("pairs-10-q2-64B"), (RunKind::Throughput, 1, "pairs-10-q2-64B"));
        assert_eq!(split_id("conn-2000").0, RunKind::Conn);
        assert_eq!(fleet_qos("pairs-1000-q1-64B"), Some(1));
        assert_eq!(median([Some(3.0), None, Some(1.0), Some(2.0), Some(10.0)]), Some(2.5));
        assert_eq!(median([None]), None);
    }
}
