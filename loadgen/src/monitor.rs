//! Watches a run from the runner's thread: takes in the load threads' snapshots, prints
//! the progress line and keeps its timeline, samples the broker's memory, and reads the
//! broker's and the load threads' CPU time from /proc.

use crate::clock::now_ns;
use crate::config::Kind;
use crate::procfs;
use crate::progress::Progress;
use crate::report::{self, TimelineRow};
use crate::schedule::new_histogram;
use crate::shared::{phase, Shared, Snapshot};
use crate::stats::Counters;
use hdrhistogram::Histogram;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Broker memory sampling period.
const RSS_SAMPLE_NS: u64 = 100_000_000;
/// The progress line runs this far behind the threads' once-a-second snapshots, so that
/// each line shows the second that just ended.
const PRINT_LAG_NS: u64 = 50_000_000;
/// The runner's polling step.
const POLL_STEP: Duration = Duration::from_millis(10);

/// CPU readings at one instant.
#[derive(Clone, Default)]
pub struct CpuMark {
    pub t_ns: u64,
    pub broker_us: Option<u64>,
    pub threads_us: Vec<Option<u64>>,
}

/// Watches the run from the runner's thread: snapshots, progress, broker memory.
pub struct Monitor {
    pub shared: Arc<Shared>,
    broker_pids: Vec<u32>,
    /// Broker memory: the first, largest and latest sample.
    pub rss_start_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_last_kib: Option<u64>,
    next_rss_ns: u64,
    /// (thread index, kernel thread id) of each load thread, by index.
    pub tids: Vec<(usize, i32)>,
    latest: Vec<Counters>,
    interval: Histogram<u64>,
    next_print_ns: u64,
    last_print: (u64, Counters, CpuMark),
    /// One row per progress line.
    pub timeline: Vec<TimelineRow>,
    progress: Progress,
    rx: crossbeam_channel::Receiver<Snapshot>,
}

impl Monitor {
    /// Watches the run `shared` steers; `rx` brings the threads' snapshots, `tids` their
    /// kernel thread ids.
    pub fn new(
        shared: Arc<Shared>,
        rx: crossbeam_channel::Receiver<Snapshot>,
        tids: Vec<(usize, i32)>,
    ) -> Monitor {
        let cfg = shared.cfg.clone();
        Monitor {
            shared,
            broker_pids: cfg.broker_pids.clone(),
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
        }
    }

    /// The broker's and every load thread's CPU time now.
    pub fn cpu_mark(&self) -> CpuMark {
        CpuMark {
            t_ns: now_ns(),
            broker_us: procfs::processes_cpu_us(&self.broker_pids),
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

    /// Takes in the snapshots, samples the broker's memory, prints the progress line.
    pub fn tick(&mut self) {
        while let Ok(s) = self.rx.try_recv() {
            self.latest[s.thread] = s.counters;
            let _ = self.interval.add(&s.interval);
        }
        let now = now_ns();
        if !self.broker_pids.is_empty() && now >= self.next_rss_ns {
            self.next_rss_ns = now + RSS_SAMPLE_NS;
            if let Some(kib) = procfs::processes_rss_kib(&self.broker_pids) {
                self.rss_last_kib = Some(kib);
                self.rss_peak_kib = Some(self.rss_peak_kib.map_or(kib, |p| p.max(kib)));
                self.rss_start_kib.get_or_insert(kib);
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

    /// The run starts at `start_ns`: the first progress line covers its first second.
    pub fn print_from(&mut self, start_ns: u64) {
        self.next_print_ns = start_ns + 1_000_000_000 + PRINT_LAG_NS;
        self.last_print = (start_ns, Counters::default(), self.cpu_mark());
    }

    /// The threads have ended: the last snapshots, then the progress line ends.
    pub fn finish(&mut self) {
        self.tick();
        self.progress.finish();
    }

    /// Watches until `t_ns`, or until `done` says so; returns whether `done` ended it.
    pub fn watch_until(&mut self, t_ns: u64, mut done: impl FnMut(&Shared) -> bool) -> bool {
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
pub fn busy_pcts(a: &CpuMark, b: &CpuMark) -> Vec<f64> {
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
