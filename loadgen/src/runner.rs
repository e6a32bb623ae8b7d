//! Runs a scenario: starts the load threads, steps them through the phases, watches the
//! broker and the load threads from /proc, then merges what the threads measured into the
//! [`Summary`] and writes the files.

use crate::clock::{now_ns, secs_to_ns};
use crate::config::{Kind, RunConfig};
use crate::plan::Plan;
use crate::procfs::{self, Machine};
use crate::progress::Progress;
use crate::report::{
    self, Broker, Connections, LatencySummary, LoadThread, Loadgen, Messages, PublisherRow, Status, Summary,
    TimelineRow, BUSY_WARN_PCT, EXIT_DELIVERY_FAILED, EXIT_OK, EXIT_RUN_FAILED,
};
use crate::schedule::new_histogram;
use crate::shared::{phase, Shared, Snapshot, Times};
use crate::stats::{Counters, Hist, Histograms, PubDelivery};
use crate::worker::{self, ThreadResult};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Time between the go signal and the first scheduled send, so every thread has seen it.
const START_DELAY_NS: u64 = 100_000_000;
/// Broker memory sampling period.
const RSS_SAMPLE_NS: u64 = 100_000_000;
/// The progress line runs this far behind the threads' once-a-second snapshots, so that
/// each line shows the second that just ended.
const PRINT_LAG_NS: u64 = 50_000_000;
/// The runner's polling step.
const POLL_STEP: Duration = Duration::from_millis(10);
/// `retained`: wait after storing before subscribing, so a broker that spreads retained
/// messages between its cores asynchronously has done so.
const RETAINED_SETTLE: Duration = Duration::from_millis(300);
/// QoS 0 drain ends early once no delivery arrived for this long (QoS 0 loss is final).
const QOS0_QUIET_NS: u64 = 1_000_000_000;

/// The result of a run.
pub struct Outcome {
    pub summary: Summary,
    /// Merged histograms, in ns.
    pub hists: Histograms,
    pub exit_code: i32,
}

/// CPU readings at one instant.
#[derive(Clone, Default)]
struct CpuMark {
    t_ns: u64,
    broker_us: Option<u64>,
    threads_us: Vec<Option<u64>>,
}

/// Watches the run from the runner's thread: snapshots, progress, broker memory.
struct Monitor {
    shared: Arc<Shared>,
    broker_pid: Option<u32>,
    rss_start_kib: Option<u64>,
    rss_peak_kib: Option<u64>,
    rss_last_kib: Option<u64>,
    next_rss_ns: u64,
    tids: Vec<(usize, i32)>,
    latest: Vec<Counters>,
    interval: Histogram<u64>,
    next_print_ns: u64,
    last_print: (u64, Counters, CpuMark),
    timeline: Vec<TimelineRow>,
    progress: Progress,
    rx: crossbeam_channel::Receiver<Snapshot>,
}

impl Monitor {
    fn cpu_mark(&self) -> CpuMark {
        CpuMark {
            t_ns: now_ns(),
            broker_us: self.broker_pid.and_then(procfs::process_cpu_us),
            threads_us: self.tids.iter().map(|&(_, tid)| procfs::thread_cpu_us(tid)).collect(),
        }
    }

    fn totals(&self) -> Counters {
        let mut c = Counters::default();
        for t in &self.latest {
            c.add(t);
        }
        c
    }

    fn tick(&mut self) {
        while let Ok(s) = self.rx.try_recv() {
            self.latest[s.thread] = s.counters;
            let _ = self.interval.add(&s.interval);
        }
        let now = now_ns();
        if let Some(pid) = self.broker_pid {
            if now >= self.next_rss_ns {
                self.next_rss_ns = now + RSS_SAMPLE_NS;
                if let Some(kib) = procfs::process_rss_kib(pid) {
                    self.rss_last_kib = Some(kib);
                    self.rss_peak_kib = Some(self.rss_peak_kib.map_or(kib, |p| p.max(kib)));
                    self.rss_start_kib.get_or_insert(kib);
                }
            }
        }
        let start = self.shared.start_ns.load(Ordering::Relaxed);
        if start == 0 || self.shared.phase.load(Ordering::Relaxed) < phase::RUN || now < self.next_print_ns {
            return;
        }
        self.next_print_ns = now.max(self.next_print_ns) + 1_000_000_000;
        let totals = self.totals();
        let mark = self.cpu_mark();
        let (t0, prev, prev_mark) = &self.last_print;
        let secs = (now - t0) as f64 / 1e9;
        let busy = busy_pcts(prev_mark, &mark).into_iter().fold(0.0, f64::max);
        let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        let row = TimelineRow {
            t_s: now.saturating_sub(start) as f64 / 1e9,
            sent_per_s: (totals.published - prev.published) as f64 / secs,
            delivered_per_s: (totals.delivered - prev.delivered) as f64 / secs,
            gaps: totals.gaps,
            e2e_p50_us: q(&self.interval, 0.5),
            e2e_p99_us: q(&self.interval, 0.99),
            e2e_max_us: (!self.interval.is_empty()).then(|| self.interval.max() as f64 / 1000.0),
            loadgen_busy_max_pct: busy,
            broker_rss_kib: self.rss_last_kib,
            connected: totals.conn_ok,
        };
        let line = if self.shared.cfg.scenario == Kind::Conn {
            format!(
                "[{:>5.1}s] connected {}/{} failed {} loadgen busy {:.0}%",
                row.t_s, totals.conn_ok, self.shared.cfg.conn_n, totals.conn_failed, busy
            )
        } else {
            let lat = match (row.e2e_p50_us, row.e2e_p99_us, row.e2e_max_us) {
                (Some(a), Some(b), Some(c)) => {
                    format!("p50 {} p99 {} max {}", report::fmt_us(a), report::fmt_us(b), report::fmt_us(c))
                }
                _ => "no latency yet".into(),
            };
            format!(
                "[{:>5.1}s] sent {:.0}/s delivered {:.0}/s {lat} gaps {} loadgen busy {:.0}%",
                row.t_s, row.sent_per_s, row.delivered_per_s, row.gaps, busy
            )
        };
        self.progress.show(&line);
        self.timeline.push(row);
        self.interval.reset();
        self.last_print = (now, totals, mark);
    }

    /// Watches until `t_ns`, or until `done` says so; returns whether `done` ended it.
    fn watch_until(&mut self, t_ns: u64, mut done: impl FnMut(&Shared) -> bool) -> bool {
        loop {
            self.tick();
            if done(&self.shared) {
                return true;
            }
            let now = now_ns();
            if now >= t_ns {
                return false;
            }
            std::thread::sleep(POLL_STEP.min(Duration::from_nanos(t_ns - now)));
        }
    }
}

/// Percent of one core each load thread used between two marks.
fn busy_pcts(a: &CpuMark, b: &CpuMark) -> Vec<f64> {
    let wall_us = (b.t_ns.saturating_sub(a.t_ns) as f64 / 1000.0).max(1.0);
    a.threads_us
        .iter()
        .zip(&b.threads_us)
        .map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => y.saturating_sub(*x) as f64 / wall_us * 100.0,
            _ => 0.0,
        })
        .collect()
}

/// Runs `cfg` to the end and returns what it measured (files written if `--out`).
pub fn run(cfg: RunConfig) -> anyhow::Result<Outcome> {
    let started_unix_s =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let cfg = Arc::new(cfg);
    let plan = Plan::build(&cfg);
    let nofile = crate::net::raise_nofile_limit();
    let mut warnings = Vec::new();
    if cfg.connections() + 64 > nofile {
        warnings.push(format!(
            "{} connections but the open-file limit is {nofile}: raise it (ulimit -n) or expect failures",
            cfg.connections()
        ));
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::new(cfg.clone(), tx));
    let mut handles = Vec::new();
    for (i, specs) in plan.threads.iter().cloned().enumerate() {
        let cpu = cfg.cpus.as_ref().map(|c| c[i % c.len()]);
        handles.push(worker::spawn(i, cpu, specs, shared.clone())?);
    }
    // The thread ids arrive as the threads start.
    let tid_deadline = now_ns() + 2_000_000_000;
    while shared.tids.lock().expect("tids").len() < cfg.threads && now_ns() < tid_deadline {
        if handles.iter().any(|h| h.is_finished()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut tids = shared.tids.lock().expect("tids").clone();
    tids.sort();
    let mut mon = Monitor {
        shared: shared.clone(),
        broker_pid: cfg.broker_pid,
        rss_start_kib: None,
        rss_peak_kib: None,
        rss_last_kib: None,
        next_rss_ns: 0,
        latest: vec![Counters::default(); cfg.threads],
        interval: new_histogram(),
        next_print_ns: 0,
        last_print: (now_ns(), Counters::default(), CpuMark::default()),
        timeline: Vec::new(),
        progress: Progress::new(cfg.quiet),
        rx,
        tids,
    };
    if let Some(pid) = cfg.broker_pid {
        if procfs::process_cpu_us(pid).is_none() {
            warnings.push(format!("cannot read /proc/{pid}: no broker figures"));
        }
    }
    mon.tick();

    let mut problems = Vec::new();
    let phases = match cfg.scenario {
        Kind::Conn => run_conn(&cfg, &mut mon),
        Kind::Retained => run_retained(&cfg, &mut mon, &handles, &mut problems),
        _ => run_pubsub(&cfg, &plan, &mut mon, &handles, &mut problems),
    };
    shared.set_phase(phase::STOP);
    let mut results: Vec<ThreadResult> = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => problems.push(format!("a load thread failed: {e:#}")),
            Err(_) => problems.push("a load thread panicked".into()),
        }
    }
    mon.tick();
    mon.progress.finish();
    let (summary, hists) = summarize(SummaryInput {
        cfg: &cfg,
        plan: &plan,
        shared: &shared,
        mon: &mon,
        phases,
        results,
        problems,
        warnings,
        started_unix_s,
        nofile,
    });
    if let Some(dir) = &cfg.out {
        report::write_files(dir, &summary, &hists)?;
    }
    let exit_code = summary.status.exit_code;
    Ok(Outcome { summary, hists, exit_code })
}

/// What the phases found, for the summary.
#[derive(Default)]
struct Phases {
    window_start: CpuMark,
    window_end: CpuMark,
    setup_failed: bool,
    /// `conn`: RSS before the first connection and while all were held.
    rss_before_kib: Option<u64>,
    rss_held_kib: Option<u64>,
    drain_timed_out: bool,
}

/// Waits for every thread's set-up; false (and a problem noted) if it failed.
fn wait_setup(
    cfg: &RunConfig,
    mon: &mut Monitor,
    handles: &[std::thread::JoinHandle<anyhow::Result<ThreadResult>>],
    problems: &mut Vec<String>,
) -> bool {
    let per_thread = cfg.connections().div_ceil(cfg.threads as u64);
    let rounds = per_thread.div_ceil(worker::CONNECTS_IN_FLIGHT_MAX as u64) + 2;
    let deadline = now_ns() + secs_to_ns(cfg.connect_timeout_s) * rounds + 5_000_000_000;
    let threads = cfg.threads;
    let done = mon.watch_until(deadline, |s| {
        s.threads_set_up.load(Ordering::Acquire) >= threads || handles.iter().any(|h| h.is_finished())
    });
    let failures = mon.shared.setup_failures.load(Ordering::Relaxed);
    if !done {
        problems.push("set-up did not finish in time".into());
        false
    } else if failures > 0 {
        problems
            .push(format!("{failures} client(s) failed to connect or subscribe; the run was not started"));
        false
    } else if handles.iter().any(|h| h.is_finished()) {
        problems.push("a load thread stopped during set-up".into());
        false
    } else {
        true
    }
}

fn run_pubsub(
    cfg: &RunConfig,
    plan: &Plan,
    mon: &mut Monitor,
    handles: &[std::thread::JoinHandle<anyhow::Result<ThreadResult>>],
    problems: &mut Vec<String>,
) -> Phases {
    let mut ph = Phases::default();
    if !wait_setup(cfg, mon, handles, problems) {
        ph.setup_failed = true;
        return ph;
    }
    let start = now_ns() + START_DELAY_NS;
    let warm_end = start + secs_to_ns(cfg.warmup_s);
    let end = warm_end + secs_to_ns(cfg.duration_s);
    let t = Times {
        start_ns: start,
        warm_end_ns: warm_end,
        end_ns: end,
        drain_deadline_ns: end + secs_to_ns(cfg.drain_s),
    };
    mon.shared.begin_run(t);
    mon.next_print_ns = start + 1_000_000_000 + PRINT_LAG_NS;
    mon.last_print = (start, Counters::default(), mon.cpu_mark());
    mon.watch_until(warm_end, |_| false);
    ph.window_start = mon.cpu_mark();
    mon.watch_until(end, |_| false);
    ph.window_end = mon.cpu_mark();
    // Drain: every publisher done and every owed delivery in, or the deadline.
    let pubs = cfg.pubs;
    let qos0 = cfg.qos == 0;
    let mut last_unique = (0u64, now_ns());
    let dpm = &plan.deliveries_per_msg;
    let done = mon.watch_until(t.drain_deadline_ns, |s| {
        if s.pubs_done.load(Ordering::Acquire) < pubs {
            return false;
        }
        let expected: u64 = s.sent.iter().zip(dpm).map(|(a, d)| a.load(Ordering::Relaxed) * d).sum();
        let unique: u64 = s.unique.iter().map(|u| u.0.load(Ordering::Relaxed)).sum();
        if unique >= expected {
            return true;
        }
        let now = now_ns();
        if unique != last_unique.0 {
            last_unique = (unique, now);
        }
        qos0 && now - last_unique.1 >= QOS0_QUIET_NS
    });
    ph.drain_timed_out = !done;
    ph
}

fn run_retained(
    cfg: &RunConfig,
    mon: &mut Monitor,
    handles: &[std::thread::JoinHandle<anyhow::Result<ThreadResult>>],
    problems: &mut Vec<String>,
) -> Phases {
    let mut ph = Phases::default();
    if !wait_setup(cfg, mon, handles, problems) {
        ph.setup_failed = true;
        return ph;
    }
    mon.shared.set_phase(phase::STORE);
    let store_deadline = now_ns() + secs_to_ns(cfg.duration_s + cfg.drain_s) + 1_000_000_000;
    if !mon.watch_until(store_deadline, |s| s.pubs_done.load(Ordering::Acquire) >= 1) {
        problems.push("storing the retained messages did not finish in time".into());
    }
    std::thread::sleep(RETAINED_SETTLE);
    let start = now_ns() + START_DELAY_NS;
    let end = start + secs_to_ns(cfg.duration_s);
    let t = Times { start_ns: start, warm_end_ns: start, end_ns: end, drain_deadline_ns: end };
    mon.shared.begin_run(t);
    mon.next_print_ns = start + 1_000_000_000 + PRINT_LAG_NS;
    mon.last_print = (start, Counters::default(), mon.cpu_mark());
    mon.watch_until(start, |_| false);
    ph.window_start = mon.cpu_mark();
    let expected = cfg.retained_n as u64 * cfg.subs as u64;
    let done = mon.watch_until(end, |s| {
        s.unique.iter().map(|u| u.0.load(Ordering::Relaxed)).sum::<u64>() >= expected
            && s.sent[0].load(Ordering::Relaxed) > 0
    });
    ph.window_end = mon.cpu_mark();
    ph.drain_timed_out = !done;
    mon.shared.set_phase(phase::CLEANUP);
    let cleanup_deadline = now_ns() + secs_to_ns(cfg.drain_s.max(1.0)) + 1_000_000_000;
    mon.watch_until(cleanup_deadline, |s| s.cleanups_done.load(Ordering::Acquire) >= 1);
    ph
}

fn run_conn(cfg: &RunConfig, mon: &mut Monitor) -> Phases {
    let mut ph = Phases::default();
    if let Some(pid) = cfg.broker_pid {
        ph.rss_before_kib = procfs::process_rss_kib(pid);
    }
    let start = now_ns() + START_DELAY_NS;
    let open_ns = secs_to_ns(cfg.conn_n as f64 / cfg.conn_rate_per_s);
    let end = start + open_ns;
    let deadline = end + secs_to_ns(cfg.connect_timeout_s) + 1_000_000_000;
    let t = Times { start_ns: start, warm_end_ns: start, end_ns: end, drain_deadline_ns: deadline };
    mon.shared.begin_run(t);
    mon.next_print_ns = start + 1_000_000_000 + PRINT_LAG_NS;
    mon.last_print = (start, Counters::default(), mon.cpu_mark());
    mon.watch_until(start, |_| false);
    ph.window_start = mon.cpu_mark();
    let n = cfg.conn_n as u64;
    let done = mon
        .watch_until(deadline, |s| s.conn_done.iter().map(|c| c.0.load(Ordering::Relaxed)).sum::<u64>() >= n);
    ph.window_end = mon.cpu_mark();
    ph.drain_timed_out = !done;
    let hold_end = now_ns() + secs_to_ns(cfg.hold_s);
    mon.watch_until(hold_end, |_| false);
    if let Some(pid) = cfg.broker_pid {
        ph.rss_held_kib = procfs::process_rss_kib(pid);
    }
    ph
}

struct SummaryInput<'a> {
    cfg: &'a Arc<RunConfig>,
    plan: &'a Plan,
    shared: &'a Shared,
    mon: &'a Monitor,
    phases: Phases,
    results: Vec<ThreadResult>,
    problems: Vec<String>,
    warnings: Vec<String>,
    started_unix_s: u64,
    nofile: u64,
}

fn summarize(inp: SummaryInput<'_>) -> (Summary, Histograms) {
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
    let mut errors = Vec::new();
    for r in &results {
        counters.add(&r.counters);
        hists.merge(&r.hists);
        for (a, b) in per_pub.iter_mut().zip(&r.per_pub) {
            a.add(b);
        }
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
    let broker = cfg.broker_pid.map(|pid| {
        let cpu_us = match (ph.window_start.broker_us, ph.window_end.broker_us) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let delivered = if retained { counters.unique } else { counters.delivered_in_window };
        Broker {
            pid,
            cmdline: procfs::cmdline(pid),
            cpu_s: cpu_us.unwrap_or(0) as f64 / 1e6,
            cpu_cores: cpu_us.unwrap_or(0) as f64 / 1e6 / window_s,
            cpu_us_per_msg: cpu_us
                .filter(|_| delivered > 0 && cfg.scenario != Kind::Conn)
                .map(|c| c as f64 / delivered as f64),
            cpu_us_per_connection: cpu_us
                .filter(|_| cfg.scenario == Kind::Conn && counters.conn_ok > 0)
                .map(|c| c as f64 / counters.conn_ok as f64),
            rss_start_kib: ph.rss_before_kib.or(mon.rss_start_kib),
            rss_end_kib: procfs::process_rss_kib(pid).or(mon.rss_last_kib),
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
        if cfg.qos > 0 && lost > 0 {
            problems.push(format!("QoS {}: {lost} message(s) lost", cfg.qos));
            exit_code = exit_code.max(EXIT_DELIVERY_FAILED);
        }
        if cfg.qos == 2 && counters.duplicates > 0 {
            problems.push(format!("QoS 2: {} message(s) delivered twice", counters.duplicates));
            exit_code = exit_code.max(EXIT_DELIVERY_FAILED);
        }
        if cfg.qos == 0 && lost > 0 {
            warnings.push(format!("QoS 0: {lost} message(s) lost (allowed at QoS 0)"));
        }
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
        status: Status { ok: exit_code == EXIT_OK, exit_code, problems, warnings },
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
