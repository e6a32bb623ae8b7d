//! A load thread: one monoio io_uring runtime pinned to one CPU, owning a slice of the
//! run's clients (thread-per-core, as the broker). The runner steers all threads through
//! the run's phases with a few atomics in [`Shared`]; each thread's control task polls
//! them, wakes its clients, keeps their connections alive, and reports its counters.

use crate::client::{self, ReadEnd, IDLE_READ_CHUNK_BYTES, READ_CHUNK_BYTES};
use crate::clock::{now_ns, secs_to_ns};
use crate::config::RunConfig;
use crate::pacer::Pacer;
use crate::plan::{ClientSpec, Role};
use crate::publisher::{self, PubState};
use crate::schedule::{new_histogram, Schedule};
use crate::stats::{Counters, Hist, Histograms, PubDelivery};
use crate::subscriber::{self, SubState};
use crate::sync::{Event, Semaphore};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// How often a thread's control task looks at the phase and flushes its counters.
pub const CONTROL_TICK: Duration = Duration::from_millis(5);
/// Connection attempts in flight per thread (set-up of publish/subscribe scenarios, and
/// the cap on `conn`'s open loop).
pub const CONNECTS_IN_FLIGHT_MAX: usize = 512;
/// Error messages kept per thread (the counters count all of them).
pub const ERRORS_KEPT: usize = 20;
/// io_uring submission queue entries per load thread.
const RING_ENTRIES: u32 = 4096;

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

/// What a thread measured.
pub struct ThreadStats {
    pub counters: Counters,
    pub hists: Histograms,
    /// End-to-end latency since the last snapshot, for the progress line.
    pub interval: Histogram<u64>,
    /// Deliveries per publisher, summed over this thread's subscribers.
    pub per_pub: Vec<PubDelivery>,
    pub errors: Vec<String>,
}

impl ThreadStats {
    fn new(pubs: usize) -> Self {
        ThreadStats {
            counters: Counters::default(),
            hists: Histograms::default(),
            interval: new_histogram(),
            per_pub: vec![PubDelivery::default(); pubs],
            errors: Vec::new(),
        }
    }

    /// Keeps the first [`ERRORS_KEPT`] error messages.
    pub fn note_error(&mut self, e: String) {
        if self.errors.len() < ERRORS_KEPT {
            self.errors.push(e);
        }
    }

    /// Records one measured delivery.
    pub fn latency(&mut self, recv_ns: u64, sent_ns: u64, scheduled_ns: Option<u64>) {
        let measured = recv_ns.saturating_sub(sent_ns);
        self.hists.record(Hist::E2e, measured);
        let shown = match scheduled_ns {
            Some(s) => {
                let corrected = recv_ns.saturating_sub(s.min(sent_ns));
                self.hists.record(Hist::E2eCorrected, corrected);
                corrected
            }
            None => measured,
        };
        self.interval.saturating_record(shown.max(1));
    }
}

/// What a thread hands back when it ends.
pub struct ThreadResult {
    pub index: usize,
    pub counters: Counters,
    pub hists: Histograms,
    pub per_pub: Vec<PubDelivery>,
    pub errors: Vec<String>,
}

/// A load thread's context, shared by all its tasks.
pub struct ThreadCtx {
    pub index: usize,
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
    pub connect_slots: Semaphore,
    pub clients: RefCell<Vec<client::Client>>,
    setup_pending: Cell<usize>,
}

impl ThreadCtx {
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

/// Starts load thread `index` with its clients.
pub fn spawn(
    index: usize,
    cpu: Option<usize>,
    specs: Vec<ClientSpec>,
    shared: Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<anyhow::Result<ThreadResult>>> {
    std::thread::Builder::new().name(format!("loadgen-{index}")).spawn(move || {
        if let Some(cpu) = cpu {
            pin_to_cpu(cpu);
        }
        // Timer slack would add up to 50 µs to every pacer wake-up.
        // SAFETY: prctl with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        shared.tids.lock().expect("tids").push((index, crate::procfs::gettid()));
        let mut b = io_uring::IoUring::builder();
        b.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
        let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(b)
            .with_entries(RING_ENTRIES)
            .enable_timer()
            .build()
            .map_err(|e| {
                anyhow::anyhow!("cannot start an io_uring runtime (Linux 6.1 or later needed): {e}")
            })?;
        Ok(rt.block_on(thread_main(index, specs, shared)))
    })
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays in bounds (cpu < CPU_SETSIZE,
    // checked when the list was parsed).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("ringmq-loadgen: warning: could not pin a load thread to CPU {cpu}");
        }
    }
}

async fn thread_main(index: usize, specs: Vec<ClientSpec>, shared: Arc<Shared>) -> ThreadResult {
    let cfg = shared.cfg.clone();
    let precise = cfg.rate_per_pub.is_some() || cfg.scenario == crate::config::Kind::Conn;
    let pacer = Pacer::new(precise);
    // Turns release the pacer's sleepers themselves, which needs its precise mode.
    let turn_ns = cfg.turn_ns.filter(|_| pacer.kind() == "timerfd");
    *shared.pacing.lock().expect("pacing") = match turn_ns {
        Some(ns) => format!("turns of {} us", ns as f64 / 1000.0),
        None => pacer.kind().to_string(),
    };
    let is_conn = cfg.scenario == crate::config::Kind::Conn;
    let ctx = Rc::new(ThreadCtx {
        index,
        stats: RefCell::new(ThreadStats::new(cfg.pubs as usize)),
        pacer: pacer.clone(),
        store: Event::default(),
        run: Event::default(),
        cleanup: Event::default(),
        stop: Event::default(),
        times: Cell::new(Times::default()),
        schedules: RefCell::new(Vec::new()),
        connect_slots: Semaphore::new(CONNECTS_IN_FLIGHT_MAX),
        clients: RefCell::new(Vec::new()),
        setup_pending: Cell::new(if is_conn { 0 } else { specs.len() }),
        cfg,
        shared: shared.clone(),
    });
    if is_conn || specs.is_empty() {
        shared.threads_set_up.fetch_add(1, Ordering::AcqRel);
    }
    crate::turn::spawn(pacer.run());
    if let Some(turn_ns) = turn_ns {
        // Not counted (`monoio::spawn`): a turn starts when every counted task is idle.
        let ctx = ctx.clone();
        monoio::spawn(async move {
            ctx.run.wait().await;
            ctx.pacer.set_external(true);
            let pacer = ctx.pacer.clone();
            crate::turn::run(turn_ns, move || pacer.tick(), || ctx.stop.is_set()).await;
            ctx.pacer.set_external(false);
        });
    }
    let control = crate::turn::spawn(control(ctx.clone()));
    let handles: Vec<_> =
        specs.into_iter().map(|s| crate::turn::spawn(client_main(ctx.clone(), s))).collect();
    for h in handles {
        h.await;
    }
    control.await;
    let stats = ctx.stats.replace(ThreadStats::new(0));
    ThreadResult {
        index,
        counters: stats.counters,
        hists: stats.hists,
        per_pub: stats.per_pub,
        errors: stats.errors,
    }
}

/// Follows the runner's phases, flushes counters, sends snapshots, keeps connections alive.
async fn control(ctx: Rc<ThreadCtx>) {
    let shared = ctx.shared.clone();
    let mut next_snapshot = u64::MAX;
    let mut next_keepalive = now_ns() + 1_000_000_000;
    let keepalive_idle_ns = secs_to_ns(ctx.cfg.keepalive_secs as f64 / 2.0);
    loop {
        monoio::time::sleep(CONTROL_TICK).await;
        let ph = shared.phase.load(Ordering::Acquire);
        if ph >= phase::STORE {
            ctx.store.set();
        }
        if ph >= phase::RUN && !ctx.run.is_set() {
            let t = shared.times();
            ctx.times.set(t);
            if let Some(rate) = ctx.cfg.rate_per_pub {
                let pubs = ctx.cfg.pubs;
                *ctx.schedules.borrow_mut() =
                    (0..pubs).map(|p| Schedule::new(t.start_ns, rate, p, pubs)).collect();
            }
            ctx.run.set();
            next_snapshot = t.start_ns + 1_000_000_000;
        }
        if ph >= phase::CLEANUP {
            ctx.cleanup.set();
        }
        let now = now_ns();
        {
            let stats = ctx.stats.borrow();
            shared.unique[ctx.index].0.store(stats.counters.unique, Ordering::Relaxed);
            shared.conn_done[ctx.index]
                .0
                .store(stats.counters.conn_ok + stats.counters.conn_failed, Ordering::Relaxed);
        }
        if now >= next_snapshot {
            let mut stats = ctx.stats.borrow_mut();
            let interval = std::mem::replace(&mut stats.interval, new_histogram());
            let _ = shared.progress.send(Snapshot { thread: ctx.index, counters: stats.counters, interval });
            next_snapshot += 1_000_000_000;
        }
        if keepalive_idle_ns > 0 && now >= next_keepalive {
            let mut stats = ctx.stats.borrow_mut();
            for c in ctx.clients.borrow().iter() {
                c.borrow_mut().keepalive(now, keepalive_idle_ns, &mut stats.counters);
            }
            next_keepalive = now + 1_000_000_000;
        }
        if ph >= phase::STOP {
            // Release everyone still waiting for a phase, then end every reader.
            ctx.store.set();
            ctx.run.set();
            ctx.cleanup.set();
            ctx.stop.set();
            for c in ctx.clients.borrow().iter() {
                if let Some(fd) = c.borrow().fd {
                    crate::net::shutdown_read(fd);
                }
            }
            return;
        }
    }
}

async fn client_main(ctx: Rc<ThreadCtx>, spec: ClientSpec) {
    match spec.role.clone() {
        Role::Idle { start_offset_ns } => idle_client(ctx, spec, start_offset_ns).await,
        role => pubsub_client(ctx, spec, role).await,
    }
}

async fn pubsub_client(ctx: Rc<ThreadCtx>, spec: ClientSpec, role: Role) {
    let connected = {
        let _permit = ctx.connect_slots.acquire().await;
        client::connect(&ctx, &spec.client_id, spec.source_ip, None).await
    };
    let Ok(connected) = connected else {
        ctx.setup_result(false);
        return;
    };
    let (client, mut rd, leftover, decoder) = client::start(&ctx, connected);
    let role_task = {
        let mut s = client.borrow_mut();
        match role {
            Role::Publisher { id, topic } => {
                let window = ctx.cfg.inflight.min(s.server_receive_maximum);
                s.publisher = Some(PubState::new(id, topic, ctx.cfg.qos(), window, ctx.cfg.size_bytes));
                ctx.setup_result(true);
                if ctx.cfg.scenario == crate::config::Kind::Retained {
                    crate::turn::spawn(publisher::run_retained(ctx.clone(), client.clone()))
                } else {
                    crate::turn::spawn(publisher::run_stream(ctx.clone(), client.clone()))
                }
            }
            Role::Subscriber { filter, expects, group } => {
                s.subscriber = Some(SubState::new(filter, expects, group));
                crate::turn::spawn(subscriber::run(ctx.clone(), client.clone()))
            }
            Role::Idle { .. } => unreachable!("idle clients take the other path"),
        }
    };
    let end = client::reader(&ctx, &client, &mut rd, leftover, decoder, READ_CHUNK_BYTES).await;
    finish(&ctx, &client, &spec, end).await;
    drop(role_task);
    let c = client.borrow();
    if let Some(sub) = &c.subscriber {
        sub.fold_into(&mut ctx.stats.borrow_mut());
    }
}

async fn idle_client(ctx: Rc<ThreadCtx>, spec: ClientSpec, start_offset_ns: u64) {
    ctx.run.wait().await;
    if ctx.stop.is_set() {
        return;
    }
    let scheduled = ctx.times.get().start_ns + start_offset_ns;
    ctx.pacer.sleep_until(scheduled).await;
    let connected = {
        let _permit = ctx.connect_slots.acquire().await;
        client::connect(&ctx, &spec.client_id, spec.source_ip, Some(scheduled)).await
    };
    let Ok(connected) = connected else { return };
    let (client, mut rd, leftover, decoder) = client::start(&ctx, connected);
    let end = client::reader(&ctx, &client, &mut rd, leftover, decoder, IDLE_READ_CHUNK_BYTES).await;
    finish(&ctx, &client, &spec, end).await;
}

/// After the reader ended: count an unplanned close, then say goodbye.
async fn finish(ctx: &ThreadCtx, client: &client::Client, spec: &ClientSpec, end: ReadEnd) {
    let planned = matches!(end, ReadEnd::Eof) && ctx.stop.is_set();
    if !planned {
        let mut stats = ctx.stats.borrow_mut();
        stats.counters.closed_mid_run += 1;
        let why = match end {
            ReadEnd::Eof => "the broker closed the connection".to_string(),
            ReadEnd::Error(e) => format!("socket error: {e}"),
            ReadEnd::Protocol(e) => e,
        };
        stats.note_error(format!("{}: {why}", spec.client_id));
    }
    client::goodbye(client).await;
}
