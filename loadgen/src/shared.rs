//! What the runner and every load thread share: the run's phases and timetable, the
//! counters the runner watches (sent, done, set up, first arrivals), and the progress
//! channel. Written by the runner and the threads through atomics; read by both.

use crate::config::RunConfig;
use crate::stats::Counters;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The run's phases, in order; threads only move forward.
pub mod phase {
    /// Connect (and subscribe, except `retained`).
    pub const SETUP: u8 = 0;
    /// `retained`: store the retained messages.
    pub const STORE: u8 = 1;
    /// Publish (or, `retained`: subscribe; `conn`: connect).
    pub const RUN: u8 = 2;
    /// `retained`: clear the retained messages.
    pub const CLEANUP: u8 = 3;
    /// Disconnect everything and report.
    pub const STOP: u8 = 4;
}

/// The run's timetable, in ns since the epoch; set when the run phase begins.
#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    pub start_ns: u64,
    pub warm_end_ns: u64,
    pub end_ns: u64,
    pub drain_deadline_ns: u64,
}

/// A u64 on a cache line of its own (one per thread, written by that thread only).
#[repr(align(128))]
#[derive(Default)]
pub struct Padded(pub AtomicU64);

/// What the runner and all load threads share.
pub struct Shared {
    pub cfg: Arc<RunConfig>,
    pub phase: AtomicU8,
    pub start_ns: AtomicU64,
    pub warm_end_ns: AtomicU64,
    pub end_ns: AtomicU64,
    pub drain_deadline_ns: AtomicU64,
    /// Messages sent so far, per publisher (final once the publisher is done).
    pub sent: Box<[AtomicU64]>,
    pub pubs_done: AtomicU32,
    pub cleanups_done: AtomicU32,
    /// Threads whose clients have all finished set-up (ready or failed).
    pub threads_set_up: AtomicUsize,
    pub setup_failures: AtomicU64,
    /// First arrivals so far, per thread.
    pub unique: Box<[Padded]>,
    /// `conn`: connection attempts finished (connected or failed), per thread.
    pub conn_done: Box<[Padded]>,
    /// (thread index, kernel thread id) of each load thread.
    pub tids: Mutex<Vec<(usize, i32)>>,
    pub progress: crossbeam_channel::Sender<Snapshot>,
    pub pacing: Mutex<String>,
    pub aborted: AtomicBool,
}

impl Shared {
    pub fn new(cfg: Arc<RunConfig>, progress: crossbeam_channel::Sender<Snapshot>) -> Shared {
        let pubs = cfg.pubs as usize;
        let threads = cfg.threads;
        Shared {
            cfg,
            phase: AtomicU8::new(phase::SETUP),
            start_ns: AtomicU64::new(0),
            warm_end_ns: AtomicU64::new(0),
            end_ns: AtomicU64::new(0),
            drain_deadline_ns: AtomicU64::new(0),
            sent: (0..pubs).map(|_| AtomicU64::new(0)).collect(),
            pubs_done: AtomicU32::new(0),
            cleanups_done: AtomicU32::new(0),
            threads_set_up: AtomicUsize::new(0),
            setup_failures: AtomicU64::new(0),
            unique: (0..threads).map(|_| Padded::default()).collect(),
            conn_done: (0..threads).map(|_| Padded::default()).collect(),
            tids: Mutex::new(Vec::new()),
            progress,
            pacing: Mutex::new("none".to_string()),
            aborted: AtomicBool::new(false),
        }
    }

    /// Sets the timetable, then the phase (threads read the times after seeing the phase).
    pub fn begin_run(&self, t: Times) {
        self.start_ns.store(t.start_ns, Ordering::Relaxed);
        self.warm_end_ns.store(t.warm_end_ns, Ordering::Relaxed);
        self.end_ns.store(t.end_ns, Ordering::Relaxed);
        self.drain_deadline_ns.store(t.drain_deadline_ns, Ordering::Relaxed);
        self.phase.store(phase::RUN, Ordering::Release);
    }

    pub fn times(&self) -> Times {
        Times {
            start_ns: self.start_ns.load(Ordering::Relaxed),
            warm_end_ns: self.warm_end_ns.load(Ordering::Relaxed),
            end_ns: self.end_ns.load(Ordering::Relaxed),
            drain_deadline_ns: self.drain_deadline_ns.load(Ordering::Relaxed),
        }
    }

    pub fn set_phase(&self, p: u8) {
        self.phase.fetch_max(p, Ordering::AcqRel);
    }
}

/// A thread's progress report, once a second during the run.
pub struct Snapshot {
    pub thread: usize,
    pub counters: Counters,
    /// End-to-end latency (corrected in open loop) since the previous snapshot.
    pub interval: Histogram<u64>,
}
