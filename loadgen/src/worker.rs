//! A load thread: one monoio io_uring runtime pinned to one CPU, owning a slice of the
//! run's clients (thread-per-core, as the broker). The runner steers all threads through
//! the run's phases with a few atomics in [`Shared`]; each thread's control task polls
//! them, wakes its clients, keeps their connections alive, and reports its counters.
//! The thread builds the [`RoleCtx`] its clients and their roles work in, connects each
//! client, and gives it its role (publisher, subscriber, or none in `conn`).

use crate::client::{self, Client, Inbox, NoRole, ReadEnd, IDLE_READ_CHUNK_BYTES, READ_CHUNK_BYTES};
use crate::clock::{now_ns, secs_to_ns};
use crate::config::Kind;
use crate::pacer::Pacer;
use crate::plan::{ClientSpec, Role};
use crate::publisher::{self, PubState};
use crate::role_ctx::RoleCtx;
use crate::schedule::{new_histogram, Schedule};
use crate::shared::{phase, Shared, Snapshot};
use crate::stats::{Counters, Histograms, PubDelivery, SubTally, ThreadStats};
use crate::subscriber::{self, SubState};
use crate::sync::Semaphore;
use bytes::BytesMut;
use monoio::io::OwnedReadHalf;
use monoio::net::TcpStream;
use ringmq::protocol::Decoder;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often a thread's control task looks at the phase and flushes its counters.
pub const CONTROL_TICK: Duration = Duration::from_millis(5);
/// Connection attempts in flight per thread (set-up of publish/subscribe scenarios, and
/// the cap on `conn`'s open loop).
pub const CONNECTS_IN_FLIGHT_MAX: usize = 512;
/// io_uring submission queue entries per load thread.
const RING_ENTRIES: u32 = 4096;

/// What a thread hands back when it ends.
pub struct ThreadResult {
    pub index: usize,
    pub counters: Counters,
    pub hists: Histograms,
    pub per_pub: Vec<PubDelivery>,
    pub per_sub: Vec<SubTally>,
    pub errors: Vec<String>,
}

/// A load thread's own state around the [`RoleCtx`] its clients see.
struct ThreadCtx {
    index: usize,
    ctx: Rc<RoleCtx>,
    connect_slots: Semaphore,
    /// Every connected client, for keepalive and the final shutdown.
    clients: RefCell<Vec<Client>>,
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
    let precise = cfg.rate_per_pub.is_some() || cfg.scenario == Kind::Conn;
    let pacer = Pacer::new(precise);
    // Turns release the pacer's sleepers themselves, which needs its precise mode.
    let turn_ns = cfg.turn_ns.filter(|_| pacer.kind() == "timerfd");
    *shared.pacing.lock().expect("pacing") = match turn_ns {
        Some(ns) => format!("turns of {} us", ns as f64 / 1000.0),
        None => pacer.kind().to_string(),
    };
    let is_conn = cfg.scenario == Kind::Conn;
    let setup_pending = if is_conn { 0 } else { specs.len() };
    let ctx = Rc::new(RoleCtx::new(cfg, shared.clone(), pacer.clone(), setup_pending));
    let t = Rc::new(ThreadCtx {
        index,
        ctx: ctx.clone(),
        connect_slots: Semaphore::new(CONNECTS_IN_FLIGHT_MAX),
        clients: RefCell::new(Vec::new()),
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
    let control = crate::turn::spawn(control(t.clone()));
    let handles: Vec<_> = specs.into_iter().map(|s| crate::turn::spawn(client_main(t.clone(), s))).collect();
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
        per_sub: stats.per_sub,
        errors: stats.errors,
    }
}

/// Follows the runner's phases, flushes counters, sends snapshots, keeps connections alive.
async fn control(t: Rc<ThreadCtx>) {
    let ctx = &t.ctx;
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
            let times = shared.times();
            ctx.times.set(times);
            if ctx.cfg.rate_per_pub.is_some() {
                let pubs = ctx.cfg.pubs;
                *ctx.schedules.borrow_mut() = (0..pubs)
                    .map(|p| {
                        Schedule::new(times.start_ns, ctx.cfg.publisher_rate(p).expect("open loop"), p, pubs)
                    })
                    .collect();
            }
            ctx.run.set();
            next_snapshot = times.start_ns + 1_000_000_000;
        }
        if ph >= phase::CLEANUP {
            ctx.cleanup.set();
        }
        let now = now_ns();
        {
            let stats = ctx.stats.borrow();
            shared.unique[t.index].0.store(stats.counters.unique, Ordering::Relaxed);
            shared.conn_done[t.index]
                .0
                .store(stats.counters.conn_ok + stats.counters.conn_failed, Ordering::Relaxed);
        }
        if now >= next_snapshot {
            let mut stats = ctx.stats.borrow_mut();
            let interval = std::mem::replace(&mut stats.interval, new_histogram());
            let _ = shared.progress.send(Snapshot { thread: t.index, counters: stats.counters, interval });
            next_snapshot += 1_000_000_000;
        }
        if keepalive_idle_ns > 0 && now >= next_keepalive {
            let mut stats = ctx.stats.borrow_mut();
            for c in t.clients.borrow().iter() {
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
            for c in t.clients.borrow().iter() {
                if let Some(fd) = c.borrow().fd {
                    crate::net::shutdown_read(fd);
                }
            }
            return;
        }
    }
}

async fn client_main(t: Rc<ThreadCtx>, spec: ClientSpec) {
    match spec.role.clone() {
        Role::Idle { start_offset_ns } => idle_client(t, spec, start_offset_ns).await,
        role => pubsub_client(t, spec, role).await,
    }
}

async fn pubsub_client(t: Rc<ThreadCtx>, spec: ClientSpec, role: Role) {
    let ctx = &t.ctx;
    let connected = {
        let _permit = t.connect_slots.acquire().await;
        client::connect(ctx, &spec.client_id, spec.source_ip, None).await
    };
    let Ok(connected) = connected else {
        ctx.setup_result(false);
        return;
    };
    let (client, rd, leftover, decoder) = client::start(ctx, connected);
    t.clients.borrow_mut().push(client.clone());
    let conn = Conn { client, rd, leftover, decoder };
    match role {
        Role::Publisher { id, topic } => {
            let window = ctx.cfg.inflight.min(conn.client.borrow().server_receive_maximum);
            let (size_min, size_max) = ctx.cfg.publisher_sizes(id);
            let state = Rc::new(RefCell::new(
                PubState::new(id, topic, ctx.cfg.publisher_qos(id), window, size_max).with_sizes(size_min),
            ));
            ctx.setup_result(true);
            let role_task = if ctx.cfg.scenario == Kind::Retained {
                crate::turn::spawn(publisher::run_retained(ctx.clone(), conn.client.clone(), state.clone()))
            } else {
                crate::turn::spawn(publisher::run_stream(ctx.clone(), conn.client.clone(), state.clone()))
            };
            serve(&t, &spec, conn, &state, READ_CHUNK_BYTES).await;
            drop(role_task);
        }
        Role::Subscriber { filter, expects, group, qos } => {
            let state = Rc::new(RefCell::new(SubState::new(filter, expects, group).with_qos(qos)));
            let role_task =
                crate::turn::spawn(subscriber::run(ctx.clone(), conn.client.clone(), state.clone()));
            serve(&t, &spec, conn, &state, READ_CHUNK_BYTES).await;
            drop(role_task);
            state.borrow().fold_into(&mut ctx.stats.borrow_mut());
        }
        Role::Idle { .. } => unreachable!("idle clients take the other path"),
    }
}

async fn idle_client(t: Rc<ThreadCtx>, spec: ClientSpec, start_offset_ns: u64) {
    let ctx = &t.ctx;
    ctx.run.wait().await;
    if ctx.stop.is_set() {
        return;
    }
    let scheduled = ctx.times.get().start_ns + start_offset_ns;
    ctx.pacer.sleep_until(scheduled).await;
    let connected = {
        let _permit = t.connect_slots.acquire().await;
        client::connect(ctx, &spec.client_id, spec.source_ip, Some(scheduled)).await
    };
    let Ok(connected) = connected else { return };
    let (client, rd, leftover, decoder) = client::start(ctx, connected);
    t.clients.borrow_mut().push(client.clone());
    let conn = Conn { client, rd, leftover, decoder };
    serve(&t, &spec, conn, &RefCell::new(NoRole), IDLE_READ_CHUNK_BYTES).await;
}

/// A started connection: the client, its read half, and what the CONNACK read left over.
struct Conn {
    client: Client,
    rd: OwnedReadHalf<TcpStream>,
    leftover: BytesMut,
    decoder: Decoder,
}

/// Reads for `role` until the connection ends, counts an unplanned close, then says goodbye.
async fn serve<R: Inbox>(t: &ThreadCtx, spec: &ClientSpec, conn: Conn, role: &RefCell<R>, chunk: usize) {
    let Conn { client, mut rd, leftover, decoder } = conn;
    let ctx = &t.ctx;
    let end = client::reader(ctx, &client, role, &mut rd, leftover, decoder, chunk).await;
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
    client::goodbye(&client).await;
}
