//! The run's phases as the runner steps through them, one function per kind of scenario:
//! wait for set-up, set the timetable, watch the warm-up, the window and the drain (or,
//! `retained`, store / subscribe / clean up; `conn`, open and hold), and note what was
//! found for the summary.

use crate::clock::{now_ns, secs_to_ns};
use crate::config::RunConfig;
use crate::monitor::{CpuMark, Monitor};
use crate::plan::Plan;
use crate::procfs;
use crate::shared::{phase, Times};
use crate::worker::{ThreadResult, CONNECTS_IN_FLIGHT_MAX};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Time between the go signal and the first scheduled send, so every thread has seen it.
const START_DELAY_NS: u64 = 100_000_000;
/// `retained`: wait after storing before subscribing, so a broker that spreads retained
/// messages between its cores asynchronously has done so.
const RETAINED_SETTLE: Duration = Duration::from_millis(300);
/// QoS 0 drain ends early once no delivery arrived for this long (QoS 0 loss is final).
const QOS0_QUIET_NS: u64 = 1_000_000_000;

/// What the phases found, for the summary.
#[derive(Default)]
pub struct Phases {
    /// CPU readings at the start and end of the measurement window.
    pub window_start: CpuMark,
    pub window_end: CpuMark,
    pub setup_failed: bool,
    /// `conn`: RSS before the first connection and while all were held.
    pub rss_before_kib: Option<u64>,
    pub rss_held_kib: Option<u64>,
    pub drain_timed_out: bool,
}

/// Waits for every thread's set-up; false (and a problem noted) if it failed.
fn wait_setup(
    cfg: &RunConfig,
    mon: &mut Monitor,
    handles: &[std::thread::JoinHandle<anyhow::Result<ThreadResult>>],
    problems: &mut Vec<String>,
) -> bool {
    let per_thread = cfg.connections().div_ceil(cfg.threads as u64);
    let rounds = per_thread.div_ceil(CONNECTS_IN_FLIGHT_MAX as u64) + 2;
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

/// pairs, fanin, fanout, shared: set-up, warm-up, the window, then the drain until every
/// owed delivery is in (QoS 0: until deliveries stop).
pub fn run_pubsub(
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
    mon.print_from(start);
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

/// retained: set-up, store, settle, subscribe and receive, then clear the messages.
pub fn run_retained(
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
    mon.print_from(start);
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

/// conn: open the connections on their schedule, then hold them.
pub fn run_conn(cfg: &RunConfig, mon: &mut Monitor) -> Phases {
    let mut ph = Phases { rss_before_kib: procfs::processes_rss_kib(&cfg.broker_pids), ..Default::default() };
    let start = now_ns() + START_DELAY_NS;
    let open_ns = secs_to_ns(cfg.conn_n as f64 / cfg.conn_rate_per_s);
    let end = start + open_ns;
    let deadline = end + secs_to_ns(cfg.connect_timeout_s) + 1_000_000_000;
    let t = Times { start_ns: start, warm_end_ns: start, end_ns: end, drain_deadline_ns: deadline };
    mon.shared.begin_run(t);
    mon.print_from(start);
    mon.watch_until(start, |_| false);
    ph.window_start = mon.cpu_mark();
    let n = cfg.conn_n as u64;
    let done = mon
        .watch_until(deadline, |s| s.conn_done.iter().map(|c| c.0.load(Ordering::Relaxed)).sum::<u64>() >= n);
    ph.window_end = mon.cpu_mark();
    ph.drain_timed_out = !done;
    let hold_end = now_ns() + secs_to_ns(cfg.hold_s);
    mon.watch_until(hold_end, |_| false);
    ph.rss_held_kib = procfs::processes_rss_kib(&cfg.broker_pids);
    ph
}
