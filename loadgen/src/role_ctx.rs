//! What a client and its role (publisher, subscriber) see of their load thread: the
//! settings, the thread's counters and histograms, its pacer, the phase events, the run's
//! timetable and schedules, and the counters shared with the runner. Each load thread
//! (`worker.rs`, above this module) builds one; a test builds one with [`RoleCtx::new`].

use crate::config::RunConfig;
use crate::pacer::Pacer;
use crate::schedule::Schedule;
use crate::shared::{Shared, Times};
use crate::stats::ThreadStats;
use crate::sync::Event;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A load thread's context as its clients' tasks see it.
pub struct RoleCtx {
    pub cfg: Arc<RunConfig>,
    pub shared: Arc<Shared>,
    pub stats: RefCell<ThreadStats>,
    pub pacer: Rc<Pacer>,
    pub store: Event,
    pub run: Event,
    pub cleanup: Event,
    pub stop: Event,
    pub times: Cell<Times>,
    /// Every publisher's schedule (open loop), indexed by publisher id.
    pub schedules: RefCell<Vec<Schedule>>,
    /// Clients still in set-up; the thread reports to the runner when none is left.
    setup_pending: Cell<usize>,
}

impl RoleCtx {
    /// A context whose `setup_pending` clients will each report [`RoleCtx::setup_result`].
    pub fn new(cfg: Arc<RunConfig>, shared: Arc<Shared>, pacer: Rc<Pacer>, setup_pending: usize) -> RoleCtx {
        RoleCtx {
            stats: RefCell::new(ThreadStats::new(cfg.pubs as usize)),
            pacer,
            store: Event::default(),
            run: Event::default(),
            cleanup: Event::default(),
            stop: Event::default(),
            times: Cell::new(Times::default()),
            schedules: RefCell::new(Vec::new()),
            setup_pending: Cell::new(setup_pending),
            cfg,
            shared,
        }
    }

    pub fn note_error(&self, e: String) {
        self.stats.borrow_mut().note_error(e);
    }

    /// One client finished set-up; the thread reports when all have.
    pub fn setup_result(&self, ok: bool) {
        if !ok {
            self.shared.setup_failures.fetch_add(1, Ordering::Relaxed);
        }
        let left = self.setup_pending.get() - 1;
        self.setup_pending.set(left);
        if left == 0 {
            self.shared.threads_set_up.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// A context for unit tests: the settings of `args` (a command line without the program
/// name), no clients in set-up, the timetable `times`.
#[cfg(test)]
pub fn test_ctx(args: &[&str], times: Times) -> RoleCtx {
    use clap::Parser;
    let argv = std::iter::once("ringmq-loadgen").chain(args.iter().copied());
    let parsed = crate::cli::Args::try_parse_from(argv).expect("test arguments parse");
    let cfg = Arc::new(RunConfig::from_args(&parsed, Vec::new()).expect("test arguments are valid"));
    let (tx, _rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared::new(cfg.clone(), tx));
    let ctx = RoleCtx::new(cfg, shared, Pacer::new(false), 0);
    ctx.times.set(times);
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_reports_set_up_once_its_last_client_has() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let cfg = test_ctx(&["pairs", "--n", "2"], Times::default()).cfg;
        let shared = Arc::new(Shared::new(cfg.clone(), tx));
        let ctx = RoleCtx::new(cfg, shared.clone(), Pacer::new(false), 2);
        ctx.setup_result(false);
        assert_eq!(shared.threads_set_up.load(Ordering::Relaxed), 0);
        assert_eq!(shared.setup_failures.load(Ordering::Relaxed), 1);
        ctx.setup_result(true);
        assert_eq!(shared.threads_set_up.load(Ordering::Relaxed), 1);
        assert_eq!(shared.setup_failures.load(Ordering::Relaxed), 1);
    }
}
