//! The end of a run: merges the load threads' counters, histograms and per-publisher
//! deliveries, computes the rates and the broker's cost over the measurement window, and
//! gives the verdict (problems, warnings, exit status) in the [`Summary`].

use crate::config::{Kind, RunConfig};
use crate::loss::{self, LossInput, SubscriberTally};
use crate::monitor::{busy_pcts, Monitor};
use crate::phases::Phases;
use crate::plan::Plan;
use crate::procfs::{self, Machine};
use crate::report::{
    self, Broker, Connections, LatencySummary, LoadThread, Loadgen, Messages, PublisherRow, Status, Summary,
    BUSY_WARN_PCT, EXIT_DELIVERY_FAILED, EXIT_OK, EXIT_RUN_FAILED,
};
use crate::shared::Shared;
use crate::stats::{Counters, Hist, Histograms, PubDelivery};
use crate::worker::ThreadResult;
use ringmq::protocol::QoS;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What [`summarize`] needs.
pub struct SummaryInput<'a> {
    pub cfg: &'a Arc<RunConfig>,
    pub plan: &'a Plan,
    pub shared: &'a Shared,
    pub mon: &'a Monitor,
    pub phases: Phases,
    pub results: Vec<ThreadResult>,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub started_unix_s: u64,
    pub nofile: u64,
}

/// Merges what the threads measured and what the phases found into the summary, with
/// its verdict, and the run's histograms.
pub fn summarize(inp: SummaryInput<'_>) -> (Summary, Histograms) {
    let SummaryInput {
        cfg,
        plan,
        shared,
        mon,
        phases: ph,
        results,
        mut problems,
        mut warnings,
        started_unix_s,
        nofile,
    } = inp;
    let mut counters = Counters::default();
    let mut hists = Histograms::default();
    let mut per_pub = vec![PubDelivery::default(); cfg.pubs as usize];
    let mut per_sub = Vec::new();
    let mut errors = Vec::new();
    for r in &results {
        counters.add(&r.counters);
        hists.merge(&r.hists);
        for (a, b) in per_pub.iter_mut().zip(&r.per_pub) {
            a.add(b);
        }
        per_sub.extend(r.per_sub.iter().cloned());
        errors.extend(r.errors.iter().cloned());
    }
    let window_s = (ph.window_end.t_ns.saturating_sub(ph.window_start.t_ns) as f64 / 1e9).max(1e-9);
    let sent: Vec<u64> = shared.sent.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let per_publisher: Vec<PublisherRow> = per_pub
        .iter()
        .enumerate()
        .map(|(p, d)| {
            let expected = sent[p] * plan.deliveries_per_msg[p];
            PublisherRow {
                id: p as u32,
                sent: sent[p],
                expected,
                unique: d.unique,
                lost: expected.saturating_sub(d.unique),
                duplicated: d.duplicates,
                out_of_order: d.out_of_order,
            }
        })
        .collect();
    let ran = !ph.setup_failed;
    let expected_deliveries: u64 = per_publisher.iter().map(|r| r.expected).sum();
    let lost: u64 = if ran { per_publisher.iter().map(|r| r.lost).sum() } else { 0 };
    let retained = cfg.scenario == Kind::Retained;
    let messages = Messages {
        sent: sent.iter().sum(),
        sent_in_window: counters.published_in_window,
        sent_per_s: if retained { 0.0 } else { counters.published_in_window as f64 / window_s },
        acked: counters.acked,
        rejected: counters.rejected,
        expected_deliveries,
        delivered: counters.delivered,
        delivered_in_window: counters.delivered_in_window,
        delivered_per_s: if retained {
            counters.unique as f64 / window_s
        } else {
            counters.delivered_in_window as f64 / window_s
        },
        unique: counters.unique,
        lost,
        duplicated: counters.duplicates,
        out_of_order: counters.out_of_order,
        unexpected: counters.unexpected,
        malformed: counters.malformed,
        qos2_redelivered: counters.qos2_redelivered,
        written_off: counters.written_off,
        unverified: counters.unverified,
    };
    let connections = Connections {
        planned: cfg.connections(),
        attempted: counters.conn_attempted,
        connected: counters.conn_ok,
        failed: counters.conn_failed,
        refused: counters.conn_refused,
        timed_out: counters.conn_timed_out,
        subscribe_failed: counters.subscribe_failed,
        subscribe_downgraded: counters.subscribe_downgraded,
        closed_mid_run: counters.closed_mid_run,
        connect_rate_per_s: (cfg.scenario == Kind::Conn).then(|| counters.conn_attempted as f64 / window_s),
    };
    let pids = &cfg.broker_pids;
    let broker = (!pids.is_empty()).then(|| {
        let cpu_us = match (ph.window_start.broker_us, ph.window_end.broker_us) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let delivered = if retained { counters.unique } else { counters.delivered_in_window };
        Broker {
            pids: pids.clone(),
            cmdlines: pids.iter().filter_map(|&p| procfs::cmdline(p)).collect(),
            cpu_s: cpu_us.unwrap_or(0) as f64 / 1e6,
            cpu_cores: cpu_us.unwrap_or(0) as f64 / 1e6 / window_s,
            cpu_us_per_msg: cpu_us
                .filter(|_| delivered > 0 && cfg.scenario != Kind::Conn)
                .map(|c| c as f64 / delivered as f64),
            cpu_us_per_connection: cpu_us
                .filter(|_| cfg.scenario == Kind::Conn && counters.conn_ok > 0)
                .map(|c| c as f64 / counters.conn_ok as f64),
            rss_start_kib: ph.rss_before_kib.or(mon.rss_start_kib),
            rss_end_kib: procfs::processes_rss_kib(pids).or(mon.rss_last_kib),
            rss_peak_kib: mon.rss_peak_kib,
            rss_bytes_per_connection: match (ph.rss_before_kib, ph.rss_held_kib) {
                (Some(a), Some(b)) if counters.conn_ok > 0 => {
                    Some((b as f64 - a as f64) * 1024.0 / counters.conn_ok as f64)
                }
                _ => None,
            },
        }
    });
    let busy = busy_pcts(&ph.window_start, &ph.window_end);
    let threads: Vec<LoadThread> = mon
        .tids
        .iter()
        .enumerate()
        .map(|(i, &(index, tid))| LoadThread {
            index,
            cpu: cfg.cpus.as_ref().map(|c| c[index % c.len()]),
            tid,
            busy_pct: busy.get(i).copied().unwrap_or(0.0),
        })
        .collect();
    let busy_max_pct = threads.iter().map(|t| t.busy_pct).fold(0.0, f64::max);
    let saturated = busy_max_pct > BUSY_WARN_PCT;
    if saturated {
        warnings.push(format!(
            "a load thread was {busy_max_pct:.0}% busy: the load generator may have been the limit, not the broker (add --cores)"
        ));
    }
    if ph.drain_timed_out && ran {
        warnings.push("the drain period ended before every owed delivery arrived".into());
    }
    if counters.subscribe_downgraded > 0 {
        warnings.push(format!("{} subscription(s) granted a lower QoS", counters.subscribe_downgraded));
    }
    if counters.written_off > 0 || counters.unverified > 0 {
        warnings.push("some sequence numbers could not be checked (see written_off, unverified)".into());
    }
    let mut exit_code = EXIT_OK;
    if !problems.is_empty() {
        exit_code = EXIT_RUN_FAILED;
    }
    if cfg.scenario == Kind::Conn && counters.conn_failed > 0 {
        problems.push(format!("{} of {} connections failed", counters.conn_failed, cfg.conn_n));
        exit_code = EXIT_RUN_FAILED;
    }
    if cfg.scenario == Kind::Conn && counters.conn_ok + counters.conn_failed < cfg.conn_n as u64 {
        problems.push("not every connection was attempted in time".into());
        exit_code = EXIT_RUN_FAILED;
    }
    if ran && cfg.scenario != Kind::Conn {
        // Each publisher's deliveries are judged at their QoS (the lower of the publisher's
        // and its subscribers'): the same as --qos for the built-in scenarios.
        let at = |keep: fn(u8) -> bool, f: fn(&PublisherRow) -> u64| -> u64 {
            per_publisher.iter().zip(&plan.delivery_qos).filter(|(_, &q)| keep(q)).map(|(r, _)| f(r)).sum()
        };
        let (lost_guaranteed, lost_qos0) = (at(|q| q > 0, |r| r.lost), at(|q| q == 0, |r| r.lost));
        let duplicated_qos2 = at(|q| q == 2, |r| r.duplicated);
        let label = if cfg.traffic.is_some() { "QoS 1/2".to_string() } else { format!("QoS {}", cfg.qos) };
        if lost_guaranteed > 0 {
            problems.push(format!("{label}: {lost_guaranteed} message(s) lost"));
            exit_code = exit_code.max(EXIT_DELIVERY_FAILED);
        }
        if duplicated_qos2 > 0 {
            problems.push(format!("QoS 2: {duplicated_qos2} message(s) delivered twice"));
            exit_code = exit_code.max(EXIT_DELIVERY_FAILED);
        }
        if lost_qos0 > 0 {
            warnings.push(format!("QoS 0: {lost_qos0} message(s) lost (allowed at QoS 0)"));
        }
    }
    // Loss diagnosis: a subscriber outside a shared group is owed every message of the
    // publishers it expects.
    let subscribers: Vec<SubscriberTally> = per_sub
        .iter()
        .filter(|t| !t.shared)
        .map(|t| SubscriberTally {
            owed: t.expects.clone().map(|p| sent.get(p as usize).copied().unwrap_or(0)).sum(),
            unique: t.unique,
        })
        .collect();
    let loss_causes = if ran && cfg.scenario != Kind::Conn {
        loss::likely_causes(&LossInput {
            qos: cfg.qos,
            acked_kind_sent: (0..cfg.pubs)
                .filter(|&p| cfg.publisher_qos(p) != QoS::AtMostOnce)
                .map(|p| sent[p as usize])
                .sum(),
            messages: &messages,
            connections: &connections,
            subscribers: &subscribers,
            loadgen_busy_max_pct: busy_max_pct,
            loadgen_saturated: saturated,
            drain_timed_out: ph.drain_timed_out,
        })
    } else {
        Vec::new()
    };
    let disagree = loss::disagreements(&messages, &per_publisher);
    if !disagree.is_empty() {
        warnings.push(format!("the load generator's counters disagree (a bug): {}", disagree.join("; ")));
    }
    let latency_us: BTreeMap<&'static str, LatencySummary> =
        Hist::ALL.iter().filter_map(|&h| LatencySummary::of(hists.get(h)).map(|l| (h.name(), l))).collect();
    let summary = Summary {
        tool: "ringmq-loadgen",
        build: report::Build::current(),
        command_line: cfg.command_line.clone(),
        started_unix_s,
        machine: Machine::read(),
        config: (**cfg).clone(),
        status: Status { ok: exit_code == EXIT_OK, exit_code, problems, warnings, loss_causes },
        window_s,
        messages,
        latency_us,
        connections,
        broker,
        loadgen: Loadgen {
            threads,
            busy_max_pct,
            saturated,
            pacing: shared.pacing.lock().map(|p| p.to_string()).unwrap_or_default(),
            nofile_limit: nofile,
        },
        counters,
        per_publisher,
        timeline: mon.timeline.clone(),
        errors,
    };
    (summary, hists)
}
