//! Turns: how a busy load thread batches its I/O in open-loop runs.
//!
//! Left to itself, a monoio thread parks in `io_uring_enter(GETEVENTS, min_complete = 1)`
//! and wakes for every completion. The open-loop schedule spreads the sends evenly, so at
//! many connections and a modest rate per connection that is a wake-up (a timer, an idle
//! exit, and a cross-CPU wake-up of the broker for each send) per packet: on the 2-CPU
//! development VM, one load thread driving 1,000 pairs at 25 msg/s was 96% busy. Once
//! the thread could not keep up, the ring's DEFER_TASKRUN set the latency: since Linux
//! 6.13 one `io_uring_enter` runs at most `max(20, min_complete)` deferred completions
//! (`IO_LOCAL_TW_DEFAULT_MAX`), so each park reaped about 40 while the pacer kept adding
//! sends, and the rest waited in a kernel queue with one entry per connection that had
//! data. Measured latency grew with the number of connections: 25 ms at 2,000 sockets
//! and 50,000 msg/s, against ringmq and Mosquitto alike.
//!
//! So a busy thread works in turns, [`TURN_NS_DEFAULT`] apart (`--turn`). At each turn it
//! releases the publishers that are due, then has monoio run every ready task and park
//! without sleeping (one operation that completes at once, a read of /dev/null, makes
//! the park return), which submits the turn's sends and reads in one `io_uring_enter`
//! and reaps what completed; it repeats until a round in which no task ran, so a backlog
//! of completions is drained 40 at a time within the turn. Then it sleeps in
//! `clock_nanosleep` to the next turn: under DEFER_TASKRUN the kernel wakes only a
//! thread waiting in `io_uring_enter`, so completions arriving meanwhile just queue.
//! A thread that cannot keep up never sleeps, and its turns follow each other at once.
//!
//! The cost is counted, not hidden: a send can wait up to one turn (in `send_lag` and the
//! corrected latency) and a receipt up to one turn before it is timed (in every latency).
//! The gain: one wake-up per turn, the broker gets each turn's sends as one batch, and the
//! latency no longer grows with the connections. Threads handling fewer than
//! [`AUTO_MIN_EVENTS_PER_S`] sends and deliveries per second keep a wake-up per
//! completion (affordable there, and with no turn to wait for).

use crate::clock::{epoch_mono_ns, now_ns};
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Default time between two turns of an open-loop run (`--turn`).
pub const TURN_NS_DEFAULT: u64 = 100_000;

/// Sends plus deliveries per second per load thread from which `--turn auto` takes turns:
/// 10 pairs at 1,000 msg/s (20,000) cost about half a core with a wake-up per completion,
/// 1,000 pairs at 25 msg/s (50,000) saturate it.
pub const AUTO_MIN_EVENTS_PER_S: f64 = 30_000.0;

thread_local! {
    /// Polls of this thread's counted tasks (every task but the turn task).
    static POLLS: Cell<u64> = const { Cell::new(0) };
}

fn polls() -> u64 {
    POLLS.with(Cell::get)
}

/// A future that counts its polls in [`POLLS`].
struct Counted<F>(F);

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.with(|p| p.set(p.get().wrapping_add(1)));
        // SAFETY: structural pinning of the only field, which is never moved out.
        unsafe { self.map_unchecked_mut(|c| &mut c.0) }.poll(cx)
    }
}

/// `monoio::spawn`, counted: every task of a load thread is spawned through this, so the
/// turn task can tell when the runtime has nothing left to run.
pub fn spawn<F>(f: F) -> monoio::task::JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    monoio::spawn(Counted(f))
}

/// Lets every other ready task run once. (A task that wakes itself while polled goes to
/// the front of monoio's queue, so the wake comes from a new task, queued at the back.)
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            let waker = cx.waker().clone();
            monoio::spawn(async move { waker.wake() });
            Poll::Pending
        }
    })
    .await
}

/// Blocks the thread until `deadline_ns` (run clock).
fn sleep_until_blocking(deadline_ns: u64) {
    let at = epoch_mono_ns() + deadline_ns;
    let ts = libc::timespec {
        tv_sec: (at / 1_000_000_000) as libc::time_t,
        tv_nsec: (at % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: valid timespec; no remainder is asked for with TIMER_ABSTIME.
        let r = unsafe {
            libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut())
        };
        if r != libc::EINTR {
            return;
        }
    }
}

/// An operation that completes as soon as it is submitted: awaiting it makes the runtime
/// park without sleeping, which is when monoio reaps completions and runs its timers.
struct Nudge {
    file: monoio::fs::File,
    buf: Option<Vec<u8>>,
}

impl Nudge {
    fn new() -> Option<Nudge> {
        // /dev/null reads are non-blocking (FMODE_NOWAIT), so io_uring completes them
        // inline instead of handing them to a worker thread.
        let file = monoio::fs::File::from_std(std::fs::File::open("/dev/null").ok()?).ok()?;
        Some(Nudge { file, buf: Some(vec![0u8; 1]) })
    }

    async fn kick(&mut self) {
        let buf = self.buf.take().unwrap_or_else(|| vec![0u8; 1]);
        let (_, buf) = self.file.read_at(buf, 0).await;
        self.buf = Some(buf);
    }
}

/// Runs turns `turn_ns` apart until `stop()`. A turn releases the due publishers
/// (`on_turn`), then has monoio run every ready task and park without waiting (which
/// submits every queued operation and reaps what completed), again and again until a
/// round in which no task ran: then everything is submitted, the kernel had nothing left
/// to reap (it runs about 40 deferred completions per park, so a backlog takes several
/// rounds), and the thread sleeps to the next turn. Spawn it with `monoio::spawn`, not
/// [`spawn`]: its own polls must not count.
pub async fn run(turn_ns: u64, mut on_turn: impl FnMut(), stop: impl Fn() -> bool) {
    let Some(mut nudge) = Nudge::new() else { return };
    let mut next = now_ns();
    while !stop() {
        on_turn();
        loop {
            let before = polls();
            nudge.kick().await;
            yield_now().await;
            if polls() == before {
                break;
            }
        }
        if stop() {
            break;
        }
        if now_ns() < next {
            sleep_until_blocking(next);
        }
        next = (next + turn_ns).max(now_ns());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn runtime() -> monoio::Runtime<monoio::time::TimeDriver<monoio::IoUringDriver>> {
        let mut b = io_uring::IoUring::builder();
        b.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .uring_builder(b)
            .enable_timer()
            .build()
            .unwrap()
    }

    #[test]
    fn nudge_completes_at_once() {
        runtime().block_on(async {
            let mut n = Nudge::new().expect("/dev/null");
            let t0 = now_ns();
            n.kick().await;
            assert!(now_ns() - t0 < 50_000_000);
        });
    }

    /// Turns come at the cadence, monoio's timers still fire, and a socket completion
    /// (deferred by the kernel, which does not wake the sleeping thread) is seen within
    /// about a turn.
    #[test]
    fn turns_deliver_completions_and_timers() {
        runtime().block_on(async {
            let turns = Rc::new(Cell::new(0u32));
            let done = Rc::new(Cell::new(false));
            let (t, d) = (turns.clone(), done.clone());
            monoio::spawn(run(200_000, move || t.set(t.get() + 1), move || d.get()));
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let mut a = monoio::net::UnixStream::from_std(a).unwrap();
            let sent = Rc::new(Cell::new(0u64));
            let s = sent.clone();
            spawn(async move {
                // A monoio timer: fires only if the runtime still parks between turns.
                monoio::time::sleep(std::time::Duration::from_millis(5)).await;
                s.set(now_ns());
                std::io::Write::write_all(&mut &b, b"x").unwrap();
                monoio::time::sleep(std::time::Duration::from_millis(100)).await;
            });
            let (r, _) = monoio::io::AsyncReadRent::read(&mut a, vec![0u8; 8]).await;
            assert_eq!(r.unwrap(), 1);
            let latency = now_ns() - sent.get();
            done.set(true);
            assert!(turns.get() > 5, "{} turns", turns.get());
            // Generous: shared machines stall; the point is "not stuck until a timeout".
            assert!(latency < 20_000_000, "read seen {latency} ns after the write");
        });
    }
}
